package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/conversation"
)

// intake is how the tests accept a message: as owner, delivered by events.
func intake(owner string, events ...string) conversation.Intake {
	return conversation.Intake{Owner: owner, Platform: "slack", Workspace: "T1", Events: events, TTL: time.Hour}
}

func mustAccept(t testing.TB, o conversation.Ops, convID int64, m conversation.Message, in conversation.Intake, want bool) conversation.Message {
	t.Helper()
	stored, created, err := o.Accept(ctx(t), convID, m, in)
	if err != nil {
		t.Fatalf("Accept(%q, %v): %v", m.Text, in.Events, err)
	}
	if created != want {
		t.Errorf("Accept(%q, %v): got created %v, want %v", m.Text, in.Events, created, want)
	}
	return stored
}

// inboxOf returns convID's waiting questions as "text@owner" (with "+"
// for an owner alive).
func inboxOf(t testing.TB, o conversation.Ops, convID int64) []string {
	t.Helper()
	qs, err := o.Inbox(ctx(t), convID)
	if err != nil {
		t.Fatalf("Inbox(%d): %v", convID, err)
	}
	var out []string
	for _, q := range qs {
		s := q.Text + "@" + q.Owner
		if q.OwnerAlive {
			s += "+"
		}
		out = append(out, s)
	}
	return out
}

func checkInbox(t testing.TB, o conversation.Ops, convID int64, when string, want ...string) {
	t.Helper()
	if got := inboxOf(t, o, convID); !slices.Equal(got, want) {
		t.Errorf("Inbox %s: got %q, want %q", when, got, want)
	}
}

func seen(t testing.TB, o conversation.Ops, id string) bool {
	t.Helper()
	ok, err := o.Seen(ctx(t), "slack", "T1", id)
	if err != nil {
		t.Fatalf("Seen(%s): %v", id, err)
	}
	return ok
}

func testAccept(t *testing.T, s conversation.Store) {
	o := opsOf(t, s)
	c := mustConversation(t, s, key("C1", "1.1"))
	if seen(t, o, "Ev1") {
		t.Error("Seen of an event never marked: got true")
	}
	q := mustAccept(t, o, c.ID, userMessage("hello", "1.1"), intake("replica-a", "Ev1", "message/C1/1.1"), true)
	if q.ID == 0 || q.ConversationID != c.ID || q.Text != "hello" {
		t.Errorf("Accept returned %+v, want the stored message", q)
	}
	if !seen(t, o, "Ev1") || !seen(t, o, "message/C1/1.1") {
		t.Error("Seen of the accepted message's events: got false, want true")
	}
	// The same event again, or the same message by another event: nothing.
	mustAccept(t, o, c.ID, userMessage("hello", "1.1"), intake("replica-b", "Ev1"), false)
	dup := mustAccept(t, o, c.ID, userMessage("hello", "1.1"), intake("replica-b", "Ev2"), false)
	if dup.ID != q.ID {
		t.Errorf("Accept of a stored platform id: got message %d, want the stored %d", dup.ID, q.ID)
	}
	if seen(t, o, "Ev2") {
		t.Error("an Accept that stored nothing marked its event seen")
	}
	// A new event whose other event was seen: nothing written, not even
	// the new event.
	mustAccept(t, o, c.ID, userMessage("other", "1.2"), intake("replica-b", "Ev3", "Ev1"), false)
	if seen(t, o, "Ev3") {
		t.Error("an Accept refused for a seen event marked its other event")
	}
	if got := texts(mustHistory(t, s, c.ID, conversation.HistoryQuery{})); !slices.Equal(got, []string{"hello"}) {
		t.Errorf("History after duplicates: got %q, want [hello]", got)
	}
	checkInbox(t, o, c.ID, "after one accepted question", "hello@replica-a")
	heartbeat(t, o, "replica-a", leaseTTL)
	checkInbox(t, o, c.ID, "once its owner beats", "hello@replica-a+")
	// The message showing that it waits is kept with it.
	if err := o.SetReply(ctx(t), q.ID, "9.9"); err != nil {
		t.Fatalf("SetReply: %v", err)
	}
	if qs, err := o.Inbox(ctx(t), c.ID); err != nil || len(qs) != 1 || qs[0].ReplyID != "9.9" {
		t.Errorf("Inbox after SetReply: got %+v, %v; want the question with reply 9.9", qs, err)
	}
	// An answer takes it out of the inbox.
	mustAppend(t, s, c.ID, conversation.Message{Role: conversation.RoleAssistant, Text: "hi", ReplyTo: q.ID})
	checkInbox(t, o, c.ID, "once answered")
	if err := o.SetReply(ctx(t), q.ID, "9.8"); err != nil {
		t.Errorf("SetReply of a question answered: got %v, want nil (nothing to do)", err)
	}

	if _, _, err := o.Accept(ctx(t), c.ID+1000, userMessage("x", "9.9"), intake("replica-a")); !errors.Is(err, conversation.ErrNotFound) {
		t.Errorf("Accept in an unknown conversation: got %v, want ErrNotFound", err)
	}
	if _, _, err := o.Accept(ctx(t), c.ID, userMessage("x", "9.9"), intake("")); err == nil {
		t.Error("Accept with no owner: got nil error, want one")
	}
	if _, err := o.Inbox(ctx(t), c.ID+1000); !errors.Is(err, conversation.ErrNotFound) {
		t.Errorf("Inbox of an unknown conversation: got %v, want ErrNotFound", err)
	}
	// A question stored by Append has no owner: nobody's, so anybody's.
	mustAppend(t, s, c.ID, userMessage("legacy", "1.3"))
	checkInbox(t, o, c.ID, "with a question stored by Append", "legacy@")
}

