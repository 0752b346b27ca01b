package console

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/bots"
)

// fakeEngine answers each message with a script run on its own goroutine,
// as the engine streams replies after Handle has returned.
type fakeEngine struct {
	t      *testing.T
	answer func(ctx context.Context, p bots.Platform, dest bots.Destination, in bots.Incoming)

	mu       sync.Mutex
	wg       sync.WaitGroup
	incoming []bots.Incoming
	commands []bots.Command
	busy     bool // an answer is being written
	err      error
	reacted  []string // "messageID user emoji"
	onReact  func()
}

func (f *fakeEngine) Reacted(p bots.Platform, workspace, channel, messageID, user, emoji string) {
	f.mu.Lock()
	f.reacted = append(f.reacted, messageID+" "+user+" "+emoji)
	on := f.onReact
	f.mu.Unlock()
	if on != nil {
		on()
	}
}

func (f *fakeEngine) Handle(ctx context.Context, p bots.Platform, in bots.Incoming) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	if f.busy {
		f.t.Errorf("message %q handed over before the previous answer finished", in.Text)
	}
	f.busy = true
	f.incoming = append(f.incoming, in)
	dest := bots.Destination{Workspace: in.Workspace, Channel: in.Channel, ReplyTo: in.MessageID, User: in.Author, DM: true}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.answer(ctx, p, dest, in)
	}()
	return nil
}

func (f *fakeEngine) Command(ctx context.Context, p bots.Platform, cmd bots.Command) bots.CommandReply {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commands = append(f.commands, cmd)
	return bots.CommandReply{Text: "ran " + cmd.Name + " " + cmd.Args + "\n", Ephemeral: true}
}

// finished is called by scripts just before their final edit.
func (f *fakeEngine) finished() {
	f.mu.Lock()
	f.busy = false
	f.mu.Unlock()
}

// stream posts the first chunk, then edits in the others, the last one final.
func (f *fakeEngine) stream(chunks ...string) func(context.Context, bots.Platform, bots.Destination, bots.Incoming) {
	return func(ctx context.Context, p bots.Platform, dest bots.Destination, in bots.Incoming) {
		text := chunks[0]
		id, err := p.Post(ctx, dest, text)
		if err != nil {
			f.t.Errorf("post: %v", err)
			return
		}
		for i, c := range chunks[1:] {
			text += c
			if i == len(chunks)-2 {
				f.finished()
			}
			if err := p.Edit(ctx, dest, id, text, i == len(chunks)-2); err != nil {
				f.t.Errorf("edit: %v", err)
			}
		}
	}
}

func run(t *testing.T, cfg Config, e *fakeEngine) string {
	t.Helper()
	var out strings.Builder
	cfg.Out = &out
	term := New(cfg)
	if err := term.Run(context.Background(), e); err != nil {
		t.Fatalf("run: %v", err)
	}
	e.wg.Wait()
	return out.String()
}

func TestPipedInput(t *testing.T) {
	e := &fakeEngine{t: t}
	e.answer = func(ctx context.Context, p bots.Platform, dest bots.Destination, in bots.Incoming) {
		e.stream("You said", ": ", in.Text, ".")(ctx, p, dest, in)
	}
	got := run(t, Config{In: strings.NewReader("hello\n\n  \n/Model gpt-4o me\r\nbye")}, e)
	want := "You said: hello.\nran model gpt-4o me\nYou said: bye.\n"
	if got != want {
		t.Errorf("output:\ngot  %q\nwant %q", got, want)
	}
	if len(e.incoming) != 2 {
		t.Fatalf("got %d messages, want 2", len(e.incoming))
	}
	in := e.incoming[0]
	if in.Workspace != "local" || in.Channel != "console" || !in.DM || in.Author != "you" || in.Text != "hello" || in.MessageID == "" {
		t.Errorf("got incoming %+v, want a DM in local/console from you", in)
	}
	if e.incoming[1].MessageID == in.MessageID {
		t.Error("two messages share an id; the engine would take the second for a duplicate")
	}
	cmd := e.commands[0]
	if cmd.Name != "model" || cmd.Args != "gpt-4o me" || cmd.Workspace != "local" || cmd.Channel != "console" || !cmd.DM || cmd.User != "you" {
		t.Errorf("got command %+v", cmd)
	}
}

func TestUser(t *testing.T) {
	e := &fakeEngine{t: t}
	e.answer = e.stream("ok", "")
	run(t, Config{In: strings.NewReader("hi\n"), User: "ada"}, e)
	if e.incoming[0].Author != "ada" || e.incoming[0].AuthorName != "ada" {
		t.Errorf("got author %q, want ada", e.incoming[0].Author)
	}
}

