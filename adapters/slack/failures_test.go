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

// The failure paths a user meets on Slack: a workspace that refuses native
// streams, messages left in a streaming state, texts Slack finds too long,
// channels that are gone.

func TestE2EWorkspaceRefusingStreamsGetsPosts(t *testing.T) {
	h := newE2E(t, StreamingNative, slacktest.Config{StreamError: "not_allowed"})
	h.llm.script(llmReply{Chunks: []string{"Hello ", "**world**."}, Every: 10 * time.Millisecond})
	h.start()

	q := h.slack.UserMessage("C1", "", "U1", bot+" hi")
	msgs := h.replyIn("C1", q.TS, 1, "Hello *world*.")
	if msgs[0].Streamed {
		t.Errorf("reply %+v streamed in a workspace that refuses streams", msgs[0])
	}
	if n := h.slack.Calls("chat.startStream"); n != 1 {
		t.Fatalf("%d chat.startStream calls, want 1", n)
	}

	// The refusal holds for the workspace: the next answer is posted
	// without asking again.
	h.llm.script(llmReply{Chunks: []string{"Again."}})
	h.slack.UserMessage("C1", q.TS, "U1", "more?")
	h.replyIn("C1", q.TS, 2, "Again.")
	if n := h.slack.Calls("chat.startStream"); n != 1 {
		t.Errorf("%d chat.startStream calls after the refusal, want still 1", n)
	}
	for _, m := range h.slack.Messages() {
		if m.Deleted {
			t.Errorf("message %+v deleted, want none", m)
		}
	}
}

func TestStreamDeclinedOnceKeepsNative(t *testing.T) {
	a, fake := platformAdapter(t, slacktest.Config{}, StreamingAuto)
	ctx := context.Background()
	// A refusal of this one stream (not of the feature) sends this answer
	// to a post, and keeps streaming for the next.
	fake.Inject("chat.startStream", slacktest.Fault{Error: "invalid_arguments"})
	if _, err := a.StartStream(ctx, threadDest, "hi"); !errors.Is(err, bots.ErrNoStream) {
		t.Fatalf("declined stream: got %v, want ErrNoStream", err)
	}
	if l := a.Limits(threadDest); l.Native != bots.NativeAuto {
		t.Errorf("one declined stream turned native streaming off: %+v", l)
	}
	id, err := a.StartStream(ctx, threadDest, "hi")
	if err != nil {
		t.Fatal(err)
	}
	if m := message(t, fake, "C1", id); !m.Streaming || m.Text != "hi" {
		t.Errorf("second stream %+v, want open and showing \"hi\"", m)
	}

	// A channel that is gone is no refusal either: it is ErrGone.
	fake.RemoveChannel("C1")
	if _, err := a.StartStream(ctx, threadDest, "hi"); !errors.Is(err, bots.ErrGone) || errors.Is(err, bots.ErrNoStream) {
		t.Errorf("stream in a removed channel: got %v, want ErrGone", err)
	}
	if err := a.AppendStream(ctx, threadDest, id, "more"); !errors.Is(err, bots.ErrGone) {
		t.Errorf("append in a removed channel: got %v, want ErrGone", err)
	}
	if l := a.Limits(threadDest); l.Native != bots.NativeAuto {
		t.Errorf("a removed channel turned native streaming off: %+v", l)
	}
}

func TestStreamTooLong(t *testing.T) {
	a, fake := platformAdapter(t, slacktest.Config{}, StreamingNative)
	ctx := context.Background()
	if _, err := a.StartStream(ctx, threadDest, strings.Repeat("x", slacktest.MaxStreamText+1)); !errors.Is(err, bots.ErrTooLong) || errors.Is(err, bots.ErrNoStream) {
		t.Fatalf("a start beyond the cap: got %v, want ErrTooLong", err)
	}
	id, err := a.StartStream(ctx, threadDest, strings.Repeat("x", slacktest.MaxStreamText-1))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AppendStream(ctx, threadDest, id, "yz"); !errors.Is(err, bots.ErrTooLong) {
		t.Errorf("an append beyond the message's cap: got %v, want ErrTooLong", err)
	}
	// The refused append changed nothing, and the stream stays open for
	// what fits.
	if err := a.StopStream(ctx, threadDest, id, "y"); err != nil {
		t.Fatal(err)
	}
	m := message(t, fake, "C1", id)
	if m.Streaming || m.Text != strings.Repeat("x", slacktest.MaxStreamText-1)+"y" {
		t.Errorf("message ends %q (streaming %v), want the x's and one y, stopped", m.Text[len(m.Text)-3:], m.Streaming)
	}
}

func TestPostTooLong(t *testing.T) {
	a, fake := platformAdapter(t, slacktest.Config{MaxText: 100}, StreamingUpdate)
	ctx := context.Background()
	// Beyond what chat.update takes, the adapter refuses before sending.
	if _, err := a.Post(ctx, threadDest, strings.Repeat("<", 1001)); !errors.Is(err, bots.ErrTooLong) {
		t.Errorf("4,004 characters of mrkdwn: got %v, want ErrTooLong", err)
	}
	if n := fake.Calls("chat.postMessage"); n != 0 {
		t.Errorf("%d chat.postMessage calls for a text known too long, want 0", n)
	}
	// A workspace that takes less answers msg_too_long.
	if _, err := a.Post(ctx, threadDest, strings.Repeat("y", 101)); !errors.Is(err, bots.ErrTooLong) {
		t.Errorf("msg_too_long: got %v, want ErrTooLong", err)
	}
	if got := fake.BotMessages("C1", threadDest.Thread); len(got) != 0 {
		t.Errorf("thread shows %+v, want nothing", got)
	}
	if _, err := a.Post(ctx, threadDest, "  "); err != nil {
		t.Fatalf("an empty post: %v", err)
	}
	if got := fake.BotMessages("C1", threadDest.Thread); len(got) != 1 || got[0].Text != "…" {
		t.Errorf("an empty post shows %+v, want \"…\"", got)
	}
}

