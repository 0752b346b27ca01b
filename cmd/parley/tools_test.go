package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/parleyhq/parley/adapters/discord/discordtest"
	"github.com/parleyhq/parley/adapters/slack/slacktest"
	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/llm/llmtest"
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

// TestBotOnSlackWithTools runs the whole bot against a fake Slack, a fake
// LLM that calls two tools in one turn, and the test MCP server over
// streamable HTTP: the reply shows the tools' status line while they run,
// then exactly the model's answer; the stored answer holds the calls with
// their ids and results; the calls are counted in /metrics.
func TestBotOnSlackWithTools(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	srv := mcptest.NewServer()
	h := mcptest.HTTP(srv, "mcp-secret-token")
	t.Cleanup(h.Close)
	t.Cleanup(srv.Open)
	path := writeMCPConfig(t, `{"mcpServers": {"ops": {"url": "`+h.URL+`", "headers": {"Authorization": "Bearer ${MCP_TOKEN}"}}}}`)
	model := llmtest.NewServer()
	defer model.Close()
	model.Answer = func(req llmtest.Request) llmtest.Reply {
		if res := req.ToolResults(); len(res) > 0 {
			return llmtest.Reply{Chunks: llmtest.Words("The echo says **"+res["call_a"]+"** and the gate is "+res["call_b"]+".", 1)}
		}
		return llmtest.Reply{SplitIDs: true, Interleave: true, ToolCalls: []llmtest.ToolCall{
			{ID: "call_a", Name: "ops__echo", Arguments: `{"text":"pong"}`},
			{ID: "call_b", Name: "ops__gate", Arguments: `{}`},
		}}
	}
	var logs syncBuffer
	m := &Main{
		Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &logs, Dir: t.TempDir(),
		Environ: envconfig.MapLookuper(map[string]string{
			"SLACK_BOT_TOKEN": fake.Config().BotToken,
			"SLACK_APP_TOKEN": fake.Config().AppToken,
			"SLACK_API_URL":   fake.APIURL,
			"SLACK_STREAMING": "update",
			"LLM_BASE_URL":    model.BaseURL(),
			"LLM_API_KEY":     secretKey,
			"LLM_MODEL":       "fake-small",
			"DATABASE_URL":    "sqlite://" + filepath.Join(t.TempDir(), "parley.db"),
			"HTTP_ADDR":       "127.0.0.1:0",
			"MCP_CONFIG":      path,
			"MCP_TOKEN":       "mcp-secret-token",
		}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, nil) }()
	defer func() {
		cancel()
		<-done
		m.Close()
	}()
	defer func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	}()
	running := regexp.MustCompile(`parley is running.*http=(\S+)`)
	var addr string
	eventually(t, "the bot to start", func() bool {
		if match := running.FindStringSubmatch(logs.String()); match != nil {
			addr = "http://" + match[1]
			return true
		}
		return false
	})
	eventually(t, "the MCP server to connect", func() bool {
		_, body := get(addr + "/metrics")
		return strings.Contains(body, `parley_mcp_server_up{server="ops"} 1`)
	})

	posted := fake.UserMessage("C1", "", "U1", "<@U0BOT> use the tools")
	eventually(t, "the status line", func() bool {
		ms := fake.BotMessages("C1", posted.TS)
		return len(ms) == 1 && strings.Contains(ms[0].Text, "ops.gate") && strings.Contains(ms[0].Text, "ops.echo")
	})
	srv.Open()
	want := "The echo says *pong* and the gate is open."
	var ms []slacktest.Message
	eventually(t, "the answer in the thread", func() bool {
		ms = fake.BotMessages("C1", posted.TS)
		return len(ms) == 1 && ms[0].Text == want
	})
	if !strings.HasPrefix(ms[0].Shown[0], "🔧") {
		t.Errorf("first shown %q, want the status line", ms[0].Shown[0])
	}
	conv, err := m.store.FindConversation(context.Background(), conversation.Key{Platform: "slack", Workspace: fake.Config().TeamID, Channel: "C1", Thread: posted.TS})
	if err != nil {
		t.Fatal(err)
	}
	var a conversation.Message
	eventually(t, "the stored answer", func() bool {
		hist, err := m.store.History(context.Background(), conv.ID, conversation.HistoryQuery{})
		if err != nil || len(hist) < 2 {
			return false
		}
		a = hist[len(hist)-1]
		return a.Status == conversation.StatusComplete
	})
	if len(a.Tools) != 1 || len(a.Tools[0].Calls) != 2 || a.Tools[0].Calls[0].ID != "call_a" || a.Tools[0].Calls[0].Result != "pong" || a.Tools[0].Calls[1].Result != "open" {
		t.Errorf("stored tool rounds %+v, want both calls with their ids and results", a.Tools)
	}
	eventually(t, "the calls counted", func() bool {
		_, body := get(addr + "/metrics")
		return strings.Contains(body, `parley_tool_calls_total{outcome="ok",server="ops",tool="echo"} 1`) &&
			strings.Contains(body, `parley_tool_calls_total{outcome="ok",server="ops",tool="gate"} 1`) &&
			strings.Contains(body, `parley_tool_call_seconds_count{server="ops",tool="gate"} 1`)
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("the bot stopped with %v", err)
	}
	done <- nil
	if strings.Contains(logs.String(), "mcp-secret-token") {
		t.Error("the logs show the MCP server's token")
	}
}

