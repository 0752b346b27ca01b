package main

import (
	"github.com/parleyhq/parley/tools/mcptest"

	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"

	"github.com/parleyhq/parley/conversation/postgres/pgtest"
)

// TestMain runs main itself when the test binary is started as parley by
// runProcess.
func TestMain(m *testing.M) {
	mcptest.Main() // the test MCP server, when a test starts this binary as one
	if os.Getenv("PARLEY_TEST_MAIN") == "1" {
		os.Args = append([]string{"parley"}, strings.Fields(os.Getenv("PARLEY_TEST_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runProcess runs parley as a process in an empty directory with only env
// set, and returns its standard output and error and its exit code.
func runProcess(t *testing.T, args string, env ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Dir = t.TempDir()
	cmd.Env = append([]string{"PARLEY_TEST_MAIN=1", "PARLEY_TEST_ARGS=" + args}, env...)
	cmd.Env = append(cmd.Env, coverEnv(t)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// coverEnv returns the environment a child process of this test binary
// needs when coverage is measured: a binary built with -cover warns on
// stderr, which the tests read, unless GOCOVERDIR names where its counters
// go. They go with the parent's, so that main's own run counts.
func coverEnv(t *testing.T) []string {
	t.Helper()
	if testing.CoverMode() == "" {
		return nil
	}
	dir := os.Getenv("GOCOVERDIR")
	if f := flag.Lookup("test.gocoverdir"); f != nil && f.Value.String() != "" {
		dir = f.Value.String()
	}
	if dir == "" {
		dir = t.TempDir()
	}
	return []string{"GOCOVERDIR=" + dir}
}

// testMain returns a Main on an environment of env only, in an empty
// directory, with its output kept.
func testMain(t *testing.T, env map[string]string) (*Main, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var out, logs bytes.Buffer
	m := &Main{
		Stdin:   strings.NewReader(""),
		Stdout:  &out,
		Stderr:  &logs,
		Environ: envconfig.MapLookuper(env),
		Dir:     t.TempDir(),
		User:    "tester",
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return m, &out, &logs
}

const secretKey = "sk-TESTKEY-0123456789"

// Without a token, parley stops with one line naming what to set, exit 1.
func TestMissingTokenProcess(t *testing.T) {
	stdout, stderr, code := runProcess(t, "")
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if stdout != "" {
		t.Errorf("stdout %q, want nothing", stdout)
	}
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "parley: configuration: ") {
		t.Fatalf("stderr %q, want one line starting with parley: configuration:", stderr)
	}
	for _, want := range []string{"LLM_API_KEY", "SLACK_BOT_TOKEN", "DISCORD_BOT_TOKEN", "parley console"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not mention %s: %s", want, stderr)
		}
	}
	if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
		t.Errorf("stderr holds a stack trace: %s", stderr)
	}
}

func TestUsageProcess(t *testing.T) {
	_, stderr, code := runProcess(t, "nosuchcommand")
	if code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	if !strings.HasPrefix(stderr, "parley: unknown command \"nosuchcommand\"\nUsage: parley") {
		t.Errorf("stderr %q, want the error then the usage", stderr)
	}
	stdout, _, code := runProcess(t, "version")
	if code != 0 || !strings.HasPrefix(stdout, "parley ") {
		t.Errorf("version: exit %d, stdout %q", code, stdout)
	}
}

func TestBadDatabaseURL(t *testing.T) {
	const password = "hunter2-SECRET"
	for _, cmd := range []string{"", "migrate", "console", "config"} {
		t.Run("command "+cmd, func(t *testing.T) {
			m, out, logs := testMain(t, map[string]string{
				"LLM_API_KEY":       secretKey,
				"DISCORD_BOT_TOKEN": "discord-token",
				"DATABASE_URL":      "mysql://parley:" + password + "@db/parley",
			})
			var args []string
			if cmd != "" {
				args = []string{cmd}
			}
			err := m.Run(context.Background(), args)
			if err == nil {
				t.Fatal("got no error")
			}
			if !strings.Contains(err.Error(), "DATABASE_URL: ") || !strings.Contains(err.Error(), "postgres://") {
				t.Errorf("got %q, want an error naming DATABASE_URL and saying what to write", err)
			}
			all := err.Error() + out.String() + logs.String()
			if strings.Contains(all, password) || strings.Contains(all, secretKey) {
				t.Errorf("output shows a secret: %s", all)
			}
		})
	}
}

func TestMigrate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "parley.db")
	for i := range 2 { // the second run finds the schema up to date
		m, _, logs := testMain(t, map[string]string{"DATABASE_URL": "sqlite://" + path, "LOG_FORMAT": "json"})
		if err := m.Run(context.Background(), []string{"migrate"}); err != nil {
			t.Fatalf("migrate #%d: %v", i+1, err)
		}
		if !strings.Contains(logs.String(), `"msg":"database is up to date"`) {
			t.Errorf("logs %q, want a JSON line saying the database is up to date", logs)
		}
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database file: %v", err)
	}
}

// parley config prints every variable, secrets masked, reading .env from
// its directory with the environment winning.
func TestConfigCommand(t *testing.T) {
	m, out, _ := testMain(t, map[string]string{"LLM_MODEL": "from-env", "LLM_API_KEY": secretKey})
	dotenv := "LLM_MODEL=from-dotenv\nDISCORD_BOT_TOKEN='discord-S3CR3T-token'\nDATABASE_URL=postgres://parley:pg-S3CR3T@db:5432/parley\n"
	if err := os.WriteFile(filepath.Join(m.Dir, ".env"), []byte(dotenv), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background(), []string{"config"}); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"LLM_MODEL=from-env", "# environment",
		"LLM_API_KEY=***", "DISCORD_BOT_TOKEN=***", "# .env",
		"DATABASE_URL=postgres://parley:***@db:5432/parley",
		"HTTP_ADDR=:8080", "# default",
		"# discord: on",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, secret := range []string{secretKey, "S3CR3T"} {
		if strings.Contains(got, secret) {
			t.Errorf("output shows a secret:\n%s", got)
		}
	}
}

func TestMalformedDotenv(t *testing.T) {
	m, _, _ := testMain(t, map[string]string{})
	if err := os.WriteFile(filepath.Join(m.Dir, ".env"), []byte("A=1\nsk-SECRET-alone\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := m.Run(context.Background(), []string{"config"})
	if err == nil || !strings.Contains(err.Error(), ".env:2: ") || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("got %v, want an error at .env line 2 without the line's text", err)
	}
}

func TestUsage(t *testing.T) {
	m, out, _ := testMain(t, nil)
	if err := m.Run(context.Background(), []string{"help"}); err != nil || !strings.Contains(out.String(), "console") {
		t.Errorf("help: %v, %q", err, out)
	}
	var u usageError
	if err := m.Run(context.Background(), []string{"config", "extra"}); !errors.As(err, &u) {
		t.Errorf("extra argument: got %v, want a usage error", err)
	}
}

// migrate works on PostgreSQL too, given PARLEY_TEST_POSTGRES_URL (as CI
// sets it), and never prints the password.
func TestMigratePostgres(t *testing.T) {
	// A schema of its own: the database's public schema may hold any
	// version, left by another build.
	dbURL := pgtest.Schema(t, "migrate")
	m, _, logs := testMain(t, map[string]string{"DATABASE_URL": dbURL})
	if err := m.Run(context.Background(), []string{"migrate"}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if !strings.Contains(logs.String(), "database is up to date") || !strings.Contains(logs.String(), "driver=postgres") {
		t.Errorf("logs %q, want the PostgreSQL database up to date", logs)
	}
}

// A PostgreSQL server that cannot be reached is an error that names no
// password.
func TestPostgresUnreachable(t *testing.T) {
	const password = "pg-S3CR3T"
	m, out, logs := testMain(t, map[string]string{
		"DATABASE_URL": "postgres://parley:" + password + "@127.0.0.1:1/parley?sslmode=disable&connect_timeout=5",
	})
	err := m.Run(context.Background(), []string{"migrate"})
	if err == nil {
		t.Fatal("got no error")
	}
	if all := err.Error() + out.String() + logs.String(); strings.Contains(all, password) {
		t.Errorf("output shows the password: %s", all)
	}
}
