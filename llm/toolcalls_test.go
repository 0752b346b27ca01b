package llm

import (
	"io"
	"slices"
	"testing"

	"github.com/parleyhq/parley/llm/llmtest"
)

// streamCalls streams reply from the fake and assembles its calls.
func streamCalls(t *testing.T, reply llmtest.Reply, req Request) ([]ToolCall, string, *llmtest.Server) {
	t.Helper()
	fake := llmtest.NewServer()
	t.Cleanup(fake.Close)
	fake.Answer = func(llmtest.Request) llmtest.Reply { return reply }
	c, err := New(Config{BaseURL: fake.BaseURL(), APIKey: testKey, DefaultModel: "fake-small", Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Stream(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var calls Calls
	var finish string
	for {
		d, err := s.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		calls.Add(d.ToolCalls)
		if d.FinishReason != "" {
			finish = d.FinishReason
		}
	}
	return calls.Calls(), finish, fake
}

func TestCallsAssembled(t *testing.T) {
	two := []llmtest.ToolCall{
		{ID: "call_weather", Name: "weather__forecast", Arguments: `{"city":"Paris","days":3,"units":"metric"}`},
		{ID: "call_clock", Name: "clock__now", Arguments: `{"zone":"Europe/Paris"}`},
	}
	want := []ToolCall{
		{ID: "call_weather", Name: "weather__forecast", Arguments: `{"city":"Paris","days":3,"units":"metric"}`},
		{ID: "call_clock", Name: "clock__now", Arguments: `{"zone":"Europe/Paris"}`},
	}
	tests := []struct {
		name  string
		reply llmtest.Reply
		want  []ToolCall
	}{
		{"OpenAI's way: one call after the other", llmtest.Reply{ToolCalls: two}, want},
		{"ids and names split", llmtest.Reply{ToolCalls: two, SplitIDs: true}, want},
		{"calls interleaved", llmtest.Reply{ToolCalls: two, Interleave: true, SplitIDs: true}, want},
		{"no arguments and no id", llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "", Name: "clock__now"}}},
			[]ToolCall{{ID: "call_0", Name: "clock__now", Arguments: "{}"}}},
		{"text before the calls", llmtest.Reply{Chunks: []string{"Let me ", "check."}, ToolCalls: two[:1]}, want[:1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, finish, _ := streamCalls(t, tt.reply, userRequest("fake-small", "weather?"))
			if !slices.Equal(got, tt.want) {
				t.Errorf("got calls %+v, want %+v", got, tt.want)
			}
			if finish != FinishToolCalls {
				t.Errorf("got finish %q, want %q", finish, FinishToolCalls)
			}
		})
	}
}

