package bots

import (
	"context"
	"math"
	"slices"
	"sort"
	"sync"
	"time"
)

// priority orders waiters for the same budget: a final (the whole answer,
// or a part that is done) goes before the first visible text of a reply,
// which goes before interim edits, which go before progress indicators and
// placeholders: those only use budget nothing else wants.
type priority int

const (
	prioSpare priority = iota
	prioInterim
	prioFirst
	prioFinal
)

// bucket is one budget as the engine paces it: a sliding window log or a
// token bucket (see Rate). Both keep reservations: calls promised to a
// reply for later (a native stream's stop), counted as spent until they
// are made, so that the promised call never waits.
type bucket struct {
	rate   Rate // as declared
	shared bool // a workspace's or the bot's: keeps calls for firsts and finals
	share  int  // the replicas the budget is divided between; at least 1
	limit  int  // calls at once: the burst, divided by share
	every  time.Duration

	// Sliding window: grants inside the window, oldest first.
	window time.Duration
	times  []time.Time
	// Token bucket: tokens left at last.
	tokens float64
	last   time.Time

	latency  time.Duration // token bucket: a call's travel, grant to answer, lately
	reserved int           // calls promised and not made yet
	pending  int           // calls first texts still waiting are expected to need
	spare    int           // calls kept for firsts and finals
	spacing  time.Duration // least gap between interim grants (small windows)
	used     time.Time     // last grant
	blocked  time.Time     // nothing until then: the platform's Retry-After
}

// margin widens windows and slows refills a little: a call granted now
// reaches the platform a moment later, and is counted there.
func margin(w time.Duration) time.Duration { return min(w/50, 250*time.Millisecond) }

func newBucket(r Rate, shared bool, share int) *bucket {
	b := &bucket{rate: r, shared: shared}
	b.setShare(max(share, 1))
	return b
}

// setShare divides the budget between n replicas: each gets 1/n of the
// rate and of the burst (at least one call).
func (b *bucket) setShare(n int) {
	b.share = n
	r := b.rate
	if r.Every <= 0 {
		b.limit = 0
		return
	}
	b.limit = max(max(r.Burst, 1)/n, 1)
	b.every = r.Every * time.Duration(n)
	w := b.every * time.Duration(b.limit)
	b.window = w + margin(w)
	if r.TokenBucket {
		if b.last.IsZero() {
			b.tokens = float64(b.limit)
		}
		b.tokens = math.Min(b.tokens, float64(b.limit))
	}
	b.spare, b.spacing = 0, 0
	switch {
	case b.shared && b.limit >= 10:
		// A large shared budget keeps a tenth of its calls for first
		// texts and finals, so a new reply or an answer's end finds one
		// however many streams are live.
		b.spare = b.limit / 10
	case !r.TokenBucket && b.limit >= 3 && b.limit < 10:
		// A small window spends its burst in one go, then nothing for a
		// whole window; interim edits are spread out instead, a little
		// slower than the budget (a quarter call a window), so a first
		// text or a final edit finds a call free at once or soon.
		b.spacing = time.Duration(float64(b.window) / (float64(b.limit) - 0.25))
	}
}

