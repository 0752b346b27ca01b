package slack

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/adapters/slack/slacktest"
	"github.com/parleyhq/parley/bots"
)

var threadDest = bots.Destination{Workspace: "T0TEAM", Channel: "C1", Thread: "1690000000.000001", User: "U1", UserTeam: "T0TEAM"}

// platformAdapter is an adapter on a fake Slack, not running: Post, Edit,
// Delete and Progress need no socket.
func platformAdapter(t *testing.T, cfg slacktest.Config, streaming string) (*Adapter, *slacktest.Server) {
	t.Helper()
	fake := slacktest.New(t, cfg)
	return newTestAdapter(t, fake, &fakeEngine{}, Options{Streaming: streaming}, nil), fake
}

func message(t *testing.T, fake *slacktest.Server, channel, ts string) slacktest.Message {
	t.Helper()
	m, ok := fake.Message(channel, ts)
	if !ok {
		t.Fatalf("no message %s in %s", ts, channel)
	}
	return m
}

func TestUpdateMode(t *testing.T) {
	a, fake := platformAdapter(t, slacktest.Config{}, StreamingUpdate)
	ctx := context.Background()
	id, err := a.Post(ctx, threadDest, "**Hel")
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"**Hello** wor", "**Hello** world, see [docs](https://x.io)"} {
		if err := a.Edit(ctx, threadDest, id, text, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Edit(ctx, threadDest, id, "**Hello** world, see [docs](https://x.io)", true); err != nil {
		t.Fatal(err)
	}
	m := message(t, fake, "C1", id)
	if want := "*Hello* world, see <https://x.io|docs>"; m.Text != want || m.ThreadTS != threadDest.Thread || m.Streamed {
		t.Errorf("message %+v, want text %q in thread %s", m, want, threadDest.Thread)
	}
	if fake.Calls("chat.startStream") != 0 || fake.Calls("chat.update") != 2 {
		t.Errorf("calls: startStream %d, update %d; want 0 and 2 (an unchanged final text is not sent)", fake.Calls("chat.startStream"), fake.Calls("chat.update"))
	}
	if l := a.Limits(); l.MaxChars != updateMaxMarkdown || l.FinalEdit {
		t.Errorf("update-mode limits %+v", l)
	}
}

func TestNativeStreaming(t *testing.T) {
	a, fake := platformAdapter(t, slacktest.Config{}, StreamingNative)
	ctx := context.Background()
	id, err := a.Post(ctx, threadDest, "Hel")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Edit(ctx, threadDest, id, "Hello **wor", false); err != nil {
		t.Fatal(err)
	}
	if m := message(t, fake, "C1", id); !m.Streaming || m.Text != "Hello **wor" || m.Recipient != "U1" {
		t.Errorf("mid-stream message %+v", m)
	}
	if err := a.Edit(ctx, threadDest, id, "Hello **world**!", true); err != nil {
		t.Fatal(err)
	}
	m := message(t, fake, "C1", id)
	if m.Text != "Hello **world**!" || m.Streaming || !m.Streamed || m.ThreadTS != threadDest.Thread {
		t.Errorf("final message %+v, want the Markdown, stream stopped", m)
	}
	if fake.Calls("chat.appendStream") != 1 || fake.Calls("chat.stopStream") != 1 || fake.Calls("chat.update") != 0 {
		t.Errorf("calls: append %d stop %d update %d; want 1, 1, 0", fake.Calls("chat.appendStream"), fake.Calls("chat.stopStream"), fake.Calls("chat.update"))
	}
	if l := a.Limits(); l.MaxChars != nativeMaxMarkdown || !l.FinalEdit {
		t.Errorf("native limits %+v", l)
	}
}

func TestNativeAppendsAreSplit(t *testing.T) {
	a, fake := platformAdapter(t, slacktest.Config{}, StreamingNative)
	ctx := context.Background()
	id, err := a.Post(ctx, threadDest, "start ")
	if err != nil {
		t.Fatal(err)
	}
	long := "start " + strings.Repeat("é", 30000)
	if err := a.Edit(ctx, threadDest, id, long, false); err != nil {
		t.Fatal(err)
	}
	if err := a.Edit(ctx, threadDest, id, long+" end", true); err != nil {
		t.Fatal(err)
	}
	if m := message(t, fake, "C1", id); m.Text != long+" end" || m.Streaming {
		t.Errorf("message of %d characters, streaming %v; want %d", len(m.Text), m.Streaming, len(long)+4)
	}
	if n := fake.Calls("chat.appendStream"); n != 3 {
		t.Errorf("%d appends for 30,000 characters, want 3 (12,000 at most each)", n)
	}
}

func TestNativePlaceholderReplaced(t *testing.T) {
	a, fake := platformAdapter(t, slacktest.Config{}, StreamingNative)
	ctx := context.Background()
	id, err := a.Post(ctx, threadDest, "_Thinking…_")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Edit(ctx, threadDest, id, "The answer", false); err != nil {
		t.Fatal(err)
	}
	if err := a.Edit(ctx, threadDest, id, "The answer is 42.", true); err != nil {
		t.Fatal(err)
	}
	msgs := fake.BotMessages("C1", threadDest.Thread)
	if len(msgs) != 1 || msgs[0].Text != "The answer is 42." || msgs[0].Streaming {
		t.Fatalf("thread holds %+v, want the answer alone", msgs)
	}
	if got := a.engineID("C1", msgs[0].TS); got != id {
		t.Errorf("a reaction to the answer reaches the engine as %s, want %s", got, id)
	}
	if err := a.Delete(ctx, threadDest, id); err != nil {
		t.Fatal(err)
	}
	if msgs := fake.BotMessages("C1", threadDest.Thread); len(msgs) != 0 {
		t.Errorf("after Delete the thread holds %+v", msgs)
	}
}

func TestNativeStreamExpiryContinues(t *testing.T) {
	a, fake := platformAdapter(t, slacktest.Config{}, StreamingNative)
	ctx := context.Background()
	id, err := a.Post(ctx, threadDest, "part one. ")
	if err != nil {
		t.Fatal(err)
	}
	fake.ExpireStream("C1", id)
	if err := a.Edit(ctx, threadDest, id, "part one. part two. ", false); err != nil {
		t.Fatal(err)
	}
	if err := a.Edit(ctx, threadDest, id, "part one. part two. part three.", true); err != nil {
		t.Fatal(err)
	}
	msgs := fake.BotMessages("C1", threadDest.Thread)
	if len(msgs) != 2 || msgs[0].Text != "part one. " || msgs[1].Text != "part two. part three." || msgs[1].Streaming {
		t.Fatalf("thread holds %+v, want the answer continued in a second message", msgs)
	}
	if err := a.Delete(ctx, threadDest, id); err != nil {
		t.Fatal(err)
	}
	if msgs := fake.BotMessages("C1", threadDest.Thread); len(msgs) != 0 {
		t.Errorf("after Delete the thread holds %+v", msgs)
	}
}

func TestAutoFallsBackPerWorkspace(t *testing.T) {
	a, fake := platformAdapter(t, slacktest.Config{StreamError: "not_allowed"}, StreamingAuto)
	ctx := context.Background()
	for i := range 2 {
		id, err := a.Post(ctx, threadDest, "**hi**")
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Edit(ctx, threadDest, id, "**hi** there", true); err != nil {
			t.Fatal(err)
		}
		if m := message(t, fake, "C1", id); m.Text != "*hi* there" || m.Streamed {
			t.Errorf("reply %d: %+v", i, m)
		}
	}
	if n := fake.Calls("chat.startStream"); n != 1 {
		t.Errorf("startStream called %d times, want once: the refusal holds for the workspace", n)
	}
	// A top-level DM reply is never streamed.
	if _, err := a.Post(ctx, bots.Destination{Workspace: "T2", Channel: "D1", DM: true}, "x"); err != nil || fake.Calls("chat.startStream") != 1 {
		t.Errorf("top-level DM: err %v, startStream calls %d", err, fake.Calls("chat.startStream"))
	}
	if l := a.Limits(); l.MaxChars != updateMaxMarkdown || !l.FinalEdit {
		t.Errorf("auto limits %+v", l)
	}
}

func TestErrorsForTheEngine(t *testing.T) {
	a, fake := platformAdapter(t, slacktest.Config{}, StreamingUpdate)
	ctx := context.Background()
	id, err := a.Post(ctx, threadDest, "hi")
	if err != nil {
		t.Fatal(err)
	}

	fake.Inject("chat.update", slacktest.Fault{RetryAfter: 3})
	err = a.Edit(ctx, threadDest, id, "hi there", false)
	var rl *bots.RateLimitError
	if !errors.As(err, &rl) || rl.RetryAfter != 3*time.Second {
		t.Errorf("429: got %v, want a RateLimitError of 3s", err)
	}
	if m := message(t, fake, "C1", id); m.RateLimited != 1 {
		t.Errorf("the fake counted %d 429s on the message, want 1", m.RateLimited)
	}

	if err := a.Edit(ctx, threadDest, id, strings.Repeat("<", 1001), false); !errors.Is(err, bots.ErrTooLong) {
		t.Errorf("4,000 characters of mrkdwn: got %v, want ErrTooLong", err)
	}
	fake.Inject("chat.update", slacktest.Fault{Error: "msg_too_long"})
	if err := a.Edit(ctx, threadDest, id, "short", false); !errors.Is(err, bots.ErrTooLong) {
		t.Errorf("msg_too_long: got %v, want ErrTooLong", err)
	}
	if err := a.Edit(ctx, threadDest, "1.999999", "x", false); !errors.Is(err, bots.ErrGone) {
		t.Errorf("unknown message: got %v, want ErrGone", err)
	}
	fake.RemoveChannel("C9")
	if _, err := a.Post(ctx, bots.Destination{Channel: "C9"}, "x"); !errors.Is(err, bots.ErrGone) {
		t.Errorf("unknown channel: got %v, want ErrGone", err)
	}
	if err := a.Delete(ctx, threadDest, id); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, threadDest, id); !errors.Is(err, bots.ErrGone) {
		t.Errorf("deleting twice: got %v, want ErrGone", err)
	}
}

