package discord

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/adapters/discord/discordtest"
	"github.com/parleyhq/parley/bots"
)

// The failure paths a user meets when an answer's thread cannot be started
// as planned, when the gateway cannot reconnect at once, and when messages
// are deleted in bulk.

// newReplica returns a second adapter on fake that is not connected to the
// gateway: another replica, with its own (empty) caches and limiter.
func newReplica(t *testing.T, fake *discordtest.Server, opts Options) *Adapter {
	t.Helper()
	opts.Token, opts.APIURL = fake.Token(), fake.APIURL()
	b, err := newAdapter(opts, newRecorder(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mentionDest posts a mention of the bot in channel and returns the
// destination of its answer, as the engine builds it.
func mentionDest(t *testing.T, fake *discordtest.Server, rec *recorder, channel string, user discordtest.User, text string) bots.Destination {
	t.Helper()
	m := fake.Post(channel, user, "<@"+fake.BotID+"> "+text, "")
	in := rec.incoming(t, m.ID)
	return bots.Destination{Workspace: in.Workspace, Channel: in.Channel, Thread: in.Thread, ReplyTo: in.MessageID, User: user.ID}
}

func TestStartThreadFromDeletedMention(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	rec := newRecorder()
	a := run(t, fake, rec, Options{})
	ch := fake.AddChannel("general")
	ann := fake.AddUser("ann")
	dest := mentionDest(t, fake, rec, ch, ann, "hi")

	// Ann deletes her mention while the model thinks: no thread can start
	// from it, and nothing is posted anywhere.
	fake.Delete(dest.Thread)
	if err := a.Prepare(t.Context(), dest); !errors.Is(err, bots.ErrGone) {
		t.Fatalf("Prepare after the mention was deleted: got %v, want ErrGone", err)
	}
	if _, err := a.Post(t.Context(), dest, "hello"); !errors.Is(err, bots.ErrGone) {
		t.Fatalf("Post after the mention was deleted: got %v, want ErrGone", err)
	}
	if th := fake.Threads(ch); len(th) != 0 {
		t.Errorf("got threads %+v, want none", th)
	}
	if got := fake.BotMessages(ch); len(got) != 0 {
		t.Errorf("channel shows the bot's %+v, want nothing", got)
	}
}

func TestStartThreadAlreadyStartedByAnotherReplica(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	rec := newRecorder()
	a := run(t, fake, rec, Options{})
	b := newReplica(t, fake, Options{})
	ch := fake.AddChannel("general")
	ann := fake.AddUser("ann")
	dest := mentionDest(t, fake, rec, ch, ann, "hi")
	ctx := t.Context()

	first, err := a.Post(ctx, dest, "one")
	if err != nil {
		t.Fatal(err)
	}
	// b does not know of the thread: Discord answers 160004, and b posts
	// into the thread that exists rather than failing or replying outside.
	second, err := b.Post(ctx, dest, "two")
	if err != nil {
		t.Fatalf("second replica's post: %v", err)
	}
	if err := b.Edit(ctx, dest, second, "two, edited", true); err != nil {
		t.Fatalf("second replica's edit: %v", err)
	}
	if th := fake.Threads(ch); len(th) != 1 || th[0].ID != dest.Thread {
		t.Fatalf("got threads %+v, want the one started from %s", th, dest.Thread)
	}
	got := fake.BotMessages(dest.Thread)
	if len(got) != 2 || got[0].ID != first || got[0].Content != "one" || got[1].ID != second || got[1].Content != "two, edited" {
		t.Errorf("thread shows %+v, want \"one\" then \"two, edited\"", got)
	}
	if n := len(fake.BotMessages(ch)); n != 0 {
		t.Errorf("channel shows %d of the bot's messages, want 0", n)
	}
}

func TestStartThreadMentionDeletedAfterThreadStarted(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	rec := newRecorder()
	a := run(t, fake, rec, Options{})
	b := newReplica(t, fake, Options{})
	ch := fake.AddChannel("general")
	ann := fake.AddUser("ann")
	dest := mentionDest(t, fake, rec, ch, ann, "hi")
	ctx := t.Context()

	if _, err := a.Post(ctx, dest, "one"); err != nil {
		t.Fatal(err)
	}
	// The thread outlives its starter message: a replica that does not
	// know the thread is told "unknown message", asks what the id is, and
	// finds the thread.
	fake.Delete(dest.Thread)
	id, err := b.Post(ctx, dest, "two")
	if err != nil {
		t.Fatalf("post after the starter message was deleted: %v", err)
	}
	if m, _ := fake.Message(id); m.ChannelID != dest.Thread || m.Content != "two" {
		t.Errorf("got %+v, want \"two\" in thread %s", m, dest.Thread)
	}
	if n := len(fake.Threads(ch)); n != 1 {
		t.Errorf("got %d threads, want 1", n)
	}
}

func TestStartThreadRateLimited(t *testing.T) {
	t.Parallel()
	// Stricter than Discord (1 thread per 5 minutes instead of 50): the
	// second replica's thread draws the 429 its limiter could not foresee.
	rows := discordtest.Limits()
	for i := range rows {
		if rows[i].Route == discordtest.RouteThreadFromMessage {
			rows[i].Limit = 1
		}
	}
	fake := discordtest.New(t, discordtest.Options{Limits: rows})
	rec := newRecorder()
	a := run(t, fake, rec, Options{})
	b := newReplica(t, fake, Options{})
	ch := fake.AddChannel("general")
	ann := fake.AddUser("ann")
	ctx := t.Context()

	d1 := mentionDest(t, fake, rec, ch, ann, "first")
	if _, err := a.Post(ctx, d1, "one"); err != nil {
		t.Fatal(err)
	}
	d2 := mentionDest(t, fake, rec, ch, ann, "second")
	_, err := b.Post(ctx, d2, "two")
	var rle *bots.RateLimitError
	if !errors.As(err, &rle) || rle.RetryAfter <= 0 || rle.RetryAfter > 300*time.Second {
		t.Fatalf("got %v, want a *bots.RateLimitError within the 5 minute window", err)
	}
	if st := fake.Stats(); st.RateLimited != 1 || st.Threads != 1 {
		t.Errorf("got %d 429s and %d threads, want 1 and 1", st.RateLimited, st.Threads)
	}
	// The answer is neither lost into the channel nor given up: the thread
	// is still to start, once the budget allows.
	if n := len(fake.BotMessages(ch)); n != 0 {
		t.Errorf("channel shows %d of the bot's messages, want 0", n)
	}
	if !b.startsThread(d2) {
		t.Error("after a 429 the answer no longer starts a thread")
	}

	// A replica whose context ends while it waits for the bucket it has
	// learned gives up with the context's error, sending nothing.
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := b.Post(wctx, d2, "two"); err == nil {
		t.Fatal("post with an ended context: got no error")
	}
	if st := fake.Stats(); st.RateLimited != 1 || st.Threads != 1 {
		t.Errorf("after the cancelled post: got %d 429s and %d threads, want 1 and 1", st.RateLimited, st.Threads)
	}
}

func TestUnpreparedRepliesInChannel(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	rec := newRecorder()
	a := run(t, fake, rec, Options{})
	ch := fake.AddChannel("general")
	ann := fake.AddUser("ann")
	dest := mentionDest(t, fake, rec, ch, ann, "hi")

	// The guild's thread budget is spent: the engine gives the thread up.
	a.Unprepared(dest)
	if err := a.Prepare(t.Context(), dest); err != nil {
		t.Fatal(err)
	}
	id, err := a.Post(t.Context(), dest, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := fake.Message(id); m.ChannelID != ch || m.ReplyTo != dest.ReplyTo {
		t.Errorf("got %+v, want a reply to %s in channel %s", m, dest.ReplyTo, ch)
	}
	if st := fake.Stats(); st.Threads != 0 {
		t.Errorf("got %d threads, want none", st.Threads)
	}
	if _, ok := a.Limits(dest).Budgets[bots.CallPrepare]; ok {
		t.Error("a destination without a thread still declares a thread budget")
	}
}

func TestReplyModeReplicaResolvesThread(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	rec := newRecorder()
	run(t, fake, rec, Options{ReplyMode: ReplyReply})
	b := newReplica(t, fake, Options{ReplyMode: ReplyReply})
	ch := fake.AddChannel("general")
	ann := fake.AddUser("ann")
	ctx := t.Context()

	// A mention at the top of the channel: the replica asks Discord what
	// the conversation's id is (a message, not a channel) and replies in
	// the channel.
	top := mentionDest(t, fake, rec, ch, ann, "top")
	id, err := b.Post(ctx, top, "top answer")
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := fake.Message(id); m.ChannelID != ch || m.ReplyTo != top.ReplyTo {
		t.Errorf("got %+v, want a reply to %s in channel %s", m, top.ReplyTo, ch)
	}

	// A mention inside a thread: the replica finds the thread and replies
	// there.
	root := fake.Post(ch, ann, "root", "")
	rec.incoming(t, root.ID)
	fakeThread(t, fake, ch, root.ID)
	in := mentionDest(t, fake, rec, root.ID, ann, "in thread")
	if in.Thread != root.ID {
		t.Fatalf("got destination %+v, want thread %s", in, root.ID)
	}
	id, err = b.Post(ctx, in, "thread answer")
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := fake.Message(id); m.ChannelID != root.ID || m.ReplyTo != in.ReplyTo {
		t.Errorf("got %+v, want a reply to %s in thread %s", m, in.ReplyTo, root.ID)
	}
	if n := len(fake.Threads(ch)); n != 1 {
		t.Errorf("got %d threads, want only the user's", n)
	}
}

func TestGatewayReconnectRetriesAfterFailedDial(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	rec := newRecorder()
	// The network is down for the first reconnect attempts: the supervisor
	// backs off and tries again rather than giving up.
	var down atomic.Int32
	var failed atomic.Int32
	a := run(t, fake, rec, Options{}, func(a *Adapter) {
		dial := a.s.Dialer.NetDialContext
		a.s.Dialer.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if down.Load() > 0 && down.Add(-1) >= 0 {
				failed.Add(1)
				return nil, errors.New("network is unreachable")
			}
			return dial(ctx, network, addr)
		}
	})
	ch := fake.AddChannel("general")
	ann := fake.AddUser("ann")

	down.Store(1)
	fake.Drop()
	m := fake.Post(ch, ann, "<@"+fake.BotID+"> sent while the network was down", "")
	if got := rec.incoming(t, m.ID); !got.Mentioned || got.Text != "sent while the network was down" {
		t.Errorf("got %+v", got)
	}
	if n := failed.Load(); n != 1 {
		t.Errorf("got %d failed dials, want 1", n)
	}
	st := fake.Stats()
	if st.Connections != 2 || st.Resumes != 1 || st.Identifies != 1 {
		t.Errorf("got %d connections, %d resumes, %d identifies; want 2, 1, 1", st.Connections, st.Resumes, st.Identifies)
	}
	// RESUMED follows the replayed events: readiness comes a moment later.
	awaitReady(t, fake, a)
}

func TestGatewayResumeRefusedBackfillsThreads(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	rec := newRecorder()
	run(t, fake, rec, Options{})
	ch := fake.AddChannel("general")
	ann := fake.AddUser("ann")
	root := fake.Post(ch, ann, "root", "")
	rec.incoming(t, root.ID)
	fakeThread(t, fake, ch, root.ID)
	seen := fake.Post(root.ID, ann, "in the thread", "")
	rec.incoming(t, seen.ID)

	// The session is lost: what was said in the channel and in the thread
	// during the gap is fetched, in order, and reaches the engine once.
	fake.InvalidateSession()
	fake.Drop()
	var missed []string
	for i := range 3 {
		missed = append(missed, fake.Post(root.ID, ann, "missed "+string(rune('a'+i)), "").ID)
	}
	top := fake.Post(ch, ann, "<@"+fake.BotID+"> missed at the top", "")
	got := rec.incoming(t, top.ID)
	if got.Thread != top.ID || got.Channel != ch {
		t.Errorf("got %+v, want a top-level mention in %s", got, ch)
	}
	for _, id := range missed {
		in := rec.incoming(t, id)
		if in.Channel != ch || in.Thread != root.ID {
			t.Errorf("missed message %s reached the engine as %+v, want in thread %s of %s", id, in, root.ID, ch)
		}
	}
	rec.mu.Lock()
	var order []string
	count := map[string]int{}
	for _, in := range rec.in {
		count[in.MessageID]++
		if in.Thread == root.ID && strings.HasPrefix(in.Text, "missed ") {
			order = append(order, in.MessageID)
		}
	}
	rec.mu.Unlock()
	for id, n := range count {
		if n != 1 {
			t.Errorf("message %s reached the engine %d times, want once", id, n)
		}
	}
	if strings.Join(order, ",") != strings.Join(missed, ",") {
		t.Errorf("missed messages reached the engine in order %v, want %v", order, missed)
	}
	if st := fake.Stats(); st.Identifies != 2 || st.Invalidated != 1 {
		t.Errorf("got %d identifies and %d invalid sessions, want 2 and 1", st.Identifies, st.Invalidated)
	}
}

func TestBulkDeleteReachesEngine(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	rec := newRecorder()
	run(t, fake, rec, Options{})
	ch := fake.AddChannel("general")
	ann := fake.AddUser("ann")
	root := fake.Post(ch, ann, "root", "")
	rec.incoming(t, root.ID)
	fakeThread(t, fake, ch, root.ID)
	a := fake.Post(root.ID, ann, "one", "")
	b := fake.Post(root.ID, ann, "two", "")
	rec.incoming(t, b.ID)

	// A moderator purges the thread: every message is reported, under the
	// thread's parent, which is how the engine knows the conversation.
	fake.Dispatch("MESSAGE_DELETE_BULK", map[string]any{"ids": []string{a.ID, b.ID}, "channel_id": root.ID, "guild_id": fake.GuildID})
	want := []string{fake.GuildID + "/" + ch + "/" + a.ID, fake.GuildID + "/" + ch + "/" + b.ID}
	rec.await(t, "both deletions", func() bool { return len(rec.deleted) >= 2 })
	rec.mu.Lock()
	got := append([]string(nil), rec.deleted...)
	rec.mu.Unlock()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got deletions %v, want %v", got, want)
	}

	// A single delete in a DM keeps its channel.
	dm := fake.AddDM()
	d := fake.Post(dm, ann, "private", "")
	rec.incoming(t, d.ID)
	fake.Delete(d.ID)
	rec.await(t, "the DM deletion", func() bool { return len(rec.deleted) >= 3 })
	rec.mu.Lock()
	last := rec.deleted[2]
	rec.mu.Unlock()
	if last != "/"+dm+"/"+d.ID {
		t.Errorf("got deletion %q, want %q", last, "/"+dm+"/"+d.ID)
	}
}

// awaitReady waits until a reports its gateway session up.
func awaitReady(t *testing.T, fake *discordtest.Server, a *Adapter) {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !a.Ready() {
		select {
		case <-fake.Changed():
		case <-tick.C:
		case <-deadline.C:
			t.Fatal("timed out waiting for the gateway session to be ready")
		}
	}
}
