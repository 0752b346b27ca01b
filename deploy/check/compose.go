package main

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

const composePath = "deploy/compose.yaml"

// checkCompose loads deploy/compose.yaml as `docker compose config` does
// (compose-go: the Compose Specification's JSON schema, interpolation,
// env_file, consistency), with .env.example standing in for .env, then
// checks the Parley and PostgreSQL services.
func checkCompose(root string, f *findings) []string {
	vars, err := parleyVars(root)
	if err != nil {
		f.add("%v", err)
		return nil
	}
	// A copy of the layout compose.yaml expects, with .env.example as the
	// .env beside deploy/: the check then also proves that compose's own
	// env_file parser reads the example, and that it needs no real .env.
	tmp, err := os.MkdirTemp("", "parley-compose-")
	if err != nil {
		f.add("%v", err)
		return nil
	}
	defer os.RemoveAll(tmp)
	if err := copyFile(filepath.Join(root, composePath), filepath.Join(tmp, composePath)); err != nil {
		f.add("%v", err)
		return nil
	}
	if err := copyFile(filepath.Join(root, ".env.example"), filepath.Join(tmp, ".env")); err != nil {
		f.add("%v", err)
		return nil
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(tmp, composePath)},
		cli.WithWorkingDirectory(filepath.Join(tmp, "deploy")),
		cli.WithEnv(nil), // interpolate the file's own defaults, not this machine's environment
	)
	if err != nil {
		f.add("%s: %v", composePath, err)
		return nil
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		// Name the file as in the repository, not the copy.
		f.add("%s: %s", composePath, strings.ReplaceAll(err.Error(), filepath.Join(tmp, composePath), composePath))
		return nil
	}

	parley, ok := project.Services["parley"]
	if !ok {
		f.add("%s: no parley service", composePath)
		return nil
	}
	pg, ok := project.Services["postgres"]
	if !ok {
		f.add("%s: no postgres service", composePath)
		return nil
	}
	checkPostgresService(pg, f)
	checkParleyService(root, tmp, parley, project, vars, f)
	return []string{fmt.Sprintf("%s: Compose Specification schema and consistency (compose-go, as docker compose config), services %s; parley: build, env_file, DATABASE_URL, depends_on healthy postgres, port, stop grace; postgres: healthcheck, volume",
		composePath, strings.Join(project.ServiceNames(), ", "))}
}

func checkPostgresService(pg types.ServiceConfig, f *findings) {
	if !strings.HasPrefix(pg.Image, "postgres:16") {
		f.add("%s: postgres image %q, want postgres:16", composePath, pg.Image)
	}
	if pg.HealthCheck == nil || !strings.Contains(strings.Join(pg.HealthCheck.Test, " "), "pg_isready") {
		f.add("%s: postgres needs a pg_isready healthcheck: parley waits for it to be healthy", composePath)
	}
	if !hasNamedVolume(pg, "/var/lib/postgresql/data") {
		f.add("%s: postgres keeps /var/lib/postgresql/data in no named volume: the data dies with the container", composePath)
	}
}

func checkParleyService(root, tmp string, s types.ServiceConfig, project *types.Project, vars map[string]string, f *findings) {
	if s.Build == nil {
		f.add("%s: parley has no build section", composePath)
	} else if rel, err := filepath.Rel(tmp, filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil || filepath.ToSlash(rel) != dockerfilePath {
		f.add("%s: parley builds %s from %s, want %s from the repository root", composePath, s.Build.Dockerfile, s.Build.Context, dockerfilePath)
	}
	if len(s.EnvFiles) == 0 {
		f.add("%s: parley reads no env_file: where would the tokens come from?", composePath)
	}
	for _, name := range slices.Sorted(maps.Keys(s.Environment)) {
		if _, ok := vars[name]; !ok {
			f.add("%s: parley sets %s, which Parley does not read (.env.example lists every variable)", composePath, name)
		}
	}
	dbURL := s.Environment["DATABASE_URL"]
	if dbURL == nil {
		f.add("%s: parley sets no DATABASE_URL", composePath)
	} else if u, err := url.Parse(*dbURL); err != nil || u.Scheme != "postgres" {
		f.add("%s: parley's DATABASE_URL is not a postgres:// URL", composePath)
	} else if _, ok := project.Services[u.Hostname()]; !ok {
		f.add("%s: parley's DATABASE_URL names host %q, which is no service", composePath, u.Hostname())
	} else if dep, ok := s.DependsOn[u.Hostname()]; !ok || dep.Condition != types.ServiceConditionHealthy {
		f.add("%s: parley must depend on %s with condition service_healthy", composePath, u.Hostname())
	}
	port := listenPort(vars["HTTP_ADDR"])
	found := false
	for _, p := range s.Ports {
		found = found || fmt.Sprint(p.Target) == port
	}
	if !found {
		f.add("%s: parley publishes no port %s (HTTP_ADDR; Slack's HTTP events mode needs it)", composePath, port)
	}
	if s.Restart != types.RestartPolicyUnlessStopped {
		f.add("%s: parley restart %q, want unless-stopped", composePath, s.Restart)
	}
	if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) < 30*time.Second {
		f.add("%s: parley's stop_grace_period must be at least 30s: compose kills after 10s by default, before SHUTDOWN_GRACE ends", composePath)
	}
}

func hasNamedVolume(s types.ServiceConfig, target string) bool {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Source != "" && v.Target == target {
			return true
		}
	}
	return false
}

func copyFile(src, dst string) error {
	dt, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, dt, 0o600)
}