func TestUpdateOfAStreamLeftOpen(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	ctx := context.Background()
	before := newTestAdapter(t, fake, &fakeEngine{}, Options{Streaming: StreamingNative}, nil)
	id, err := before.Post(ctx, threadDest, "cut short")
	if err != nil {
		t.Fatal(err)
	}
	// A new process finishes the reply: it knows nothing of the stream.
	after := newTestAdapter(t, fake, &fakeEngine{}, Options{Streaming: StreamingNative}, nil)
	if err := after.Edit(ctx, threadDest, id, "cut short\n\n_Interrupted_", true); err != nil {
		t.Fatal(err)
	}
	if m := message(t, fake, "C1", id); m.Streaming || m.Text != "cut short\n\n_Interrupted_" {
		t.Errorf("message %+v", m)
	}
}

func TestIdleStreamIsStopped(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	a := newTestAdapter(t, fake, &fakeEngine{}, Options{Streaming: StreamingNative}, nil)
	a.streamIdle = 100 * time.Millisecond
	runAdapter(t, a)
	ctx := context.Background()
	id, err := a.Post(ctx, threadDest, "posted whole")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, fake, 5*time.Second, "the idle stream stopped", func() bool {
		m, _ := fake.Message("C1", id)
		return !m.Streaming
	})
	// Edits that come after all the same are applied.
	if err := a.Edit(ctx, threadDest, id, "posted whole, and more", true); err != nil {
		t.Fatal(err)
	}
	if m := message(t, fake, "C1", id); m.Text != "posted whole, and more" {
		t.Errorf("message %+v", m)
	}
}

