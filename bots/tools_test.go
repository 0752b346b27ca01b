package bots_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
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
	return toolLoopApproval(t, false)
}

// toolLoopApproval is toolLoop with the server's calls needing approval
// when approval is set.
func toolLoopApproval(t *testing.T, approval bool) (*tools.Loop, *mcptest.Server) {
	t.Helper()
	srv := mcptest.NewServer()
	h := mcptest.HTTP(srv, "")
	t.Cleanup(h.Close)
	t.Cleanup(srv.Open)
	servers := tools.NewServers(tools.ServersConfig{Servers: []tools.ServerConfig{{Name: "t", URL: h.URL, Approval: approval}}, Logger: slog.New(slog.DiscardHandler)})
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

// approvingPlatform is the fake platform with approval buttons.
type approvingPlatform struct {
	*botstest.Platform
	mu      sync.Mutex
	asked   []string // approval ids
	prompts []string
	settled []string
}

var _ bots.Approver = (*approvingPlatform)(nil)

func (p *approvingPlatform) AskApproval(ctx context.Context, dest bots.Destination, id, prompt string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked = append(p.asked, id)
	p.prompts = append(p.prompts, prompt)
	return "approval-" + id, nil
}

func (p *approvingPlatform) SettleApproval(ctx context.Context, dest bots.Destination, messageID, text string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.settled = append(p.settled, text)
	return nil
}

// waitAsked waits for the n-th approval request and returns its id.
func (p *approvingPlatform) waitAsked(t *testing.T, n int) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		if len(p.asked) >= n {
			id := p.asked[n-1]
			p.mu.Unlock()
			return id
		}
		p.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for an approval request")
		}
		<-time.After(5 * time.Millisecond)
	}
}

// deployModel calls deploy, then answers with its result.
func deployModel(req llmtest.Request) llmtest.Reply {
	if res := req.ToolResults(); len(res) > 0 {
		return llmtest.Reply{Chunks: []string{"Result: " + res["call_d"]}}
	}
	return llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_d", Name: "t__deploy", Arguments: `{"target":"prod"}`}}}
}

func TestToolApproval(t *testing.T) {
	tests := []struct {
		name   string
		decide func(t *testing.T, e *bots.Engine, p *approvingPlatform, id string)
		want   string // in the answer
		runs   bool
	}{
		{"the asker approves, after a stranger could not", func(t *testing.T, e *bots.Engine, p *approvingPlatform, id string) {
			if msg, _ := e.Decide(context.Background(), p, id, "U2", nil, true); !strings.Contains(msg, "Only the person who asked") {
				t.Errorf("a stranger's click: got %q, want a refusal", msg)
			}
			if msg, err := e.Decide(context.Background(), p, id, "U1", nil, true); err != nil || msg != "Approved." {
				t.Errorf("the asker's click: got %q, %v", msg, err)
			}
			if msg, _ := e.Decide(context.Background(), p, id, "U1", nil, false); msg == "Denied." {
				t.Error("a second click changed the answer")
			}
		}, "Result: deployed prod", true},
		{"an admin denies", func(t *testing.T, e *bots.Engine, p *approvingPlatform, id string) {
			if msg, err := e.Decide(context.Background(), p, id, "ADMIN", nil, false); err != nil || msg != "Denied." {
				t.Errorf("the admin's click: got %q, %v", msg, err)
			}
		}, "Result: Error: the call was not approved", false},
		{"nobody answers in time", nil, "Result: Error: the call was not approved", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loop, srv := toolLoopApproval(t, true)
			timeout := time.Minute
			if tt.decide == nil {
				timeout = 50 * time.Millisecond
			}
			h := newHarness(t, botstest.SlackLike, bots.Config{Tools: loop, Access: bots.Access{Admins: []string{"ADMIN"}}, ApprovalTimeout: timeout})
			h.llm.Answer = deployModel
			p := &approvingPlatform{Platform: h.p}
			handle(t, h.engine, p, mention("m1", "m1", "deploy it"))
			id := p.waitAsked(t, 1)
			h.waitMessages(t, "the status line", func(ms []botstest.Message) bool {
				return len(ms) == 1 && strings.Contains(ms[0].Text, "`t.deploy` ⏳ awaiting approval")
			})
			if tt.decide != nil {
				tt.decide(t, h.engine, p, id)
			}
			h.waitMessages(t, "the answer", func(ms []botstest.Message) bool {
				return len(ms) == 1 && strings.HasPrefix(ms[0].Text, tt.want)
			})
			if ran := srv.Calls() == 1; ran != tt.runs {
				t.Errorf("the tool ran: %v, want %v", ran, tt.runs)
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			if len(p.prompts) != 1 || !strings.Contains(p.prompts[0], "`t.deploy`") || !strings.Contains(p.prompts[0], `{"target":"prod"}`) {
				t.Errorf("prompts %q, want the tool and its arguments", p.prompts)
			}
			if len(p.settled) != 1 {
				t.Errorf("settled %q, want the buttons replaced once", p.settled)
			}
		})
	}
}

