package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parleyhq/parley/tools/mcptest"
)

// writeMCPConfig writes an MCP config file and returns its path.
func writeMCPConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mcp.json")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// closedURL is an http URL nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/mcp"
}

func TestToolsCommand(t *testing.T) {
	srv := mcptest.NewServer()
	h := mcptest.HTTP(srv, "mcp-secret-token")
	t.Cleanup(h.Close)
	path := writeMCPConfig(t, `{"mcpServers": {
		"remote": {"url": "`+h.URL+`", "headers": {"Authorization": "Bearer ${MCP_TOKEN}"}, "approval": true},
		"local": {"command": "`+os.Args[0]+`", "env": {"`+mcptest.StdioEnv+`": "1"}},
		"gone": {"url": "`+closedURL(t)+`"}
	}}`)
	m, out, _ := testMain(t, map[string]string{"MCP_CONFIG": path, "MCP_TOKEN": "mcp-secret-token"})
	err := m.Run(context.Background(), []string{"tools"})
	if err == nil || !strings.Contains(err.Error(), "1 of 3 MCP servers are not connected") {
		t.Errorf("got %v, want 1 of 3 servers not connected", err)
	}
	got := out.String()
	for _, want := range []string{"remote", "http", "connected", "(calls need approval)", "remote.echo", "remote__echo", "Echoes its text.",
		"local", "stdio", "local.crash", "gone", "down"} {
		if !strings.Contains(got, want) {
			t.Errorf("output does not say %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "mcp-secret-token") {
		t.Errorf("output shows the header's secret:\n%s", got)
	}
}

func TestToolsCommandWithoutConfig(t *testing.T) {
	m, out, _ := testMain(t, map[string]string{})
	if err := m.Run(context.Background(), []string{"tools"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "MCP_CONFIG is not set") {
		t.Errorf("got %q, want a word that MCP_CONFIG is not set", out.String())
	}
}

// A bad config file is an error naming the variable, the
// file, the server and the key.
func TestBadMCPConfigNamesServerAndKey(t *testing.T) {
	path := writeMCPConfig(t, `{"mcpServers": {"gh": {"command": "x", "env": {"TOKEN": "${NOPE_NOT_SET}"}}}}`)
	m, _, _ := testMain(t, map[string]string{"MCP_CONFIG": path, "LLM_API_KEY": secretKey, "DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "p.db")})
	err := m.Run(context.Background(), []string{"tools"})
	for _, want := range []string{"MCP_CONFIG", path, `server "gh"`, "env.TOKEN", "${NOPE_NOT_SET}"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want it to name %s", err, want)
		}
	}
}
