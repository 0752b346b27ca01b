package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/conversation"
)

// Leases are timed by the database's clock: a store on SQLite may take it
// from its Now option (one host, one clock), one on PostgreSQL takes
// now(). So a test that lets a lease lapse both advances Now(t) and waits,
// in real time, for the lapse to show.
const (
	// leaseTTL is how long the tests' leases last, unless a test lets one
	// lapse.
	leaseTTL = time.Minute
	// shortTTL is a lease a test lets lapse.
	shortTTL = 100 * time.Millisecond
	// lapseWait bounds the wait for a short lease to lapse.
	lapseWait = 10 * time.Second
)

// lapseHint is appended to failures where a lease never lapsed.
const lapseHint = " (a store timed by its Now option sees the suite advance storetest.Now(t); one timed by the database's clock sees real time pass)"

// heartbeat beats for owner and checks what every heartbeat returns: the
// owners alive, owner among them, sorted.
func heartbeat(t testing.TB, o conversation.Ops, owner string, ttl time.Duration) []string {
	t.Helper()
	live, err := o.Heartbeat(ctx(t), owner, ttl)
	if err != nil {
		t.Fatalf("Heartbeat(%s, %v): %v", owner, ttl, err)
	}
	checkLive(t, owner, live)
	return live
}

// checkLive checks one heartbeat's answer; it only reports, so that it is
// safe from any goroutine.
func checkLive(t testing.TB, owner string, live []string) {
	t.Helper()
	if !slices.Contains(live, owner) {
		t.Errorf("Heartbeat(%s): got %q, want %s among them", owner, live, owner)
	}
	if !slices.IsSorted(live) {
		t.Errorf("Heartbeat(%s): got %q, want them sorted by their bytes", owner, live)
	}
}

func checkLiveEqual(t testing.TB, when string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("alive %s: got %q, want %q", when, got, want)
	}
}

func mustLeave(t testing.TB, o conversation.Ops, owner string) {
	t.Helper()
	if err := o.Leave(ctx(t), owner); err != nil {
		t.Fatalf("Leave(%s): %v", owner, err)
	}
}

// awaitLapse beats as observer, with a lease that outlasts the test, until
// gone is no longer alive, and returns the owners alive then.
func awaitLapse(t testing.TB, o conversation.Ops, observer, gone string) []string {
	t.Helper()
	deadline := time.NewTimer(lapseWait)
	defer deadline.Stop()
	tick := time.NewTicker(shortTTL / 10)
	defer tick.Stop()
	for {
		live := heartbeat(t, o, observer, leaseTTL)
		if !slices.Contains(live, gone) {
			return live
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("%s's lease of %v still alive after %v: %q%s", gone, shortTTL, lapseWait, live, lapseHint)
		case <-ctx(t).Done():
			t.Fatal(ctx(t).Err())
		}
	}
}

func testHeartbeatSeesItself(t *testing.T, s conversation.Store) {
	o := opsOf(t, s)
	checkLiveEqual(t, "at the first heartbeat", heartbeat(t, o, "replica-a", leaseTTL), "replica-a")
	checkLiveEqual(t, "at the second", heartbeat(t, o, "replica-a", leaseTTL), "replica-a")
}

func testHeartbeatSeeEachOther(t *testing.T, s conversation.Store) {
	seeEachOther(t, opsOf(t, s), opsOf(t, s))
}

func testSharedHeartbeat(t *testing.T, a, b conversation.Store) {
	seeEachOther(t, opsOf(t, a), opsOf(t, b))
}

// seeEachOther beats as three owners, through a and b, and checks that
// each sees the others, sorted by their bytes whatever the database's
// collation ("B" before "a"), and that Leave through one store is seen
// through the other.
func seeEachOther(t *testing.T, a, b conversation.Ops) {
	heartbeat(t, a, "replica-b", leaseTTL)
	heartbeat(t, b, "replica-B", leaseTTL)
	checkLiveEqual(t, "after three heartbeats", heartbeat(t, a, "replica-a", leaseTTL), "replica-B", "replica-a", "replica-b")
	checkLiveEqual(t, "seen by another", heartbeat(t, b, "replica-b", leaseTTL), "replica-B", "replica-a", "replica-b")
	mustLeave(t, b, "replica-a")
	checkLiveEqual(t, "after one left", heartbeat(t, a, "replica-B", leaseTTL), "replica-B", "replica-b")
}

