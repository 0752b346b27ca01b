package llmtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"

	"github.com/parleyhq/parley/llm"
	"github.com/parleyhq/parley/llm/llmtest"
)

// TestMain refuses any dial that is not to loopback: the fake is the only
// endpoint.
func TestMain(m *testing.M) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	dialer := &net.Dialer{}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("test dialed %s: only loopback is allowed", addr)
		}
		return dialer.DialContext(ctx, network, addr)
	}
	http.DefaultTransport = t
	os.Exit(m.Run())
}

// fake starts a server answering every request with reply.
func fake(t *testing.T, reply llmtest.Reply) *llmtest.Server {
	t.Helper()
	srv := llmtest.NewServer()
	t.Cleanup(srv.Close)
	srv.Answer = func(llmtest.Request) llmtest.Reply { return reply }
	return srv
}

// client returns an llm.Client of srv; mod adjusts its config.
func client(t *testing.T, srv *llmtest.Server, mod func(*llm.Config)) *llm.Client {
	t.Helper()
	cfg := llm.Config{BaseURL: srv.BaseURL(), APIKey: "sk-fake-1234", DefaultModel: "fake-small"}
	if mod != nil {
		mod(&cfg)
	}
	c, err := llm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// openaiClient is openai-go itself, without llm in between.
func openaiClient(srv *llmtest.Server) openai.Client {
	return openai.NewClient(option.WithBaseURL(srv.BaseURL()+"/"), option.WithAPIKey("sk-fake-1234"), option.WithMaxRetries(0))
}

// result is everything an llm stream delivered.
type result struct {
	text, reasoning, finish string
	order                   []string // "reasoning", "text", "tool" per delta that has one
	tools                   []llm.ToolCallDelta
	usage                   *llm.Usage
	err                     error // nil at io.EOF
}

// calls joins tool-call pieces per index.
func (r result) calls() map[int]llm.ToolCallDelta {
	out := map[int]llm.ToolCallDelta{}
	for _, d := range r.tools {
		c := out[d.Index]
		c.Index = d.Index
		c.ID += d.ID
		c.Name += d.Name
		c.Arguments += d.Arguments
		out[d.Index] = c
	}
	return out
}

// ask streams one question through c and reads the answer to its end.
func ask(t *testing.T, c *llm.Client, req llm.Request) result {
	t.Helper()
	if len(req.Messages) == 0 {
		req.Messages = []llm.Message{{Role: llm.RoleUser, Content: "hi"}}
	}
	s, err := c.Stream(t.Context(), req)
	if err != nil {
		return result{err: err}
	}
	defer s.Close()
	var r result
	for {
		d, err := s.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				r.err = err
			}
			return r
		}
		if d.Reasoning != "" {
			r.reasoning += d.Reasoning
			r.order = append(r.order, "reasoning")
		}
		if d.Text != "" {
			r.text += d.Text
			r.order = append(r.order, "text")
		}
		if len(d.ToolCalls) > 0 {
			r.tools = append(r.tools, d.ToolCalls...)
			r.order = append(r.order, "tool")
		}
		if d.FinishReason != "" {
			if r.finish != "" {
				t.Errorf("finish reason %q reported twice", d.FinishReason)
			}
			r.finish = d.FinishReason
		}
		if d.Usage != nil {
			r.usage = d.Usage
		}
	}
}

// waitFor waits until cond holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func TestTextAnswer(t *testing.T) {
	text := "The quick brown fox jumps over the lazy dog."
	srv := fake(t, llmtest.Reply{Chunks: llmtest.Words(text, 2)})
	r := ask(t, client(t, srv, nil), llm.Request{Model: "fake-large", Messages: []llm.Message{{Role: llm.RoleUser, Content: "a pangram"}}})
	if r.err != nil || r.text != text || r.finish != llm.FinishStop {
		t.Fatalf("got %q, finish %q, %v; want %q, stop", r.text, r.finish, r.err, text)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 || reqs[0].Model != "fake-large" || !reqs[0].Stream || reqs[0].Messages[0].Text() != "a pangram" {
		t.Errorf("got requests %+v, want one streamed request for fake-large", reqs)
	}
	tm := srv.Timings()["a pangram"]
	if tm.Received.IsZero() || tm.First.Before(tm.Received) || tm.Last.Before(tm.First) {
		t.Errorf("got timings %+v, want received <= first <= last", tm)
	}
}

