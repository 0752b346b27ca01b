package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/llm/llmtest"
)

// consoleMain returns a Main for `parley console` against the fake
// endpoint srv, with input as its standard input.
func consoleMain(t *testing.T, srv *llmtest.Server, input, db string) (*Main, *strings.Builder) {
	t.Helper()
	m, _, logs := testMain(t, map[string]string{
		"LLM_BASE_URL":      srv.BaseURL(),
		"LLM_API_KEY":       secretKey,
		"LLM_MODEL":         "fake-small",
		"LLM_SYSTEM_PROMPT": "Be brief.",
		"DATABASE_URL":      "sqlite://" + db,
	})
	var out strings.Builder
	m.Stdin = strings.NewReader(input)
	m.Stdout = &out
	t.Cleanup(func() {
		if strings.Contains(logs.String(), secretKey) || strings.Contains(out.String(), secretKey) {
			t.Errorf("the API key shows in the output or logs")
		}
		if t.Failed() {
			t.Logf("logs:\n%s", logs)
		}
	})
	return m, &out
}

func runConsole(t *testing.T, m *Main) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Run(ctx, []string{"console"}); err != nil {
		t.Fatalf("console: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("console did not end at the end of its input")
	}
}

// Piped lines are answered in order, each streamed whole, with the
// conversation's history sent along.
func TestConsoleChat(t *testing.T) {
	srv := llmtest.NewServer()
	defer srv.Close()
	srv.Answer = func(r llmtest.Request) llmtest.Reply {
		last := r.Messages[len(r.Messages)-1].Text()
		// Paced, so that the reply is posted before the answer ends.
		return llmtest.Reply{Chunks: llmtest.Words("You said: "+last+". Anything else?", 1), Every: 20 * time.Millisecond}
	}
	m, out := consoleMain(t, srv, "hello there\n/model\nwhat next\n", filepath.Join(t.TempDir(), "parley.db"))
	runConsole(t, m)

	lines := strings.Split(out.String(), "\n")
	if len(lines) != 4 || lines[3] != "" {
		t.Fatalf("output %q, want three lines", out.String())
	}
	if lines[0] != "You said: hello there. Anything else?" {
		t.Errorf("first answer %q", lines[0])
	}
	if !strings.Contains(lines[1], "fake-small") {
		t.Errorf("/model answered %q, want the model in use", lines[1])
	}
	if lines[2] != "You said: what next. Anything else?" {
		t.Errorf("second answer %q", lines[2])
	}

	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("got %d requests, want 2", len(reqs))
	}
	var history []string
	for _, msg := range reqs[1].Messages {
		history = append(history, msg.Role+": "+msg.Text())
	}
	want := []string{"system: Be brief.", "user: hello there", "assistant: You said: hello there. Anything else?", "user: what next"}
	if strings.Join(history, "\n") != strings.Join(want, "\n") || reqs[1].Model != "fake-small" {
		t.Errorf("second request (%s):\n%s\nwant:\n%s", reqs[1].Model, strings.Join(history, "\n"), strings.Join(want, "\n"))
	}
}

// A failed answer shows its notice and the console goes on.
func TestConsoleFailure(t *testing.T) {
	srv := llmtest.NewServer()
	defer srv.Close()
	srv.Answer = func(r llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Status: 401, Body: `{"error":{"message":"Invalid API key"}}`}
	}
	m, out := consoleMain(t, srv, "hello\nagain\n", filepath.Join(t.TempDir(), "parley.db"))
	runConsole(t, m)
	got := out.String()
	if strings.Count(got, "\n") != 2 || strings.Count(got, "LLM_API_KEY") != 2 || len(srv.Requests()) != 2 {
		t.Errorf("output %q after %d requests, want two lines telling to check LLM_API_KEY", got, len(srv.Requests()))
	}
}

// A second console run on the same database goes on with the conversation.
func TestConsoleResumes(t *testing.T) {
	srv := llmtest.NewServer()
	defer srv.Close()
	srv.Answer = func(r llmtest.Request) llmtest.Reply {
		// At once: the reply may be posted whole, and still ends its turn.
		return llmtest.Reply{Chunks: []string{"Answer ", "to ", r.Messages[len(r.Messages)-1].Text()}}
	}
	db := filepath.Join(t.TempDir(), "parley.db")
	for i, input := range []string{"one", "two"} {
		m, out := consoleMain(t, srv, input+"\n", db)
		runConsole(t, m)
		if want := "Answer to " + input + "\n"; out.String() != want {
			t.Errorf("run %d: output %q, want %q", i+1, out.String(), want)
		}
	}
	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("got %d requests, want 2", len(reqs))
	}
	var history []string
	for _, msg := range reqs[1].Messages[1:] { // after the system prompt
		history = append(history, msg.Text())
	}
	if got, want := strings.Join(history, "|"), "one|Answer to one|two"; got != want {
		t.Errorf("second run sent %q, want %q", got, want)
	}
}
