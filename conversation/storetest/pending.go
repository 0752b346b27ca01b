package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/parleyhq/parley/conversation"
)

func mustPending(t testing.TB, o conversation.Ops, convID int64, limit int) []conversation.Message {
	t.Helper()
	p, err := o.Pending(ctx(t), convID, limit)
	if err != nil {
		t.Fatalf("Pending(%d, %d): %v", convID, limit, err)
	}
	return p
}

func testPending(t *testing.T, s conversation.Store) {
	o := opsOf(t, s)
	c := mustConversation(t, s, key("C1", "1.1"))
	other := mustConversation(t, s, key("C1", "2.2"))
	if p := mustPending(t, o, c.ID, 0); len(p) != 0 {
		t.Errorf("Pending of an empty conversation: got %q, want nothing", texts(p))
	}
	answer := func(q conversation.Message, st conversation.Status) conversation.Message {
		return conversation.Message{Role: conversation.RoleAssistant, Author: "B1", Text: "re: " + q.Text, Status: st, ReplyTo: q.ID}
	}
	clk := clockOf(t)
	q1 := mustAppend(t, s, c.ID, userMessage("answered", "1.2"))
	clk.Advance(time.Second)
	q2 := mustAppend(t, s, c.ID, userMessage("waiting", "1.3"))
	clk.Advance(time.Second)
	q3 := mustAppend(t, s, c.ID, userMessage("being answered", "1.4"))
	clk.Advance(time.Second)
	q4 := mustAppend(t, s, c.ID, userMessage("answer failed", "1.5"))
	clk.Advance(time.Second)
	q5 := mustAppend(t, s, c.ID, userMessage("also waiting", "1.6"))
	clk.Advance(time.Second)
	// Stored last, but sent before the others.
	early := userMessage("delivered late", "1.1")
	early.CreatedAt = start.Add(-time.Minute)
	q0 := mustAppend(t, s, c.ID, early)
	mustAppend(t, s, c.ID, answer(q1, conversation.StatusComplete))
	mustAppend(t, s, c.ID, answer(q3, conversation.StatusStreaming))
	mustAppend(t, s, c.ID, answer(q4, conversation.StatusFailed))
	// An answer that names no question answers none.
	mustAppend(t, s, c.ID, conversation.Message{Role: conversation.RoleAssistant, Author: "B1", Text: "unprompted"})
	// Only an assistant message answers; a user's reply waits for its own.
	metoo := mustAppend(t, s, c.ID, conversation.Message{Role: conversation.RoleUser, Author: "U2", Text: "me too", ReplyTo: q5.ID})
	// Another conversation's messages are not this one's.
	mustAppend(t, s, other.ID, userMessage("elsewhere", "1.7"))

	got := mustPending(t, o, c.ID, 0)
	want := []conversation.Message{q0, q2, q5, metoo}
	if !slices.Equal(texts(got), texts(want)) {
		t.Fatalf("Pending: got %q, want %q", texts(got), texts(want))
	}
	for i := range want {
		if d := diffMessage(got[i], want[i]); d != "" {
			t.Errorf("Pending[%d]:%s", i, d)
		}
	}
	if got := texts(mustPending(t, o, c.ID, 2)); !slices.Equal(got, []string{"delivered late", "waiting"}) {
		t.Errorf("Pending with limit 2: got %q, want the oldest two", got)
	}

	mustAppend(t, s, c.ID, answer(q2, conversation.StatusComplete))
	if got := texts(mustPending(t, o, c.ID, 0)); !slices.Equal(got, []string{"delivered late", "also waiting", "me too"}) {
		t.Errorf("Pending after an answer: got %q, want [delivered late also waiting me too]", got)
	}
	if err := s.Forget(ctx(t), c.ID); err != nil {
		t.Fatalf("Forget: %v", err)
	}
	if p := mustPending(t, o, c.ID, 0); len(p) != 0 {
		t.Errorf("Pending after Forget: got %q, want nothing", texts(p))
	}
	if _, err := o.Pending(ctx(t), c.ID+1000, 0); !errors.Is(err, conversation.ErrNotFound) {
		t.Errorf("Pending of an unknown conversation: got %v, want ErrNotFound", err)
	}
}