func TestDefaultAnswer(t *testing.T) {
	srv := llmtest.NewServer()
	t.Cleanup(srv.Close)
	if r := ask(t, client(t, srv, nil), llm.Request{}); r.err != nil || r.text != "ok" {
		t.Errorf("got %q, %v; want ok", r.text, r.err)
	}
}

func TestWordsJoinToText(t *testing.T) {
	for _, text := range []string{"", "one", "one two three four five", "  spaced  out  ", "trailing "} {
		for n := 1; n <= 3; n++ {
			if got := strings.Join(llmtest.Words(text, n), ""); got != text {
				t.Errorf("Words(%q, %d) joins to %q", text, n, got)
			}
		}
	}
}

func TestToolCalls(t *testing.T) {
	calls := []llmtest.ToolCall{
		{ID: "call_weather", Name: "get_weather", Arguments: `{"city":"Zürich","unit":"celsius"}`},
		{Name: "get_time", Arguments: `{"zone":"Europe/Zurich"}`}, // default id
	}
	want := map[int]llm.ToolCallDelta{
		0: {Index: 0, ID: "call_weather", Name: "get_weather", Arguments: calls[0].Arguments},
		1: {Index: 1, ID: "call_1", Name: "get_time", Arguments: calls[1].Arguments},
	}
	tests := []struct {
		name  string
		reply llmtest.Reply
		text  string
	}{
		{"tool calls only", llmtest.Reply{Chunks: nil, ToolCalls: calls}, ""},
		{"text, then tool calls", llmtest.Reply{Chunks: []string{"Let me ", "look."}, ToolCalls: calls}, "Let me look."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fake(t, tt.reply)
			r := ask(t, client(t, srv, nil), llm.Request{})
			if r.err != nil {
				t.Fatalf("got %v, want a complete answer", r.err)
			}
			if r.text != tt.text || r.finish != llm.FinishToolCalls {
				t.Errorf("got text %q, finish %q; want %q, tool_calls", r.text, r.finish, tt.text)
			}
			if got := r.calls(); !maps.Equal(got, want) {
				t.Errorf("got calls %+v, want %+v", got, want)
			}
			if i := slices.Index(r.order, "tool"); i >= 0 && slices.Contains(r.order[i:], "text") {
				t.Errorf("got deltas in order %v, want the text before the calls", r.order)
			}
			// As OpenAI streams them: the first piece names the call, the
			// arguments come in several small pieces, call after call.
			pieces := map[int]int{}
			last := -1
			for i, d := range r.tools {
				if d.Index < last {
					t.Errorf("delta %d: call %d after call %d", i, d.Index, last)
				}
				if d.Index != last {
					last = d.Index
					if d.ID == "" || d.Name == "" || d.Arguments != "" {
						t.Errorf("delta %d: got %+v, want the id and name of call %d", i, d, d.Index)
					}
					continue
				}
				if d.ID != "" || d.Name != "" {
					t.Errorf("delta %d: got %+v, want arguments only", i, d)
				}
				if len(d.Arguments) == 0 || len(d.Arguments) > llmtest.ArgumentsPiece+3 || !utf8.ValidString(d.Arguments) {
					t.Errorf("delta %d: got arguments piece %q, want a few valid UTF-8 bytes", i, d.Arguments)
				}
				pieces[d.Index]++
			}
			if pieces[0] < 2 || pieces[1] < 2 {
				t.Errorf("got argument pieces per call %v, want several for each", pieces)
			}
		})
	}
}

