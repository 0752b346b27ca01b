package bots_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/bots/botstest"
	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/conversation/sqlite"
	"github.com/parleyhq/parley/llm"
	"github.com/parleyhq/parley/llm/llmtest"
)

// resumed is how an answer written again by the instance that took it
// over reads at the end.
const resumedEnd = "\n\n🔁 _Resumed: Parley restarted while writing this answer, and wrote it again._"

// strand stores what a killed instance leaves: question q in a thread of
// its own, accepted by owner, and, with partial, an answer that was
// streaming into a posted message showing partial.
func strand(t *testing.T, h *harness, owner, thread, q, partial string) (conversation.Conversation, string) {
	t.Helper()
	ctx := context.Background()
	conv, err := h.store.Conversation(ctx, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: thread})
	if err != nil {
		t.Fatal(err)
	}
	question, _, err := h.store.Accept(ctx, conv.ID, conversation.Message{Role: conversation.RoleUser, Author: "U1", PlatformID: thread, Text: q},
		conversation.Intake{Owner: owner, Platform: "fake", Workspace: "W1"})
	if err != nil {
		t.Fatal(err)
	}
	if partial == "" {
		return conv, ""
	}
	id, err := h.p.Post(ctx, bots.Destination{Workspace: "W1", Channel: "C1", Thread: thread}, partial)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.store.Append(ctx, conv.ID, conversation.Message{Role: conversation.RoleAssistant, PlatformID: id, Text: partial,
		Status: conversation.StatusStreaming, ReplyTo: question.ID}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.store.ClaimConversation(ctx, conv.ID, owner, time.Hour); err != nil {
		t.Fatal(err)
	}
	return conv, id
}

// An instance alone on its store takes over what the process before it
// left, at once: the interrupted question is answered again in the same
// message, the questions it had accepted are answered in order, and a
// question whose answer was interrupted twice says it could not be
// answered.
func TestRecoverAnswersAgain(t *testing.T) {
	h := newHarness(t, botstest.Enforced{}, bots.Config{Alone: true})
	h.llm.Answer = func(r llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Chunks: llmtest.Words("the whole answer to "+r.Messages[len(r.Messages)-1].Text(), 1)}
	}
	_, cut := strand(t, h, "dead-process", "t1", "one", "the whole ans")
	// A question that waited behind another, its notice showing.
	queued, _ := strand(t, h, "dead-process", "t2", "two", "")
	notice, err := h.p.Post(context.Background(), bots.Destination{Workspace: "W1", Channel: "C1", Thread: "t2"}, "⏳ _Queued: answering the earlier message first…_")
	if err != nil {
		t.Fatal(err)
	}
	if qs, _ := h.store.Inbox(context.Background(), queued.ID); len(qs) == 1 {
		if err := h.store.SetReply(context.Background(), qs[0].ID, notice); err != nil {
			t.Fatal(err)
		}
	}
	// A question whose answer was resumed once already and cut again.
	twice, cut2 := strand(t, h, "dead-process", "t3", "three", "half again")
	hist, _ := h.store.History(context.Background(), twice.ID, conversation.HistoryQuery{})
	if _, _, err := h.store.Append(context.Background(), twice.ID, conversation.Message{Role: conversation.RoleAssistant,
		Status: conversation.StatusFailed, ReplyTo: hist[0].ID}); err != nil {
		t.Fatal(err)
	}

	if err := h.engine.Recover(context.Background(), h.p); err != nil {
		t.Fatal(err)
	}
	byThread := func(ms []botstest.Message) map[string]botstest.Message {
		out := make(map[string]botstest.Message)
		for _, m := range ms {
			out[m.Dest.Thread] = m
		}
		return out
	}
	ms := h.waitMessages(t, "the three threads recovered", func(ms []botstest.Message) bool {
		b := byThread(ms)
		return len(ms) == 3 && b["t1"].Text == "the whole answer to one"+resumedEnd && b["t2"].Text == "the whole answer to two" &&
			strings.HasSuffix(b["t3"].Text, "_Parley could not answer this: it restarted twice while writing the answer. Please ask again._")
	})
	b := byThread(ms)
	if b["t1"].ID != cut || b["t3"].ID != cut2 || b["t2"].ID != notice {
		t.Errorf("recovered answers in messages %s, %s and %s, want the cut ones %s and %s and the queued notice %s", b["t1"].ID, b["t3"].ID, b["t2"].ID, cut, cut2, notice)
	}
	if !strings.HasPrefix(b["t3"].Text, "half again") {
		t.Errorf("the twice-cut answer shows %q, want its text kept", b["t3"].Text)
	}
	// t1 holds the failed attempt's record and the answer written again.
	for th, n := range map[string]int{"t1": 2, "t2": 1} {
		hist := h.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: th}, n)
		var complete []string
		for _, m := range hist {
			if m.Role == conversation.RoleAssistant && m.Status == conversation.StatusComplete {
				complete = append(complete, m.Text)
			}
		}
		if len(complete) != 1 || !strings.HasPrefix(complete[0], "the whole answer to") {
			t.Errorf("thread %s's complete answers: %q, want the whole answer once", th, complete)
		}
	}
	if n := len(h.llm.Requests()); n != 2 {
		t.Errorf("the model was asked %d times, want 2 (the twice-cut question is not asked again)", n)
	}
}

