package discord

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Discord's global limit: 50 requests a second for the whole bot, outside
// interaction endpoints.
const (
	globalLimit  = 50
	globalWindow = time.Second
	// maxBuckets bounds the bucket table; idle buckets are pruned past it.
	maxBuckets = 4096
)

// limiter paces REST calls to Discord's own rate-limit headers, which are
// the truth: X-RateLimit-Bucket names the bucket a route belongs to (create
// and edit in one channel share one), X-RateLimit-Remaining and
// X-RateLimit-Reset-After say how much room is left and for how long.
//
// It exists because discordgo keys its buckets by URL path, ignores
// X-RateLimit-Bucket, and waits for a spent bucket with an uncancellable
// time.Sleep while holding a mutex. The limiter waits instead, honouring the
// caller's context, before the request reaches discordgo's bucket; the
// transport then hides the headers from discordgo so that its sleep never
// runs.
type limiter struct {
	now func() time.Time

	mu          sync.Mutex
	hashes      map[string]string  // "METHOD template" -> X-RateLimit-Bucket
	buckets     map[string]*bucket // bucket key -> state
	globalUntil time.Time          // a global 429 holds every call until then
	// sent holds the last globalLimit calls counted against the global
	// limit (a ring, oldest at next): when each was answered, or when it
	// was reserved while it is in flight.
	sent []time.Time
	next int
}

// bucket is what is known of one Discord bucket.
type bucket struct {
	known     bool      // headers were seen
	remaining int       // calls left in the window, less reservations since
	limit     int       // calls per window
	reset     time.Time // when the window ends
	inflight  int       // reserved calls not yet answered
}

// ticket is one reserved call.
type ticket struct {
	b       *bucket
	key     string // the bucket's key when reserved
	route   string // "METHOD template"
	major   string
	settled bool
	// slot is the call's place in the limiter's ring of global sends
	// (-1: not global), stamped with sentAt when reserved.
	slot   int
	sentAt time.Time
}

func newLimiter(now func() time.Time) *limiter {
	if now == nil {
		now = time.Now
	}
	return &limiter{
		now:     now,
		hashes:  make(map[string]string),
		buckets: make(map[string]*bucket),
		sent:    make([]time.Time, globalLimit),
	}
}

// route splits a path relative to the API root ("channels/1/messages/2")
// into its template ("channels/:major/messages/:id") and its major
// parameter: Discord keeps one bucket per major parameter (channel, guild,
// webhook with its token, interaction).
func route(method, rel string) (key, major string, global bool) {
	rel, _, _ = strings.Cut(rel, "?")
	segs := strings.Split(strings.Trim(rel, "/"), "/")
	global = true
	if len(segs) > 0 {
		switch segs[0] {
		case "channels", "guilds":
			if len(segs) > 1 {
				major = segs[1]
				segs[1] = ":major"
			}
		case "webhooks", "interactions":
			// Interaction responses and their webhooks are exempt from the
			// global limit; webhooks use id and token together as major.
			if segs[0] == "interactions" {
				global = false
			}
			if len(segs) > 2 {
				major = segs[1] + "/" + segs[2]
				segs[1], segs[2] = ":major", ":token"
				if segs[0] == "webhooks" {
					global = false
				}
			} else if len(segs) > 1 {
				major = segs[1]
				segs[1] = ":major"
			}
		}
	}
	for i, s := range segs {
		if i > 0 && isSnowflake(s) {
			segs[i] = ":id"
		}
	}
	// Reactions name an emoji in the path: one route for all of them.
	for i := range segs {
		if segs[i] == "reactions" && i+1 < len(segs) {
			segs[i+1] = ":emoji"
		}
	}
	return method + " " + strings.Join(segs, "/"), major, global
}

func isSnowflake(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// keyLocked returns the bucket key of a route: its learned bucket hash with
// the major parameter, or the route itself until the hash is known.
func (l *limiter) keyLocked(routeKey, major string) string {
	if h, ok := l.hashes[routeKey]; ok {
		return h + "|" + major
	}
	return routeKey + "|" + major
}

func (l *limiter) bucketLocked(key string) *bucket {
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.pruneLocked()
		}
		b = &bucket{}
		l.buckets[key] = b
	}
	return b
}

// pruneLocked drops buckets that hold nothing worth keeping: no call in
// flight and a window already over.
func (l *limiter) pruneLocked() {
	now := l.now()
	for k, b := range l.buckets {
		if b.inflight == 0 && !now.Before(b.reset) {
			delete(l.buckets, k)
		}
	}
}