// openai-go's own accumulator reads the fake's tool calls as OpenAI's.
func TestToolCallsAccumulate(t *testing.T) {
	srv := fake(t, llmtest.Reply{ToolCalls: []llmtest.ToolCall{
		{ID: "call_a", Name: "search", Arguments: `{"q":"go"}`},
		{ID: "call_b", Name: "fetch", Arguments: `{"url":"https://go.dev"}`},
	}})
	oa := openaiClient(srv)
	stream := oa.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{
		Model:    "fake-small",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("search and fetch")},
	})
	defer stream.Close()
	var acc openai.ChatCompletionAccumulator
	var finished []string
	for stream.Next() {
		if !acc.AddChunk(stream.Current()) {
			t.Fatalf("the accumulator refused chunk %s", stream.Current().RawJSON())
		}
		if tc, ok := acc.JustFinishedToolCall(); ok {
			finished = append(finished, tc.Name+tc.Arguments)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Choices) != 1 {
		t.Fatalf("got %d choices, want 1", len(acc.Choices))
	}
	ch := acc.Choices[0]
	if ch.FinishReason != "tool_calls" {
		t.Errorf("got finish reason %q, want tool_calls", ch.FinishReason)
	}
	var got []string
	for _, tc := range ch.Message.ToolCalls {
		got = append(got, tc.ID+" "+tc.Type+" "+tc.Function.Name+" "+tc.Function.Arguments)
	}
	wantCalls := []string{`call_a function search {"q":"go"}`, `call_b function fetch {"url":"https://go.dev"}`}
	if !slices.Equal(got, wantCalls) {
		t.Errorf("got calls %q, want %q", got, wantCalls)
	}
	if want := []string{`search{"q":"go"}`, `fetch{"url":"https://go.dev"}`}; !slices.Equal(finished, want) {
		t.Errorf("got finished calls %q, want %q", finished, want)
	}
}

