package tools_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/llm/llmtest"
	"github.com/parleyhq/parley/tools"
	"github.com/parleyhq/parley/tools/mcptest"
)

// twoCallsThenAnswer is a model that calls echo and slow in one turn,
// streamed the way gateways do (ids and names split, the calls'
// pieces interleaved), then answers with what the tools returned.
func twoCallsThenAnswer(server string) func(llmtest.Request) llmtest.Reply {
	return func(req llmtest.Request) llmtest.Reply {
		res := req.ToolResults()
		if len(res) == 0 {
			return llmtest.Reply{SplitIDs: true, Interleave: true, ToolCalls: []llmtest.ToolCall{
				{ID: "call_echo", Name: server + "__echo", Arguments: `{"text":"hello from the tool"}`},
				{ID: "call_slow", Name: server + "__slow", Arguments: `{"ms":20}`},
			}}
		}
		return llmtest.Reply{Chunks: llmtest.Words(fmt.Sprintf("The echo said %q and slow said %q.", res["call_echo"], res["call_slow"]), 2)}
	}
}

func TestAnswerCallsMCPTools(t *testing.T) {
	srv := mcptest.NewServer()
	h := mcptest.HTTP(srv, "s3cret-token")
	t.Cleanup(h.Close)
	tests := []struct {
		name string
		cfg  tools.ServerConfig
	}{
		{"stdio", stdioConfig("local", nil)},
		{"streamable HTTP with headers", tools.ServerConfig{Name: "remote", URL: h.URL, Headers: map[string]string{"Authorization": "Bearer s3cret-token"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			servers := startServers(t, nil, tt.cfg)
			waitState(t, servers, tt.cfg.Name, tools.StateConnected)
			var mu sync.Mutex
			var calls []string
			loop := tools.New(tools.Config{Source: servers, Logger: quiet(), OnCall: func(server, tool, outcome string, d time.Duration) {
				mu.Lock()
				defer mu.Unlock()
				calls = append(calls, server+"/"+tool+"/"+outcome)
			}})
			offered := loop.Offer(nil)
			var names []string
			for _, o := range offered {
				names = append(names, o.Name)
			}
			if !slices.Contains(names, tt.cfg.Name+"__echo") || !slices.Contains(names, tt.cfg.Name+"__slow") {
				t.Fatalf("offered %v, want the server's tools named server__tool", names)
			}
			model, fake := fakeModel(t, twoCallsThenAnswer(tt.cfg.Name))
			out := &recorder{}
			ans, err := loop.Answer(t.Context(), model, question("use your tools"), offered, out)
			if err != nil {
				t.Fatal(err)
			}
			want := `The echo said "hello from the tool" and slow said "slept".`
			if ans.Text != want {
				t.Errorf("got answer %q, want %q", ans.Text, want)
			}
			if len(ans.Rounds) != 1 || len(ans.Rounds[0].Calls) != 2 {
				t.Fatalf("got rounds %+v, want one round of two calls", ans.Rounds)
			}
			wantCalls := []conversation.ToolCall{
				{ID: "call_echo", Name: tt.cfg.Name + "__echo", Arguments: `{"text":"hello from the tool"}`, Result: "hello from the tool"},
				{ID: "call_slow", Name: tt.cfg.Name + "__slow", Arguments: `{"ms":20}`, Result: "slept"},
			}
			if !slices.Equal(ans.Rounds[0].Calls, wantCalls) {
				t.Errorf("got calls %+v, want %+v", ans.Rounds[0].Calls, wantCalls)
			}
			reqs := fake.Requests()
			if len(reqs) != 2 || len(reqs[0].Tools) != len(offered) {
				t.Fatalf("got %d requests, want 2, the first with the %d tools", len(reqs), len(offered))
			}
			second := reqs[1].Messages
			if len(second) != 4 || second[1].Role != "assistant" || len(second[1].ToolCalls) != 2 || second[2].ToolCallID != "call_echo" || second[3].ToolCallID != "call_slow" {
				t.Errorf("second request %+v: want the question, the calls, and a tool message per call id", second)
			}
			// Usage counts both rounds.
			if ans.Usage == nil || ans.Usage.PromptTokens != reqs[0].PromptTokens()+reqs[1].PromptTokens() {
				t.Errorf("got usage %+v, want the prompt tokens of both rounds (%d + %d)", ans.Usage, reqs[0].PromptTokens(), reqs[1].PromptTokens())
			}
			lines := out.lines()
			if len(lines) == 0 || !strings.Contains(lines[0], "`"+tt.cfg.Name+".echo` …") || !strings.Contains(lines[len(lines)-1], "`"+tt.cfg.Name+".slow` ✓") {
				t.Errorf("status lines %q: want each tool running, then done", lines)
			}
			mu.Lock()
			slices.Sort(calls)
			if !slices.Equal(calls, []string{tt.cfg.Name + "/echo/ok", tt.cfg.Name + "/slow/ok"}) {
				t.Errorf("calls counted %v, want echo and slow ok", calls)
			}
			mu.Unlock()
		})
	}
}

// Calls that go wrong become error results the model reads, and the
// answer goes on: a failing tool, an unknown tool, arguments that are not
// JSON, a tool slower than the timeout, a result longer than the cap.
func TestCallsThatGoWrong(t *testing.T) {
	srv := mcptest.NewServer()
	h := mcptest.HTTP(srv, "")
	t.Cleanup(h.Close)
	servers := startServers(t, nil, tools.ServerConfig{Name: "t", URL: h.URL})
	waitState(t, servers, "t", tools.StateConnected)
	var mu sync.Mutex
	outcomes := map[string]string{}
	loop := tools.New(tools.Config{Source: servers, Logger: quiet(), CallTimeout: 200 * time.Millisecond, MaxResultBytes: 64,
		OnCall: func(server, tool, outcome string, d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			outcomes[tool] = outcome
		}})
	long := strings.Repeat("é", 100) // 200 bytes: cut on a character boundary
	model, _ := fakeModel(t, func(req llmtest.Request) llmtest.Reply {
		if res := req.ToolResults(); len(res) > 0 {
			return llmtest.Reply{Chunks: []string{"done"}}
		}
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{
			{ID: "a", Name: "t__fail", Arguments: `{}`},
			{ID: "b", Name: "t__nosuch", Arguments: `{}`},
			{ID: "c", Name: "t__echo", Arguments: `{"text": "unclosed`},
			{ID: "d", Name: "t__slow", Arguments: `{"ms": 60000}`},
			{ID: "e", Name: "t__echo", Arguments: `{"text":"` + long + `"}`},
			{ID: "f", Name: "t__echo", Arguments: `[1, 2]`},
		}}
	})
	ans, err := loop.Answer(t.Context(), model, question("break things"), loop.Offer(nil), &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if ans.Text != "done" || len(ans.Rounds) != 1 {
		t.Fatalf("got %q with %d rounds, want done after one round", ans.Text, len(ans.Rounds))
	}
	got := map[string]conversation.ToolCall{}
	for _, c := range ans.Rounds[0].Calls {
		got[c.ID] = c
	}
	checks := []struct {
		id, contains string
	}{
		{"a", "the database is on fire"},
		{"b", `there is no tool "t__nosuch"`},
		{"c", "not a JSON object"},
		{"d", "did not answer within 200ms"},
		{"f", "not a JSON object"},
	}
	for _, c := range checks {
		if r := got[c.id]; !r.Error || !strings.Contains(r.Result, c.contains) {
			t.Errorf("call %s: got %+v, want an error result containing %q", c.id, r, c.contains)
		}
	}
	cut := got["e"]
	if cut.Error || !strings.HasPrefix(cut.Result, strings.Repeat("é", 32)+"\n\n[Parley cut this result at 64 of its 200 bytes.") {
		t.Errorf("long result: got %q, want it cut at 64 bytes with a note", cut.Result)
	}
	mu.Lock()
	defer mu.Unlock()
	if outcomes["fail"] != tools.OutcomeError || outcomes["slow"] != tools.OutcomeTimeout || outcomes["unknown"] != tools.OutcomeUnknown {
		t.Errorf("outcomes %v: want fail error, slow timeout, an unknown tool", outcomes)
	}
}

func TestRoundLimit(t *testing.T) {
	srv := mcptest.NewServer()
	h := mcptest.HTTP(srv, "")
	t.Cleanup(h.Close)
	servers := startServers(t, nil, tools.ServerConfig{Name: "t", URL: h.URL})
	waitState(t, servers, "t", tools.StateConnected)
	loop := tools.New(tools.Config{Source: servers, Logger: quiet(), MaxRounds: 2})
	model, fake := fakeModel(t, func(req llmtest.Request) llmtest.Reply {
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "t__echo", Arguments: `{"text":"again"}`}}}
	})
	ans, err := loop.Answer(t.Context(), model, question("loop forever"), loop.Offer(nil), &recorder{})
	if !errors.Is(err, tools.ErrRounds) {
		t.Fatalf("got err %v, want ErrRounds", err)
	}
	// Two rounds run, a third told the limit is reached, then it stops.
	if len(ans.Rounds) != 3 || len(fake.Requests()) != 4 || srv.Calls() != 2 {
		t.Fatalf("got %d rounds, %d requests, %d calls run; want 3, 4, 2", len(ans.Rounds), len(fake.Requests()), srv.Calls())
	}
	if c := ans.Rounds[2].Calls[0]; !c.Error || !strings.Contains(c.Result, "limit of 2 rounds") {
		t.Errorf("third round: got %+v, want a result saying the limit is reached", c)
	}
}

