// Command check validates Parley's deployment files with the code of the
// tools that read them, offline: BuildKit's Dockerfile linter (what
// `docker build --check` runs), Docker's .dockerignore matcher, compose-go
// (what `docker compose config` runs), kustomize (what `kubectl apply -k`
// runs) and strict decoding into the Kubernetes API types. On top it checks
// what Parley needs of them: probe paths, ports, the Discord shard wiring,
// non-root users, and that every variable set is one Parley reads.
//
// It is a module of its own, so that these heavy dependencies stay out of
// Parley's go.mod. .ci/deploy-check runs it:
//
//	go run . -root ../..
//
// It prints what it validated and exits 1 if anything is wrong.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

func main() {
	root := flag.String("root", "../..", "the repository root")
	flag.Parse()
	abs, err := filepath.Abs(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "check:", err)
		os.Exit(2)
	}
	if !run(os.Stdout, abs) {
		os.Exit(1)
	}
}

// A check validates one kind of deployment file under root. It returns
// what it validated, one line each, and adds what is wrong to f.
type check struct {
	name string
	run  func(root string, f *findings) []string
}

var checks = []check{
	{"dockerfile", checkDockerfile},
	{"dockerignore", checkDockerignore},
	{"compose", checkCompose},
	{"kubernetes", checkKubernetes},
}

// run runs every check, printing to w, and reports whether all passed.
func run(w io.Writer, root string) bool {
	ok := true
	for _, c := range checks {
		var f findings
		validated := c.run(root, &f)
		for _, v := range validated {
			fmt.Fprintf(w, "%s: %s\n", c.name, v)
		}
		for _, p := range f.list {
			fmt.Fprintf(w, "%s: FAIL: %s\n", c.name, p)
		}
		if len(f.list) > 0 {
			ok = false
		} else {
			fmt.Fprintf(w, "%s: ok\n", c.name)
		}
	}
	return ok
}

// findings collects the problems a check finds, each a sentence that says
// where and what to do.
type findings struct{ list []string }

func (f *findings) add(format string, args ...any) {
	f.list = append(f.list, fmt.Sprintf(format, args...))
}