// acquire waits until a call of method on rel may be sent, and reserves it.
// It returns ctx's error if ctx ends first.
func (l *limiter) acquire(ctx context.Context, method, rel string) (*ticket, error) {
	routeKey, major, global := route(method, rel)
	for {
		l.mu.Lock()
		now := l.now()
		var wait time.Duration
		if now.Before(l.globalUntil) {
			wait = l.globalUntil.Sub(now)
		}
		key := l.keyLocked(routeKey, major)
		b := l.bucketLocked(key)
		if wait == 0 && b.known && b.remaining <= 0 {
			if now.Before(b.reset) {
				wait = b.reset.Sub(now)
			} else {
				// The window is over: Discord refilled the bucket. Calls
				// still in flight may count against the new window.
				b.remaining = max(b.limit, 1) - b.inflight
				if b.remaining <= 0 {
					b.remaining = 1
				}
			}
		}
		if wait == 0 && global {
			// The oldest of the last globalLimit sends must be a window old.
			if oldest := l.sent[l.next]; !oldest.IsZero() && now.Sub(oldest) < globalWindow {
				wait = globalWindow - now.Sub(oldest)
			}
		}
		if wait == 0 {
			if b.known {
				b.remaining--
			}
			b.inflight++
			tk := &ticket{b: b, key: key, route: routeKey, major: major, slot: -1}
			if global {
				l.sent[l.next] = now
				tk.slot, tk.sentAt = l.next, now
				l.next = (l.next + 1) % len(l.sent)
			}
			l.mu.Unlock()
			return tk, nil
		}
		l.mu.Unlock()
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// idle reports whether no call counted against the global limit was sent
// in the last window.
func (l *limiter) idle() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, t := range l.sent {
		if !t.IsZero() && now.Sub(t) < globalWindow {
			return false
		}
	}
	return true
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// cancel returns a reservation whose call was never sent.
func (l *limiter) cancel(t *ticket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.settled {
		return
	}
	t.settled = true
	t.b.inflight--
	if t.b.known {
		t.b.remaining++
	}
}

// limited describes a 429.
type limited struct {
	retryAfter time.Duration
	global     bool
}

// observe records a response's rate-limit headers (and, for a 429, its
// body) against the reserved call.
func (l *limiter) observe(t *ticket, status int, h http.Header, body []byte) *limited {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !t.settled {
		t.settled = true
		t.b.inflight--
	}
	// Discord counted the call when it arrived, some time after it was
	// reserved (a connection to open, a slower request before it): the
	// answer's time is a bound it cannot precede. Counting the global
	// window from there keeps the next calls from arriving within one
	// window of it, which the reservation's time alone does not (a burst
	// at the limit then draws global 429s).
	if t.slot >= 0 && l.sent[t.slot].Equal(t.sentAt) {
		l.sent[t.slot] = now
	}
	b := t.b
	if hash := h.Get("X-RateLimit-Bucket"); hash != "" {
		l.hashes[t.route] = hash
		if key := hash + "|" + t.major; key != t.key {
			b = l.bucketLocked(key)
		}
	}
	remaining, errR := strconv.Atoi(h.Get("X-RateLimit-Remaining"))
	after, errA := parseSeconds(h.Get("X-RateLimit-Reset-After"))
	if errR == nil && errA == nil {
		b.known = true
		b.remaining = remaining - b.inflight
		b.reset = now.Add(after)
		if n, err := strconv.Atoi(h.Get("X-RateLimit-Limit")); err == nil {
			b.limit = n
		}
	}
	if status != http.StatusTooManyRequests {
		return nil
	}
	lim := parse429(h, body)
	until := now.Add(lim.retryAfter)
	if lim.global {
		if until.After(l.globalUntil) {
			l.globalUntil = until
		}
		return lim
	}
	b.known = true
	b.remaining = 0
	if until.After(b.reset) {
		b.reset = until
	}
	return lim
}

// parse429 reads a 429's wait and scope: the JSON body's retry_after
// (seconds, fractional) and global, else the Retry-After header.
func parse429(h http.Header, body []byte) *limited {
	lim := &limited{}
	var v struct {
		RetryAfter *float64 `json:"retry_after"`
		Global     bool     `json:"global"`
	}
	if json.Unmarshal(body, &v) == nil && v.RetryAfter != nil && *v.RetryAfter >= 0 {
		lim.retryAfter = secondsDuration(*v.RetryAfter)
	} else if d, err := parseSeconds(h.Get("Retry-After")); err == nil {
		lim.retryAfter = d
	} else if d, err := parseSeconds(h.Get("X-RateLimit-Reset-After")); err == nil {
		lim.retryAfter = d
	} else {
		lim.retryAfter = time.Second // Discord said nothing: a cautious guess
	}
	lim.global = v.Global || h.Get("X-RateLimit-Global") != "" ||
		strings.EqualFold(h.Get("X-RateLimit-Scope"), "global")
	return lim
}

func parseSeconds(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, err
	}
	if f < 0 || math.IsNaN(f) || math.IsInf(f, 0) || f > 24*3600 {
		return 0, strconv.ErrRange
	}
	return secondsDuration(f), nil
}

func secondsDuration(f float64) time.Duration {
	if f > 24*3600 || math.IsNaN(f) {
		f = 24 * 3600
	}
	return time.Duration(f * float64(time.Second))
}