func TestProgress(t *testing.T) {
	a, fake := platformAdapter(t, slacktest.Config{}, StreamingAuto)
	ctx := context.Background()
	if err := a.Progress(ctx, threadDest, "is thinking…"); err != nil {
		t.Fatal(err)
	}
	if err := a.Progress(ctx, threadDest, ""); err != nil {
		t.Fatal(err)
	}
	want := []slacktest.Status{{Channel: "C1", ThreadTS: threadDest.Thread, Status: "is thinking…"}, {Channel: "C1", ThreadTS: threadDest.Thread}}
	if got := fake.Statuses(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("statuses %+v, want %+v", got, want)
	}
	if err := a.Progress(ctx, bots.Destination{Channel: "D1", DM: true}, "is thinking…"); err == nil {
		t.Error("a status outside a thread: want an error, so that the engine shows a placeholder")
	}

	a, fake = platformAdapter(t, slacktest.Config{StatusError: "missing_scope"}, StreamingAuto)
	for range 2 {
		if err := a.Progress(ctx, threadDest, "is thinking…"); !errors.Is(err, errNoStatus) {
			t.Errorf("refused status: got %v", err)
		}
	}
	if n := fake.Calls("assistant.threads.setStatus"); n != 1 {
		t.Errorf("setStatus called %d times, want once: the refusal holds for the workspace", n)
	}
}

func TestNewChecksOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"no bot token", Options{AppToken: "xapp-1"}},
		{"no mode", Options{BotToken: "xoxb-1"}},
		{"bot token as app token", Options{BotToken: "xoxb-1", AppToken: "xoxb-1"}},
		{"bad streaming", Options{BotToken: "xoxb-1", AppToken: "xapp-1", Streaming: "fast"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newAdapter(tt.opts, &fakeEngine{}, nil)
			if err == nil {
				t.Fatal("want an error")
			}
			if strings.Contains(err.Error(), "xoxb-1") || strings.Contains(err.Error(), "xapp-1") {
				t.Errorf("error shows a token: %v", err)
			}
		})
	}
}

func TestRunRefusesBadTokens(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	for _, tt := range []struct {
		name, bot, app, want string
	}{
		{"bot token", "xoxb-wrong-one", fake.Config().AppToken, "SLACK_BOT_TOKEN"},
		{"app token", fake.Config().BotToken, "xapp-wrong-one", "SLACK_APP_TOKEN"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logBuffer{}
			a := newTestAdapter(t, fake, &fakeEngine{}, Options{BotToken: tt.bot, AppToken: tt.app}, logs)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := a.Run(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run: %v, want an error naming %s", err, tt.want)
			}
			checkNoSecrets(t, err.Error()+logs.String(), tt.bot, tt.app)
		})
	}
}
