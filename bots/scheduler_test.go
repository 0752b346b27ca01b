package bots

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestSchedulerPaces checks, in fake time, that a bucket never grants more
// than its limit in any window, and that it grants the whole budget.
func TestSchedulerPaces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScheduler(time.Now)
		b := s.bucket(Budget{Key: "edit/c", Rate: Rate{Every: time.Second, Burst: 5}})
		var grants []time.Time
		start := time.Now()
		for time.Since(start) < 60*time.Second {
			if _, err := s.acquire(context.Background(), one(prioInterim, b)); err != nil {
				t.Fatal(err)
			}
			grants = append(grants, time.Now())
		}
		w := 5 * time.Second
		for i := 5; i < len(grants); i++ {
			if d := grants[i].Sub(grants[i-5]); d < w {
				t.Fatalf("grants %d and %d are %s apart: 6 calls in a %s window", i-5, i, d, w)
			}
		}
		// 5 per 5 s for a minute is 60; the margin and the spacing of
		// interim edits (which leaves room for final ones) cost a little.
		if len(grants) < 55 {
			t.Errorf("%d grants in a minute, want at least 55 of 60", len(grants))
		}
	})
}

// TestSchedulerSharesFairly checks that live streams sharing a workspace
// budget take turns, and that a final edit goes before interim ones.
func TestSchedulerSharesFairly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScheduler(time.Now)
		ws := s.bucket(Budget{Key: "ws/w", Rate: Rate{Every: 1200 * time.Millisecond, Burst: 10, TokenBucket: true}, Shared: true})
		// Spend the burst first: it would go to whichever stream asks
		// first.
		for range 9 {
			s.acquire(context.Background(), one(prioInterim, ws))
		}
		ctx, cancel := context.WithCancel(context.Background())
		counts := make([]int, 5)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range counts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ok(s.acquire(ctx, one(prioInterim, ws))) {
					mu.Lock()
					counts[i]++
					mu.Unlock()
				}
			}()
		}
		time.Sleep(30 * time.Second) // fake time: lets the streams run
		asked := time.Now()
		if _, err := s.acquire(context.Background(), one(prioFinal, ws)); err != nil {
			t.Fatal(err)
		}
		// The spare call of the shared budget is the final's.
		if lag := time.Since(asked); lag > 0 {
			t.Errorf("final edit waited %s behind interim edits, want at most one call's interval", lag)
		}
		time.Sleep(30 * time.Second)
		cancel()
		wg.Wait()
		lo, hi := counts[0], counts[0]
		total := 0
		for _, c := range counts {
			lo, hi = min(lo, c), max(hi, c)
			total += c
		}
		if hi-lo > 1 {
			t.Errorf("grants per stream %v: unfair", counts)
		}
		// 49 a minute (the margin), less the one the final took.
		if total < 46 || total > 49 {
			t.Errorf("%d interim grants in a minute at 50/min, want about 48", total)
		}
	})
}

// TestSchedulerHonorsRetryAfter checks that a 429's Retry-After empties the
// bucket until it has passed.
func TestSchedulerHonorsRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScheduler(time.Now)
		b := s.bucket(Budget{Key: "global", Rate: Rate{Every: 20 * time.Millisecond, Burst: 50}, Shared: true})
		s.penalize(3*time.Second, b)
		start := time.Now()
		if _, err := s.acquire(context.Background(), one(prioFinal, b)); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 3*time.Second {
			t.Errorf("granted after %s, want after the 3s Retry-After", d)
		}
	})
}

// TestSchedulerCancel checks that a cancelled wait returns its cause and
// leaves the budget to others.
func TestSchedulerCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScheduler(time.Now)
		b := s.bucket(Budget{Key: "c", Rate: Rate{Every: time.Second, Burst: 1}})
		s.acquire(context.Background(), one(prioInterim, b))
		ctx, cancel := context.WithCancelCause(context.Background())
		done := make(chan error)
		go func() {
			_, err := s.acquire(ctx, one(prioInterim, b))
			done <- err
		}()
		synctest.Wait()
		cancel(errStopReaction)
		if err := <-done; err != errStopReaction {
			t.Errorf("cancelled wait returned %v, want its cause", err)
		}
		start := time.Now()
		s.acquire(context.Background(), one(prioInterim, b))
		if d := time.Since(start); d > 1100*time.Millisecond {
			t.Errorf("next grant after %s: the cancelled waiter kept the budget", d)
		}
	})
}

func one(p priority, b *bucket) grant { return grant{prio: p, draws: []draw{{b: b, cost: 1}}} }

func ok(_ time.Duration, err error) bool { return err == nil }