func TestDeleteOfAStreamLeftOpen(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	ctx := context.Background()
	before := newTestAdapter(t, fake, &fakeEngine{}, Options{Streaming: StreamingNative}, nil)
	id, err := before.StartStream(ctx, threadDest, "cut short")
	if err != nil {
		t.Fatal(err)
	}
	after := newTestAdapter(t, fake, &fakeEngine{}, Options{Streaming: StreamingNative}, nil)

	// Slack refuses to delete a message while it streams: the adapter
	// stops the stream and deletes again. When the stop draws a 429, the
	// delete fails with it and the message stays.
	fake.Inject("chat.delete", slacktest.Fault{Error: "streaming_state_conflict"}, slacktest.Fault{Error: "streaming_state_conflict"})
	fake.Inject("chat.stopStream", slacktest.Fault{RetryAfter: 2})
	var rl *bots.RateLimitError
	if err := after.Delete(ctx, threadDest, id); !errors.As(err, &rl) || rl.RetryAfter != 2*time.Second {
		t.Fatalf("delete whose stop drew a 429: got %v, want a RateLimitError of 2s", err)
	}
	if m := message(t, fake, "C1", id); m.Deleted || !m.Streaming {
		t.Fatalf("after the failed delete: %+v, want the stream still there", m)
	}
	if after.ownDeletion("C1", id) {
		t.Error("a failed delete is remembered as the adapter's own")
	}

	if err := after.Delete(ctx, threadDest, id); err != nil {
		t.Fatal(err)
	}
	if m := message(t, fake, "C1", id); !m.Deleted || m.Streaming {
		t.Errorf("after the delete: %+v, want deleted and stopped", m)
	}
	if !after.ownDeletion("C1", id) {
		t.Error("the adapter's deletion is not known as its own")
	}
	if n := fake.Calls("chat.stopStream"); n != 2 {
		t.Errorf("%d chat.stopStream calls, want 2", n)
	}
}

func TestUpdateOfAStreamThatCannotStop(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	ctx := context.Background()
	a := newTestAdapter(t, fake, &fakeEngine{}, Options{Streaming: StreamingNative}, nil)
	id, err := a.StartStream(ctx, threadDest, "cut short")
	if err != nil {
		t.Fatal(err)
	}
	fake.Inject("chat.stopStream", slacktest.Fault{Error: "internal_error"})
	if err := a.Edit(ctx, threadDest, id, "corrected", true); err == nil || errors.Is(err, bots.ErrGone) {
		t.Fatalf("update whose stop failed: got %v, want the stop's error", err)
	}
	if m := message(t, fake, "C1", id); m.Text != "cut short" || !m.Streaming {
		t.Errorf("after the failed update: %+v, want the stream unchanged", m)
	}
	// A stream that Slack closed meanwhile is no obstacle.
	fake.Inject("chat.update", slacktest.Fault{Error: "streaming_state_conflict"})
	fake.ExpireStream("C1", id)
	if err := a.Edit(ctx, threadDest, id, "corrected", true); err != nil {
		t.Fatal(err)
	}
	if m := message(t, fake, "C1", id); m.Text != "corrected" {
		t.Errorf("after the update: %+v, want \"corrected\"", m)
	}
}

func TestCallsInARemovedChannel(t *testing.T) {
	a, fake := platformAdapter(t, slacktest.Config{}, StreamingUpdate)
	ctx := context.Background()
	id, err := a.Post(ctx, threadDest, "hi")
	if err != nil {
		t.Fatal(err)
	}
	fake.RemoveChannel("C1")
	if err := a.Edit(ctx, threadDest, id, "hi there", true); !errors.Is(err, bots.ErrGone) {
		t.Errorf("edit: got %v, want ErrGone", err)
	}
	if err := a.Delete(ctx, threadDest, id); !errors.Is(err, bots.ErrGone) {
		t.Errorf("delete: got %v, want ErrGone", err)
	}
	if err := a.Progress(ctx, threadDest, "is thinking…"); !errors.Is(err, bots.ErrGone) || errors.Is(err, errNoStatus) {
		t.Errorf("status: got %v, want ErrGone", err)
	}
	// A channel gone is not a workspace without status: another channel
	// still gets it.
	other := threadDest
	other.Channel = "C2"
	if err := a.Progress(ctx, other, "working"); err != nil {
		t.Fatal(err)
	}
	if st := fake.Statuses(); len(st) != 1 || st[0].Channel != "C2" || st[0].Status != "is thinking…" {
		t.Errorf("statuses %+v, want one \"is thinking…\" in C2", st)
	}
	if m := message(t, fake, "C1", id); m.Text != "hi" || m.Deleted {
		t.Errorf("message %+v, want unchanged", m)
	}
}
