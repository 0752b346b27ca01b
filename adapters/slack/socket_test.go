package slack

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/adapters/slack/slacktest"
	"github.com/parleyhq/parley/bots"
)

// heldEngine is an engine double whose Handle can be held: a message whose
// text is held waits in Handle, whatever its context, until released. It
// records the calls in the order they began, the messages handled, and how
// many Handle calls ran at once.
type heldEngine struct {
	fakeEngine
	mu       sync.Mutex
	held     map[string]chan struct{}
	fails    map[string]int // failures left before Handle takes the message; -1: always
	panics   map[string]bool
	calls    []string // message texts, "reacted <ts>", "deleted <ts>"
	taken    []string
	running  int
	peak     int
	released bool
}

func newHeldEngine() *heldEngine {
	return &heldEngine{held: make(map[string]chan struct{}), fails: make(map[string]int), panics: make(map[string]bool)}
}

// hold makes Handle wait for release(text) on the messages reading text.
func (h *heldEngine) hold(text string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held[text] = make(chan struct{})
}

// fail makes Handle fail n times on the messages reading text; -1: always.
func (h *heldEngine) fail(text string, n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fails[text] = n
}

// panicOn makes Handle panic on the messages reading text.
func (h *heldEngine) panicOn(text string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.panics[text] = true
}

func (h *heldEngine) release(text string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c := h.held[text]; c != nil {
		close(c)
		delete(h.held, text)
	}
}

// releaseAll releases every held message, for a test's end: Run waits for
// its handlers.
func (h *heldEngine) releaseAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for text, c := range h.held {
		close(c)
		delete(h.held, text)
	}
}

func (h *heldEngine) Handle(ctx context.Context, p bots.Platform, in bots.Incoming) error {
	h.mu.Lock()
	h.calls = append(h.calls, in.Text)
	h.running++
	h.peak = max(h.peak, h.running)
	gate, boom := h.held[in.Text], h.panics[in.Text]
	fail := h.fails[in.Text]
	if fail > 0 {
		h.fails[in.Text]--
	}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.running--
		h.mu.Unlock()
	}()
	if gate != nil {
		<-gate
	}
	if boom {
		panic("handler bug")
	}
	if fail != 0 {
		return errors.New("store down")
	}
	h.mu.Lock()
	h.taken = append(h.taken, in.Text)
	h.mu.Unlock()
	return nil
}

func (h *heldEngine) Deleted(p bots.Platform, workspace, channel, messageID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, "deleted "+messageID)
	h.taken = append(h.taken, "deleted "+messageID)
}

func (h *heldEngine) Reacted(p bots.Platform, workspace, channel, messageID, user, emoji string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, "reacted "+messageID)
	h.taken = append(h.taken, "reacted "+messageID)
}

// began and handled return the calls begun and the messages taken so far.
func (h *heldEngine) began() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

func (h *heldEngine) handled() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.taken)
}

func (h *heldEngine) has(list func() []string, want ...string) func() bool {
	return func() bool {
		got := list()
		for _, w := range want {
			if !slices.Contains(got, w) {
				return false
			}
		}
		return true
	}
}

// settled reports whether a's dispatcher has run every event queued.
func settled(a *Adapter) func() bool {
	return func() bool {
		workers, waiting, keys := a.events.load()
		return workers == 0 && waiting == 0 && keys == 0
	}
}

// allAcked reports whether every envelope in envs was acknowledged.
func allAcked(fake *slacktest.Server, envs ...string) func() bool {
	return func() bool {
		for _, e := range envs {
			if _, ok := fake.Ack(e); !ok {
				return false
			}
		}
		return true
	}
}

// byTS sorts messages by ts, stably: the events of different
// conversations are handled in no set order.
func byTS(in []bots.Incoming) []bots.Incoming {
	slices.SortStableFunc(in, func(a, b bots.Incoming) int { return strings.Compare(a.MessageID, b.MessageID) })
	return in
}

