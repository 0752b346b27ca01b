package bots

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"
)

// priority orders waiters for the same budget: a final edit (the whole
// answer, or a part that is done) goes before the first visible text of a
// reply, which goes before a progress indicator, which goes before interim
// edits.
type priority int

const (
	prioInterim priority = iota
	prioProgress
	prioFirst
	prioFinal
)

// bucket limits calls to at most limit in any window of time: a sliding
// window log. A platform's own limiter may be a fixed window that starts at
// any moment (Discord's buckets) or a token bucket (Slack's tiers); a
// sliding window of the same size never exceeds either, so a steady stream
// draws no 429, and it still allows the whole budget.
type bucket struct {
	window  time.Duration
	limit   int
	times   []time.Time // grants inside the window, oldest first
	blocked time.Time   // empty until then: the platform's Retry-After
	// reserve calls are kept for final edits and first texts: interim
	// edits may not spend the last ones of a budget shared by many live
	// streams, so an answer's end is shown at once.
	reserve int
	spacing time.Duration // least gap between interim grants
	used    time.Time     // last grant
}

// margin widens windows a little: a call granted now reaches the platform
// a moment later, and its window starts there.
func margin(w time.Duration) time.Duration { return min(w/50, 250*time.Millisecond) }

func newBucket(r Rate, shared bool) *bucket {
	if r.Every <= 0 {
		return &bucket{}
	}
	limit := max(r.Burst, 1)
	w := r.Every * time.Duration(limit)
	b := &bucket{window: w + margin(w), limit: limit}
	switch {
	case shared && limit >= 10:
		// A large shared budget (the whole bot's) keeps one call in
		// reserve for first texts and final edits.
		b.reserve = 1
	case limit >= 3 && limit < 10:
		// A small budget spends its burst in one go, then nothing for a
		// whole window; interim edits are spread out instead, a little
		// slower than the budget (a quarter call a window), so a first
		// text or a final edit finds a call free at once or soon.
		b.spacing = time.Duration(float64(b.window) / (float64(limit) - 0.25))
	}
	return b
}

func (b *bucket) prune(now time.Time) {
	i := 0
	for i < len(b.times) && !b.times[i].Add(b.window).After(now) {
		i++
	}
	if i > 0 {
		b.times = append(b.times[:0], b.times[i:]...)
	}
}

// readyAt is when a waiter of priority p may call.
func (b *bucket) readyAt(now time.Time, p priority) time.Time {
	t := now
	if b.limit > 0 {
		b.prune(now)
		allowed := b.limit
		if p == prioInterim {
			allowed -= b.reserve
		}
		if n := len(b.times); n >= allowed {
			t = b.times[n-allowed].Add(b.window)
		}
		if p == prioInterim && b.spacing > 0 && !b.used.IsZero() {
			if next := b.used.Add(b.spacing); next.After(t) {
				t = next
			}
		}
	}
	if b.blocked.After(t) {
		t = b.blocked
	}
	return t
}

func (b *bucket) take(now time.Time) {
	b.used = now
	if b.limit > 0 {
		b.times = append(b.times, now)
	}
}

// give undoes the newest take.
func (b *bucket) give() {
	if n := len(b.times); n > 0 {
		b.times = b.times[:n-1]
	}
}

// waiter is one call waiting for tokens from a set of buckets.
type waiter struct {
	prio    priority
	seq     uint64
	buckets []*bucket
	ready   chan struct{}
}

// scheduler hands out the platforms' rate budgets. Every call that creates
// or edits a message first takes a call from each bucket it draws on
// (channel, workspace, the whole bot). Waiters are served by priority, then
// in arrival order, so live streams that share a budget take turns: a
// stream that just edited queues behind the others. Coalescing is the
// caller's part: it sends its newest text once it holds the tokens.
type scheduler struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	waiters []*waiter
	seq     uint64
	now     func() time.Time
}

func newScheduler(now func() time.Time) *scheduler {
	if now == nil {
		now = time.Now
	}
	return &scheduler{buckets: make(map[string]*bucket), now: now}
}

// bucket returns the bucket named key with rate r, creating it unused.
// A shared bucket (a workspace's, the whole bot's) keeps a reserve for
// final edits.
func (s *scheduler) bucket(key string, r Rate, shared bool) *bucket {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.buckets[key]
	if !ok {
		b = newBucket(r, shared)
		s.buckets[key] = b
	}
	return b
}

