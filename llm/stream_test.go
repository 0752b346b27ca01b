package llm

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/llm/llmtest"
)

func TestStreamCaptures(t *testing.T) {
	tests := []struct {
		name, file, model  string
		text, reasoning    string
		finish             string
		usage              *Usage
		calls              map[int]ToolCallDelta
		wantErr            error
		wantErrMsgContains string
	}{
		{
			name: "openai", file: "openai.sse",
			text:   "Hello, wörld! 👋\n\nHow can I help with \"that\"?",
			finish: "stop", usage: &Usage{PromptTokens: 19, CompletionTokens: 12},
		},
		{
			name: "reasoning_content", file: "reasoning.sse", model: "deepseek-reasoner",
			text: "2 + 2 = **4**", reasoning: "The user asks 2+2. That is 4.",
			finish: "stop", usage: &Usage{PromptTokens: 12, CompletionTokens: 30},
		},
		{
			name: "comments and reasoning field", file: "keepalive.sse", model: "anthropic/claude-sonnet-4",
			text: "Paris is the capital of France.", reasoning: "Short answer.",
			finish: "stop", usage: &Usage{PromptTokens: 14, CompletionTokens: 9},
		},
		{
			name: "no finish reason, no id, no done", file: "nofinish.sse",
			text: "Line one\nline two ends here.",
		},
		{
			name: "usage-only last chunk, no done", file: "usage_last.sse", model: "qwen-plus",
			text: "OK.", finish: "length", usage: &Usage{PromptTokens: 5, CompletionTokens: 2},
		},
		{
			name: "crlf line endings", file: "crlf.sse",
			text: "Windows line endings", finish: "stop",
		},
		{
			name: "sora-2 progress", file: "sora2.sse", model: "sora-2",
			text: "> Video generation queued (id: video_68e6a1b2)\n\nprogress 12%\nprogress 47%\nprogress 100%\n\n" +
				"Done: [video_68e6a1b2.mp4](https://filesystem.site/cdn/20251008/video_68e6a1b2.mp4?sig=abc&exp=1735776006)",
			finish: "stop", usage: &Usage{PromptTokens: 21, CompletionTokens: 64},
		},
		{
			name: "two tool calls, no text", file: "toolcalls.sse", model: "gpt-4o",
			finish: FinishToolCalls, usage: &Usage{PromptTokens: 82, CompletionTokens: 41},
			calls: map[int]ToolCallDelta{
				0: {Index: 0, ID: "call_DdmO9pD3xa9XTPNJ32zg2hcA", Name: "get_weather", Arguments: `{"city":"Paris","unit":"c"}`},
				1: {Index: 1, ID: "call_9hX2kLq0VbN3mR7sT1uW4yZa", Name: "get_time", Arguments: `{"zone":"Europe/Paris"}`},
			},
		},
		{
			name: "error object in the stream", file: "error_instream.sse", model: "gpt-4o",
			text: "Partial ans", wantErr: ErrServer, wantErrMsgContains: "The server had an error",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, replay(capture(t, tt.file)))
			c, _ := newClient(t, srv, nil)
			model := tt.model
			if model == "" {
				model = "gpt-4o-mini"
			}
			s, err := c.Stream(t.Context(), userRequest(model, "hi"))
			if err != nil {
				t.Fatal(err)
			}
			r := collect(t, s)
			if tt.wantErr != nil {
				if !errors.Is(r.err, tt.wantErr) {
					t.Fatalf("got error %v, want %v", r.err, tt.wantErr)
				}
				if !strings.Contains(r.err.Error(), tt.wantErrMsgContains) {
					t.Errorf("error %q lost the provider's message %q", r.err, tt.wantErrMsgContains)
				}
			} else if r.err != nil {
				t.Fatalf("got error %v, want a clean end", r.err)
			}
			if r.text != tt.text {
				t.Errorf("got text %q, want %q", r.text, tt.text)
			}
			if r.reasoning != tt.reasoning {
				t.Errorf("got reasoning %q, want %q", r.reasoning, tt.reasoning)
			}
			if r.finish != tt.finish {
				t.Errorf("got finish reason %q, want %q", r.finish, tt.finish)
			}
			if (r.usage == nil) != (tt.usage == nil) || (r.usage != nil && *r.usage != *tt.usage) {
				t.Errorf("got usage %+v, want %+v", r.usage, tt.usage)
			}
			if !maps.Equal(r.calls, tt.calls) {
				t.Errorf("got tool calls %+v, want %+v", r.calls, tt.calls)
			}
		})
	}
}