// A stopped answer stops its tools.
func TestStopEndsCalls(t *testing.T) {
	srv := mcptest.NewServer()
	h := mcptest.HTTP(srv, "")
	t.Cleanup(h.Close)
	servers := startServers(t, nil, tools.ServerConfig{Name: "t", URL: h.URL})
	waitState(t, servers, "t", tools.StateConnected)
	loop := tools.New(tools.Config{Source: servers, Logger: quiet()})
	model, _ := fakeModel(t, func(req llmtest.Request) llmtest.Reply {
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "t__slow", Arguments: `{"ms":600000}`}}}
	})
	ctx, cancel := context.WithCancel(t.Context())
	out := &recorder{}
	done := make(chan error, 1)
	go func() {
		_, err := loop.Answer(ctx, model, question("wait"), loop.Offer(nil), out)
		done <- err
	}()
	deadline := time.After(10 * time.Second)
	for len(out.lines()) == 0 {
		select {
		case <-deadline:
			t.Fatal("the tool never started")
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the answer did not stop with its context")
	}
}

// A stdio server gets the environment its config names, and nothing of
// Parley's.
func TestStdioServerGetsOnlyItsEnv(t *testing.T) {
	t.Setenv("PARLEY_TEST_SECRET_TOKEN", "xoxb-do-not-leak")
	servers := startServers(t, nil, stdioConfig("local", map[string]string{"GIVEN": "yes"}))
	waitState(t, servers, "local", tools.StateConnected)
	tool := find(t, servers, "local__echo")
	for name, want := range map[string]string{
		"PARLEY_TEST_SECRET_TOKEN": `PARLEY_TEST_SECRET_TOKEN="" set=false`,
		"GIVEN":                    `GIVEN="yes" set=true`,
		"HOME":                     `HOME="" set=false`,
	} {
		res, err := servers.Call(t.Context(), tool, []byte(`{"text":"env:`+name+`"}`))
		if err != nil || res.Text != want {
			t.Errorf("%s in the server: got %q, %v; want %q", name, res.Text, err, want)
		}
	}
}

