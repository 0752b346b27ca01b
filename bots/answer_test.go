package bots_test

import (
	"context"
	"strings"
	"testing"
	"time"

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
