package tools

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadConfig(t *testing.T) {
	env := map[string]string{"GH_TOKEN": "ghp_secretvalue", "HOST": "mcp.example.com"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	path := filepath.Join(t.TempDir(), "mcp.json")
	body := `{"mcpServers": {
		"github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"], "env": {"GITHUB_TOKEN": "${GH_TOKEN}", "PATH": "${PATH:-/usr/bin}"}},
		"docs": {"type": "http", "url": "https://${HOST}/mcp", "headers": {"Authorization": "Bearer ${GH_TOKEN}"}, "approval": true},
		"off": {"command": "nothing", "disabled": true}
	}}`
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadConfig(path, lookup)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "docs" || got[1].Name != "github" {
		t.Fatalf("got %+v, want docs and github, the disabled one left out", got)
	}
	if d := got[0]; d.URL != "https://mcp.example.com/mcp" || d.Headers["Authorization"] != "Bearer ghp_secretvalue" || !d.Approval {
		t.Errorf("docs: got %+v", d)
	}
	if g := got[1]; g.Command != "npx" || len(g.Args) != 2 || g.Env["GITHUB_TOKEN"] != "ghp_secretvalue" || g.Env["PATH"] != "/usr/bin" {
		t.Errorf("github: got %+v", g)
	}
	if r := got[0].redact("401 for Bearer ghp_secretvalue"); strings.Contains(r, "ghp_secretvalue") {
		t.Errorf("redact left the secret: %s", r)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	lookup := func(k string) (string, bool) { return map[string]string{"SET": "x"}[k], k == "SET" }
	tests := []struct {
		name, body string
		want       []string // all in the error
	}{
		{"not JSON", "{\n\"mcpServers\": {,}}", []string{"line 2", "not valid JSON"}},
		{"no mcpServers", `{"servers": {}}`, []string{`no "mcpServers"`}},
		{"unset variable", `{"mcpServers": {"gh": {"command": "x", "env": {"TOKEN": "${NOT_SET_ANYWHERE}"}}}}`, []string{`server "gh"`, "env.TOKEN", "${NOT_SET_ANYWHERE} is not set"}},
		{"unknown key", `{"mcpServers": {"gh": {"command": "x", "cmd": "y"}}}`, []string{`server "gh"`, "cmd: unknown key"}},
		{"both kinds", `{"mcpServers": {"gh": {"command": "x", "url": "https://a"}}}`, []string{`server "gh"`, "not both"}},
		{"neither kind", `{"mcpServers": {"gh": {"args": ["a"]}}}`, []string{`server "gh"`, "give one"}},
		{"args not strings", `{"mcpServers": {"gh": {"command": "x", "args": [1]}}}`, []string{`server "gh"`, "args: want an array of strings"}},
		{"bad url", `{"mcpServers": {"gh": {"url": "ftp://a"}}}`, []string{`server "gh"`, "url: not an http(s) URL"}},
		{"sse", `{"mcpServers": {"gh": {"type": "sse", "url": "https://a"}}}`, []string{"type:", "streamable HTTP"}},
		{"headers on stdio", `{"mcpServers": {"gh": {"command": "x", "headers": {"A": "b"}}}}`, []string{"headers: only for an HTTP server"}},
		{"bad name", `{"mcpServers": {"a b": {"command": "x"}}}`, []string{`server "a b"`, "the name"}},
		{"names that collide", `{"mcpServers": {"a.b": {"command": "x"}, "a_b": {"command": "y"}}}`, []string{"same model-safe name"}},
		{"server not an object", `{"mcpServers": {"gh": "npx"}}`, []string{"want"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig("mcp.json", []byte(tt.body), lookup)
			if err == nil {
				t.Fatal("got no error")
			}
			for _, w := range append(tt.want, "mcp.json") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.json"), lookup); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("a missing file: got %v, want an error naming it", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add(`{"mcpServers": {"gh": {"command": "x", "args": ["${A:-b}"], "env": {"K": "${K}"}}}}`)
	f.Add(`{"mcpServers": {"h": {"url": "https://a/${X}", "headers": {"A": "B"}}}}`)
	f.Fuzz(func(t *testing.T, body string) {
		parseConfig("f.json", []byte(body), func(string) (string, bool) { return "v", true })
	})
}
