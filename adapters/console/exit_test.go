package console

import (
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/bots"
)

// /exit and /quit end the console: the lines after them are not sent.
func TestExitAndQuit(t *testing.T) {
	for _, cmd := range []string{"/exit", "/quit", "/EXIT"} {
		t.Run(cmd, func(t *testing.T) {
			e := &fakeEngine{t: t}
			e.answer = func(ctx context.Context, p bots.Platform, dest bots.Destination, in bots.Incoming) {
				e.stream("answer to ", in.Text)(ctx, p, dest, in)
			}
			out := run(t, Config{In: strings.NewReader("one\n" + cmd + "\ntwo\n")}, e)
			if out != "answer to one\n" {
				t.Errorf("output %q, want the first answer only", out)
			}
			if len(e.incoming) != 1 || len(e.commands) != 0 {
				t.Errorf("engine got %d messages and %d commands, want 1 and 0", len(e.incoming), len(e.commands))
			}
		})
	}
}

// /help is the console's own, plain text: no Markdown marks, nothing of
// channels or reactions, and it says how to leave.
func TestHelp(t *testing.T) {
	e := &fakeEngine{t: t}
	out := run(t, Config{In: strings.NewReader("/help\n")}, e)
	for _, want := range []string{"/model", "/reset", "/exit", "Ctrl-D", "Ctrl-C"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
	for _, not := range []string{"**", "channel", "mention", "React", ":octagonal_sign:"} {
		if strings.Contains(out, not) {
			t.Errorf("help holds %q:\n%s", not, out)
		}
	}
	if len(e.commands) != 0 {
		t.Errorf("the engine ran %d commands, want none", len(e.commands))
	}
}

// Command answers are Markdown: piped, the marks are dropped; on a
// terminal, they become bold and colour.
func TestCommandRendered(t *testing.T) {
	md := "There is no model `gpt-5`. **Did you mean** `gpt-4o`?"
	if got, want := render(md, false), "There is no model gpt-5. Did you mean gpt-4o?"; got != want {
		t.Errorf("piped: got %q, want %q", got, want)
	}
	if got, want := render(md, true), "There is no model \x1b[36mgpt-5\x1b[39m. \x1b[1mDid you mean\x1b[22m \x1b[36mgpt-4o\x1b[39m?"; got != want {
		t.Errorf("terminal: got %q, want %q", got, want)
	}
	if got := render("a `b", true); !strings.HasSuffix(got, "\x1b[0m") {
		t.Errorf("an unclosed mark leaves the terminal coloured: %q", got)
	}
}

// Ctrl-C stops the answer being written, as the asker's stop reaction
// does; the next Ctrl-C, with no answer being written, ends Run.
func TestInterrupt(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	intr := make(chan os.Signal, 1)
	stop := make(chan struct{})
	posted := make(chan struct{})
	e := &fakeEngine{t: t, onReact: func() { close(stop) }}
	e.answer = func(ctx context.Context, p bots.Platform, dest bots.Destination, in bots.Incoming) {
		id, err := p.Post(ctx, dest, "Once upon")
		if err != nil {
			t.Errorf("post: %v", err)
			return
		}
		close(posted)
		<-stop
		e.finished()
		p.Edit(ctx, dest, id, "Once upon ⏹️ Stopped.", true)
	}
	var out syncWriter
	term := New(Config{In: r, Out: &out, User: "ann", Interrupt: intr, StopEmoji: "stop_sign"})
	done := make(chan error, 1)
	go func() { done <- term.Run(context.Background(), e) }()

	if _, err := io.WriteString(w, "tell me a story\n"); err != nil {
		t.Fatal(err)
	}
	<-posted
	intr <- os.Interrupt
	deadline := time.After(10 * time.Second)
	for !strings.Contains(out.String(), "Stopped.") {
		select {
		case <-deadline:
			t.Fatalf("the answer did not stop; output %q", out.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	e.mu.Lock()
	reacted := e.reacted
	e.mu.Unlock()
	if len(reacted) != 1 || reacted[0] != e.incoming[0].MessageID+" ann stop_sign" {
		t.Errorf("reactions %q, want the asker's stop_sign on the question", reacted)
	}
	select {
	case err := <-done:
		t.Fatalf("Run ended after the first Ctrl-C: %v", err)
	default:
	}
	intr <- os.Interrupt
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second Ctrl-C did not end Run")
	}
	e.wg.Wait()
	if len(e.incoming) != 1 {
		t.Errorf("engine got %d messages, want 1", len(e.incoming))
	}
}

// syncWriter is an output the test reads while Run writes it.
type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