// The tool-call pieces reach the caller as the endpoint sent them: the
// first piece of a call names it, the arguments follow piece by piece.
func TestToolCallDeltasAsReceived(t *testing.T) {
	srv := newServer(t, replay(capture(t, "toolcalls.sse")))
	c, _ := newClient(t, srv, nil)
	s, err := c.Stream(t.Context(), userRequest("gpt-4o", "weather and time in Paris?"))
	if err != nil {
		t.Fatal(err)
	}
	r := collect(t, s)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.text != "" {
		t.Errorf("got text %q, want none", r.text)
	}
	// 1 + 9 pieces for the first call, 1 + 6 for the second.
	if got := len(r.toolDeltas); got != 17 {
		t.Fatalf("got %d tool-call deltas, want 17: %+v", got, r.toolDeltas)
	}
	first := map[int]bool{}
	for i, d := range r.toolDeltas {
		if !first[d.Index] {
			first[d.Index] = true
			if d.ID == "" || d.Name == "" || d.Arguments != "" {
				t.Errorf("delta %d: got %+v, want the first piece of call %d with its id and name only", i, d, d.Index)
			}
			continue
		}
		if d.ID != "" || d.Name != "" || d.Arguments == "" {
			t.Errorf("delta %d: got %+v, want a piece of arguments only", i, d)
		}
	}
	if r.toolDeltas[10].Index != 1 || r.toolDeltas[9].Index != 0 {
		t.Errorf("got the second call starting at %+v, want it after the first call's 10 pieces", r.toolDeltas[10])
	}
}

func TestSoraAnswerHasVideoLink(t *testing.T) {
	srv := newServer(t, replay(capture(t, "sora2.sse")))
	c, _ := newClient(t, srv, nil)
	s, err := c.Stream(t.Context(), userRequest("sora-2", "a cat surfing"))
	if err != nil {
		t.Fatal(err)
	}
	r := collect(t, s)
	got := MediaURLs(r.text)
	want := "https://filesystem.site/cdn/20251008/video_68e6a1b2.mp4?sig=abc&exp=1735776006"
	if len(got) != 1 || got[0] != want {
		t.Errorf("got media %q, want [%q]", got, want)
	}
}