func TestReasoning(t *testing.T) {
	for _, field := range []string{"", "reasoning_content", "reasoning"} {
		t.Run("field "+field, func(t *testing.T) {
			srv := fake(t, llmtest.Reply{
				Reasoning:      []string{"The user asks 2+2.", " That is 4."},
				ReasoningField: field,
				Chunks:         []string{"2 + 2 = ", "4"},
			})
			r := ask(t, client(t, srv, nil), llm.Request{})
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.reasoning != "The user asks 2+2. That is 4." || r.text != "2 + 2 = 4" {
				t.Errorf("got reasoning %q, text %q; want them apart", r.reasoning, r.text)
			}
			if want := []string{"reasoning", "reasoning", "text", "text"}; !slices.Equal(r.order, want) {
				t.Errorf("got deltas %v, want %v", r.order, want)
			}

			// The reasoning is in the field asked for, and only there.
			want, other := "reasoning_content", "reasoning"
			if field == "reasoning" {
				want, other = other, want
			}
			oa := openaiClient(srv)
			stream := oa.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{
				Model:    "fake-small",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
			})
			defer stream.Close()
			var raw []string
			for stream.Next() {
				for _, c := range stream.Current().Choices {
					if v := c.Delta.JSON.ExtraFields[want].Raw(); v != "" {
						raw = append(raw, v)
					}
					if v := c.Delta.JSON.ExtraFields[other].Raw(); v != "" {
						t.Errorf("got %s %s, want no %s field", other, v, other)
					}
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if got := []string{`"The user asks 2+2."`, `" That is 4."`}; !slices.Equal(raw, got) {
				t.Errorf("got %s fields %q, want %q", want, raw, got)
			}
		})
	}
}

func TestUsageFromTheRequest(t *testing.T) {
	msgs := []llm.Message{
		{Role: llm.RoleSystem, Content: "You are terse."},               // 14 bytes: 4 tokens
		{Role: llm.RoleUser, Content: "What is the capital of France?"}, // 30 bytes: 8 tokens
	}
	// 3 for the reply, 3 per message.
	const prompt = 3 + (3 + 4) + (3 + 8)
	tests := []struct {
		name  string
		msgs  []llm.Message
		reply llmtest.Reply
		want  llm.Usage
	}{
		{"text", msgs, llmtest.Reply{Chunks: []string{"Paris", "."}}, llm.Usage{PromptTokens: prompt, CompletionTokens: 2}},
		{"reasoning, text and a tool call", msgs, llmtest.Reply{
			Reasoning: []string{"Easy."}, Chunks: []string{"Paris"},
			ToolCalls: []llmtest.ToolCall{{Name: "f", Arguments: `{"a":1}`}}, // 7 bytes: one piece
		}, llm.Usage{PromptTokens: prompt, CompletionTokens: 1 + 1 + 2}},
		{"an image", []llm.Message{{Role: llm.RoleUser, Content: "What is it?", Images: []llm.Image{{URL: "https://example.com/a.png"}}}},
			llmtest.Reply{Chunks: []string{"A cat."}}, llm.Usage{PromptTokens: 3 + 3 + 3 + 85, CompletionTokens: 1}},
		{"overridden", msgs, llmtest.Reply{Chunks: []string{"Paris"}, Usage: &llmtest.Usage{PromptTokens: 7, CompletionTokens: 9}},
			llm.Usage{PromptTokens: 7, CompletionTokens: 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fake(t, tt.reply)
			r := ask(t, client(t, srv, nil), llm.Request{Messages: tt.msgs})
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.usage == nil || *r.usage != tt.want {
				t.Errorf("got usage %+v, want %+v", r.usage, tt.want)
			}
			if tt.reply.Usage == nil {
				if got := srv.Requests()[0].PromptTokens(); got != tt.want.PromptTokens {
					t.Errorf("Request.PromptTokens is %d, the stream said %d", got, tt.want.PromptTokens)
				}
			}
		})
	}
}

// Usage is only reported when the request asks for it, as OpenAI does.
func TestUsageOnlyWhenAsked(t *testing.T) {
	srv := fake(t, llmtest.Reply{Chunks: []string{"a", "b"}, Reasoning: []string{"r"}})
	oa := openaiClient(srv)
	for _, include := range []bool{false, true} {
		t.Run(fmt.Sprint("include_usage ", include), func(t *testing.T) {
			params := openai.ChatCompletionNewParams{
				Model:    "fake-small",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
			}
			if include {
				params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			}
			stream := oa.Chat.Completions.NewStreaming(t.Context(), params)
			defer stream.Close()
			var usages []openai.CompletionUsage
			var raws []string // each chunk's usage field, as sent
			for stream.Next() {
				ch := stream.Current()
				raws = append(raws, ch.JSON.Usage.Raw())
				if ch.JSON.Usage.Valid() {
					usages = append(usages, ch.Usage)
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if !include {
				if len(usages) != 0 {
					t.Errorf("got usage %+v without include_usage", usages)
				}
				return
			}
			if len(usages) != 1 {
				t.Fatalf("got %d usage chunks, want 1", len(usages))
			}
			// OpenAI sends "usage":null on every chunk before the last.
			for i, raw := range raws[:len(raws)-1] {
				if raw != "null" {
					t.Errorf("chunk %d: got usage %q, want null", i, raw)
				}
			}
			u := usages[0]
			if u.CompletionTokens != 3 || u.TotalTokens != u.PromptTokens+3 || u.CompletionTokensDetails.ReasoningTokens != 1 {
				t.Errorf("got usage %+v, want 3 completion tokens, 1 of them reasoning", u)
			}
		})
	}
}

func TestFinishReason(t *testing.T) {
	six := llmtest.Words("one two three four five six", 1)
	tests := []struct {
		name      string
		reply     llmtest.Reply
		maxTokens int
		text      string
		finish    string
		usage     int // completion tokens
	}{
		{"default", llmtest.Reply{Chunks: six}, 0, "one two three four five six", llm.FinishStop, 6},
		{"chosen length", llmtest.Reply{Chunks: six[:2], FinishReason: "length"}, 0, "one two ", llm.FinishLength, 2},
		{"chosen content filter", llmtest.Reply{Chunks: six[:1], FinishReason: "content_filter"}, 0, "one ", llm.FinishContentFilter, 1},
		{"max tokens reached", llmtest.Reply{Chunks: six}, 4, "one two three four ", llm.FinishLength, 4},
		{"max tokens not reached", llmtest.Reply{Chunks: six}, 6, "one two three four five six", llm.FinishStop, 6},
		{"max tokens count reasoning", llmtest.Reply{Reasoning: []string{"hm", "m"}, Chunks: six}, 3, "one ", llm.FinishLength, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fake(t, tt.reply)
			r := ask(t, client(t, srv, nil), llm.Request{MaxTokens: tt.maxTokens})
			if r.err != nil {
				t.Fatalf("got %v, want a normal end", r.err)
			}
			if r.text != tt.text || r.finish != tt.finish {
				t.Errorf("got %q, finish %q; want %q, %q", r.text, r.finish, tt.text, tt.finish)
			}
			if r.usage == nil || r.usage.CompletionTokens != tt.usage {
				t.Errorf("got usage %+v, want %d completion tokens", r.usage, tt.usage)
			}
		})
	}
}

// Reasoning models are asked with max_completion_tokens; the fake honours
// it like max_tokens.
func TestMaxCompletionTokens(t *testing.T) {
	srv := fake(t, llmtest.Reply{Chunks: []string{"a", "b", "c"}})
	oa := openaiClient(srv)
	stream := oa.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{
		Model:               "fake-small",
		Messages:            []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		MaxCompletionTokens: openai.Int(2),
	})
	defer stream.Close()
	var text, finish string
	for stream.Next() {
		for _, c := range stream.Current().Choices {
			text += c.Delta.Content
			finish += c.FinishReason
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if text != "ab" || finish != "length" {
		t.Errorf("got %q, finish %q; want ab, length", text, finish)
	}
	if got := srv.Requests()[0].MaxCompletionTokens; got != 2 {
		t.Errorf("recorded max_completion_tokens %d, want 2", got)
	}
}

func TestStreamError(t *testing.T) {
	overloaded := &llmtest.ErrorEvent{Message: "The server had an error while processing your request.", Type: "server_error"}
	chunks := []string{"Partial ", "answer ", "lost"}
	tests := []struct {
		name  string
		reply llmtest.Reply
		text  string
		kind  error
		code  string
	}{
		{"after some chunks", llmtest.Reply{Chunks: chunks, StreamError: overloaded, ErrorAfter: 2}, "Partial answer ", llm.ErrServer, ""},
		{"before any chunk", llmtest.Reply{Chunks: chunks, StreamError: overloaded}, "", llm.ErrServer, ""},
		{"after the last chunk", llmtest.Reply{Chunks: chunks, StreamError: overloaded, ErrorAfter: 99}, "Partial answer lost", llm.ErrServer, ""},
		{"rate limit, numeric code", llmtest.Reply{Chunks: chunks, ErrorAfter: 1,
			StreamError: &llmtest.ErrorEvent{Message: "Too many requests", Type: "rate_limit_error", Code: 429}}, "Partial ", llm.ErrRateLimited, "429"},
		{"context length", llmtest.Reply{Chunks: chunks, ErrorAfter: 1,
			StreamError: &llmtest.ErrorEvent{Message: "maximum context length is 8192 tokens", Type: "invalid_request_error", Code: "context_length_exceeded"}},
			"Partial ", llm.ErrContextLength, "context_length_exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fake(t, tt.reply)
			r := ask(t, client(t, srv, nil), llm.Request{})
			if r.text != tt.text {
				t.Errorf("got text %q, want %q", r.text, tt.text)
			}
			if r.finish != "" {
				t.Errorf("got finish reason %q, want none after an error", r.finish)
			}
			if !errors.Is(r.err, llm.ErrMidAnswer) || !errors.Is(r.err, tt.kind) {
				t.Fatalf("got %v, want ErrMidAnswer and %v", r.err, tt.kind)
			}
			var me *llm.MidAnswerError
			if !errors.As(r.err, &me) || me.Message != tt.reply.StreamError.Message || me.Code != tt.code || me.Type != tt.reply.StreamError.Type {
				t.Errorf("got %+v, want the endpoint's message, type and code %q", me, tt.code)
			}
			if msg := r.err.Error(); !strings.Contains(msg, "mid-answer") || !strings.Contains(msg, tt.reply.StreamError.Message) {
				t.Errorf("error %q does not say that the endpoint failed mid-answer, with its message", msg)
			}
			if got := len(srv.Requests()); got != 1 {
				t.Errorf("got %d requests, want 1: nothing is retried once the stream began", got)
			}
		})
	}
}

// The error event is what gateways send, byte for byte: openai-go itself
// stops at it with an *ssestream.StreamError that keeps the event.
func TestStreamErrorEvent(t *testing.T) {
	srv := fake(t, llmtest.Reply{Chunks: []string{"a", "b"}, ErrorAfter: 1,
		StreamError: &llmtest.ErrorEvent{Message: "upstream overloaded", Type: "server_error", Code: "502"}})
	oa := openaiClient(srv)
	stream := oa.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{
		Model:    "fake-small",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	defer stream.Close()
	var text string
	for stream.Next() {
		for _, c := range stream.Current().Choices {
			text += c.Delta.Content
		}
	}
	var se *ssestream.StreamError
	if !errors.As(stream.Err(), &se) {
		t.Fatalf("got %v, want an *ssestream.StreamError", stream.Err())
	}
	var ev struct {
		Error struct {
			Message, Type, Code string
		}
	}
	if err := json.Unmarshal(se.Event.Data, &ev); err != nil {
		t.Fatalf("event %q: %v", se.Event.Data, err)
	}
	if ev.Error.Message != "upstream overloaded" || ev.Error.Type != "server_error" || ev.Error.Code != "502" {
		t.Errorf("got event %q, want the error object", se.Event.Data)
	}
	if text != "a" {
		t.Errorf("got text %q, want the chunk before the error", text)
	}
}

func TestStatusWithRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter time.Duration
		header, ms string
		code, typ  string
	}{
		{"429", http.StatusTooManyRequests, 1500 * time.Millisecond, "2", "1500", "rate_limit_exceeded", "requests"},
		{"503", http.StatusServiceUnavailable, 3 * time.Second, "3", "3000", "", "server_error"},
		{"no retry-after", http.StatusServiceUnavailable, 0, "", "", "", "server_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fake(t, llmtest.Reply{Status: tt.status, RetryAfter: tt.retryAfter})
			resp, err := http.Post(srv.BaseURL()+"/chat/completions", "application/json", strings.NewReader(`{"model":"m","stream":true}`))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("got status %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("Retry-After"); got != tt.header {
				t.Errorf("got Retry-After %q, want %q", got, tt.header)
			}
			if got := resp.Header.Get("Retry-After-Ms"); got != tt.ms {
				t.Errorf("got retry-after-ms %q, want %q", got, tt.ms)
			}
			var body struct {
				Error struct {
					Message string
					Type    string
					Code    *string
				}
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			code := ""
			if body.Error.Code != nil {
				code = *body.Error.Code
			}
			if body.Error.Message == "" || body.Error.Type != tt.typ || code != tt.code {
				t.Errorf("got error %+v, want an OpenAI error object of type %q, code %q", body.Error, tt.typ, tt.code)
			}
		})
	}
}

// Busy N times, then an answer: the client waits as asked and gets it.
func TestBusyThenAnswer(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			srv := llmtest.NewServer()
			t.Cleanup(srv.Close)
			busy := llmtest.Reply{Status: status, RetryAfter: 20 * time.Millisecond}
			srv.Answer = llmtest.Sequence(busy, busy, llmtest.Reply{Chunks: []string{"at ", "last"}})
			r := ask(t, client(t, srv, nil), llm.Request{})
			if r.err != nil || r.text != "at last" {
				t.Fatalf("got %q, %v; want the answer after two retries", r.text, r.err)
			}
			if got := len(srv.Requests()); got != 3 {
				t.Errorf("got %d requests, want 3", got)
			}
		})
	}
}

