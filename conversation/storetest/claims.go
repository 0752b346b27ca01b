package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/conversation"
)

// claimTTL is how long the tests' claims last.
const claimTTL = time.Minute

// checkClaim asserts what ClaimConversation reports, and returns the
// claim's token.
func checkClaim(t testing.TB, o conversation.Ops, convID int64, owner string, want bool) int64 {
	t.Helper()
	return checkClaimTTL(t, o, convID, owner, claimTTL, want)
}

func checkClaimTTL(t testing.TB, o conversation.Ops, convID int64, owner string, ttl time.Duration, want bool) int64 {
	t.Helper()
	token, got, err := o.ClaimConversation(ctx(t), convID, owner, ttl)
	if err != nil {
		t.Fatalf("ClaimConversation(%d, %s): %v", convID, owner, err)
	}
	if got != want {
		hint := ""
		if want {
			hint = clockHint
		}
		t.Errorf("ClaimConversation(%d, %s): got %v, want %v%s", convID, owner, got, want, hint)
	}
	return token
}

// awaitClaim claims convID as owner until it wins, once an earlier claim
// has lapsed: claims are timed by the database's clock, which a store on
// SQLite takes from Now(t) and one on PostgreSQL from now(), so the test
// both advances Now(t) and waits in real time.
func awaitClaim(t testing.TB, o conversation.Ops, convID int64, owner string) int64 {
	t.Helper()
	deadline := time.NewTimer(lapseWait)
	defer deadline.Stop()
	tick := time.NewTicker(shortTTL / 10)
	defer tick.Stop()
	for {
		token, won, err := o.ClaimConversation(ctx(t), convID, owner, claimTTL)
		if err != nil {
			t.Fatalf("ClaimConversation(%d, %s): %v", convID, owner, err)
		}
		if won {
			return token
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("a claim of %v on conversation %d still live after %v%s", shortTTL, convID, lapseWait, lapseHint)
		}
	}
}

func mustRelease(t testing.TB, o conversation.Ops, convID int64, owner string) {
	t.Helper()
	if err := o.ReleaseConversation(ctx(t), convID, owner); err != nil {
		t.Fatalf("ReleaseConversation(%d, %s): %v", convID, owner, err)
	}
}

func testClaimExclusive(t *testing.T, s conversation.Store) {
	o := opsOf(t, s)
	c := mustConversation(t, s, key("C1", "1.1"))

	a := checkClaim(t, o, c.ID, "replica-a", true)
	checkClaim(t, o, c.ID, "replica-b", false)
	// Renewing keeps the token: the claim has not changed hands.
	if again := checkClaim(t, o, c.ID, "replica-a", true); again != a {
		t.Errorf("renewed claim's token: got %d, want %d as before", again, a)
	}
	checkClaim(t, o, c.ID, "replica-b", false)
	// Renewed with a short lease, the claim lapses by the store's clock,
	// and another owner takes it over, with a new token.
	checkClaimTTL(t, o, c.ID, "replica-a", shortTTL, true)
	clockOf(t).Advance(shortTTL)
	b := awaitClaim(t, o, c.ID, "replica-b")
	if b == a {
		t.Errorf("token of a claim taken over: got %d, the same as the lapsed claim's", b)
	}
	checkClaim(t, o, c.ID, "replica-a", false)

	// Releasing a claim one does not hold changes nothing.
	mustRelease(t, o, c.ID, "replica-a")
	checkClaim(t, o, c.ID, "replica-a", false)
	mustRelease(t, o, c.ID, "replica-b")
	if again := checkClaim(t, o, c.ID, "replica-a", true); again == a || again == b {
		t.Errorf("token of a new claim: got %d, one given before (%d, %d)", again, a, b)
	}
	mustRelease(t, o, c.ID, "replica-a")
	mustRelease(t, o, c.ID, "replica-a") // twice is fine
}

func testClaimPerConversation(t *testing.T, s conversation.Store) {
	o := opsOf(t, s)
	c1 := mustConversation(t, s, key("C1", "1.1"))
	c2 := mustConversation(t, s, key("C1", "2.2"))
	checkClaim(t, o, c1.ID, "replica-a", true)
	checkClaim(t, o, c2.ID, "replica-b", true)
	checkClaim(t, o, c2.ID, "replica-a", false)
	mustRelease(t, o, c2.ID, "replica-b")
	checkClaim(t, o, c1.ID, "replica-b", false)
}

func testClaimValidation(t *testing.T, s conversation.Store) {
	o := opsOf(t, s)
	c := mustConversation(t, s, key("C1", "1.1"))
	if _, _, err := o.ClaimConversation(ctx(t), c.ID+1000, "replica-a", claimTTL); !errors.Is(err, conversation.ErrNotFound) {
		t.Errorf("ClaimConversation of an unknown conversation: got %v, want ErrNotFound", err)
	}
	if _, _, err := o.ClaimConversation(ctx(t), c.ID, "", claimTTL); err == nil {
		t.Error("ClaimConversation with no owner: got nil error, want one")
	}
	for _, ttl := range []time.Duration{0, -time.Second} {
		if _, _, err := o.ClaimConversation(ctx(t), c.ID, "replica-a", ttl); err == nil {
			t.Errorf("ClaimConversation with ttl %v: got nil error, want one", ttl)
		}
	}
	if err := o.ReleaseConversation(ctx(t), c.ID+1000, "replica-a"); err != nil {
		t.Errorf("ReleaseConversation of an unknown conversation: got %v, want nil", err)
	}
	// The refused calls claimed nothing.
	checkClaim(t, o, c.ID, "replica-b", true)
}