// A live instance's work is left alone; once its heartbeat lapses, a
// survivor takes it over within a few heartbeats and answers its queued
// question.
func TestSurvivorTakesOverWithinHeartbeats(t *testing.T) {
	h := newHarness(t, botstest.Enforced{}, bots.Config{HeartbeatEvery: 20 * time.Millisecond})
	h.llm.Answer = func(r llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Chunks: []string{"answer to " + r.Messages[len(r.Messages)-1].Text()}}
	}
	if err := h.engine.Recover(context.Background(), h.p); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Heartbeat(context.Background(), "other", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	_, cut := strand(t, h, "other", "t1", "one", "half")
	strand(t, h, "other", "t2", "two", "")
	ms := h.waitMessages(t, "the dead instance's work answered", func(ms []botstest.Message) bool {
		return joined(ms) == "answer to one"+resumedEnd+"answer to two" || joined(ms) == "answer to two"+"answer to one"+resumedEnd
	})
	for _, m := range ms {
		if m.Dest.Thread == "t1" && m.ID != cut {
			t.Errorf("the resumed answer went into message %s, want the cut one %s", m.ID, cut)
		}
	}
}

// faultStore fails chosen writes once.
type faultStore struct {
	conversation.Store
	failAccept atomic.Int32 // Accept calls to fail
	failFinal  atomic.Int32 // final answer writes (not streaming) to fail
	failAnswer atomic.Int32 // answer records (Append of an assistant message) to fail
	mu         sync.Mutex
	finals     int
}

var errInjected = errors.New("injected store failure")

func (s *faultStore) Accept(ctx context.Context, convID int64, m conversation.Message, in conversation.Intake) (conversation.Message, bool, error) {
	if s.failAccept.Add(-1) >= 0 {
		return conversation.Message{}, false, errInjected
	}
	return s.Store.Accept(ctx, convID, m, in)
}

func (s *faultStore) UpdateAnswer(ctx context.Context, convID int64, m conversation.Message, owner string, token int64) error {
	if m.Status != conversation.StatusStreaming {
		s.mu.Lock()
		s.finals++
		s.mu.Unlock()
		if s.failFinal.Add(-1) >= 0 {
			return errInjected
		}
	}
	return s.Store.UpdateAnswer(ctx, convID, m, owner, token)
}

func newFaultHarness(t *testing.T) (*harness, *faultStore) {
	t.Helper()
	srv := llmtest.NewServer()
	t.Cleanup(srv.Close)
	inner, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "parley.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store := &faultStore{Store: inner}
	client, _ := llm.New(llm.Config{BaseURL: srv.BaseURL(), APIKey: "k", DefaultModel: "fake-small"})
	e := bots.New(bots.Config{DefaultModel: "fake-small", Logger: slog.New(slog.DiscardHandler)}, store, client)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; inner.Close() })
	<-e.Started()
	return &harness{engine: e, llm: srv, store: store, p: botstest.New("fake", botstest.Enforced{})}, store
}

// A store write that fails on an event's first delivery marks nothing:
// the platform's retry of the same event is answered, once.
func TestRetryAfterFailedStoreIsAnswered(t *testing.T) {
	h, store := newFaultHarness(t)
	h.llm.Answer = func(llmtest.Request) llmtest.Reply { return llmtest.Reply{Chunks: []string{"answered"}} }
	store.failAccept.Store(1)
	in := mention("m1", "m1", "hi")
	in.EventID = "Ev1"
	if err := h.engine.Handle(context.Background(), h.p, in); !errors.Is(err, errInjected) {
		t.Fatalf("Handle with the store failing: got %v, want the store's error", err)
	}
	h.handle(t, in) // the retry
	h.handle(t, in) // and a duplicate of it
	h.waitMessages(t, "the retry answered", func(ms []botstest.Message) bool { return len(ms) == 1 && ms[0].Text == "answered" })
	h.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m1"}, 1)
	if n := len(h.llm.Requests()); n != 1 {
		t.Errorf("the model was asked %d times, want once", n)
	}
}