// TestBotOnSlackApproval runs the whole bot on the fake Slack with a
// server whose calls need approval: Parley asks in the thread with
// Approve and Deny buttons, a stranger's click is refused, the asker's
// runs the call, and the buttons give way to the outcome.
func TestBotOnSlackApproval(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	srv := mcptest.NewServer()
	h := mcptest.HTTP(srv, "")
	t.Cleanup(h.Close)
	path := writeMCPConfig(t, `{"mcpServers": {"ops": {"url": "`+h.URL+`", "approval": true}}}`)
	model := llmtest.NewServer()
	defer model.Close()
	model.Answer = func(req llmtest.Request) llmtest.Reply {
		if res := req.ToolResults(); len(res) > 0 {
			return llmtest.Reply{Chunks: []string{"Done: " + res["call_d"]}}
		}
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_d", Name: "ops__deploy", Arguments: `{"target":"prod"}`}}}
	}
	var logs syncBuffer
	m := &Main{
		Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &logs, Dir: t.TempDir(),
		Environ: envconfig.MapLookuper(map[string]string{
			"SLACK_BOT_TOKEN": fake.Config().BotToken,
			"SLACK_APP_TOKEN": fake.Config().AppToken,
			"SLACK_API_URL":   fake.APIURL,
			"SLACK_STREAMING": "update",
			"LLM_BASE_URL":    model.BaseURL(),
			"LLM_API_KEY":     secretKey,
			"LLM_MODEL":       "fake-small",
			"DATABASE_URL":    "sqlite://" + filepath.Join(t.TempDir(), "parley.db"),
			"HTTP_ADDR":       "127.0.0.1:0",
			"MCP_CONFIG":      path,
		}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, nil) }()
	defer func() {
		cancel()
		<-done
		m.Close()
	}()
	defer func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	}()
	eventually(t, "the bot and its MCP server", func() bool {
		return strings.Contains(logs.String(), "parley is running") && strings.Contains(logs.String(), "mcp server connected")
	})
	posted := fake.UserMessage("C1", "", "U1", "<@U0BOT> deploy it")
	var prompt slacktest.Message
	eventually(t, "the approval question", func() bool {
		for _, msg := range fake.BotMessages("C1", posted.TS) {
			if strings.Contains(msg.Text, "ops.deploy") && strings.Contains(msg.Text, "Approve or deny") {
				prompt = msg
				return true
			}
		}
		return false
	})
	id := regexp.MustCompile(`ap_[0-9a-f]+`).FindString(prompt.Blocks)
	if id == "" || !strings.Contains(prompt.Blocks, "parley_approve") || !strings.Contains(prompt.Blocks, "parley_deny") {
		t.Fatalf("the question's blocks %s: want Approve and Deny buttons carrying the approval id", prompt.Blocks)
	}
	click := func(user, action string) {
		env := fake.Interaction(map[string]any{
			"type": "block_actions", "response_url": fake.ResponseURL(),
			"team": map[string]any{"id": fake.Config().TeamID}, "user": map[string]any{"id": user},
			"channel":   map[string]any{"id": "C1"},
			"container": map[string]any{"type": "message", "channel_id": "C1", "message_ts": prompt.TS, "thread_ts": posted.TS},
			"actions":   []any{map[string]any{"type": "button", "action_id": action, "block_id": "parley_approval", "value": id}},
		})
		eventually(t, "the click acknowledged", func() bool { _, ok := fake.Ack(env); return ok })
	}
	click("U2", "parley_approve")
	eventually(t, "the stranger told", func() bool {
		rs := fake.Responses()
		return len(rs) == 1 && strings.Contains(string(rs[0]), "Only the person who asked")
	})
	if srv.Calls() != 0 {
		t.Fatal("a stranger's click ran the call")
	}
	click("U1", "parley_approve")
	want := "Done: deployed prod"
	eventually(t, "the answer", func() bool {
		for _, msg := range fake.BotMessages("C1", posted.TS) {
			if msg.Text == want {
				return true
			}
		}
		return false
	})
	eventually(t, "the buttons settled", func() bool {
		for _, msg := range fake.BotMessages("C1", posted.TS) {
			if msg.TS == prompt.TS {
				return strings.Contains(msg.Text, "Approved") && !strings.Contains(msg.Blocks, "parley_approve")
			}
		}
		return false
	})
	if srv.Calls() != 1 {
		t.Errorf("the tool ran %d times, want once", srv.Calls())
	}
}

