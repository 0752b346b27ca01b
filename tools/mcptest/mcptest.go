// Package mcptest is a real MCP server, built with the official Go SDK,
// for tests: a few tools (one slow, one failing, one that needs approval)
// served over stdio by a test binary or over streamable HTTP on loopback.
//
// It imports nothing of Parley.
package mcptest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// StdioEnv, set to "1" in a test binary's environment, makes Main serve
// over stdio: a TestMain calls Main first, and a config that starts the test
// binary with this variable gets an MCP server.
const StdioEnv = "PARLEY_MCPTEST_STDIO"

// Server is the test server: its tools are
//   - echo {text}: returns text (and, when EchoEnv is asked, the value of
//     an environment variable: to check what a stdio server inherits);
//   - slow {ms}: waits ms milliseconds, or until its context ends, then
//     answers "slept";
//   - fail {}: fails with an error result;
//   - gate {}: waits until the test calls Open, then answers "open";
//   - deploy {target}: the tool that needs approval, answers "deployed
//     TARGET";
//   - crash {} (over stdio only): ends the server's process.
type Server struct {
	*mcp.Server
	calls atomic.Int64
	// Gate holds the tool "gate": it answers "open" once Gate is closed
	// (or its call ends), so that a test sees a tool that is running.
	Gate chan struct{}
	once sync.Once
}

// Open lets the gate tool's calls answer.
func (s *Server) Open() { s.once.Do(func() { close(s.Gate) }) }

// EchoEnvPrefix makes echo answer the value of the environment variable
// named after it: echo {"text": "env:HOME"}.
const EchoEnvPrefix = "env:"

// NewServer returns the test server with its tools.
func NewServer() *Server {
	s := &Server{Server: mcp.NewServer(&mcp.Implementation{Name: "mcptest", Version: "v1.0.0"}, nil), Gate: make(chan struct{})}
	mcp.AddTool(s.Server, &mcp.Tool{Name: "gate", Description: "Waits for the test."}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		s.calls.Add(1)
		select {
		case <-s.Gate:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "open"}}}, nil, nil
	})
	type echoArgs struct {
		Text string `json:"text" jsonschema:"the text to echo"`
	}
	mcp.AddTool(s.Server, &mcp.Tool{Name: "echo", Description: "Echoes its text."}, func(ctx context.Context, req *mcp.CallToolRequest, a echoArgs) (*mcp.CallToolResult, any, error) {
		s.calls.Add(1)
		text := a.Text
		if name, ok := strings.CutPrefix(text, EchoEnvPrefix); ok {
			v, set := os.LookupEnv(name)
			text = fmt.Sprintf("%s=%q set=%v", name, v, set)
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
	})
	type slowArgs struct {
		MS int `json:"ms" jsonschema:"how long to take, in milliseconds"`
	}
	mcp.AddTool(s.Server, &mcp.Tool{Name: "slow", Description: "Takes its time."}, func(ctx context.Context, req *mcp.CallToolRequest, a slowArgs) (*mcp.CallToolResult, any, error) {
		s.calls.Add(1)
		t := time.NewTimer(time.Duration(a.MS) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "slept"}}}, nil, nil
	})
	mcp.AddTool(s.Server, &mcp.Tool{Name: "fail", Description: "Always fails."}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		s.calls.Add(1)
		return nil, nil, errors.New("the database is on fire")
	})
	type deployArgs struct {
		Target string `json:"target" jsonschema:"where to deploy"`
	}
	mcp.AddTool(s.Server, &mcp.Tool{Name: "deploy", Description: "Deploys (needs approval)."}, func(ctx context.Context, req *mcp.CallToolRequest, a deployArgs) (*mcp.CallToolResult, any, error) {
		s.calls.Add(1)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "deployed " + a.Target}}}, nil, nil
	})
	return s
}

// Calls is how many tool calls the server has answered.
func (s *Server) Calls() int64 { return s.calls.Load() }

// AddEcho2 adds a tool "echo2" (the server tells its clients that its
// list changed).
func (s *Server) AddEcho2() {
	mcp.AddTool(s.Server, &mcp.Tool{Name: "echo2", Description: "Echoes again."}, func(ctx context.Context, req *mcp.CallToolRequest, a struct {
		Text string `json:"text"`
	}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: a.Text + a.Text}}}, nil, nil
	})
}

// HTTP serves s over streamable HTTP on loopback. Requests must carry the
// header Authorization: Bearer token when token is set.
func HTTP(s *Server, token string) *httptest.Server {
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.Server }, nil)
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != "" && r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
}

// Main serves the test server over stdio and exits when StdioEnv is set;
// otherwise it returns at once. Call it first in TestMain.
func Main() {
	if os.Getenv(StdioEnv) != "1" {
		return
	}
	s := NewServer()
	// Only a process of its own may crash: "crash" ends it, as a server
	// that dies mid-call does.
	mcp.AddTool(s.Server, &mcp.Tool{Name: "crash", Description: "Exits the server."}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		os.Exit(3)
		return nil, nil, nil
	})
	err := s.Run(context.Background(), &mcp.StdioTransport{})
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "mcptest:", err)
		os.Exit(1)
	}
	os.Exit(0)
}