// A final store update that fails is retried until it lands: the answer
// is complete in the history, and no recovery calls it interrupted.
func TestFailedFinalUpdateIsRetried(t *testing.T) {
	h, store := newFaultHarness(t)
	h.llm.Answer = func(llmtest.Request) llmtest.Reply { return llmtest.Reply{Chunks: []string{"the answer"}} }
	store.failFinal.Store(2)
	h.handle(t, mention("m1", "m1", "hi"))
	hist := h.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m1"}, 1)
	if last := hist[len(hist)-1]; last.Status != conversation.StatusComplete || last.Text != "the answer" {
		t.Fatalf("stored answer %q (%s), want the answer, complete", last.Text, last.Status)
	}
	store.mu.Lock()
	finals := store.finals
	store.mu.Unlock()
	if finals != 3 {
		t.Errorf("final writes: %d, want 3 (two failed, one landed)", finals)
	}
	if err := h.engine.Recover(context.Background(), h.p); err != nil {
		t.Fatal(err)
	}
	if st, err := h.store.Stranded(context.Background(), "fake"); err != nil || len(st) != 0 {
		t.Errorf("stranded answers: %d, %v; want none", len(st), err)
	}
	h.waitMessages(t, "the answer alone", func(ms []botstest.Message) bool { return len(ms) == 1 && ms[0].Text == "the answer" })
}

// At shutdown, an answer still running when the grace period ends is
// handed over, not cut: its reply says nothing more, and the next process
// on the store answers it again in the same message.
func TestShutdownHandsOver(t *testing.T) {
	srv := llmtest.NewServer()
	defer srv.Close()
	hold := make(chan struct{})
	defer close(hold)
	var asked atomic.Int32
	srv.Answer = func(llmtest.Request) llmtest.Reply {
		if asked.Add(1) == 1 {
			return llmtest.Reply{Chunks: []string{"slow ", "answer"}, Hold: hold}
		}
		return llmtest.Reply{Chunks: []string{"slow ", "answer"}}
	}
	path := filepath.Join(t.TempDir(), "parley.db")
	p := botstest.New("fake", botstest.Enforced{})
	start := func() (*bots.Engine, context.CancelFunc, chan struct{}) {
		store, err := sqlite.Open(context.Background(), path, sqlite.Options{Exclusive: true})
		if err != nil {
			t.Fatal(err)
		}
		client, _ := llm.New(llm.Config{BaseURL: srv.BaseURL(), APIKey: "k", DefaultModel: "fake-small"})
		e := bots.New(bots.Config{DefaultModel: "fake-small", ShutdownGrace: 200 * time.Millisecond, Alone: true, Logger: slog.New(slog.DiscardHandler)}, store, client)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); e.Run(ctx); store.Close() }()
		<-e.Started()
		if err := e.Recover(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		return e, cancel, done
	}
	e, stop, done := start()
	handle(t, e, p, mention("m1", "m1", "slow"))
	h := &harness{p: p}
	h.waitMessages(t, "the slow answer's start", func(ms []botstest.Message) bool { return len(ms) == 1 && ms[0].Text == "slow " })
	stop()
	<-done
	if ms := p.Messages(); len(ms) != 1 || ms[0].Text != "slow " {
		t.Fatalf("after shutdown the reply shows %+v, want its partial text alone", ms)
	}
	_, stop, done = start()
	defer func() { stop(); <-done }()
	h.waitMessages(t, "the answer resumed in the same message", func(ms []botstest.Message) bool {
		return len(ms) == 1 && ms[0].Text == "slow answer"+resumedEnd
	})
}

// Where the platform will not deliver a message again, a store that is
// down is said in the thread, not kept silent.
func TestNotStoredIsSaid(t *testing.T) {
	h, store := newFaultHarness(t)
	store.failAccept.Store(1)
	in := mention("m1", "m1", "hi")
	err := h.engine.Handle(context.Background(), h.p, in)
	if !errors.Is(err, bots.ErrNotStored) {
		t.Fatalf("Handle with the store failing: got %v, want ErrNotStored", err)
	}
	h.engine.NotStored(h.p, in)
	h.waitMessages(t, "the notice", func(ms []botstest.Message) bool {
		return len(ms) == 1 && strings.Contains(ms[0].Text, "could not save your message") && ms[0].Dest.Thread == "m1"
	})
}