// TestBotOnDiscordApproval runs the whole bot on the fake Discord with a
// server whose calls need approval: the question comes with Approve and
// Deny buttons, a stranger's click is refused (to them alone), the asker's
// runs the call, and the buttons give way to the outcome.
func TestBotOnDiscordApproval(t *testing.T) {
	fake := discordtest.New(t, discordtest.Options{})
	srv := mcptest.NewServer()
	h := mcptest.HTTP(srv, "")
	t.Cleanup(h.Close)
	path := writeMCPConfig(t, `{"mcpServers": {"ops": {"url": "`+h.URL+`", "approval": true}}}`)
	model := llmtest.NewServer()
	defer model.Close()
	model.Answer = func(req llmtest.Request) llmtest.Reply {
		if res := req.ToolResults(); len(res) > 0 {
			return llmtest.Reply{Chunks: []string{"Done: " + res["call_d"]}}
		}
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_d", Name: "ops__deploy", Arguments: `{"target":"prod"}`}}}
	}
	logs := &syncBuffer{}
	m := &Main{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: logs, Dir: t.TempDir(), Environ: envconfig.MapLookuper(map[string]string{
		"DISCORD_BOT_TOKEN": fake.Token(),
		"DISCORD_API_URL":   fake.APIURL(),
		"LLM_BASE_URL":      model.BaseURL(),
		"LLM_API_KEY":       secretKey,
		"LLM_MODEL":         "fake-small",
		"DATABASE_URL":      "sqlite://" + filepath.Join(t.TempDir(), "parley.db"),
		"HTTP_ADDR":         "127.0.0.1:0",
		"MCP_CONFIG":        path,
	})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, nil) }()
	defer func() {
		cancel()
		<-done
		m.Close()
		if t.Failed() {
			t.Logf("logs:\n%s", logs)
		}
	}()
	eventually(t, "the bot and its MCP server", func() bool {
		return strings.Contains(logs.String(), "parley is running") && strings.Contains(logs.String(), "mcp server connected")
	})
	ann, bob := fake.AddUser("ann"), fake.AddUser("bob")
	ch := fake.AddChannel("general")
	q := fake.Post(ch, ann, "<@"+fake.BotID+"> deploy it", "")
	var prompt discordtest.Message
	eventually(t, "the approval question", func() bool {
		for _, c := range []string{q.ID, ch} {
			for _, msg := range fake.BotMessages(c) {
				if strings.Contains(msg.Components, approvePrefixForTest) {
					prompt = msg
					return true
				}
			}
		}
		return false
	})
	id := regexp.MustCompile(`parley_approve:(ap_[0-9a-f]+)`).FindStringSubmatch(prompt.Components)
	if id == nil || !strings.Contains(prompt.Components, "parley_deny:"+id[1]) || !strings.Contains(prompt.Content, "ops.deploy") {
		t.Fatalf("the question %+v: want the tool named, with Approve and Deny buttons", prompt)
	}
	click := func(u discordtest.User) discordtest.Response {
		iid := fake.Interact(discordtest.Interaction{Type: 3, GuildID: q.GuildID, ChannelID: prompt.ChannelID, User: u, CustomID: "parley_approve:" + id[1], MessageID: prompt.ID})
		var r discordtest.Response
		eventually(t, "the click answered", func() bool {
			var ok bool
			r, ok = fake.Response(iid)
			return ok
		})
		return r
	}
	if r := click(bob); !r.Ephemeral || !strings.Contains(r.Content, "Only the person who asked") {
		t.Errorf("the stranger's click: got %+v, want an ephemeral refusal", r)
	}
	if srv.Calls() != 0 {
		t.Fatal("a stranger's click ran the call")
	}
	if r := click(ann); r.Content != "Approved." {
		t.Errorf("the asker's click: got %+v", r)
	}
	eventually(t, "the answer and the settled question", func() bool {
		answered, settled := false, false
		for _, c := range []string{q.ID, ch} {
			for _, msg := range fake.BotMessages(c) {
				answered = answered || msg.Content == "Done: deployed prod"
				settled = settled || (msg.ID == prompt.ID && strings.Contains(msg.Content, "Approved") && msg.Components == "[]")
			}
		}
		return answered && settled
	})
	if srv.Calls() != 1 {
		t.Errorf("the tool ran %d times, want once", srv.Calls())
	}
}