func TestCallsEdgeCases(t *testing.T) {
	tests := []struct {
		name   string
		pieces [][]ToolCallDelta
		want   []ToolCall
	}{
		{"id and name repeated on every piece", [][]ToolCallDelta{
			{{Index: 0, ID: "a", Name: "f"}}, {{Index: 0, ID: "a", Name: "f", Arguments: `{"x"`}}, {{Index: 0, ID: "a", Name: "f", Arguments: `:1}`}},
		}, []ToolCall{{ID: "a", Name: "f", Arguments: `{"x":1}`}}},
		{"index 0 reused for each call", [][]ToolCallDelta{
			{{Index: 0, ID: "a", Name: "f", Arguments: `{}`}}, {{Index: 0, ID: "b", Name: "g", Arguments: `{"y":2}`}},
		}, []ToolCall{{ID: "a", Name: "f", Arguments: `{}`}, {ID: "b", Name: "g", Arguments: `{"y":2}`}}},
		{"duplicate ids made unique", [][]ToolCallDelta{
			{{Index: 0, ID: "x", Name: "f"}, {Index: 1, ID: "x", Name: "g"}},
		}, []ToolCall{{ID: "x", Name: "f", Arguments: "{}"}, {ID: "call_1", Name: "g", Arguments: "{}"}}},
		{"cumulative names", [][]ToolCallDelta{
			{{Index: 3, ID: "c", Name: "we"}}, {{Index: 3, Name: "weather"}}, {{Index: 3, Arguments: "{}"}},
		}, []ToolCall{{ID: "c", Name: "weather", Arguments: "{}"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Calls
			for _, p := range tt.pieces {
				c.Add(p)
			}
			if got := c.Calls(); !slices.Equal(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	var c Calls
	for i := range 1000 {
		c.Add([]ToolCallDelta{{Index: i, ID: "x", Name: "f"}})
	}
	if c.Len() != maxToolCalls {
		t.Errorf("got %d calls from 1000 indexes, want the cap %d", c.Len(), maxToolCalls)
	}
}

// A request carries its tools, the assistant's calls and the tool results
// with their call ids, as the endpoint expects them.
func TestRequestWithTools(t *testing.T) {
	req := Request{Model: "fake-small", Messages: []Message{
		{Role: RoleUser, Content: "weather?"},
		{Role: RoleAssistant, ToolCalls: []ToolCall{{ID: "call_1", Name: "weather__forecast", Arguments: `{"city":"Paris"}`}}},
		{Role: RoleTool, ToolCallID: "call_1", Content: "sunny"},
	}, Tools: []Tool{{Name: "weather__forecast", Description: "the forecast", Parameters: map[string]any{"type": "object"}}}}
	_, _, fake := streamCalls(t, llmtest.Reply{Chunks: []string{"Sunny."}}, req)
	got := fake.Requests()[0]
	if len(got.Tools) != 1 || got.Tools[0].Type != "function" || got.Tools[0].Function.Name != "weather__forecast" ||
		got.Tools[0].Function.Description != "the forecast" || got.Tools[0].Function.Parameters["type"] != "object" {
		t.Errorf("got tools %+v, want the forecast function", got.Tools)
	}
	if len(got.Messages) != 3 {
		t.Fatalf("got %d messages, want 3", len(got.Messages))
	}
	a := got.Messages[1]
	if a.Role != "assistant" || len(a.ToolCalls) != 1 || a.ToolCalls[0].ID != "call_1" || a.ToolCalls[0].Function.Arguments != `{"city":"Paris"}` {
		t.Errorf("got assistant message %+v, want its call", a)
	}
	if r := got.ToolResults(); r["call_1"] != "sunny" || got.Messages[2].Role != "tool" {
		t.Errorf("got tool results %v, want call_1: sunny", r)
	}
	if _, err := buildParams(Request{Model: "m", Messages: []Message{{Role: RoleTool, Content: "x"}}}); err == nil {
		t.Error("got no error for a tool message without its call id")
	}
}

func TestFitKeepsToolResultsWithTheirCall(t *testing.T) {
	msgs := []Message{
		{Role: RoleSystem, Content: "sys"},
		{Role: RoleUser, Content: "first question, long enough to be dropped when the budget is tight"},
		{Role: RoleAssistant, ToolCalls: []ToolCall{{ID: "a", Name: "f", Arguments: "{}"}}},
		{Role: RoleTool, ToolCallID: "a", Content: "a long result of the tool, long enough to cost some tokens"},
		{Role: RoleAssistant, Content: "the answer"},
		{Role: RoleUser, Content: "next"},
	}
	kept, dropped := Fit(msgs, EstimateTokens(msgs)-5)
	if dropped != 4 || len(kept) != 2 || kept[1].Content != "next" {
		t.Errorf("got %d dropped, kept %+v; want the whole first turn dropped, calls and results with it", dropped, kept)
	}
	if EstimateTokens(msgs[2:3]) <= EstimateTokens([]Message{{Role: RoleAssistant}}) {
		t.Error("a tool call costs no tokens in the estimate")
	}
}

// Calls never panics, whatever pieces an endpoint streams, and every call
// it returns has an id, unique, and arguments.
func FuzzCalls(f *testing.F) {
	f.Add([]byte{0, 1, 2, 0, 1, 3}, "call_", "f", `{"a":`)
	f.Add([]byte{5, 5, 5}, "", "", "")
	f.Fuzz(func(t *testing.T, idx []byte, id, name, args string) {
		var c Calls
		for i, b := range idx {
			d := ToolCallDelta{Index: int(b % 8)}
			switch i % 3 {
			case 0:
				d.ID, d.Name = id, name
			case 1:
				d.Arguments = args
			case 2:
				d.ID, d.Arguments = id+string(rune('a'+b%3)), args
			}
			c.Add([]ToolCallDelta{d})
		}
		seen := map[string]bool{}
		for _, call := range c.Calls() {
			if call.ID == "" || seen[call.ID] || call.Arguments == "" {
				t.Fatalf("got call %+v among %+v", call, c.Calls())
			}
			seen[call.ID] = true
		}
	})
}
