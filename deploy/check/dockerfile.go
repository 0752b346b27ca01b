package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	dfparser "github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
)

const dockerfilePath = "deploy/Dockerfile"

// checkDockerfile lints deploy/Dockerfile with BuildKit's rules, then checks
// that it builds Parley the way the deployment expects.
func checkDockerfile(root string, f *findings) []string {
	dt, err := os.ReadFile(filepath.Join(root, dockerfilePath))
	if err != nil {
		f.add("%v", err)
		return nil
	}
	var validated []string

	res, err := dockerfile2llb.DockerfileLint(context.Background(), dt, dockerfile2llb.ConvertOpt{
		Config:       dockerui.Config{LinterConfig: &linter.Config{}},
		SourceMap:    sourceMap(dt),
		MetaResolver: offlineImages{},
	})
	switch {
	case err != nil:
		f.add("%s: lint: %v", dockerfilePath, err)
	case res.Error != nil:
		f.add("%s:%s: %s", dockerfilePath, lineOf(res.Error.Location.Ranges), res.Error.Message)
	default:
		for _, w := range res.Warnings {
			line := ""
			if w.Location != nil {
				line = lineOf(w.Location.Ranges)
			}
			f.add("%s:%s: %s: %s (%s)", dockerfilePath, line, w.RuleName, w.Detail, w.URL)
		}
		validated = append(validated, fmt.Sprintf("%s: BuildKit lint (docker build --check rules), %d warnings", dockerfilePath, len(res.Warnings)))
	}

	parsed, err := dfparser.Parse(bytes.NewReader(dt))
	if err != nil {
		f.add("%s: %v", dockerfilePath, err)
		return validated
	}
	stages, metaArgs, err := instructions.Parse(parsed.AST, nil)
	if err != nil {
		f.add("%s: %v", dockerfilePath, err)
		return validated
	}
	if len(stages) < 2 {
		f.add("%s: %d stage(s), want a build stage and a minimal final stage", dockerfilePath, len(stages))
		return validated
	}
	build, final := stages[0], stages[len(stages)-1]
	checkBuildStage(root, build, metaArgs, f)
	checkFinalStage(root, final, build.Name, f)
	validated = append(validated, fmt.Sprintf("%s: build stage %s (%s), final stage %s: go build flags, main.version, non-root user, /data volume, port, entrypoint, healthcheck",
		dockerfilePath, build.Name, build.BaseName, final.BaseName))
	return validated
}

// ldflagsVar finds the -X main.NAME= of the go build command.
var ldflagsVar = regexp.MustCompile(`-X\s+main\.(\w+)=`)

func checkBuildStage(root string, st instructions.Stage, metaArgs []instructions.ArgCommand, f *findings) {
	if !strings.HasPrefix(st.BaseName, "golang:") || !strings.Contains(st.BaseName, "bookworm") {
		f.add("%s: build stage FROM %s, want golang:<version>-bookworm", dockerfilePath, st.BaseName)
	}
	// The golang image's version must be able to build go.mod's go line:
	// those images set GOTOOLCHAIN=local.
	if strings.Contains(st.BaseName, "${GO_VERSION}") {
		goVersion := argDefault(metaArgs, "GO_VERSION")
		want, err := goModVersion(filepath.Join(root, "go.mod"))
		switch {
		case err != nil:
			f.add("go.mod: %v", err)
		case !goVersionBuilds(goVersion, want):
			f.add("%s: ARG GO_VERSION=%s cannot build go.mod's go %s: use %s", dockerfilePath, goVersion, want, majorMinor(want))
		}
	}
	var build string
	for _, cmd := range st.Commands {
		if run, ok := cmd.(*instructions.RunCommand); ok && strings.Contains(strings.Join(run.CmdLine, " "), "go build") {
			build = strings.Join(run.CmdLine, " ")
		}
	}
	if build == "" {
		f.add("%s: the build stage runs no go build", dockerfilePath)
		return
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "./cmd/parley"} {
		if !strings.Contains(build, want) {
			f.add("%s: go build lacks %s", dockerfilePath, want)
		}
	}
	m := ldflagsVar.FindStringSubmatch(build)
	if m == nil {
		f.add("%s: go build sets no -X main.<version variable>", dockerfilePath)
		return
	}
	if ok, err := hasStringVar(filepath.Join(root, "cmd", "parley"), m[1]); err != nil {
		f.add("cmd/parley: %v", err)
	} else if !ok {
		f.add("%s: -X main.%s, but cmd/parley declares no package-level string variable %s", dockerfilePath, m[1], m[1])
	}
}

