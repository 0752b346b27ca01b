package bots_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/bots/botstest"
	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/llm/llmtest"
)

func (s *faultStore) Append(ctx context.Context, convID int64, m conversation.Message) (conversation.Message, bool, error) {
	if m.Role == conversation.RoleAssistant && s.failAnswer.Add(-1) >= 0 {
		return conversation.Message{}, false, errInjected
	}
	return s.Store.Append(ctx, convID, m)
}

// The answer's record is stored while the model is asked; when that
// write fails, the model's stream is stopped and the reply says that the
// conversation could not be saved, rather than show an answer the
// history will not hold.
func TestAnswerNotStoredIsSaid(t *testing.T) {
	h, store := newFaultHarness(t)
	store.failAnswer.Store(1)
	h.llm.Answer = func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Chunks: []string{"an ", "answer"}, FirstDelay: 50 * time.Millisecond}
	}
	h.handle(t, mention("m1", "m1", "hi"))
	h.waitMessages(t, "the notice", func(ms []botstest.Message) bool {
		return len(ms) == 1 && strings.Contains(ms[0].Text, "could not save this conversation")
	})
	conv, err := store.FindConversation(context.Background(), conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	hist, err := store.History(context.Background(), conv.ID, conversation.HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range hist {
		if m.Role == conversation.RoleAssistant {
			t.Errorf("history holds an answer %+v, want the question alone", m)
		}
	}
}

// A queued question deleted before its turn is not answered: its queued
// notice says it was stopped, and the model is never asked.
func TestDeletedQueuedQuestionIsNotAnswered(t *testing.T) {
	h := newHarness(t, botstest.SlackLike, bots.Config{})
	hold := make(chan struct{})
	h.llm.Answer = func(r llmtest.Request) llmtest.Reply {
		if r.Messages[len(r.Messages)-1].Text() == "one" {
			return llmtest.Reply{Chunks: []string{"first ", "answer"}, Hold: hold}
		}
		return llmtest.Reply{Chunks: []string{"answer to two"}}
	}
	h.handle(t, bots.Incoming{Workspace: "W1", Channel: "D1", MessageID: "m1", Author: "U1", DM: true, Text: "one"})
	h.waitMessages(t, "the first answer's start", func(ms []botstest.Message) bool { return len(ms) == 1 && ms[0].Text == "first " })
	h.handle(t, bots.Incoming{Workspace: "W1", Channel: "D1", MessageID: "m2", Author: "U1", DM: true, Text: "two"})
	h.waitMessages(t, "the queued notice", func(ms []botstest.Message) bool {
		return len(ms) == 2 && strings.Contains(ms[1].Text, "Queued")
	})
	h.engine.Deleted(h.p, "W1", "D1", "m2")
	h.waitMessages(t, "the notice saying it stopped", func(ms []botstest.Message) bool {
		return len(ms) == 2 && strings.Contains(ms[1].Text, "Stopped: the question was deleted")
	})
	close(hold)
	h.waitMessages(t, "the first answer", func(ms []botstest.Message) bool { return len(ms) == 2 && ms[0].Text == "first answer" })
	for _, r := range h.llm.Requests() {
		if q := r.Messages[len(r.Messages)-1].Text(); q == "two" {
			t.Errorf("the model was asked the deleted question")
		}
	}
}

// A reply deleted before its post returned (the deletion's event can come
// first) still stops the answer: the deletion is remembered until the
// reply's id is known.
func TestReplyDeletedBeforeItsPostReturnedStops(t *testing.T) {
	h := newHarness(t, botstest.SlackLike, bots.Config{})
	hold := make(chan struct{})
	defer close(hold)
	h.llm.Answer = func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Chunks: []string{"first ", "second"}, Hold: hold}
	}
	// The fake numbers its messages from 1: the reply will be "1".
	h.engine.Deleted(h.p, "W1", "C1", "1")
	h.handle(t, mention("m1", "m1", "hi"))
	hist := h.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m1"}, 1)
	if a := hist[len(hist)-1]; a.Status != conversation.StatusPartial {
		t.Errorf("stored answer %q (%s), want it stopped, partial", a.Text, a.Status)
	}
}