func TestEdits(t *testing.T) {
	tests := []struct {
		name        string
		interactive bool
		script      func(ctx context.Context, p bots.Platform, dest bots.Destination)
		want        string
	}{
		{
			name: "a notice appended",
			script: func(ctx context.Context, p bots.Platform, dest bots.Destination) {
				id, _ := p.Post(ctx, dest, "Partial")
				p.Edit(ctx, dest, id, "Partial answer", false)
				p.Edit(ctx, dest, id, "Partial answer\n\n_(stopped)_", true)
			},
			want: "Partial answer\n\n_(stopped)_\n",
		},
		{
			name: "final edit without change",
			script: func(ctx context.Context, p bots.Platform, dest bots.Destination) {
				id, _ := p.Post(ctx, dest, "Whole answer\n")
				p.Edit(ctx, dest, id, "Whole answer\n", true)
			},
			want: "Whole answer\n",
		},
		{
			name: "placeholder replaced, piped",
			script: func(ctx context.Context, p bots.Platform, dest bots.Destination) {
				id, _ := p.Post(ctx, dest, "⏳ _Queued…_")
				p.Edit(ctx, dest, id, "Answer", false)
				p.Edit(ctx, dest, id, "Answer done", true)
			},
			want: "Answer done\n",
		},
		{
			name:        "placeholder replaced in place on a terminal",
			interactive: true,
			script: func(ctx context.Context, p bots.Platform, dest bots.Destination) {
				id, _ := p.Post(ctx, dest, "⏳ _Queued…_")
				p.Edit(ctx, dest, id, "Answer", true)
			},
			want: "> ⏳ _Queued…_\r\x1b[KAnswer\n> \n",
		},
		{
			name: "a changed line in a longer text",
			script: func(ctx context.Context, p bots.Platform, dest bots.Destination) {
				id, _ := p.Post(ctx, dest, "Line one\nLine tw")
				p.Edit(ctx, dest, id, "Line one\nLine tw", false)
				p.Edit(ctx, dest, id, "Line one\nLine 2\nLine 3", true)
			},
			want: "Line one\nLine tw\nLine 2\nLine 3\n",
		},
		{
			name:        "a changed line on a terminal",
			interactive: true,
			script: func(ctx context.Context, p bots.Platform, dest bots.Destination) {
				id, _ := p.Post(ctx, dest, "Line one\nLine tw")
				p.Edit(ctx, dest, id, "Line one\nLine 2\nLine 3", true)
			},
			want: "> Line one\nLine tw\r\x1b[KLine 2\nLine 3\n> \n",
		},
		{
			name:        "progress erased by the answer",
			interactive: true,
			script: func(ctx context.Context, p bots.Platform, dest bots.Destination) {
				p.Progress(ctx, dest, "is thinking…")
				id, _ := p.Post(ctx, dest, "Hi")
				p.Edit(ctx, dest, id, "Hi!", true)
			},
			want: "> \x1b[2mparley is thinking…\x1b[0m\r\x1b[KHi!\n> \n",
		},
		{
			name: "two messages",
			script: func(ctx context.Context, p bots.Platform, dest bots.Destination) {
				a, _ := p.Post(ctx, dest, "First")
				b, _ := p.Post(ctx, dest, "Second")
				p.Edit(ctx, dest, a, "First part", true)
				p.Edit(ctx, dest, b, "Second part", true)
			},
			want: "First part\nSecond part\n",
		},
		{
			name: "a deleted placeholder",
			script: func(ctx context.Context, p bots.Platform, dest bots.Destination) {
				a, _ := p.Post(ctx, dest, "⏳ _Queued…_")
				p.Delete(ctx, dest, a)
				b, _ := p.Post(ctx, dest, "Answer")
				p.Edit(ctx, dest, b, "Answer", true)
			},
			want: "Answer\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &fakeEngine{t: t}
			e.answer = func(ctx context.Context, p bots.Platform, dest bots.Destination, in bots.Incoming) {
				tt.script(ctx, p, dest)
			}
			got := run(t, Config{In: strings.NewReader("question\n"), Interactive: tt.interactive}, e)
			if got != tt.want {
				t.Errorf("output:\ngot  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestGone(t *testing.T) {
	term := New(Config{In: strings.NewReader(""), Out: io.Discard})
	ctx := context.Background()
	if err := term.Edit(ctx, bots.Destination{}, "nope", "x", false); !errors.Is(err, bots.ErrGone) {
		t.Errorf("edit of an unknown message: got %v, want ErrGone", err)
	}
	id, err := term.Post(ctx, bots.Destination{}, "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := term.Delete(ctx, bots.Destination{}, id); err != nil {
		t.Errorf("delete: %v", err)
	}
	if err := term.Delete(ctx, bots.Destination{}, id); !errors.Is(err, bots.ErrGone) {
		t.Errorf("second delete: got %v, want ErrGone", err)
	}
	if term.Name() != "console" || term.Limits(bots.Destination{}).MaxChars < 1<<20 || !term.Limits(bots.Destination{}).FinalEdit {
		t.Errorf("got name %q limits %+v", term.Name(), term.Limits(bots.Destination{}))
	}
}

func TestHandleError(t *testing.T) {
	e := &fakeEngine{t: t, err: errors.New("bots: store message: disk full")}
	term := New(Config{In: strings.NewReader("hi\n"), Out: io.Discard})
	err := term.Run(context.Background(), e)
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("got %v, want the engine's error", err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("input gone") }

func TestReadError(t *testing.T) {
	term := New(Config{In: failingReader{}, Out: io.Discard})
	err := term.Run(context.Background(), &fakeEngine{t: t})
	if err == nil || !strings.Contains(err.Error(), "input gone") {
		t.Errorf("got %v, want the read error", err)
	}
}

// Cancelling ends Run while it waits for input, and while it waits for an
// answer that does not come.
func TestCancel(t *testing.T) {
	for _, name := range []string{"waiting for input", "waiting for an answer"} {
		t.Run(name, func(t *testing.T) {
			r, w := io.Pipe()
			defer w.Close()
			e := &fakeEngine{t: t}
			handled := make(chan struct{})
			e.answer = func(ctx context.Context, p bots.Platform, dest bots.Destination, in bots.Incoming) {
				close(handled)
			}
			ctx, cancel := context.WithCancel(context.Background())
			term := New(Config{In: r, Out: io.Discard})
			done := make(chan error, 1)
			go func() { done <- term.Run(ctx, e) }()
			if name == "waiting for an answer" {
				if _, err := io.WriteString(w, "hi\n"); err != nil {
					t.Fatal(err)
				}
				<-handled
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
			e.wg.Wait()
		})
	}
}