// TestTokenBucketPaces checks, in fake time, that a token bucket grants
// its burst at once, then one call per interval, never more than the
// platform's bucket of the same figures allows.
func TestTokenBucketPaces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScheduler(time.Now)
		r := Rate{Every: 3 * time.Second, Burst: 5, TokenBucket: true}
		b := s.bucket(Budget{Key: "chat.startStream/T", Rate: r})
		var grants []time.Time
		start := time.Now()
		for time.Since(start) < time.Minute {
			s.acquire(context.Background(), one(prioFirst, b))
			grants = append(grants, time.Now())
		}
		// The platform's bucket: replay the grants against it.
		tokens, last := 5.0, start
		for i, g := range grants {
			tokens = min(5, tokens+float64(g.Sub(last))/float64(r.Every))
			last = g
			if tokens < 1 {
				t.Fatalf("grant %d at %s: the platform's bucket is empty", i, g.Sub(start))
			}
			tokens--
		}
		if n := len(grants); n < 5+18 || n > 5+20 {
			t.Errorf("%d grants in a minute, want the burst of 5 and about 19 more", n)
		}
	})
}

// TestReservedStopNeverWaits checks that a promised call is there when it
// is spent, however many others want the budget, and that a promise keeps
// the budget from others: a native stream's stop never waits.
func TestReservedStopNeverWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScheduler(time.Now)
		tier2 := Rate{Every: 3 * time.Second, Burst: 5, TokenBucket: true}
		start := s.bucket(Budget{Key: "start", Rate: tier2})
		stop := s.bucket(Budget{Key: "stop", Rate: tier2})
		// Five streams start at once, each promising its stop.
		for i := range 5 {
			if !s.tryAcquire(grant{prio: prioFirst, draws: []draw{{b: start, cost: 1}}, reserve: []*bucket{stop}}) {
				t.Fatalf("start %d refused with budget left", i)
			}
		}
		// A sixth cannot: its stop could not be paid.
		time.Sleep(10 * time.Second) // fake time: the start budget refills
		if s.tryAcquire(grant{prio: prioFirst, draws: []draw{{b: start, cost: 1}}, reserve: []*bucket{stop}}) {
			t.Fatal("a sixth stream started while five stops were promised")
		}
		// Others wanting the stop budget wait; the promised stops do not.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go s.acquire(ctx, one(prioFinal, stop))
		synctest.Wait()
		for i := range 5 {
			at := time.Now()
			if _, err := s.acquire(context.Background(), grant{prio: prioFinal, draws: []draw{{b: stop, cost: 1}}, release: []*bucket{stop}}); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(at); d > 0 {
				t.Errorf("promised stop %d waited %s", i, d)
			}
		}
	})
}

// TestRetryAfterPausesItsBudgetOnly checks that a 429 pauses the budget of
// the method that drew it, and no other.
func TestRetryAfterPausesItsBudgetOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScheduler(time.Now)
		update := s.bucket(Budget{Key: "chat.update/T", Rate: Rate{Every: 1200 * time.Millisecond, Burst: 10, TokenBucket: true}})
		post := s.bucket(Budget{Key: "chat.postMessage/C", Rate: Rate{Every: time.Second, Burst: 3, TokenBucket: true}})
		s.penalize(30*time.Second, update)
		at := time.Now()
		s.acquire(context.Background(), one(prioFinal, post))
		if d := time.Since(at); d > 0 {
			t.Errorf("post waited %s for chat.update's Retry-After", d)
		}
		s.acquire(context.Background(), one(prioFinal, update))
		if d := time.Since(at); d < 30*time.Second {
			t.Errorf("update granted after %s, want after its 30s Retry-After", d)
		}
	})
}

// TestFirstTextBeatsInterimEdits checks that however many live streams
// wait for a budget, a new reply's first text takes the next call, and the
// spare calls of a shared budget are kept for it.
func TestFirstTextBeatsInterimEdits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScheduler(time.Now)
		ws := s.bucket(Budget{Key: "post/T", Rate: Rate{Every: 100 * time.Millisecond, Burst: 100, TokenBucket: true}, Shared: true})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg sync.WaitGroup
		for range 200 {
			wg.Go(func() {
				for ok(s.acquire(ctx, one(prioInterim, ws))) {
				}
			})
		}
		time.Sleep(20 * time.Second)
		at := time.Now()
		if _, err := s.acquire(context.Background(), one(prioFirst, ws)); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(at); d > 0 {
			t.Errorf("first text waited %s behind 200 streams' interim calls", d)
		}
		cancel()
		wg.Wait()
	})
}

