package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/parleyhq/parley/conversation"
)

func testGetOrCreate(t *testing.T, s conversation.Store) {
	now := Now(t)()
	k := key("C1", "1700000000.000100")
	first := mustConversation(t, s, k)
	if first.ID == 0 {
		t.Fatal("Conversation returned ID 0")
	}
	if first.Key != k {
		t.Errorf("Key: got %+v, want %+v", first.Key, k)
	}
	if !first.CreatedAt.Equal(now) || !first.UpdatedAt.Equal(now) {
		t.Errorf("CreatedAt, UpdatedAt: got %v, %v, want %v"+clockHint, first.CreatedAt, first.UpdatedAt, now)
	}

	clockOf(t).Advance(time.Minute)
	again := mustConversation(t, s, k)
	if again.ID != first.ID {
		t.Errorf("same key again: got ID %d, want %d", again.ID, first.ID)
	}
	if !again.CreatedAt.Equal(first.CreatedAt) {
		t.Errorf("same key again: CreatedAt got %v, want %v", again.CreatedAt, first.CreatedAt)
	}
	found, err := s.FindConversation(ctx(t), k)
	if err != nil {
		t.Fatalf("FindConversation: %v", err)
	}
	if found.ID != first.ID || found.Key != k {
		t.Errorf("FindConversation: got %d %+v, want %d %+v", found.ID, found.Key, first.ID, k)
	}

	others := []conversation.Key{
		key("C1", ""),                  // the channel itself
		key("C1", "1700000000.000200"), // another thread
		key("C2", "1700000000.000100"), // same thread ts in another channel
		{Platform: "slack", Workspace: "T2", Channel: "C1", Thread: "1700000000.000100"},
		{Platform: "discord", Workspace: "T1", Channel: "C1", Thread: "1700000000.000100"},
		{Platform: "discord", Workspace: "", Channel: "D1"}, // a Discord DM
	}
	seen := map[int64]conversation.Key{first.ID: k}
	for _, o := range others {
		c := mustConversation(t, s, o)
		if prev, dup := seen[c.ID]; dup {
			t.Errorf("keys %+v and %+v share conversation %d", prev, o, c.ID)
		}
		seen[c.ID] = o
		if c.Key != o {
			t.Errorf("Key: got %+v, want %+v", c.Key, o)
		}
	}
}

func testFindNotFound(t *testing.T, s conversation.Store) {
	k := key("C1", "")
	for range 2 { // the first miss must not have created it
		_, err := s.FindConversation(ctx(t), k)
		if !errors.Is(err, conversation.ErrNotFound) {
			t.Fatalf("FindConversation of a new key: got %v, want ErrNotFound", err)
		}
	}
	mustConversation(t, s, key("C1", "1.1"))
	if _, err := s.FindConversation(ctx(t), k); !errors.Is(err, conversation.ErrNotFound) {
		t.Errorf("FindConversation of the channel after one of its threads was created: got %v, want ErrNotFound", err)
	}
}