func TestStreamRequest(t *testing.T) {
	var body map[string]any
	var auth string
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
			http.Error(w, "wrong endpoint "+r.Method+" "+r.URL.Path, http.StatusTeapot)
			return
		}
		auth = r.Header.Get("Authorization")
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		replay(capture(t, "openai.sse"))(w, r)
	})
	c, _ := newClient(t, srv, nil)
	s, err := c.Stream(t.Context(), Request{
		Model:     "gpt-4o",
		MaxTokens: 256,
		Messages: []Message{
			{Role: RoleSystem, Content: "Be brief."},
			{Role: RoleUser, Content: "Hi"},
			{Role: RoleAssistant, Content: "Hello!"},
			{Role: RoleUser, Content: "What is this?", Images: []Image{{URL: "data:image/png;base64,iVBORw0KGgo="}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := collect(t, s); r.err != nil {
		t.Fatal(r.err)
	}
	if auth != "Bearer "+testKey {
		t.Errorf("got Authorization %q, want the bearer key", auth)
	}
	want := `{"max_tokens":256,"messages":[` +
		`{"content":"Be brief.","role":"system"},` +
		`{"content":"Hi","role":"user"},` +
		`{"content":"Hello!","role":"assistant"},` +
		`{"content":[{"text":"What is this?","type":"text"},{"image_url":{"url":"data:image/png;base64,iVBORw0KGgo="},"type":"image_url"}],"role":"user"}],` +
		`"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}`
	got, _ := json.Marshal(body) // map keys sorted
	if string(got) != want {
		t.Errorf("got request\n%s\nwant\n%s", got, want)
	}
}

func TestMaxCompletionTokensFallback(t *testing.T) {
	var bodies []map[string]any
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		bodies = append(bodies, body)
		if _, ok := body["max_tokens"]; ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":{"message":"Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.","type":"invalid_request_error","param":"max_tokens","code":"unsupported_parameter"}}`)
			return
		}
		replay([]byte(chunk("ok")+finishChunk))(w, r)
	})
	c, _ := newClient(t, srv, nil)
	req := userRequest("o3-mini", "hi")
	req.MaxTokens = 100
	s, err := c.Stream(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if r := collect(t, s); r.err != nil || r.text != "ok" {
		t.Fatalf("got %q, %v; want ok", r.text, r.err)
	}
	if len(bodies) != 2 || bodies[1]["max_completion_tokens"] != float64(100) {
		t.Errorf("got requests %v, want a second one with max_completion_tokens 100", bodies)
	}
}

func TestCancelClosesServerRequest(t *testing.T) {
	serverDone := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		startSSE(w)
		writeFlush(w, []byte(chunk("first")))
		<-r.Context().Done() // the client went away
		close(serverDone)
	})
	c, _ := newClient(t, srv, nil)
	ctx, cancel := context.WithCancel(t.Context())
	s, err := c.Stream(ctx, userRequest("gpt-4o", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if d, err := s.Recv(); err != nil || d.Text != "first" {
		t.Fatalf("got %+v, %v; want the first delta", d, err)
	}
	recvErr := make(chan error, 1)
	go func() {
		_, err := s.Recv() // blocks: the server sends nothing more
		recvErr <- err
	}()
	cancel()
	select {
	case err := <-recvErr:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v after cancel, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Recv did not return after cancel")
	}
	select {
	case <-serverDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the server-side request was not closed after cancel")
	}
}

func TestCloseClosesServerRequest(t *testing.T) {
	serverDone := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		startSSE(w)
		writeFlush(w, []byte(chunk("first")))
		<-r.Context().Done()
		close(serverDone)
	})
	c, _ := newClient(t, srv, nil)
	s, err := c.Stream(t.Context(), userRequest("gpt-4o", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-serverDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the server-side request was not closed by Close")
	}
	if _, err := s.Recv(); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("Recv after Close returned %v, want an error that is not io.EOF", err)
	}
}

// hijackCut writes events, then drops the connection without ending the
// chunked body: what a proxy restart or a network cut looks like.
func hijackCut(events ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		startSSE(w)
		for _, ev := range events {
			writeFlush(w, []byte(ev))
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		_ = conn.Close()
	}
}

