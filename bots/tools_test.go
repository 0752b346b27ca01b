package bots_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/bots/botstest"
	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/llm/llmtest"
	"github.com/parleyhq/parley/tools"
	"github.com/parleyhq/parley/tools/mcptest"
)

// toolLoop connects to a test MCP server over HTTP and returns the tool
// loop of its tools, named "t__...".
func toolLoop(t *testing.T) (*tools.Loop, *mcptest.Server) {
	t.Helper()
	srv := mcptest.NewServer()
	h := mcptest.HTTP(srv, "")
	t.Cleanup(h.Close)
	t.Cleanup(srv.Open)
	servers := tools.NewServers(tools.ServersConfig{Servers: []tools.ServerConfig{{Name: "t", URL: h.URL}}, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		servers.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	if err := servers.Ready(rctx); err != nil || len(servers.Tools()) == 0 {
		t.Fatalf("the test MCP server: %v, %+v", err, servers.Status())
	}
	return tools.New(tools.Config{Source: servers, Logger: slog.New(slog.DiscardHandler)}), srv
}

// toolModel calls echo and gate in one turn, then answers with the
// results; a later question gets a plain answer.
func toolModel(req llmtest.Request) llmtest.Reply {
	if len(req.Tools) == 0 {
		return llmtest.Reply{Chunks: []string{"no tools offered"}}
	}
	last := req.Messages[len(req.Messages)-1]
	if last.Role == "user" && last.Text() != "use the tools" {
		return llmtest.Reply{Chunks: []string{"a follow-up"}}
	}
	if res := req.ToolResults(); len(res) > 0 {
		return llmtest.Reply{Chunks: llmtest.Words(fmt.Sprintf("Echo: %s. Gate: %s.", res["call_1"], res["call_2"]), 1)}
	}
	return llmtest.Reply{SplitIDs: true, Interleave: true, ToolCalls: []llmtest.ToolCall{
		{ID: "call_1", Name: "t__echo", Arguments: `{"text":"pong"}`},
		{ID: "call_2", Name: "t__gate", Arguments: `{}`},
	}}
}

func TestAnswerWithTools(t *testing.T) {
	loop, srv := toolLoop(t)
	h := newHarness(t, botstest.DiscordLike, bots.Config{Tools: loop})
	h.llm.Answer = toolModel
	h.handle(t, mention("m1", "m1", "use the tools"))
	// While the gate holds, the reply shows the tools' status line.
	h.waitMessages(t, "the status line", func(ms []botstest.Message) bool {
		return len(ms) == 1 && strings.Contains(ms[0].Text, "`t.gate` …") && strings.Contains(ms[0].Text, "`t.echo` ✓")
	})
	srv.Open()
	want := "Echo: pong. Gate: open."
	ms := h.waitMessages(t, "the answer", func(ms []botstest.Message) bool { return len(ms) == 1 && ms[0].Text == want })
	if !strings.HasPrefix(ms[0].Updates[0].Text, "🔧") {
		t.Errorf("first shown %q, want the status line", ms[0].Updates[0].Text)
	}
	key := conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m1"}
	hist := h.waitStored(t, key, 1)
	a := hist[len(hist)-1]
	if a.Text != want || a.Status != conversation.StatusComplete || len(a.Tools) != 1 || len(a.Tools[0].Calls) != 2 {
		t.Fatalf("stored answer %+v, want the text and one round of two calls", a)
	}
	if c := a.Tools[0].Calls; c[0].ID != "call_1" || c[0].Result != "pong" || c[1].ID != "call_2" || c[1].Result != "open" {
		t.Errorf("stored calls %+v, want the ids and results", c)
	}
	reqs := h.llm.Requests()
	if a.PromptTokens != reqs[0].PromptTokens()+reqs[1].PromptTokens() {
		t.Errorf("stored prompt tokens %d, want both rounds' %d + %d", a.PromptTokens, reqs[0].PromptTokens(), reqs[1].PromptTokens())
	}

	// A follow-up sees the calls and their results.
	h.handle(t, bots.Incoming{Workspace: "W1", Channel: "C1", Thread: "m1", MessageID: "m2", Author: "U1", Text: "and then?"})
	h.waitStored(t, key, 2)
	reqs = h.llm.Requests()
	var roles []string
	for _, m := range reqs[len(reqs)-1].Messages {
		r := m.Role
		if len(m.ToolCalls) > 0 {
			r += fmt.Sprintf("(%d calls)", len(m.ToolCalls))
		}
		if m.ToolCallID != "" {
			r += "(" + m.ToolCallID + ")"
		}
		roles = append(roles, r+": "+m.Text())
	}
	wantRoles := []string{"user: use the tools", "assistant(2 calls): ", "tool(call_1): pong", "tool(call_2): open", "assistant: " + want, "user: and then?"}
	if strings.Join(roles, "|") != strings.Join(wantRoles, "|") {
		t.Errorf("follow-up request %q, want %q", roles, wantRoles)
	}
}
