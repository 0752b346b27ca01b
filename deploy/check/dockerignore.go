package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// checkDockerignore checks, with Docker's own matcher, that .dockerignore
// keeps every file `go build ./cmd/parley` reads in the build context and
// keeps secrets and local databases out of it.
func checkDockerignore(root string, f *findings) []string {
	file, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		f.add("%v: add one, or the .env file with the tokens goes into the build context", err)
		return nil
	}
	defer file.Close()
	patterns, err := ignorefile.ReadAll(file)
	if err != nil {
		f.add(".dockerignore: %v", err)
		return nil
	}
	needed, err := buildInputs(root)
	if err != nil {
		f.add("list the files go build reads: %v", err)
		return nil
	}
	checkIgnored(patterns, needed, f)
	return []string{fmt.Sprintf(".dockerignore: keeps the %d files go build ./cmd/parley reads (linux, CGO_ENABLED=0), leaves out .env, databases and .git", len(needed))}
}

// checkIgnored checks that the .dockerignore patterns keep the needed
// files and leave out secrets, local databases and .git.
func checkIgnored(patterns, needed []string, f *findings) {
	m, err := patternmatcher.New(patterns)
	if err != nil {
		f.add(".dockerignore: %v", err)
		return
	}
	for _, path := range needed {
		if excluded, err := m.MatchesOrParentMatches(path); err != nil {
			f.add(".dockerignore: %v", err)
		} else if excluded {
			f.add(".dockerignore excludes %s, which go build ./cmd/parley reads", path)
		}
	}
	for _, path := range []string{".env", "parley.db", "parley.db-wal", ".git/config"} {
		if excluded, err := m.MatchesOrParentMatches(path); err == nil && !excluded {
			f.add(".dockerignore lets %s into the build context: exclude it", path)
		}
	}
}

// buildInputs lists, relative to root, the files of the main module that
// `go build ./cmd/parley` reads for linux without cgo: go.mod, go.sum, and
// each package's Go and embedded files. A package that does not build is
// left out (-e): the build's own CI step reports it.
func buildInputs(root string) ([]string, error) {
	cmd := exec.Command("go", "list", "-e", "-deps", "-f",
		`{{if not .Standard}}{{$dir := .Dir}}{{range .GoFiles}}{{$dir}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$dir}}/{{.}}{{"\n"}}{{end}}{{end}}`,
		"./cmd/parley")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	files := []string{"go.mod", "go.sum"}
	for _, line := range strings.Split(string(out), "\n") {
		rel, err := filepath.Rel(root, line)
		if line == "" || err != nil || strings.HasPrefix(rel, "..") {
			continue // a dependency's file, from the module cache
		}
		files = append(files, filepath.ToSlash(rel))
	}
	return files, nil
}