func testHeartbeatLapse(t *testing.T, s conversation.Store) {
	o := opsOf(t, s)
	began := time.Now()
	heartbeat(t, o, "replica-a", shortTTL)
	live := heartbeat(t, o, "replica-b", leaseTTL)
	// Both leases began within these two calls: if they took less than
	// shortTTL, a's lease was alive at b's heartbeat.
	if time.Since(began) < shortTTL && !slices.Contains(live, "replica-a") {
		t.Errorf("alive before the short lease lapsed: got %q, want replica-a among them", live)
	}
	clockOf(t).Advance(shortTTL)
	live = awaitLapse(t, o, "replica-b", "replica-a")
	checkLiveEqual(t, "once replica-a's lease lapsed", live, "replica-b")
	// A lapsed replica that beats again is back.
	heartbeat(t, o, "replica-a", leaseTTL)
	checkLiveEqual(t, "once replica-a beat again", heartbeat(t, o, "replica-b", leaseTTL), "replica-a", "replica-b")
}

func testHeartbeatRenew(t *testing.T, s conversation.Store) {
	o := opsOf(t, s)
	heartbeat(t, o, "replica-a", shortTTL)
	// The witness's lease begins after a's first one and lasts as long:
	// once it has lapsed, so has the lease a renewed.
	heartbeat(t, o, "witness", shortTTL)
	heartbeat(t, o, "replica-a", leaseTTL)
	clockOf(t).Advance(shortTTL)
	live := awaitLapse(t, o, "observer", "witness")
	checkLiveEqual(t, "after the first lease would have lapsed", live, "observer", "replica-a")
}

func testHeartbeatLeave(t *testing.T, s conversation.Store) {
	o := opsOf(t, s)
	heartbeat(t, o, "replica-a", leaseTTL)
	heartbeat(t, o, "replica-b", leaseTTL)
	mustLeave(t, o, "replica-a")
	checkLiveEqual(t, "as soon as replica-a left", heartbeat(t, o, "replica-b", leaseTTL), "replica-b")
	mustLeave(t, o, "replica-a") // twice is fine
	mustLeave(t, o, "never-beat")
	mustLeave(t, o, "replica-b")
	checkLiveEqual(t, "after both left", heartbeat(t, o, "replica-a", leaseTTL), "replica-a")
}

func testHeartbeatValidation(t *testing.T, s conversation.Store) {
	o := opsOf(t, s)
	if _, err := o.Heartbeat(ctx(t), "", leaseTTL); err == nil {
		t.Error("Heartbeat with no owner: got nil error, want one")
	}
	for _, ttl := range []time.Duration{0, -time.Second} {
		if _, err := o.Heartbeat(ctx(t), "replica-b", ttl); err == nil {
			t.Errorf("Heartbeat with ttl %v: got nil error, want one", ttl)
		}
	}
	// The refused calls recorded nothing; a lease under the database's
	// precision is still alive as it is written.
	checkLiveEqual(t, "after refused heartbeats", heartbeat(t, o, "replica-a", time.Nanosecond), "replica-a")
}

func testConcurrentHeartbeat(t *testing.T, s conversation.Store) {
	heartbeatStorm(t, []conversation.Store{s})
}

func testSharedConcurrentHeartbeat(t *testing.T, a, b conversation.Store) {
	heartbeatStorm(t, []conversation.Store{a, b})
}

// heartbeatStorm has workers goroutines, spread over stores, each a
// replica of its own, beat at once, every other beat with a lease so short
// that it lapses while the others beat and remove lapsed leases. Every
// heartbeat succeeds and sees its owner; once each has beaten last with a
// long lease, all are alive.
func heartbeatStorm(t *testing.T, stores []conversation.Store) {
	const rounds = 10
	var wg sync.WaitGroup
	want := []string{"observer"}
	for w := range workers {
		o := opsOf(t, stores[w%len(stores)])
		owner := fmt.Sprintf("replica-%d", w)
		want = append(want, owner)
		wg.Go(func() {
			for i := range rounds {
				ttl := leaseTTL
				if i%2 == 0 {
					ttl = time.Millisecond
				}
				live, err := o.Heartbeat(ctx(t), owner, ttl)
				if err != nil {
					t.Errorf("Heartbeat(%s, %v): %v", owner, ttl, err)
					return
				}
				checkLive(t, owner, live)
				if i%2 == 0 {
					clockOf(t).Advance(time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	slices.Sort(want)
	checkLiveEqual(t, "after the storm", heartbeat(t, opsOf(t, stores[0]), "observer", leaseTTL), want...)
}
