// Package tools lets the model call tools while it answers: the tool loop
// (stream, run the calls the model asks for in parallel, send the results
// back, stream on) and the MCP servers the tools come from (see Servers).
//
// It knows no chat platform: the engine gives it a request and an Output
// for the text and the status line, and gets back the answer and the
// rounds of calls to store.
package tools

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strings"
)

// Tool is one tool of one server, as offered to the model.
type Tool struct {
	// Name is what the model calls: "server__tool" in the model-safe form
	// (OpenAI allows [a-zA-Z0-9_-], at most 64), unique among the tools
	// offered.
	Name        string
	Server      string // the server's name in the config
	Remote      string // the tool's own name on its server
	Description string
	// Schema is the tool's input JSON Schema (an object); nil for none.
	Schema map[string]any
	// Approval: a person approves each call first (the server's
	// "approval": true).
	Approval bool
}

// Approver is an Output that can ask a person to approve a call. Approve
// returns whether the call may run; an error (none could be asked, the
// answer stopped) denies it too.
type Approver interface {
	Approve(ctx context.Context, t Tool, arguments string) (bool, error)
}

// Display is how people read a tool's name: "server.tool".
func (t Tool) Display() string { return t.Server + "." + t.Remote }

// Result is what a tool call returned: its text for the model, or an
// error the model is told.
type Result struct {
	Text  string
	Error bool
}

// Source lists the tools available now and calls them. Servers implements
// it; tests use fakes.
type Source interface {
	// Tools returns the tools of the servers connected now.
	Tools() []Tool
	// Call runs t with args (a JSON object). An error is reported to the
	// model as the call's result; Result.Error is a tool's own failure.
	Call(ctx context.Context, t Tool, args json.RawMessage) (Result, error)
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9_-]+`)

// maxName is OpenAI's limit on a function name.
const maxName = 64

// ModelName returns the model-safe name of a server's tool:
// "server__tool", characters outside [a-zA-Z0-9_-] replaced by "_", and a
// name longer than 64 cut with a hash of the whole, so that it stays
// unique.
func ModelName(server, tool string) string {
	s := unsafeName.ReplaceAllString(server, "_")
	t := unsafeName.ReplaceAllString(tool, "_")
	name := s + "__" + t
	if len(name) <= maxName {
		return name
	}
	sum := sha256.Sum256([]byte(server + "\x00" + tool))
	h := hex.EncodeToString(sum[:4])
	return strings.TrimRight(name[:maxName-len(h)-1], "_") + "_" + h
}