// refill brings a token bucket up to now; its refill is a little slower
// than the platform's (see margin).
func (b *bucket) refill(now time.Time) {
	if !b.rate.TokenBucket || b.limit == 0 {
		return
	}
	if b.last.IsZero() {
		b.last = now
		return
	}
	if d := now.Sub(b.last); d > 0 {
		every := b.every + margin(b.every)
		b.tokens = math.Min(float64(b.limit), b.tokens+float64(d)/float64(every))
		b.last = now
	}
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

// readyAt is when a waiter of priority p may make cost calls, keeping
// reserved calls aside (less own: reservations the waiter itself holds).
func (b *bucket) readyAt(now time.Time, p priority, cost, own int) time.Time {
	t := now
	if b.limit > 0 {
		allowed := b.limit - b.reserved + own
		if p < prioFirst {
			allowed -= b.spare
		}
		if p == prioSpare {
			// Progress and placeholders come after every first text
			// that is still to be shown.
			allowed -= b.pending
		}
		cost = min(max(cost, 1), max(b.limit-b.spare, 1))
		if b.rate.TokenBucket {
			b.refill(now)
			avail := b.tokens - float64(b.limit-allowed)
			// The platform may count an earlier call up to its travel
			// time late, closer to this one: what refills meanwhile is
			// not spent yet (at most what the burst leaves spare).
			every := b.every + margin(b.every)
			avail -= min(float64(b.latency)/float64(every), math.Max(float64(b.limit-cost), 0))
			if avail < float64(cost) {
				t = now.Add(time.Duration((float64(cost) - avail) * float64(every)))
			}
		} else {
			b.prune(now)
			// Calls that must leave the window first.
			if k := len(b.times) + cost - allowed; k > 0 {
				if k > len(b.times) {
					t = now.Add(b.window) // reservations fill it: retry later
				} else {
					t = b.times[k-1].Add(b.window)
				}
			}
		}
		if p < prioFirst && b.spacing > 0 && !b.used.IsZero() {
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

func (b *bucket) take(now time.Time, cost int) {
	b.used = now
	if b.limit == 0 {
		return
	}
	cost = max(cost, 1)
	if b.rate.TokenBucket {
		b.refill(now)
		b.tokens -= float64(cost)
		return
	}
	for range cost {
		b.times = append(b.times, now)
	}
}

// give undoes a take of cost calls.
func (b *bucket) give(cost int) {
	if b.limit == 0 {
		return
	}
	cost = max(cost, 1)
	if b.rate.TokenBucket {
		b.tokens = math.Min(float64(b.limit), b.tokens+float64(cost))
		return
	}
	b.times = b.times[:max(len(b.times)-cost, 0)]
}

// draw is one bucket a waiter takes calls from.
type draw struct {
	b      *bucket
	cost   int
	global bool // the bot-wide budget: a global 429 pauses it alone
}

// waiter is one call waiting for its buckets.
type waiter struct {
	grant
	seq   uint64
	ready chan struct{}
	since time.Time
}

// owns reports how many of b's reservations the waiter spends.
func (w *waiter) owns(b *bucket) int {
	n := 0
	for _, x := range w.release {
		if x == b {
			n++
		}
	}
	return n
}

// readyAt is when every bucket of w lets it go.
func (w *waiter) readyAt(now time.Time) time.Time {
	at := now
	for _, d := range w.draws {
		if r := d.b.readyAt(now, w.prio, d.cost, w.owns(d.b)); r.After(at) {
			at = r
		}
	}
	for _, b := range w.reserve {
		// A promise needs a call free now, as a final would.
		if r := b.readyAt(now, prioFinal, 1, 0); r.After(at) {
			at = r
		}
	}
	return at
}

// scheduler hands out the platforms' budgets. Every call first takes what
// it costs from each budget it draws on. Waiters are served by priority,
// then in arrival order, so live streams that share a budget take turns: a
// stream that just edited queues behind the others. Coalescing is the
// caller's part: it sends its newest text once it holds the calls.
type scheduler struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	waiters []*waiter
	seq     uint64
	share   int // live replicas the budgets are divided between
	now     func() time.Time
}

func newScheduler(now func() time.Time) *scheduler {
	if now == nil {
		now = time.Now
	}
	return &scheduler{buckets: make(map[string]*bucket), share: 1, now: now}
}

// bucket returns the bucket for budget b, creating it unused.
func (s *scheduler) bucket(b Budget) *bucket {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.buckets[b.Key]
	if !ok || k.rate != b.Rate {
		k = newBucket(b.Rate, b.Shared, s.share)
		s.buckets[b.Key] = k
	}
	return k
}

// setShare divides every budget between n live replicas.
func (s *scheduler) setShare(n int) {
	n = max(n, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if n == s.share {
		return
	}
	s.share = n
	for _, b := range s.buckets {
		b.setShare(n)
	}
	s.grantLocked()
}

// grant is what acquire hands out.
type grant struct {
	prio    priority
	draws   []draw
	reserve []*bucket // promise one call of each
	release []*bucket // spend the promises held on these
}

// acquire waits until every bucket lets g go, and takes the calls. It
// returns ctx's error if ctx ends first (and keeps any promise g would
// have spent), and how long it waited.
func (s *scheduler) acquire(ctx context.Context, g grant) (time.Duration, error) {
	w := &waiter{grant: g, ready: make(chan struct{})}
	s.mu.Lock()
	w.since = s.now()
	s.seq++
	w.seq = s.seq
	s.waiters = append(s.waiters, w)
	next := s.grantLocked()
	s.mu.Unlock()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		// Any waiter whose timer fires grants calls to all that can have
		// them; each waiter sleeps until the earliest time a grant may
		// become possible, or until it is granted.
		timer.Reset(time.Hour)
		if !next.IsZero() {
			timer.Reset(next.Sub(s.now()))
		}
		select {
		case <-w.ready:
			return s.now().Sub(w.since), nil
		case <-ctx.Done():
			s.mu.Lock()
			select {
			case <-w.ready:
				// Granted while cancelled: give everything back.
				s.undoLocked(w)
			default:
				s.removeLocked(w)
			}
			s.grantLocked()
			s.mu.Unlock()
			return s.now().Sub(w.since), context.Cause(ctx)
		case <-timer.C:
		}
		s.mu.Lock()
		next = s.grantLocked()
		s.mu.Unlock()
	}
}

// tryAcquire grants g at once if nothing of the same or a higher priority
// waits for its buckets and they let it go now; it reports whether it did.
func (s *scheduler) tryAcquire(g grant) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	w := &waiter{grant: g, ready: make(chan struct{})}
	for _, x := range s.waiters {
		if x.prio < g.prio {
			continue
		}
		for _, d := range w.draws {
			if x.uses(d.b) {
				return false
			}
		}
		for _, b := range w.reserve {
			if x.uses(b) {
				return false
			}
		}
	}
	if w.readyAt(now).After(now) {
		return false
	}
	s.grantOneLocked(w, now)
	return true
}

// expect records that a reply will need draws for its first text: until
// the returned func is called, progress indicators and placeholders leave
// that much of each budget alone.
func (s *scheduler) expect(draws []draw) (done func()) {
	s.mu.Lock()
	for _, d := range draws {
		d.b.pending += d.cost
	}
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, d := range draws {
				d.b.pending = max(d.b.pending-d.cost, 0)
			}
			s.grantLocked()
		})
	}
}