// TestShareDividesBudgets checks that two replicas each get half of a
// budget.
func TestShareDividesBudgets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScheduler(time.Now)
		b := s.bucket(Budget{Key: "chat.update/T", Rate: Rate{Every: 1200 * time.Millisecond, Burst: 10, TokenBucket: true}})
		s.setShare(2)
		n := 0
		start := time.Now()
		for time.Since(start) < time.Minute {
			s.acquire(context.Background(), one(prioFinal, b))
			n++
		}
		// Half: a burst of 5, then 25 a minute.
		if n < 27 || n > 31 {
			t.Errorf("%d grants in a minute with two replicas, want about 29 (half of 10 + 50)", n)
		}
	})
}

// TestEstimateCountsRoomLeft checks, in fake time, that callers waiting
// for a budget with room for all of them do not make the estimate grow by
// a refill each: 20 waiters on a budget of 50 calls per 5 minutes leave the
// next call free at once, while a spent budget is estimated minutes away.
func TestEstimateCountsRoomLeft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScheduler(time.Now)
		threads := s.bucket(Budget{Key: "threads/g", Rate: Rate{Every: 6 * time.Second, Burst: 50}, Shared: true})
		global := s.bucket(Budget{Key: "global", Rate: Rate{Every: 20 * time.Millisecond, Burst: 50}, Shared: true})
		// The bot-wide budget is spent: 20 callers wait on both.
		for range 45 {
			s.acquire(context.Background(), one(prioFirst, global))
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for range 20 {
			go s.acquire(ctx, grant{prio: prioFirst, draws: []draw{{b: threads, cost: 1}, {b: global, cost: 1}}})
		}
		synctest.Wait()
		if got := s.estimate(prioFirst, draw{b: threads, cost: 1}); got > time.Second {
			t.Errorf("threads estimated %s away with 20 of 50 wanted, want within a second", got)
		}
		cancel()
		synctest.Wait()
		// Spend the rest of the thread budget (some waiters got theirs).
		for s.tryAcquire(one(prioFirst, threads)) {
		}
		if got := s.estimate(prioFirst, draw{b: threads, cost: 1}); got < time.Minute {
			t.Errorf("a spent thread budget estimated %s away, want minutes", got)
		}
	})
}

// TestTokenBucketKeepsTravelTime checks, in fake time, that a token bucket
// whose calls took 600 ms from grant to answer keeps back what refills in
// 600 ms: an earlier call that reached the platform late must not meet the
// next one in a bucket the platform has not refilled yet.
func TestTokenBucketKeepsTravelTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScheduler(time.Now)
		b := s.bucket(Budget{Key: "tier3/w", Rate: Rate{Every: 1200 * time.Millisecond, Burst: 10, TokenBucket: true}})
		d := []draw{{b: b, cost: 1}}
		for range 10 {
			s.acquire(context.Background(), one(prioFinal, b))
		}
		fast := s.estimate(prioFinal, d...)
		granted := time.Now()
		time.Sleep(600 * time.Millisecond) // the call travels (fake time)
		s.settle(granted, granted, d)
		slow := s.estimate(prioFinal, d...)
		// Without travel the next call is a refill away less the 600 ms
		// that passed; with it, those 600 ms are kept back.
		if want := fast - 600*time.Millisecond + 600*time.Millisecond; slow < want-50*time.Millisecond {
			t.Errorf("next call in %s after a 600 ms call, want about %s (%s before it)", slow, want, fast)
		}
	})
}

// TestSweepForgetsIdleBuckets checks, in fake time, that a bucket unused
// for a while and full again is forgotten (a bot answers in many
// channels), while one still refilling, or promised a call, is kept.
func TestSweepForgetsIdleBuckets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScheduler(time.Now)
		idle := s.bucket(Budget{Key: "post/C1", Rate: Rate{Every: time.Second, Burst: 5}})
		busy := s.bucket(Budget{Key: "post/C2", Rate: Rate{Every: time.Minute, Burst: 5}})
		promised := s.bucket(Budget{Key: "stop/W1", Rate: Rate{Every: time.Second, Burst: 5, TokenBucket: true}})
		s.acquire(context.Background(), one(prioFinal, idle))
		s.acquire(context.Background(), grant{prio: prioFinal, draws: []draw{{b: promised, cost: 1}}, reserve: []*bucket{promised}})
		time.Sleep(time.Minute)
		s.acquire(context.Background(), one(prioFinal, busy)) // in its window for 5 minutes
		time.Sleep(time.Minute)
		s.sweep(30 * time.Second)
		s.mu.Lock()
		_, keptIdle := s.buckets["post/C1"]
		_, keptBusy := s.buckets["post/C2"]
		_, keptPromised := s.buckets["stop/W1"]
		s.mu.Unlock()
		if keptIdle || !keptBusy || !keptPromised {
			t.Errorf("after a sweep: idle kept %v, busy kept %v, promised kept %v; want false, true, true", keptIdle, keptBusy, keptPromised)
		}
	})
}