func TestSocketConversationsDoNotWaitForEachOther(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	eng := newHeldEngine()
	a := startAdapter(t, fake, eng, Options{}, nil)
	defer eng.releaseAll()

	eng.hold("first")
	q := fake.UserMessage("C1", "", "U1", "first")
	waitFor(t, fake, 5*time.Second, "the first message's handler", eng.has(eng.began, "first"))

	// The rest of its conversation: replies in its thread, a reaction to
	// it, its deletion and a reply's.
	var held []string
	r1 := fake.UserMessage("C1", q.TS, "U2", "second")
	r2 := fake.UserMessage("C1", q.TS, "U1", "third")
	held = append(append(held, r1.Envelopes...), r2.Envelopes...)
	held = append(held,
		fake.SendEvent(map[string]any{"type": "reaction_added", "user": "U1", "reaction": "octagonal_sign", "item": map[string]any{"type": "message", "channel": "C1", "ts": q.TS}}),
		fake.SendEvent(map[string]any{"type": "message", "subtype": "message_deleted", "channel": "C1", "channel_type": "channel", "ts": "1.000009", "deleted_ts": r1.TS,
			"previous_message": map[string]any{"type": "message", "user": "U2", "text": "second", "ts": r1.TS, "thread_ts": q.TS}}),
		fake.SendEvent(map[string]any{"type": "message", "subtype": "message_deleted", "channel": "C1", "channel_type": "channel", "ts": "1.000010", "deleted_ts": q.TS}),
	)
	// Other conversations: another channel, a DM, another thread of C1.
	var others []string
	for _, m := range []slacktest.Posted{
		fake.UserMessage("C2", "", "U3", "elsewhere"),
		fake.UserMessage("D1", "", "U1", "in a DM"),
		fake.UserMessage("C1", "", "U4", "another thread"),
	} {
		others = append(others, m.Envelopes...)
	}

	// An envelope is acknowledged once the engine has taken its event:
	// the other conversations' at once, the held conversation's later.
	waitFor(t, fake, 5*time.Second, "the other conversations' envelopes acknowledged", allAcked(fake, others...))
	waitFor(t, fake, 5*time.Second, "the other conversations handled", eng.has(eng.handled, "elsewhere", "in a DM", "another thread"))
	for _, e := range append(slices.Clone(q.Envelopes), held...) {
		if _, ok := fake.Ack(e); ok {
			t.Errorf("envelope %s of the held conversation acknowledged before the engine took its event", e)
		}
	}
	for _, c := range eng.began() {
		if c == "second" || c == "third" || strings.HasSuffix(c, " "+q.TS) || strings.HasSuffix(c, " "+r1.TS) {
			t.Errorf("%q began while the first message of its conversation was held", c)
		}
	}

	eng.release("first")
	waitFor(t, fake, 5*time.Second, "the held conversation handled", settled(a))
	waitFor(t, fake, 5*time.Second, "the held conversation's envelopes acknowledged", allAcked(fake, append(q.Envelopes, held...)...))
	var conv []string
	for _, c := range eng.began() {
		if !slices.Contains([]string{"elsewhere", "in a DM", "another thread"}, c) {
			conv = append(conv, c)
		}
	}
	if want := []string{"first", "second", "third", "reacted " + q.TS, "deleted " + r1.TS, "deleted " + q.TS}; !slices.Equal(conv, want) {
		t.Errorf("the conversation's events reached the engine as %q, want %q", conv, want)
	}
}