func find(t testing.TB, s *tools.Servers, name string) tools.Tool {
	t.Helper()
	for _, tl := range s.Tools() {
		if tl.Name == name {
			return tl
		}
	}
	t.Fatalf("no tool %s among %+v", name, s.Tools())
	return tools.Tool{}
}

// A stdio server that dies is restarted, and its tools come back.
func TestStdioServerRestarted(t *testing.T) {
	servers := startServers(t, nil, stdioConfig("local", nil))
	waitState(t, servers, "local", tools.StateConnected)
	crash := find(t, servers, "local__crash")
	if _, err := servers.Call(t.Context(), crash, []byte(`{}`)); err == nil {
		t.Fatal("a call that kills the server succeeded")
	}
	down := waitState(t, servers, "local", tools.StateDown)
	if down.Err == "" {
		t.Error("a server that is down says nothing of why")
	}
	waitState(t, servers, "local", tools.StateConnected)
	res, err := servers.Call(t.Context(), find(t, servers, "local__echo"), []byte(`{"text":"back"}`))
	if err != nil || res.Text != "back" {
		t.Errorf("after the restart: got %q, %v; want back", res.Text, err)
	}
}

// An HTTP server that refuses Parley is down, says why without showing
// the header's secret, and its tools are left out.
func TestHTTPServerRefused(t *testing.T) {
	srv := mcptest.NewServer()
	h := mcptest.HTTP(srv, "right-token")
	t.Cleanup(h.Close)
	servers := startServers(t, nil, tools.ServerConfig{Name: "remote", URL: h.URL, Headers: map[string]string{"Authorization": "Bearer wrong-token-1234"}})
	st := waitState(t, servers, "remote", tools.StateDown)
	if strings.Contains(st.Err, "wrong-token-1234") {
		t.Errorf("the error shows the header's secret: %s", st.Err)
	}
	if len(servers.Tools()) != 0 {
		t.Errorf("got tools %+v of a server that is down", servers.Tools())
	}
}

