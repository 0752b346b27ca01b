package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/conversation"
)

// workers is how many goroutines race in the concurrency tests.
const workers = 8

func testConcurrentAppend(t *testing.T, s conversation.Store) {
	c := mustConversation(t, s, key("C1", "1.1"))
	appendStorm(t, []conversation.Store{s}, c.ID)
}

func testConcurrentConversation(t *testing.T, s conversation.Store) {
	conversationStorm(t, []conversation.Store{s})
}

func testSharedSeeEachOther(t *testing.T, a, b conversation.Store) {
	k := key("C1", "1.1")
	ca := mustConversation(t, a, k)
	cb, err := b.FindConversation(ctx(t), k)
	if err != nil || cb.ID != ca.ID {
		t.Fatalf("FindConversation on the second store: got %d, %v; want conversation %d", cb.ID, err, ca.ID)
	}
	m := mustAppend(t, a, ca.ID, userMessage("written by one", "1.2"))
	again, created, err := b.Append(ctx(t), cb.ID, userMessage("redelivered to the other", "1.2"))
	if err != nil || created || again.ID != m.ID {
		t.Errorf("Append of the same PlatformID on the second store: got message %d, created %v, err %v; want %d, false, nil", again.ID, created, err, m.ID)
	}
	mustSet(t, b, scopes("slack", "T1")[1], conversation.SettingModel, "o3")
	checkResolve(t, a, conversation.SettingModel, scopes("slack", "T1"), "o3", scopes("slack", "T1")[1], true)
	if first, err := a.MarkEvent(ctx(t), "slack", "T1", "Ev1", time.Hour); err != nil || !first {
		t.Fatalf("MarkEvent: got %v, %v; want true, nil", first, err)
	}
	if first, err := b.MarkEvent(ctx(t), "slack", "T1", "Ev1", time.Hour); err != nil || first {
		t.Errorf("MarkEvent of the same event on the second store: got %v, %v; want false, nil", first, err)
	}
}

func testSharedConcurrentAppend(t *testing.T, a, b conversation.Store) {
	c := mustConversation(t, a, key("C1", "1.1"))
	appendStorm(t, []conversation.Store{a, b}, c.ID)
}

func testSharedConcurrentConversation(t *testing.T, a, b conversation.Store) {
	conversationStorm(t, []conversation.Store{a, b})
}

func testSharedConcurrentMarkEvent(t *testing.T, a, b conversation.Store) {
	stores := []conversation.Store{a, b}
	const events = 10
	var mu sync.Mutex
	firsts := map[string]int{}
	var wg sync.WaitGroup
	for w := range workers {
		s := stores[w%len(stores)]
		wg.Go(func() {
			for i := range events {
				id := fmt.Sprintf("Ev%d", i)
				first, err := s.MarkEvent(ctx(t), "slack", "T1", id, time.Hour)
				if err != nil {
					t.Errorf("MarkEvent(%s): %v", id, err)
					return
				}
				if first {
					mu.Lock()
					firsts[id]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for i := range events {
		id := fmt.Sprintf("Ev%d", i)
		if firsts[id] != 1 {
			t.Errorf("MarkEvent(%s) from %d goroutines on two stores: first %d times, want exactly once", id, workers, firsts[id])
		}
	}
}

// appendStorm has workers goroutines, spread over stores, append to one
// conversation at once: each its own messages, messages that every worker
// delivers (as a platform redelivers an event to several replicas), and
// messages without a platform id. Then every message is there exactly once.
func appendStorm(t *testing.T, stores []conversation.Store, convID int64) {
	const own, shared, unnamed = 15, 15, 4
	var (
		mu      sync.Mutex
		created = map[string]int{}   // platform id -> times Append said created
		ids     = map[string]int64{} // platform id -> message id returned
		wg      sync.WaitGroup
	)
	record := func(pid string, m conversation.Message, isNew bool) {
		mu.Lock()
		defer mu.Unlock()
		if isNew {
			created[pid]++
		}
		if prev, ok := ids[pid]; ok && prev != m.ID {
			t.Errorf("Append(%q) returned message %d and, elsewhere, %d", pid, m.ID, prev)
		}
		ids[pid] = m.ID
	}
	for w := range workers {
		s := stores[w%len(stores)]
		wg.Go(func() {
			for i := range own {
				for _, m := range []conversation.Message{
					userMessage(fmt.Sprintf("own %d/%d", w, i), fmt.Sprintf("own-%d-%d", w, i)),
					userMessage(fmt.Sprintf("shared %d", (i+w)%shared), fmt.Sprintf("shared-%d", (i+w)%shared)),
				} {
					stored, isNew, err := s.Append(ctx(t), convID, m)
					if err != nil {
						t.Errorf("Append(%q): %v", m.PlatformID, err)
						return
					}
					record(m.PlatformID, stored, isNew)
				}
				if i < unnamed {
					if _, isNew, err := s.Append(ctx(t), convID, userMessage(fmt.Sprintf("unnamed %d/%d", w, i), "")); err != nil || !isNew {
						t.Errorf("Append without PlatformID: created %v, err %v; want true, nil", isNew, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	h := mustHistory(t, stores[0], convID, conversation.HistoryQuery{})
	if want := workers*own + shared + workers*unnamed; len(h) != want {
		t.Errorf("History after %d goroutines appended: got %d messages, want %d", workers, len(h), want)
	}
	stored := map[string]int{}
	msgIDs := map[int64]bool{}
	for _, m := range h {
		if m.PlatformID != "" {
			stored[m.PlatformID]++
		}
		if msgIDs[m.ID] {
			t.Errorf("History holds message %d twice", m.ID)
		}
		msgIDs[m.ID] = true
	}
	for pid, n := range created {
		if n != 1 {
			t.Errorf("Append(%q) said created %d times, want once", pid, n)
		}
	}
	for pid, id := range ids {
		if stored[pid] != 1 {
			t.Errorf("platform id %q stored %d times, want once", pid, stored[pid])
		}
		if !msgIDs[id] {
			t.Errorf("Append(%q) returned message %d, which History does not hold", pid, id)
		}
		if created[pid] != 1 {
			t.Errorf("Append(%q): created %d times, want once", pid, created[pid])
		}
	}
}

// conversationStorm has workers goroutines, spread over stores, get or
// create the same few conversations at once: each key gets one ID.
func conversationStorm(t *testing.T, stores []conversation.Store) {
	keys := []conversation.Key{key("C1", "1.1"), key("C1", ""), key("C2", "1.1")}
	var (
		mu  sync.Mutex
		got = map[conversation.Key]map[int64]int{}
		wg  sync.WaitGroup
	)
	for w := range workers {
		s := stores[w%len(stores)]
		wg.Go(func() {
			for i := range 3 * len(keys) {
				k := keys[(i+w)%len(keys)]
				c, err := s.Conversation(ctx(t), k)
				if err != nil {
					t.Errorf("Conversation(%+v): %v", k, err)
					return
				}
				mu.Lock()
				if got[k] == nil {
					got[k] = map[int64]int{}
				}
				got[k][c.ID]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	all := map[int64]conversation.Key{}
	for k, idSet := range got {
		if len(idSet) != 1 {
			t.Errorf("Conversation(%+v) from %d goroutines returned %d different IDs: %v", k, workers, len(idSet), idSet)
		}
		for id := range idSet {
			if other, dup := all[id]; dup {
				t.Errorf("keys %+v and %+v share conversation %d", other, k, id)
			}
			all[id] = k
		}
	}
}