func TestSocketShutdownWaitsForHandlers(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	eng := newHeldEngine()
	logs := &logBuffer{}
	a := newTestAdapter(t, fake, eng, Options{}, logs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer eng.releaseAll()
	waitFor(t, fake, 10*time.Second, "the socket", fake.Connected)

	eng.hold("slow")
	slow := fake.UserMessage("D1", "", "U1", "slow")
	waitFor(t, fake, 5*time.Second, "the slow handler", eng.has(eng.began, "slow"))
	queued := fake.UserMessage("D1", "", "U1", "queued behind")
	waitFor(t, fake, 5*time.Second, "the queued event", func() bool {
		_, waiting, _ := a.events.load()
		return waiting == len(queued.Envelopes)
	})
	_ = slow

	cancel()
	waitFor(t, fake, 5*time.Second, "Run to stop its work", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.stopped
	})
	select {
	case <-done:
		t.Fatal("Run returned while a handler ran")
	default:
	}
	eng.release("slow")
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return once its handler did")
	}
	if got := eng.handled(); !slices.Equal(got, []string{"slow"}) {
		t.Errorf("handled %q, want the slow message only", got)
	}
	if workers, waiting, keys := a.events.load(); workers != 0 || waiting != 0 || keys != 0 {
		t.Errorf("after Run: %d workers, %d events waiting, %d queues", workers, waiting, keys)
	}
	// The message queued behind was not handled: it is left
	// unacknowledged, for Slack to deliver again, and the log says so.
	if l := logs.String(); !strings.Contains(l, "not handled") || !strings.Contains(l, "channel=D1 ts="+queued.TS) {
		t.Errorf("the queued message is not logged with its channel and ts:\n%s", l)
	}
	for _, e := range queued.Envelopes {
		if _, ok := fake.Ack(e); ok {
			t.Errorf("envelope %s of a message never handled was acknowledged", e)
		}
	}
}

func TestSocketFailingHandlersDoNotStopTheLoop(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	eng := newHeldEngine()
	logs := &logBuffer{}
	a := newTestAdapter(t, fake, eng, Options{}, logs)
	a.retry = retryPolicy{first: time.Millisecond, max: 8 * time.Millisecond, within: 100 * time.Millisecond}
	runAdapter(t, a)
	waitFor(t, fake, 10*time.Second, "the socket", fake.Connected)

	eng.panicOn("boom")
	eng.fail("flaky", 2)
	eng.fail("doomed", -1)
	var texts []string
	var posted []slacktest.Posted
	for _, text := range []string{"boom", "doomed", "flaky", "after"} {
		posted = append(posted, fake.UserMessage("D1", "", "U1", text))
		texts = append(texts, text)
	}
	fake.UserMessage("C2", "", "U2", "meanwhile")
	waitFor(t, fake, 5*time.Second, "every message handled or given up", func() bool { return settled(a)() && len(eng.handled()) == 3 })

	if got, want := eng.handled(), []string{"flaky", "after", "meanwhile"}; !slices.Equal(byText(got), byText(want)) {
		t.Errorf("handled %q, want %q", got, want)
	}
	var d1 []string
	for _, c := range eng.began() {
		if c != "meanwhile" && (len(d1) == 0 || d1[len(d1)-1] != c) {
			d1 = append(d1, c)
		}
	}
	if !slices.Equal(d1, texts) {
		t.Errorf("the DM's messages reached the engine as %q, want %q in order", d1, texts)
	}
	if n := countOf(eng.began(), "flaky"); n != 3 {
		t.Errorf("flaky tried %d times, want 3 (two failures)", n)
	}
	if n := countOf(eng.began(), "doomed"); n < 2 {
		t.Errorf("doomed tried %d times, want retries", n)
	}
	l := logs.String()
	for _, want := range []string{"panicked", "event lost", "channel=D1 ts=" + posted[1].TS, "handled after retries"} {
		if !strings.Contains(l, want) {
			t.Errorf("logs lack %q:\n%s", want, l)
		}
	}
	// What the engine took is acknowledged; what it never took (a panic,
	// a failure past the retries) is left for Slack to deliver again.
	waitFor(t, fake, 5*time.Second, "the handled envelopes acknowledged", allAcked(fake, append(posted[2].Envelopes, posted[3].Envelopes...)...))
	for _, e := range append(slices.Clone(posted[0].Envelopes), posted[1].Envelopes...) {
		if _, ok := fake.Ack(e); ok {
			t.Errorf("envelope %s of an event the engine never took was acknowledged", e)
		}
	}
	checkNoSecrets(t, l, fake.Config().BotToken, fake.Config().AppToken)
}

