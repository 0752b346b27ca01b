package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/patternmatcher/ignorefile"
)

const repoRoot = "../.."

// The repository's own deployment files pass every check.
func TestRepositoryPasses(t *testing.T) {
	var out strings.Builder
	if !run(&out, repoRoot) {
		t.Errorf("the deployment files fail their checks:\n%s", out.String())
	}
}

// Each check catches the mistake it is there for: a copy of the files with
// one edit fails with a finding that names the problem.
func TestCatches(t *testing.T) {
	tests := []struct {
		name     string
		check    func(string, *findings) []string
		file     string
		old, new string
		want     string
	}{
		// Dockerfile.
		{"root user", checkDockerfile, "deploy/Dockerfile", "USER 65532:65532", "USER root", "numeric non-root user"},
		{"shell-form entrypoint", checkDockerfile, "deploy/Dockerfile", `ENTRYPOINT ["/parley"]`, "ENTRYPOINT /parley", "JSONArgsRecommended"},
		{"lowercase instruction", checkDockerfile, "deploy/Dockerfile", "EXPOSE 8080", "expose 8080", "ConsistentInstructionCasing"},
		{"undefined variable", checkDockerfile, "deploy/Dockerfile", "WORKDIR /src", "WORKDIR /src/$APP", "UndefinedVar"},
		{"version variable", checkDockerfile, "deploy/Dockerfile", "-X main.version=", "-X main.Version=", "declares no package-level string variable Version"},
		{"old Go", checkDockerfile, "deploy/Dockerfile", "ARG GO_VERSION=1.26", "ARG GO_VERSION=1.25", "cannot build go.mod"},
		{"cgo", checkDockerfile, "deploy/Dockerfile", "CGO_ENABLED=0 ", "", "lacks CGO_ENABLED=0"},
		{"no volume", checkDockerfile, "deploy/Dockerfile", `VOLUME ["/data"]`, "", "no VOLUME /data"},
		{"other port", checkDockerfile, "deploy/Dockerfile", "EXPOSE 8080", "EXPOSE 9090", "want 8080"},
		{"no healthcheck", checkDockerfile, "deploy/Dockerfile", `CMD ["/parley", "health"]`, "NONE", `want HEALTHCHECK CMD ["/parley", "health"]`},
		{"shell healthcheck", checkDockerfile, "deploy/Dockerfile", `CMD ["/parley", "health"]`, "CMD curl -f http://localhost:8080/healthz", `want HEALTHCHECK CMD ["/parley", "health"]`},

		// Compose.
		{"unknown compose key", checkCompose, "deploy/compose.yaml", "stop_grace_period: 30s", "stop_grace_periods: 30s", "stop_grace_periods"},
		{"started, not healthy", checkCompose, "deploy/compose.yaml", "condition: service_healthy", "condition: service_started", "condition service_healthy"},
		{"short grace", checkCompose, "deploy/compose.yaml", "stop_grace_period: 30s", "stop_grace_period: 10s", "stop_grace_period must be at least 30s"},
		{"database host", checkCompose, "deploy/compose.yaml", "@postgres:5432", "@db:5432", `names host "db"`},
		{"undeclared volume", checkCompose, "deploy/compose.yaml", "  postgres-data:\n", "", "postgres-data"},
		{"no healthcheck", checkCompose, "deploy/compose.yaml", `test: ["CMD", "pg_isready", "-U", "parley", "-d", "parley"]`, `test: ["CMD", "true"]`, "pg_isready healthcheck"},
		{"unknown variable", checkCompose, "deploy/compose.yaml", "      DATABASE_URL: postgres", "      DATABASE_UR: x\n      DATABASE_URL: postgres", "DATABASE_UR, which Parley does not read"},

		// Kubernetes.
		{"misspelt field", checkKubernetes, "deploy/kubernetes/slack-deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true", "unknown field"},
		{"field of the wrong type", checkKubernetes, "deploy/kubernetes/slack-deployment.yaml", "replicas: 2", `replicas: "two"`, "replicas"},
		{"shard count", checkKubernetes, "deploy/kubernetes/discord-statefulset.yaml", `value: "2"`, `value: "3"`, "DISCORD_SHARD_COUNT"},
		{"shard id", checkKubernetes, "deploy/kubernetes/discord-statefulset.yaml", "metadata.labels['apps.kubernetes.io/pod-index']", "metadata.name", "DISCORD_SHARD_ID must come from"},
		{"readiness path", checkKubernetes, "deploy/kubernetes/slack-deployment.yaml", "path: /readyz", "path: /ready", `readinessProbe path "/ready"`},
		{"probe port", checkKubernetes, "deploy/kubernetes/discord-statefulset.yaml", "              port: ops\n            initialDelaySeconds", "              port: 8080\n            initialDelaySeconds", "livenessProbe port 8080 is not OPS_ADDR's port 9090"},
		{"probe on the public port", checkKubernetes, "deploy/kubernetes/slack-deployment.yaml", "              path: /readyz\n              port: ops", "              path: /readyz\n              port: http", "readinessProbe port http is not OPS_ADDR's port 9090"},
		{"secret in configmap", checkKubernetes, "deploy/kubernetes/configmap.yaml", `LOG_LEVEL: "info"`, "LOG_LEVEL: \"info\"\n  LLM_API_KEY: \"sk\"", "LLM_API_KEY is a secret"},
		{"misspelt variable", checkKubernetes, "deploy/kubernetes/configmap.yaml", `LOG_LEVEL: "info"`, `LOG_LEVLE: "info"`, "LOG_LEVLE is no variable"},
		{"both platforms", checkKubernetes, "deploy/kubernetes/discord-statefulset.yaml", "name: parley-discord\n          env:", "name: parley-slack\n          env:", "gets SLACK_BOT_TOKEN too"},
		{"secret applied", checkKubernetes, "deploy/kubernetes/kustomization.yaml", "  - configmap.yaml\n", "  - configmap.yaml\n  - secret.example.yaml\n", "renders Secret parley"},
		{"kustomization field", checkKubernetes, "deploy/kubernetes/kustomization.yaml", "\nresources:\n", "\nresource:\n", `unknown field "resource"`},
		{"headless", checkKubernetes, "deploy/kubernetes/discord-statefulset.yaml", "clusterIP: None", "type: ClusterIP", "must be headless"},
		{"short grace period", checkKubernetes, "deploy/kubernetes/slack-deployment.yaml", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 10", "terminationGracePeriodSeconds must be at least 30"},
		{"writable root", checkKubernetes, "deploy/kubernetes/discord-statefulset.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem: true"},
		{"small tmp", checkKubernetes, "deploy/kubernetes/slack-deployment.yaml", "sizeLimit: 128Mi", "sizeLimit: 16Mi", "less than twice MEDIA_MAX_BYTES"},
		{"media larger than tmp", checkKubernetes, "deploy/kubernetes/configmap.yaml", `LOG_LEVEL: "info"`, "LOG_LEVEL: \"info\"\n  MEDIA_MAX_BYTES: \"104857600\"", "less than twice MEDIA_MAX_BYTES (104857600)"},
		{"service target", checkKubernetes, "deploy/kubernetes/slack-deployment.yaml", "      targetPort: http", "      targetPort: web", "targetPort web"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := copyRepo(t)
			edit(t, filepath.Join(root, tt.file), tt.old, tt.new)
			var f findings
			tt.check(root, &f)
			got := strings.Join(f.list, "\n")
			if !strings.Contains(got, tt.want) {
				t.Errorf("findings:\n%s\nwant one containing %q", got, tt.want)
			}
		})
	}
}