// Where the platform has no approval buttons, a call that needs approval
// is denied, and the model is told why.
func TestToolApprovalUnavailable(t *testing.T) {
	loop, srv := toolLoopApproval(t, true)
	h := newHarness(t, botstest.SlackLike, bots.Config{Tools: loop})
	h.llm.Answer = deployModel
	h.handle(t, mention("m1", "m1", "deploy it"))
	h.waitMessages(t, "the answer", func(ms []botstest.Message) bool {
		return len(ms) == 1 && strings.Contains(ms[0].Text, "approval cannot be asked for here")
	})
	if srv.Calls() != 0 {
		t.Error("the tool ran without approval")
	}
}

func TestToolsCommand(t *testing.T) {
	loop, srv := toolLoop(t)
	srv.Open()
	h := newHarness(t, botstest.SlackLike, bots.Config{Tools: loop, Access: bots.Access{Admins: []string{"ADMIN"}}})
	h.llm.Answer = toolModel
	cmd := func(user, args string) string {
		return h.engine.Command(context.Background(), h.p, bots.Command{Workspace: "W1", Channel: "C1", User: user, Name: "tools", Args: args}).Text
	}
	if got := cmd("U1", ""); !strings.Contains(got, "`t` (connected): on by default") || !strings.Contains(got, "`echo`") {
		t.Errorf("/tools: got %q, want the server on by default with its tools", got)
	}
	if got := cmd("U1", "off t"); !strings.Contains(got, "Only an admin") {
		t.Errorf("a person's /tools off: got %q, want a refusal", got)
	}
	if got := cmd("ADMIN", "off nosuch"); !strings.Contains(got, "No server `nosuch`") {
		t.Errorf("/tools off nosuch: got %q", got)
	}
	if got := cmd("ADMIN", "off t"); !strings.Contains(got, "off in this channel") {
		t.Fatalf("the admin's /tools off t: got %q", got)
	}
	if got := cmd("U1", ""); !strings.Contains(got, "off (set for this channel)") {
		t.Errorf("/tools after off: got %q", got)
	}
	h.handle(t, mention("m1", "m1", "use the tools"))
	h.waitMessages(t, "an answer without tools", func(ms []botstest.Message) bool { return len(ms) == 1 && ms[0].Text == "no tools offered" })
	// On again for the workspace does not beat the channel's off: the
	// most specific scope wins; clearing the channel's does.
	cmd("ADMIN", "on t workspace")
	cmd("ADMIN", "clear t")
	h.handle(t, mention("m2", "m2", "use the tools"))
	h.waitMessages(t, "an answer with tools", func(ms []botstest.Message) bool {
		return len(ms) == 2 && strings.Contains(ms[1].Text, "Echo: pong")
	})
}