func TestSocketConcurrencyBound(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	eng := newHeldEngine()
	a := newTestAdapter(t, fake, eng, Options{}, nil)
	const limit, n = 3, 8
	a.events = newDispatcher(limit, maxBacklog, a.background, a.log)
	runAdapter(t, a)
	defer eng.releaseAll()
	waitFor(t, fake, 10*time.Second, "the socket", fake.Connected)

	var envs []string
	for i := range n {
		text := fmt.Sprintf("m%d", i)
		eng.hold(text)
		envs = append(envs, fake.UserMessage(fmt.Sprintf("D%d", i), "", "U1", text).Envelopes...)
	}
	waitFor(t, fake, 5*time.Second, "the first handlers", func() bool { return len(eng.began()) == limit })
	// The last envelopes may still be on their way: wait until all are in.
	waitFor(t, fake, 5*time.Second, "the others to wait", func() bool {
		_, waiting, _ := a.events.load()
		return waiting == n-limit
	})
	if workers, waiting, _ := a.events.load(); workers != limit || waiting != n-limit || len(eng.began()) != limit {
		t.Errorf("%d workers, %d events waiting, %d begun; want %d, %d and %d", workers, waiting, len(eng.began()), limit, n-limit, limit)
	}
	// Released one by one, each makes room for one more.
	for done := 1; done <= n; done++ {
		eng.release(eng.began()[done-1])
		waitFor(t, fake, 5*time.Second, "the next handler", func() bool {
			return len(eng.handled()) == done && len(eng.began()) == min(n, done+limit)
		})
	}
	eng.mu.Lock()
	peak := eng.peak
	eng.mu.Unlock()
	if peak != limit {
		t.Errorf("%d handlers ran at once, want %d", peak, limit)
	}
	waitFor(t, fake, 5*time.Second, "the queues gone", settled(a))
	waitFor(t, fake, 5*time.Second, "every envelope acknowledged", allAcked(fake, envs...))
}

func TestSocketBacklogFullLeavesEventsToSlack(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	eng := newHeldEngine()
	logs := &logBuffer{}
	a := newTestAdapter(t, fake, eng, Options{}, logs)
	a.events = newDispatcher(1, 1, a.background, a.log)
	runAdapter(t, a)
	defer eng.releaseAll()
	waitFor(t, fake, 10*time.Second, "the socket", fake.Connected)

	eng.hold("running")
	running := fake.UserMessage("D1", "", "U1", "running")
	waitFor(t, fake, 5*time.Second, "the handler", eng.has(eng.began, "running"))
	waiting := fake.UserMessage("D2", "", "U1", "waiting")
	refused := fake.UserMessage("D3", "", "U1", "refused")
	waitFor(t, fake, 5*time.Second, "the refusal", func() bool { return strings.Contains(logs.String(), "not queued") })
	if _, ok := fake.Ack(refused.Envelopes[0]); ok {
		t.Fatal("an event beyond the backlog was acknowledged")
	}

	eng.release("running")
	waitFor(t, fake, 5*time.Second, "the backlog handled", settled(a))
	waitFor(t, fake, 5*time.Second, "the handled envelopes acknowledged", allAcked(fake, append(running.Envelopes, waiting.Envelopes...)...))
	// Slack delivers again what was not acknowledged, here after a
	// reconnect.
	conns := fake.Connections()
	fake.DropSocket()
	waitFor(t, fake, 10*time.Second, "a reconnect", func() bool { return fake.Connections() > conns })
	waitFor(t, fake, 5*time.Second, "the refused event handled and acknowledged", func() bool {
		return allAcked(fake, refused.Envelopes...)() && settled(a)() && len(eng.handled()) == 3
	})
	if got := eng.handled(); !slices.Equal(got, []string{"running", "waiting", "refused"}) {
		t.Errorf("handled %q", got)
	}
}

func countOf(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}

func byText(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