func TestCutAfterTextIsReported(t *testing.T) {
	var attempts int
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		attempts++
		hijackCut(chunk("Half an"), chunk(" answer"))(w, r)
	})
	c, _ := newClient(t, srv, nil)
	s, err := c.Stream(t.Context(), userRequest("gpt-4o", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	r := collect(t, s)
	if !errors.Is(r.err, ErrStreamCut) {
		t.Fatalf("got %v, want ErrStreamCut", r.err)
	}
	if r.text != "Half an answer" {
		t.Errorf("got text %q, want the text before the cut", r.text)
	}
	if attempts != 1 {
		t.Errorf("got %d requests, want 1: nothing is retried after text", attempts)
	}
}

func TestCutAfterFinishReasonIsTheEnd(t *testing.T) {
	srv := newServer(t, hijackCut(chunk("Complete."), finishChunk))
	c, _ := newClient(t, srv, nil)
	s, err := c.Stream(t.Context(), userRequest("gpt-4o", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	if r := collect(t, s); r.err != nil || r.text != "Complete." || r.finish != "stop" {
		t.Errorf("got %q finish %q err %v; want the complete answer and no error", r.text, r.finish, r.err)
	}
}

func TestCleanEOFWithoutFinishIsTheEnd(t *testing.T) {
	// A body that ends normally (terminated chunked encoding) without
	// [DONE] and without finish_reason is a complete answer.
	srv := newServer(t, replay([]byte(chunk("All there is."))))
	c, _ := newClient(t, srv, nil)
	s, err := c.Stream(t.Context(), userRequest("gpt-4o", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	if r := collect(t, s); r.err != nil || r.text != "All there is." {
		t.Errorf("got %q, %v; want the text and a clean end", r.text, r.err)
	}
}

func TestIdleTimeoutOnSilence(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		startSSE(w)
		writeFlush(w, []byte(chunk("thinking...")))
		<-r.Context().Done() // silence until the client gives up
	})
	c, _ := newClient(t, srv, func(cfg *Config) { cfg.IdleTimeout = 150 * time.Millisecond })
	s, err := c.Stream(t.Context(), userRequest("gpt-4o", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	r := collect(t, s)
	if !errors.Is(r.err, ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", r.err)
	}
	if r.text != "thinking..." {
		t.Errorf("got text %q, want the text before the silence", r.text)
	}
}

func TestRequestValidation(t *testing.T) {
	srv := newServer(t, replay(nil))
	c, _ := newClient(t, srv, func(cfg *Config) { cfg.Models = []string{"gpt-4o*"} })
	tests := []struct {
		name string
		req  Request
		want error
	}{
		{"model not allowed", userRequest("claude-3-opus", "hi"), ErrModelNotFound},
		{"no messages", Request{Model: "gpt-4o"}, nil},
		{"unknown role", Request{Model: "gpt-4o", Messages: []Message{{Role: "tool", Content: "x"}}}, nil},
		{"image on assistant", Request{Model: "gpt-4o", Messages: []Message{{Role: RoleAssistant, Images: []Image{{URL: "https://x/y.png"}}}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := c.Stream(t.Context(), tt.req)
			if err == nil {
				s.Close()
				t.Fatal("got a stream, want an error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestLastEventWithoutBlankLine(t *testing.T) {
	// The server closes cleanly right after the last data line.
	body := chunk("All ") + strings.TrimSuffix(chunk("of it."), "\n")
	srv := newServer(t, replay([]byte(body)))
	c, _ := newClient(t, srv, nil)
	s, err := c.Stream(t.Context(), userRequest("gpt-4o", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	if r := collect(t, s); r.err != nil || r.text != "All of it." {
		t.Errorf("got %q, %v; want the last words too", r.text, r.err)
	}
}

func TestCloseFromAnotherGoroutine(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		startSSE(w)
		writeFlush(w, []byte(chunk("first")))
		<-r.Context().Done()
	})
	c, _ := newClient(t, srv, nil)
	s, err := c.Stream(t.Context(), userRequest("gpt-4o", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	recvErr := make(chan error, 1)
	go func() {
		_, err := s.Recv()
		recvErr <- err
	}()
	_ = s.Close()
	select {
	case err := <-recvErr:
		if err == nil || errors.Is(err, io.EOF) {
			t.Errorf("got %v from a closed stream, want an error that is not io.EOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Recv did not return after Close")
	}
}

// An answer cut at the token limit ends like any other (io.EOF), and the
// caller learns why from the finish reason.
func TestFinishReasonLengthReachesTheCaller(t *testing.T) {
	srv := llmtest.NewServer()
	t.Cleanup(srv.Close)
	srv.Answer = func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Chunks: llmtest.Words("one two three four five six", 1)}
	}
	c, _ := newClient(t, srv.Server, nil)
	req := userRequest("gpt-4o", "count to six")
	req.MaxTokens = 3
	s, err := c.Stream(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	r := collect(t, s)
	if r.err != nil {
		t.Fatalf("got %v, want a normal end", r.err)
	}
	if r.finish != FinishLength {
		t.Errorf("got finish reason %q, want %q", r.finish, FinishLength)
	}
	if r.text != "one two three " {
		t.Errorf("got text %q, want the first 3 tokens", r.text)
	}
	if got := srv.Requests()[0].MaxTokens; got != 3 {
		t.Errorf("the endpoint got max_tokens %d, want 3", got)
	}
}