func checkFinalStage(root string, st instructions.Stage, buildStage string, f *findings) {
	var user, workdir string
	var volumes, ports []string
	var entrypoint *instructions.EntrypointCommand
	var health *instructions.HealthCheckCommand
	copiesBinary := false
	for _, cmd := range st.Commands {
		switch c := cmd.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.WorkdirCommand:
			workdir = c.Path
		case *instructions.VolumeCommand:
			volumes = append(volumes, c.Volumes...)
		case *instructions.ExposeCommand:
			ports = append(ports, c.Ports...)
		case *instructions.EntrypointCommand:
			entrypoint = c
		case *instructions.HealthCheckCommand:
			health = c
		case *instructions.CopyCommand:
			if c.From == buildStage && c.DestPath == "/parley" {
				copiesBinary = true
			}
		case *instructions.RunCommand:
			f.add("%s: the final stage runs %q: it has no shell (build in the build stage)", dockerfilePath, c.String())
		}
	}
	if !copiesBinary {
		f.add("%s: the final stage does not COPY --from=%s the binary to /parley", dockerfilePath, buildStage)
	}
	uid, _, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		f.add("%s: USER %q, want a numeric non-root user (Kubernetes' runAsNonRoot checks it)", dockerfilePath, user)
	}
	if workdir != "/data" {
		f.add("%s: WORKDIR %q, want /data (where sqlite://parley.db lands)", dockerfilePath, workdir)
	}
	if !slices.Contains(volumes, "/data") {
		f.add("%s: no VOLUME /data: the SQLite database would die with the container", dockerfilePath)
	}
	if vars, err := parleyVars(root); err != nil {
		f.add("%v", err)
	} else if want := listenPort(vars["HTTP_ADDR"]); !slices.Contains(ports, want) && !slices.Contains(ports, want+"/tcp") {
		f.add("%s: EXPOSE %v, want %s (HTTP_ADDR's default)", dockerfilePath, ports, want)
	}
	if entrypoint == nil || entrypoint.PrependShell || !slices.Equal(entrypoint.CmdLine, []string{"/parley"}) {
		f.add(`%s: want ENTRYPOINT ["/parley"] (exec form: the image has no shell, and parley gets SIGTERM)`, dockerfilePath)
	}
	if health == nil || health.Health == nil || !slices.Equal(health.Health.Test, []string{"CMD", "/parley", "health"}) {
		f.add(`%s: want HEALTHCHECK CMD ["/parley", "health"] (exec form: the image has no shell or curl)`, dockerfilePath)
	} else if t := health.Health.Timeout; t != 0 && t < 5*time.Second {
		f.add("%s: HEALTHCHECK --timeout=%s is shorter than parley health's own 4s and a margin: use 5s", dockerfilePath, t)
	}
}

func argDefault(args []instructions.ArgCommand, name string) string {
	for _, a := range args {
		for _, kv := range a.Args {
			if kv.Key == name {
				return kv.ValueString()
			}
		}
	}
	return ""
}

var goLine = regexp.MustCompile(`(?m)^go\s+(\d+\.\d+(?:\.\d+)?)\s*$`)

func goModVersion(path string) (string, error) {
	dt, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	m := goLine.FindSubmatch(dt)
	if m == nil {
		return "", fmt.Errorf("no go line")
	}
	return string(m[1]), nil
}

func majorMinor(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	return parts[0] + "." + parts[1]
}

// goVersionBuilds reports whether the golang image tag version (1.26, or
// 1.26.9) has a Go that builds a module whose go line is want (1.26.8): the
// same minor release, and a patch at least want's when the tag names one.
func goVersionBuilds(tag, want string) bool {
	if majorMinor(tag) != majorMinor(want) {
		return false
	}
	if tag == majorMinor(tag) {
		return true // the newest patch release
	}
	return patch(tag) >= patch(want)
}

func patch(v string) int {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 3 {
		return 0
	}
	n, _ := strconv.Atoi(parts[2])
	return n
}

// hasStringVar reports whether the Go package in dir declares a
// package-level variable name of type string.
func hasStringVar(dir, name string) (bool, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return false, err
	}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return false, err
		}
		for _, decl := range file.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.VAR {
				continue
			}
			for _, spec := range gen.Specs {
				vs := spec.(*ast.ValueSpec)
				typ, _ := vs.Type.(*ast.Ident)
				for _, n := range vs.Names {
					if n.Name == name && typ != nil && typ.Name == "string" {
						return true, nil
					}
				}
			}
		}
	}
	return false, nil
}

// sourceMap is the Dockerfile as a source for lint results, which expect
// an LLB definition alongside.
func sourceMap(dt []byte) *llb.SourceMap {
	sm := llb.NewSourceMap(nil, dockerfilePath, "Dockerfile", dt)
	sm.Definition = &llb.Definition{}
	return sm
}

func lineOf(ranges []*pb.Range) string {
	if len(ranges) == 0 || ranges[0].Start == nil {
		return ""
	}
	return strconv.Itoa(int(ranges[0].Start.Line))
}

// offlineImages answers BuildKit's image config lookups without a
// registry: a config for the requested platform with one layer, so that
// the linter treats each base image as a real image of the right platform.
type offlineImages struct{}

func (offlineImages) ResolveImageConfig(ctx context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	goos, arch := "linux", runtime.GOARCH
	if opt.ImageOpt != nil && opt.ImageOpt.Platform != nil {
		goos, arch = opt.ImageOpt.Platform.OS, opt.ImageOpt.Platform.Architecture
	}
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	if strings.HasPrefix(ref, "golang:") || strings.Contains(ref, "/golang:") {
		env = []string{"PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GOLANG_VERSION=", "GOTOOLCHAIN=local", "GOPATH=/go"}
	}
	cfg, err := json.Marshal(map[string]any{
		"architecture": arch,
		"os":           goos,
		"config":       map[string]any{"Env": env},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{digest.FromString(ref).String()}},
	})
	return ref, "", cfg, err
}
