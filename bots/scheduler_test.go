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
		b := s.bucket("edit/c", Rate{Every: time.Second, Burst: 5}, false)
		var grants []time.Time
		start := time.Now()
		for time.Since(start) < 60*time.Second {
			if err := s.acquire(context.Background(), prioInterim, b); err != nil {
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
		ws := s.bucket("ws/w", PerMinute(50, 3), true)
		ctx, cancel := context.WithCancel(context.Background())
		counts := make([]int, 5)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range counts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for s.acquire(ctx, prioInterim, ws) == nil {
					mu.Lock()
					counts[i]++
					mu.Unlock()
				}
			}()
		}
		time.Sleep(30 * time.Second) // fake time: lets the streams run
		asked := time.Now()
		if err := s.acquire(context.Background(), prioFinal, ws); err != nil {
			t.Fatal(err)
		}
		if lag := time.Since(asked); lag > 1300*time.Millisecond {
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
		// The first grants go to whichever stream asks first: allow that.
		if hi-lo > 2 {
			t.Errorf("grants per stream %v: unfair", counts)
		}
		if total < 44 || total > 51 {
			t.Errorf("%d interim grants in a minute at 50/min, want about 48", total)
		}
	})
}

// TestSchedulerHonorsRetryAfter checks that a 429's Retry-After empties the
// bucket until it has passed.
func TestSchedulerHonorsRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScheduler(time.Now)
		b := s.bucket("global", Rate{Every: 20 * time.Millisecond, Burst: 50}, true)
		s.penalize(3*time.Second, b)
		start := time.Now()
		if err := s.acquire(context.Background(), prioFinal, b); err != nil {
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
		b := s.bucket("c", Rate{Every: time.Second, Burst: 1}, false)
		s.acquire(context.Background(), prioInterim, b)
		ctx, cancel := context.WithCancelCause(context.Background())
		done := make(chan error)
		go func() { done <- s.acquire(ctx, prioInterim, b) }()
		synctest.Wait()
		cancel(errStopReaction)
		if err := <-done; err != errStopReaction {
			t.Errorf("cancelled wait returned %v, want its cause", err)
		}
		start := time.Now()
		s.acquire(context.Background(), prioInterim, b)
		if d := time.Since(start); d > 1100*time.Millisecond {
			t.Errorf("next grant after %s: the cancelled waiter kept the budget", d)
		}
	})
}
