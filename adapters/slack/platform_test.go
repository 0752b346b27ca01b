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
	m := message(t, fake, "C1", id)
	if want := "*Hello* world, see <https://x.io|docs>"; m.Text != want || m.ThreadTS != threadDest.Thread || m.Streamed {
		t.Errorf("message %+v, want text %q in thread %s", m, want, threadDest.Thread)
	}
	if fake.Calls("chat.startStream") != 0 || fake.Calls("chat.update") != 2 {
		t.Errorf("calls: startStream %d, update %d; want 0 and 2", fake.Calls("chat.startStream"), fake.Calls("chat.update"))
	}
	if l := a.Limits(threadDest); l.MaxChars != updateMaxMarkdown || l.Native != bots.NativeNever {
		t.Errorf("update-mode limits %+v", l)
	}
}

func TestNativeStreaming(t *testing.T) {
	a, fake := platformAdapter(t, slacktest.Config{}, StreamingNative)
	ctx := context.Background()
	if l := a.Limits(threadDest); l.Native != bots.NativeAlways || l.NativeMaxChars != nativeMaxMarkdown {
		t.Errorf("native limits %+v", l)
	}
	id, err := a.StartStream(ctx, threadDest, "Hel")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AppendStream(ctx, threadDest, id, "lo **wor"); err != nil {
		t.Fatal(err)
	}
	if m := message(t, fake, "C1", id); !m.Streaming || m.Text != "Hello **wor" || m.Recipient != "U1" {
		t.Errorf("mid-stream message %+v", m)
	}
	if err := a.StopStream(ctx, threadDest, id, "ld**!"); err != nil {
		t.Fatal(err)
	}
	m := message(t, fake, "C1", id)
	if m.Text != "Hello **world**!" || m.Streaming || !m.Streamed || m.ThreadTS != threadDest.Thread {
		t.Errorf("final message %+v, want the Markdown, stream stopped", m)
	}
	if fake.Calls("chat.appendStream") != 1 || fake.Calls("chat.stopStream") != 1 || fake.Calls("chat.update") != 0 {
		t.Errorf("calls: append %d stop %d update %d; want 1, 1, 0", fake.Calls("chat.appendStream"), fake.Calls("chat.stopStream"), fake.Calls("chat.update"))
	}
	// A closed stream refuses appends: the engine continues elsewhere.
	if err := a.AppendStream(ctx, threadDest, id, "more"); !errors.Is(err, bots.ErrStreamClosed) {
		t.Errorf("append to a stopped stream: got %v, want ErrStreamClosed", err)
	}
	// Where Slack cannot stream (top level, no recipient) nothing is offered.
	for _, d := range []bots.Destination{{Workspace: "T1", Channel: "C1"}, {Workspace: "T1", Channel: "C1", Thread: "1.1"}} {
		if l := a.Limits(d); l.Native != bots.NativeNever {
			t.Errorf("limits for %+v offer native streaming", d)
		}
	}
}

func TestAutoFallsBackPerWorkspace(t *testing.T) {
	a, fake := platformAdapter(t, slacktest.Config{StreamError: "not_allowed"}, StreamingAuto)
	ctx := context.Background()
	if l := a.Limits(threadDest); l.Native != bots.NativeAuto {
		t.Fatalf("auto limits %+v", l)
	}
	if _, err := a.StartStream(ctx, threadDest, "hi"); !errors.Is(err, bots.ErrNoStream) {
		t.Fatalf("refused stream: got %v, want ErrNoStream", err)
	}
	if l := a.Limits(threadDest); l.Native != bots.NativeNever {
		t.Errorf("after the refusal the workspace still offers native streaming: %+v", l)
	}
	// A rate limit is not a refusal.
	b, fake2 := platformAdapter(t, slacktest.Config{}, StreamingAuto)
	fake2.Inject("chat.startStream", slacktest.Fault{RetryAfter: 2})
	var rl *bots.RateLimitError
	if _, err := b.StartStream(ctx, threadDest, "hi"); !errors.As(err, &rl) || rl.RetryAfter != 2*time.Second {
		t.Errorf("429 on startStream: got %v, want a RateLimitError of 2s", err)
	}
	if l := b.Limits(threadDest); l.Native != bots.NativeAuto {
		t.Errorf("a 429 turned native streaming off: %+v", l)
	}
	if n := fake.Calls("chat.startStream"); n != 1 {
		t.Errorf("the refusing workspace got %d startStream calls, want 1", n)
	}
}

// TestLimitsAreSlacks checks that what the adapter declares is the table
// the fake Slack enforces.
func TestLimitsAreSlacks(t *testing.T) {
	a, _ := platformAdapter(t, slacktest.Config{}, StreamingAuto)
	l := a.Limits(threadDest)
	want := map[bots.Call][]string{
		bots.CallPost: {"chat.postMessage"}, bots.CallEdit: {"chat.update"}, bots.CallDelete: {"chat.delete"},
		bots.CallProgress: {"assistant.threads.setStatus"}, bots.CallStart: {"chat.startStream"},
		bots.CallAppend: {"chat.appendStream"}, bots.CallStop: {"chat.stopStream"},
	}
	for c, methods := range want {
		budgets := l.Budgets[c]
		if len(budgets) == 0 {
			t.Errorf("%s has no budget", c)
			continue
		}
		tier := slacktest.Tiers[methods[0]]
		for _, b := range budgets {
			r := tier.Workspace
			if strings.Count(b.Key, "/") == 2 {
				r = tier.Channel // the per-channel budget
			}
			if b.Name != methods[0] || b.Rate.Every != r.Every || b.Rate.Burst != r.Burst || !b.Rate.TokenBucket {
				t.Errorf("%s: declared %+v, the fake enforces %+v", c, b, r)
			}
		}
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
	id, err := before.StartStream(ctx, threadDest, "cut short")
	if err != nil {
		t.Fatal(err)
	}
	// A new process corrects the reply: it knows nothing of the stream.
	after := newTestAdapter(t, fake, &fakeEngine{}, Options{Streaming: StreamingNative}, nil)
	if err := after.Edit(ctx, threadDest, id, "cut short\n\n_Interrupted_", true); err != nil {
		t.Fatal(err)
	}
	if m := message(t, fake, "C1", id); m.Streaming || m.Text != "cut short\n\n_Interrupted_" {
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