// approvePrefixForTest is the Discord adapter's approve button prefix.
const approvePrefixForTest = "parley_approve:ap_"

// In the console a call that needs approval asks for y or n; the next
// line answers it.
func TestConsoleApproval(t *testing.T) {
	srv := mcptest.NewServer()
	h := mcptest.HTTP(srv, "")
	t.Cleanup(h.Close)
	path := writeMCPConfig(t, `{"mcpServers": {"ops": {"url": "`+h.URL+`", "approval": true}}}`)
	model := llmtest.NewServer()
	defer model.Close()
	model.Answer = func(req llmtest.Request) llmtest.Reply {
		if res := req.ToolResults(); len(res) > 0 {
			return llmtest.Reply{Chunks: []string{"Result: " + res["call_d"]}}
		}
		if req.Messages[len(req.Messages)-1].Text() == "thanks" {
			return llmtest.Reply{Chunks: []string{"You are welcome."}}
		}
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_d", Name: "ops__deploy", Arguments: `{"target":"` + req.Messages[len(req.Messages)-1].Text() + `"}`}}}
	}
	tests := []struct {
		name, answer, want string
		runs               int64
	}{
		{"yes", "y", "Result: deployed prod", 1},
		{"no", "n", "Result: Error: the call was not approved", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, out, _ := testMain(t, map[string]string{
				"LLM_BASE_URL": model.BaseURL(), "LLM_API_KEY": secretKey, "LLM_MODEL": "fake-small",
				"DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "parley.db"), "MCP_CONFIG": path,
			})
			m.Stdin = strings.NewReader("prod\n" + tt.answer + "\nthanks\n")
			before := srv.Calls()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := m.Run(ctx, []string{"console"}); err != nil {
				t.Fatal(err)
			}
			got := out.String()
			for _, want := range []string{"ops.deploy", "Approve? [y/N]", tt.want, "You are welcome."} {
				if !strings.Contains(got, want) {
					t.Errorf("output lacks %q:\n%s", want, got)
				}
			}
			if n := srv.Calls() - before; n != tt.runs {
				t.Errorf("the tool ran %d times, want %d", n, tt.runs)
			}
		})
	}
}