// The unedited copy passes, so that each failure above is the edit's.
func TestCopyPasses(t *testing.T) {
	root := copyRepo(t)
	for _, c := range []check{{"dockerfile", checkDockerfile}, {"compose", checkCompose}, {"kubernetes", checkKubernetes}} {
		var f findings
		c.run(root, &f)
		if len(f.list) > 0 {
			t.Errorf("%s: %s", c.name, strings.Join(f.list, "\n"))
		}
	}
}

func TestDockerignore(t *testing.T) {
	file, err := os.Open(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	patterns, err := ignorefile.ReadAll(file)
	if err != nil {
		t.Fatal(err)
	}
	needed := []string{"go.mod", "go.sum", "cmd/parley/main.go", "conversation/sqlite/migrations/0001_init.sql"}
	tests := []struct {
		name     string
		patterns []string
		want     string
	}{
		{"repository's", patterns, ""},
		{"excludes migrations", slices.Concat(patterns, []string{"**/*.sql"}), "excludes conversation/sqlite/migrations/0001_init.sql"},
		{"excludes cmd", slices.Concat(patterns, []string{"cmd"}), "excludes cmd/parley/main.go"},
		{"keeps .env", without(patterns, ".env"), "lets .env into"},
		{"keeps git", without(patterns, ".git"), "lets .git/config into"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f findings
			checkIgnored(tt.patterns, needed, &f)
			got := strings.Join(f.list, "\n")
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("findings %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGoVersionBuilds(t *testing.T) {
	tests := []struct {
		tag, goMod string
		want       bool
	}{
		{"1.26", "1.26.8", true},
		{"1.26.9", "1.26.8", true},
		{"1.26.7", "1.26.8", false},
		{"1.25", "1.26.8", false},
		{"1.27", "1.26.8", false},
	}
	for _, tt := range tests {
		if got := goVersionBuilds(tt.tag, tt.goMod); got != tt.want {
			t.Errorf("goVersionBuilds(%q, %q) = %v, want %v", tt.tag, tt.goMod, got, tt.want)
		}
	}
}

// copyRepo copies the files the checks read into a new directory.
func copyRepo(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	paths := []string{".env.example", "go.mod", "deploy/Dockerfile", "deploy/compose.yaml"}
	for _, pattern := range []string{"deploy/kubernetes/*.yaml", "cmd/parley/*.go"} {
		matches, err := filepath.Glob(filepath.Join(repoRoot, pattern))
		if err != nil || len(matches) == 0 {
			t.Fatalf("%s: %v", pattern, err)
		}
		for _, m := range matches {
			rel, _ := filepath.Rel(repoRoot, m)
			paths = append(paths, rel)
		}
	}
	for _, p := range paths {
		if err := copyFile(filepath.Join(repoRoot, p), filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// edit replaces old with new once in the file at path.
func edit(t *testing.T, path, old, new string) {
	t.Helper()
	dt, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dt), old) {
		t.Fatalf("%s does not contain %q: update the test", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(dt), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}

func without(list []string, drop string) []string {
	var out []string
	for _, s := range list {
		if strings.TrimSpace(s) != drop {
			out = append(out, s)
		}
	}
	return out
}