// A server that says its list changed has its tools listed again.
func TestToolListChanged(t *testing.T) {
	srv := mcptest.NewServer()
	h := mcptest.HTTP(srv, "")
	t.Cleanup(h.Close)
	servers := startServers(t, nil, tools.ServerConfig{Name: "remote", URL: h.URL})
	waitState(t, servers, "remote", tools.StateConnected)
	srv.AddEcho2()
	deadline := time.Now().Add(10 * time.Second)
	for {
		names := []string{}
		for _, tl := range servers.Tools() {
			names = append(names, tl.Name)
		}
		if slices.Contains(names, "remote__echo2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tools %v: echo2 never appeared", names)
		}
		<-time.After(5 * time.Millisecond)
	}
}

func TestModelName(t *testing.T) {
	tests := []struct{ server, tool, want string }{
		{"github", "search_issues", "github__search_issues"},
		{"my.server", "do-it now", "my_server__do-it_now"},
		{"a", strings.Repeat("x", 80), ""},
	}
	for _, tt := range tests {
		got := tools.ModelName(tt.server, tt.tool)
		if tt.want != "" && got != tt.want {
			t.Errorf("ModelName(%q, %q) = %q, want %q", tt.server, tt.tool, got, tt.want)
		}
		if len(got) > 64 || strings.ContainsFunc(got, func(r rune) bool {
			return !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}) {
			t.Errorf("ModelName(%q, %q) = %q: not model-safe", tt.server, tt.tool, got)
		}
	}
	if tools.ModelName("a", strings.Repeat("x", 80)) == tools.ModelName("a", strings.Repeat("x", 81)) {
		t.Error("two long names cut to the same name")
	}
}

var _ = os.Args

// A model that refuses requests with tools (no function calling) is asked
// again without them, and then without them for a while.
func TestModelWithoutTools(t *testing.T) {
	srv := mcptest.NewServer()
	h := mcptest.HTTP(srv, "")
	t.Cleanup(h.Close)
	servers := startServers(t, nil, tools.ServerConfig{Name: "t", URL: h.URL})
	waitState(t, servers, "t", tools.StateConnected)
	loop := tools.New(tools.Config{Source: servers, Logger: quiet()})
	model, fake := fakeModel(t, func(req llmtest.Request) llmtest.Reply {
		if len(req.Tools) > 0 {
			return llmtest.Reply{Status: 400, Body: `{"error":{"message":"tools is not supported for this model","type":"invalid_request_error"}}`}
		}
		return llmtest.Reply{Chunks: []string{"plain answer"}}
	})
	for i := range 2 {
		ans, err := loop.Answer(t.Context(), model, question("hi"), loop.Offer(nil), &recorder{})
		if err != nil || ans.Text != "plain answer" {
			t.Fatalf("answer %d: got %q, %v; want the plain answer", i, ans.Text, err)
		}
	}
	if n := len(fake.Requests()); n != 3 {
		t.Errorf("got %d requests, want 3: one refused, then two without tools", n)
	}
}