// unreserve gives back promises that will not be spent.
func (s *scheduler) unreserve(buckets ...*bucket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range buckets {
		b.reserved = max(b.reserved-1, 0)
	}
	s.grantLocked()
}

// cost is how many calls w draws on b (a reservation counts one).
func (w *waiter) cost(b *bucket) int {
	n := 0
	for _, d := range w.draws {
		if d.b == b {
			n += max(d.cost, 1)
		}
	}
	for _, x := range w.reserve {
		if x == b {
			n++
		}
	}
	return n
}

func (w *waiter) uses(b *bucket) bool {
	for _, d := range w.draws {
		if d.b == b {
			return true
		}
	}
	for _, x := range w.reserve {
		if x == b {
			return true
		}
	}
	return false
}

func (s *scheduler) grantOneLocked(w *waiter, now time.Time) {
	for _, b := range w.release {
		b.reserved = max(b.reserved-1, 0)
	}
	for _, d := range w.draws {
		d.b.take(now, d.cost)
	}
	for _, b := range w.reserve {
		b.reserved++
	}
	close(w.ready)
}

// undoLocked gives back what a cancelled waiter was granted; the promises
// it spent are held again.
func (s *scheduler) undoLocked(w *waiter) {
	for _, d := range w.draws {
		d.b.give(d.cost)
	}
	for _, b := range w.reserve {
		b.reserved = max(b.reserved-1, 0)
	}
	for _, b := range w.release {
		b.reserved++
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

// grantLocked grants every waiter that can go, in priority then arrival
// order, and returns the earliest time another grant may be possible (zero
// when no waiter is left). A waiter that cannot be served holds back the
// buckets it lacks calls in: a later waiter may not take them, so the
// order is kept per bucket.
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
		blocked := false
		for _, d := range w.draws {
			// A call already promised is paid for: nobody ahead holds it.
			blocked = blocked || held[d.b] && w.owns(d.b) == 0
		}
		for _, b := range w.reserve {
			blocked = blocked || held[b]
		}
		at := w.readyAt(now)
		if !blocked && !at.After(now) {
			s.grantOneLocked(w, now)
			continue
		}
		// Hold back only the buckets this waiter lacks calls in, so that
		// it is served first when they refill, without stalling others on
		// buckets it does not wait for.
		for _, d := range w.draws {
			if d.b.readyAt(now, w.prio, d.cost, w.owns(d.b)).After(now) {
				held[d.b] = true
			}
		}
		for _, b := range w.reserve {
			if b.readyAt(now, prioFinal, 1, 0).After(now) {
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

// estimate is how long a waiter of priority p would wait for draws now:
// until each bucket has the calls free, plus a call's interval for each
// waiter of the same or higher priority already queued on it.
func (s *scheduler) estimate(p priority, draws ...draw) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var most time.Duration
	for _, d := range draws {
		b := d.b
		wait := b.readyAt(now, p, d.cost, 0).Sub(now)
		if b.limit > 0 {
			ahead, aheadCost := 0, 0
			for _, w := range s.waiters {
				if w.prio >= p && w.uses(b) {
					ahead++
					aheadCost += w.cost(b)
				}
			}
			if total := aheadCost + max(d.cost, 1); total <= b.limit-b.spare {
				// The waiters ahead and this call fit in one burst: they
				// wait for the same room, not one after another.
				wait = b.readyAt(now, p, total, 0).Sub(now)
			} else {
				per := b.every
				if !b.rate.TokenBucket {
					per = b.window / time.Duration(b.limit)
				}
				wait += time.Duration(ahead) * per
			}
		}
		most = max(most, wait)
	}
	return most
}

// settle counts calls granted to draws since asked from now, when the
// platform answered them, in the sliding windows among their buckets, and
// notes in token buckets how long the call took from its grant. A
// platform counts a call when it arrives, which under load is well after
// the grant; counting from the answer keeps the next calls a whole window
// after it, so that the engine, not an adapter's safety net, holds them
// back, and holds them in priority order. Grants are interchangeable
// within a window: the earliest since asked is moved.
func (s *scheduler) settle(asked, granted time.Time, draws []draw) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, d := range draws {
		b := d.b
		if b.limit == 0 {
			continue
		}
		if b.rate.TokenBucket {
			// A token bucket keeps no times: it keeps back what refills
			// while a call travels (see readyAt), the longest travel
			// seen lately.
			b.latency = max(now.Sub(granted), b.latency*15/16)
			continue
		}
		for range max(d.cost, 1) {
			i, _ := slices.BinarySearchFunc(b.times, asked, func(t, at time.Time) int { return t.Compare(at) })
			if i == len(b.times) {
				break
			}
			copy(b.times[i:], b.times[i+1:])
			b.times[len(b.times)-1] = now
		}
	}
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
		b.refill(now)
		full := len(b.times) == 0 && (!b.rate.TokenBucket || b.tokens >= float64(b.limit))
		if now.Sub(b.used) > idle && full && b.reserved == 0 && b.pending == 0 && !b.blocked.After(now) {
			delete(s.buckets, k)
		}
	}
}