// A Retry-After longer than the client's retry budget comes back at once,
// as a *RateLimitError that says how long to wait.
func TestRetryAfterBeyondTheBudget(t *testing.T) {
	srv := fake(t, llmtest.Reply{Status: http.StatusTooManyRequests, RetryAfter: 2 * time.Minute})
	r := ask(t, client(t, srv, func(cfg *llm.Config) { cfg.RetryBudget = 30 * time.Second }), llm.Request{})
	var rl *llm.RateLimitError
	if !errors.As(r.err, &rl) || rl.RetryAfter != 2*time.Minute {
		t.Fatalf("got %v, want a RateLimitError with RetryAfter 2m", r.err)
	}
	if got := len(srv.Requests()); got != 1 {
		t.Errorf("got %d requests, want 1", got)
	}
}

func TestSequence(t *testing.T) {
	srv := llmtest.NewServer()
	t.Cleanup(srv.Close)
	srv.Answer = llmtest.Sequence(llmtest.Reply{Chunks: []string{"first"}}, llmtest.Reply{Chunks: []string{"then"}})
	c := client(t, srv, nil)
	var got []string
	for range 3 {
		got = append(got, ask(t, c, llm.Request{}).text)
	}
	if want := []string{"first", "then", "then"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	srv.Answer = llmtest.Sequence()
	if r := ask(t, c, llm.Request{}); r.text != "ok" {
		t.Errorf("an empty sequence answered %q, want the default ok", r.text)
	}
}

func TestCutAfter(t *testing.T) {
	tests := []struct {
		name     string
		cutAfter int
		text     string
	}{
		{"mid-answer", 2, "Half an "},
		{"before the finish reason", 3, "Half an answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fake(t, llmtest.Reply{Chunks: []string{"Half ", "an ", "answer"}, CutAfter: tt.cutAfter})
			r := ask(t, client(t, srv, nil), llm.Request{})
			if !errors.Is(r.err, llm.ErrStreamCut) || r.text != tt.text {
				t.Errorf("got %q, %v; want %q and ErrStreamCut", r.text, r.err, tt.text)
			}
		})
	}
}

func TestHold(t *testing.T) {
	hold := make(chan struct{})
	srv := fake(t, llmtest.Reply{Chunks: []string{"first ", "second"}, Hold: hold})
	s, err := client(t, srv, nil).Stream(t.Context(), llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Content: "q"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if d, err := s.Recv(); err != nil || d.Text != "first " {
		t.Fatalf("got %+v, %v; want the first chunk", d, err)
	}
	waitFor(t, "the first chunk's timing", func() bool { return !srv.Timings()["q"].First.IsZero() })
	if tm := srv.Timings()["q"]; !tm.Last.Equal(tm.First) {
		t.Fatalf("got timings %+v: the second chunk went out during the hold", tm)
	}
	close(hold)
	var rest string
	for {
		d, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rest += d.Text
	}
	if rest != "second" {
		t.Errorf("got %q after the hold, want second", rest)
	}
}