func testTakeover(t *testing.T, s conversation.Store) {
	o := opsOf(t, s)
	c1 := mustConversation(t, s, key("C1", "1.1"))
	c2 := mustConversation(t, s, key("C1", "2.2"))
	c3 := mustConversation(t, s, key("C1", "3.3"))
	d := mustConversation(t, s, conversation.Key{Platform: "discord", Workspace: "G1", Channel: "C1", Thread: "4.4"})
	heartbeat(t, o, "replica-a", shortTTL)
	heartbeat(t, o, "replica-b", leaseTTL)
	tokenA := checkClaim(t, o, c1.ID, "replica-a", true)
	checkClaim(t, o, c3.ID, "replica-b", true)
	checkClaim(t, o, d.ID, "replica-a", true)
	mustAccept(t, o, c2.ID, userMessage("queued", "2.2"), intake("replica-a"), true)
	mustAccept(t, o, c3.ID, userMessage("b's", "3.3"), intake("replica-b"), true)

	took := func(everyone bool) []int64 {
		t.Helper()
		cs, err := o.Takeover(ctx(t), "replica-b", "slack", claimTTL, everyone, 0)
		if err != nil {
			t.Fatalf("Takeover: %v", err)
		}
		var ids []int64
		for _, c := range cs {
			if c.Key.Platform != "slack" {
				t.Errorf("Takeover of slack returned a %s conversation", c.Key.Platform)
			}
			ids = append(ids, c.ID)
		}
		return ids
	}
	if got := took(false); len(got) != 0 {
		t.Errorf("Takeover while replica-a is alive: got conversations %v, want none", got)
	}
	clockOf(t).Advance(shortTTL)
	awaitLapse(t, o, "replica-b", "replica-a")
	if got, want := took(false), []int64{c1.ID, c2.ID}; !slices.Equal(got, want) {
		t.Errorf("Takeover once replica-a is gone: got conversations %v, want %v", got, want)
	}
	if got := took(false); len(got) != 0 {
		t.Errorf("Takeover again: got conversations %v, want none", got)
	}
	// The claim is b's now, with a new token: a's fenced writes fail.
	tokenB := checkClaim(t, o, c1.ID, "replica-b", true)
	if tokenB == tokenA {
		t.Errorf("token of a claim taken over: got %d, the same as before", tokenB)
	}
	checkClaim(t, o, c1.ID, "replica-a", false)
	checkInbox(t, o, c2.ID, "after the takeover", "queued@replica-b+")
	// Another platform's work is left for an instance that runs it.
	checkClaim(t, o, d.ID, "replica-b", false)

	// With a limit, the lowest conversations go first, each with all its
	// work.
	heartbeat(t, o, "short", shortTTL)
	var mine []int64
	for i := range 3 {
		c := mustConversation(t, s, key("C2", fmt.Sprintf("%d.5", i)))
		mine = append(mine, c.ID)
		checkClaim(t, o, c.ID, "short", true)
		mustAccept(t, o, c.ID, userMessage("q", fmt.Sprintf("%d.6", i)), intake("short"), true)
	}
	clockOf(t).Advance(shortTTL)
	awaitLapse(t, o, "replica-b", "short")
	for _, want := range [][]int64{mine[:2], mine[2:]} {
		cs, err := o.Takeover(ctx(t), "replica-b", "slack", claimTTL, false, 2)
		if err != nil {
			t.Fatalf("Takeover with a limit: %v", err)
		}
		var got []int64
		for _, c := range cs {
			got = append(got, c.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Takeover with limit 2: got conversations %v, want %v", got, want)
		}
	}

	// With everyone, a live instance's work moves too.
	heartbeat(t, o, "replica-c", leaseTTL)
	cs, err := o.Takeover(ctx(t), "replica-c", "slack", claimTTL, true, 0)
	if err != nil {
		t.Fatalf("Takeover with everyone: %v", err)
	}
	if len(cs) != 6 {
		t.Errorf("Takeover with everyone: got %d conversations, want 6", len(cs))
	}
	checkInbox(t, o, c3.ID, "after a takeover of everyone", "b's@replica-c+")

	if _, err := o.Takeover(ctx(t), "", "slack", claimTTL, false, 0); err == nil {
		t.Error("Takeover with no owner: got nil error, want one")
	}
	if _, err := o.Takeover(ctx(t), "replica-b", "slack", 0, false, 0); err == nil {
		t.Error("Takeover with no ttl: got nil error, want one")
	}
}

func testUpdateAnswer(t *testing.T, s conversation.Store) {
	o := opsOf(t, s)
	c := mustConversation(t, s, key("C1", "1.1"))
	a := mustAppend(t, s, c.ID, conversation.Message{Role: conversation.RoleAssistant, Text: "", Status: conversation.StatusStreaming})
	token := checkClaim(t, o, c.ID, "replica-a", true)
	a.Text, a.PlatformID = "partial", "9.1"
	if err := o.UpdateAnswer(ctx(t), c.ID, a, "replica-a", token); err != nil {
		t.Fatalf("UpdateAnswer under its claim: %v", err)
	}
	if got := mustHistory(t, s, c.ID, conversation.HistoryQuery{}); got[0].Text != "partial" || got[0].PlatformID != "9.1" {
		t.Errorf("after UpdateAnswer: got %q (%s), want partial (9.1)", got[0].Text, got[0].PlatformID)
	}
	a.Text = "stale"
	if err := o.UpdateAnswer(ctx(t), c.ID, a, "replica-a", token+1); !errors.Is(err, conversation.ErrClaimLost) {
		t.Errorf("UpdateAnswer with another token: got %v, want ErrClaimLost", err)
	}
	mustRelease(t, o, c.ID, "replica-a")
	if err := o.UpdateAnswer(ctx(t), c.ID, a, "replica-a", token); !errors.Is(err, conversation.ErrClaimLost) {
		t.Errorf("UpdateAnswer after the claim was released: got %v, want ErrClaimLost", err)
	}
	if got := mustHistory(t, s, c.ID, conversation.HistoryQuery{}); got[0].Text != "partial" {
		t.Errorf("fenced writes changed the answer: got %q, want partial", got[0].Text)
	}
	token = checkClaim(t, o, c.ID, "replica-a", true)
	a.ID += 1000
	if err := o.UpdateAnswer(ctx(t), c.ID, a, "replica-a", token); !errors.Is(err, conversation.ErrNotFound) {
		t.Errorf("UpdateAnswer of an unknown message: got %v, want ErrNotFound", err)
	}
}

// testAcceptCreates: with conversation id 0, Accept finds or creates the
// intake's conversation in the same transaction, and creates nothing when
// it stores nothing.
func testAcceptCreates(t *testing.T, s conversation.Store) {
	o := opsOf(t, s)
	in := func(k conversation.Key, owner string, events ...string) conversation.Intake {
		i := intake(owner, events...)
		i.Key = k
		return i
	}
	k := key("C7", "7.1")
	q := mustAccept(t, o, 0, userMessage("first", "7.1"), in(k, "replica-a", "Ev70"), true)
	c, err := s.FindConversation(ctx(t), k)
	if err != nil {
		t.Fatalf("FindConversation after Accept created it: %v", err)
	}
	if q.ConversationID != c.ID || q.ID == 0 {
		t.Errorf("Accept returned %+v, want a message in conversation %d", q, c.ID)
	}
	again := mustAccept(t, o, 0, userMessage("second", "7.2"), in(k, "replica-a", "Ev71"), true)
	if again.ConversationID != c.ID {
		t.Errorf("a second Accept for the key went to conversation %d, want %d", again.ConversationID, c.ID)
	}
	if got := texts(mustHistory(t, s, c.ID, conversation.HistoryQuery{})); !slices.Equal(got, []string{"first", "second"}) {
		t.Errorf("History: got %q, want [first second]", got)
	}
	checkInbox(t, o, c.ID, "after two accepted questions", "first@replica-a", "second@replica-a")
	// A seen event stores nothing, not even a new conversation.
	fresh := key("C8", "8.1")
	mustAccept(t, o, 0, userMessage("dup", "8.1"), in(fresh, "replica-a", "Ev70"), false)
	if _, err := s.FindConversation(ctx(t), fresh); !errors.Is(err, conversation.ErrNotFound) {
		t.Errorf("FindConversation after an Accept that stored nothing: got %v, want ErrNotFound", err)
	}
	if _, _, err := o.Accept(ctx(t), 0, userMessage("x", "9.1"), in(conversation.Key{}, "replica-a")); err == nil {
		t.Error("Accept with id 0 and no key: got nil error, want one")
	}
}

// testSharedConcurrentAcceptCreates: replicas accepting the first message
// of one new conversation at once create one conversation and store the
// message once.
func testSharedConcurrentAcceptCreates(t *testing.T, a, b conversation.Store) {
	stores := []conversation.Store{a, b}
	k := key("C9", "9.1")
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		wins  int
		convs = map[int64]bool{}
	)
	for w := range workers {
		o := opsOf(t, stores[w%2])
		wg.Go(func() {
			in := intake(fmt.Sprintf("replica-%d", w%2), fmt.Sprintf("Ev9-%d", w), "message/C9/9.1")
			in.Key = k
			m, created, err := o.Accept(ctx(t), 0, userMessage("hi", "9.1"), in)
			if err != nil {
				t.Errorf("Accept: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if created {
				wins++
				convs[m.ConversationID] = true
			}
		})
	}
	wg.Wait()
	c, err := a.FindConversation(ctx(t), k)
	if err != nil {
		t.Fatalf("FindConversation: %v", err)
	}
	if wins != 1 || !convs[c.ID] {
		t.Errorf("the first message was stored %d times (conversations %v), want once in %d", wins, convs, c.ID)
	}
}

func testSharedConcurrentAccept(t *testing.T, a, b conversation.Store) {
	c := mustConversation(t, a, key("C1", "1.1"))
	stores := []conversation.Store{a, b}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		wins  = make(map[string]int)
		owner = []string{"replica-a", "replica-b"}
	)
	for w := range workers {
		o := opsOf(t, stores[w%2])
		wg.Go(func() {
			for i := range 5 {
				// Each message comes as two events, each delivered twice.
				ts := fmt.Sprintf("1.%d", i)
				ev := fmt.Sprintf("Ev%d-%d", i, w%2)
				_, created, err := o.Accept(ctx(t), c.ID, userMessage("m"+ts, ts), intake(owner[w%2], ev, "message/C1/"+ts))
				if err != nil {
					t.Errorf("Accept(%s): %v", ts, err)
					return
				}
				if created {
					mu.Lock()
					wins[ts]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for i := range 5 {
		ts := fmt.Sprintf("1.%d", i)
		if wins[ts] != 1 {
			t.Errorf("message %s accepted %d times by %d goroutines on two stores, want once", ts, wins[ts], workers)
		}
	}
	if n := len(inboxOf(t, opsOf(t, a), c.ID)); n != 5 {
		t.Errorf("Inbox after the storm: got %d questions, want 5", n)
	}
}

func testSharedConcurrentTakeover(t *testing.T, a, b conversation.Store) {
	oa, ob := opsOf(t, a), opsOf(t, b)
	var convs []int64
	heartbeat(t, oa, "dead", shortTTL)
	for i := range 20 {
		c := mustConversation(t, a, key("C1", fmt.Sprintf("%d.1", i)))
		convs = append(convs, c.ID)
		checkClaim(t, oa, c.ID, "dead", true)
		mustAccept(t, oa, c.ID, userMessage("q", fmt.Sprintf("%d.2", i)), intake("dead"), true)
	}
	heartbeat(t, oa, "survivor-0", leaseTTL)
	heartbeat(t, ob, "survivor-1", leaseTTL)
	clockOf(t).Advance(shortTTL)
	awaitLapse(t, oa, "survivor-0", "dead")
	got := make([][]conversation.Conversation, 2)
	var wg sync.WaitGroup
	for i, o := range []conversation.Ops{oa, ob} {
		wg.Go(func() {
			cs, err := o.Takeover(ctx(t), fmt.Sprintf("survivor-%d", i), "slack", claimTTL, false, 0)
			if err != nil {
				t.Errorf("Takeover: %v", err)
			}
			got[i] = cs
		})
	}
	wg.Wait()
	if n := len(got[0]) + len(got[1]); n != len(convs) {
		t.Errorf("two survivors taking over %d conversations at once took %d and %d, want %d in all, each once", len(convs), len(got[0]), len(got[1]), len(convs))
	}
	for _, id := range convs {
		q := inboxOf(t, oa, id)
		if len(q) != 1 || q[0] == "q@dead" {
			t.Errorf("conversation %d's question after the takeover: %q, want a survivor's", id, q)
		}
	}
}

func testRecent(t *testing.T, s conversation.Store) {
	o := opsOf(t, s)
	old := mustConversation(t, s, key("C1", "1.000001"))
	mustAppend(t, s, old.ID, userMessage("old", "1.000001"))
	clockOf(t).Advance(time.Hour)
	since := clockOf(t).Now()
	c := mustConversation(t, s, key("C1", "1.000002"))
	mustAppend(t, s, c.ID, userMessage("q", "1.000002"))
	mustAppend(t, s, c.ID, conversation.Message{Role: conversation.RoleAssistant, Text: "a", PlatformID: "1.000010"})
	mustAppend(t, s, c.ID, userMessage("q2", "1.000009"))
	mustAppend(t, s, c.ID, conversation.Message{Role: conversation.RoleAssistant, Text: "no id yet"})
	d := mustConversation(t, s, conversation.Key{Platform: "discord", Workspace: "G1", Channel: "C1"})
	mustAppend(t, s, d.ID, userMessage("elsewhere", "99"))
	got, err := o.Recent(ctx(t), "slack", since, 10)
	if err != nil {
		t.Fatalf("Recent: %v", err)
	}
	if len(got) != 1 || got[0].ID != c.ID || got[0].LastID != "1.000010" || got[0].Key != c.Key {
		t.Errorf("Recent since the hour: got %+v, want conversation %d with its newest id 1.000010", got, c.ID)
	}
	if got, err := o.Recent(ctx(t), "slack", since.Add(-2*time.Hour), 1); err != nil || len(got) != 1 || got[0].ID != c.ID {
		t.Errorf("Recent with limit 1: got %+v, %v; want the most recent only", got, err)
	}
}