// acquire waits until every bucket has a token for a waiter of priority p,
// and takes them. It returns ctx's error if ctx ends first.
func (s *scheduler) acquire(ctx context.Context, p priority, buckets ...*bucket) error {
	w := &waiter{prio: p, buckets: buckets, ready: make(chan struct{})}
	s.mu.Lock()
	s.seq++
	w.seq = s.seq
	s.waiters = append(s.waiters, w)
	next := s.grantLocked()
	s.mu.Unlock()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		// Any waiter whose timer fires grants tokens to all that can have
		// them; each waiter sleeps until the earliest time a grant may
		// become possible, or until it is granted.
		timer.Reset(time.Hour)
		if !next.IsZero() {
			timer.Reset(next.Sub(s.now()))
		}
		select {
		case <-w.ready:
			return nil
		case <-ctx.Done():
			s.mu.Lock()
			select {
			case <-w.ready:
				// Granted while cancelled: give the calls back.
				for _, b := range w.buckets {
					b.give()
				}
			default:
				s.removeLocked(w)
			}
			s.grantLocked()
			s.mu.Unlock()
			return context.Cause(ctx)
		case <-timer.C:
		}
		s.mu.Lock()
		next = s.grantLocked()
		s.mu.Unlock()
	}
}

func (s *scheduler) removeLocked(w *waiter) {
	for i, x := range s.waiters {
		if x == w {
			s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
			return
		}
	}
}

// grantLocked grants tokens to every waiter that can have them, in priority
// then arrival order, and returns the earliest time another grant may be
// possible (zero when no waiter is left). A waiter that cannot be served
// holds back the buckets it lacks tokens in: a later waiter may not take
// them, so the order is kept per bucket.
func (s *scheduler) grantLocked() time.Time {
	if len(s.waiters) == 0 {
		return time.Time{}
	}
	now := s.now()
	sort.SliceStable(s.waiters, func(i, j int) bool {
		a, b := s.waiters[i], s.waiters[j]
		if a.prio != b.prio {
			return a.prio > b.prio
		}
		return a.seq < b.seq
	})
	held := make(map[*bucket]bool)
	var next time.Time
	kept := s.waiters[:0]
	for _, w := range s.waiters {
		ok := true
		var at time.Time
		for _, b := range w.buckets {
			r := b.readyAt(now, w.prio)
			if held[b] || r.After(now) {
				ok = false
			}
			if r.After(at) {
				at = r
			}
		}
		if ok {
			for _, b := range w.buckets {
				b.take(now)
			}
			close(w.ready)
			continue
		}
		// Hold back only the buckets this waiter lacks tokens in, so that
		// it is served first when they refill, without stalling others on
		// buckets it does not wait for.
		for _, b := range w.buckets {
			if b.readyAt(now, w.prio).After(now) {
				held[b] = true
			}
		}
		if at.After(now) && (next.IsZero() || at.Before(next)) {
			next = at
		}
		kept = append(kept, w)
	}
	for i := len(kept); i < len(s.waiters); i++ {
		s.waiters[i] = nil
	}
	s.waiters = kept
	if next.IsZero() && len(s.waiters) > 0 {
		// Every remaining waiter is held back by one ahead of it; that one
		// has a time, so this is only a safety net.
		next = now.Add(10 * time.Millisecond)
	}
	return next
}

// estimate is how long a waiter of priority p would wait for buckets now:
// until each has a call free, plus a call's interval for each waiter of
// the same or higher priority already queued on it.
func (s *scheduler) estimate(p priority, buckets ...*bucket) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var most time.Duration
	for _, b := range buckets {
		d := b.readyAt(now, p).Sub(now)
		if b.limit > 0 {
			ahead := 0
			for _, w := range s.waiters {
				if w.prio >= p && slices.Contains(w.buckets, b) {
					ahead++
				}
			}
			d += time.Duration(ahead) * b.window / time.Duration(b.limit)
		}
		most = max(most, d)
	}
	return most
}

// penalize empties buckets until now+d: the platform answered 429.
func (s *scheduler) penalize(d time.Duration, buckets ...*bucket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	until := s.now().Add(d)
	for _, b := range buckets {
		if until.After(b.blocked) {
			b.blocked = until
		}
	}
}

// sweep forgets buckets unused for a while and full again, so that a
// long-running bot does not keep one per channel it ever answered in.
func (s *scheduler) sweep(idle time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, b := range s.buckets {
		b.prune(now)
		if now.Sub(b.used) > idle && len(b.times) == 0 && !b.blocked.After(now) {
			delete(s.buckets, k)
		}
	}
}