// testStrandedSkipsClaimed checks that recovery leaves alone the streams
// of a conversation that a live process has claimed.
func testStrandedSkipsClaimed(t *testing.T, s conversation.Store) {
	strandedSkipsClaimed(t, s, s)
}

func testSharedStrandedSkipsClaimed(t *testing.T, a, b conversation.Store) {
	strandedSkipsClaimed(t, a, b)
}

// strandedSkipsClaimed claims through one store and looks for stranded
// messages through the other.
func strandedSkipsClaimed(t *testing.T, owner, recoverer conversation.Store) {
	o := opsOf(t, owner)
	c1 := mustConversation(t, owner, key("C1", "1.1"))
	c2 := mustConversation(t, owner, key("C1", "2.2"))
	streaming := func(text string) conversation.Message {
		return conversation.Message{Role: conversation.RoleAssistant, Author: "B1", Text: text, Status: conversation.StatusStreaming}
	}
	m1 := mustAppend(t, owner, c1.ID, streaming("live"))
	m2 := mustAppend(t, owner, c2.ID, streaming("dead"))
	stranded := func() []int64 {
		t.Helper()
		st, err := recoverer.Stranded(ctx(t), "slack")
		if err != nil {
			t.Fatalf("Stranded: %v", err)
		}
		var ids []int64
		for _, x := range st {
			ids = append(ids, x.Message.ID)
		}
		return ids
	}
	check := func(when string, want ...int64) {
		t.Helper()
		if got := stranded(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Stranded %s: got messages %v, want %v", when, got, want)
		}
	}

	checkClaimTTL(t, o, c1.ID, "replica-a", shortTTL, true)
	check("while conversation 1 is claimed", m2.ID)
	clockOf(t).Advance(shortTTL)
	deadline := time.Now().Add(lapseWait)
	for fmt.Sprint(stranded()) != fmt.Sprint([]int64{m1.ID, m2.ID}) {
		if time.Now().After(deadline) {
			t.Fatalf("Stranded once the claim has expired: got %v, want %v%s", stranded(), []int64{m1.ID, m2.ID}, lapseHint)
		}
		time.Sleep(shortTTL / 10) // the database's clock is real time
	}
	checkClaim(t, o, c1.ID, "replica-a", true)
	check("after the claim is renewed", m2.ID)
	mustRelease(t, o, c1.ID, "replica-a")
	check("once the claim is released", m1.ID, m2.ID)
}

func testConcurrentClaim(t *testing.T, s conversation.Store) {
	c := mustConversation(t, s, key("C1", "1.1"))
	claimStorm(t, []conversation.Store{s}, c.ID)
}

func testSharedConcurrentClaim(t *testing.T, a, b conversation.Store) {
	c := mustConversation(t, a, key("C1", "1.1"))
	claimStorm(t, []conversation.Store{a, b}, c.ID)
}

// claimStorm has workers goroutines, spread over stores, each a replica of
// its own, claim one conversation at once: exactly one wins, and while its
// claim is live only it can claim again. Once the claim has expired they
// race again, and again exactly one wins.
func claimStorm(t *testing.T, stores []conversation.Store, convID int64) {
	race := func(round string) string {
		t.Helper()
		var (
			mu      sync.Mutex
			winners []string
			wg      sync.WaitGroup
		)
		for w := range workers {
			o := opsOf(t, stores[w%len(stores)])
			owner := fmt.Sprintf("replica-%d", w)
			wg.Go(func() {
				_, won, err := o.ClaimConversation(ctx(t), convID, owner, claimTTL)
				if err != nil {
					t.Errorf("ClaimConversation(%s): %v", owner, err)
					return
				}
				if won {
					mu.Lock()
					winners = append(winners, owner)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("%s: %d goroutines claimed one conversation at once and %d won (%q), want exactly one", round, workers, len(winners), winners)
		}
		return winners[0]
	}

	winner := race("first race")
	if again := race("race while the claim is live"); again != winner {
		t.Errorf("while %s's claim is live, %s won it", winner, again)
	}
	// Renewed with a short lease, the claim lapses; a witness claim on a
	// conversation of its own, made after it and as short, shows when.
	o := opsOf(t, stores[0])
	checkClaimTTL(t, o, convID, winner, shortTTL, true)
	witness := mustConversation(t, stores[0], key("C9", "9.9"))
	checkClaimTTL(t, o, witness.ID, "witness", shortTTL, true)
	clockOf(t).Advance(shortTTL)
	awaitClaim(t, o, witness.ID, "observer")
	race("race after the claim expired")
}
