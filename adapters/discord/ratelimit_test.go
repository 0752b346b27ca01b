package discord

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"testing/synctest"
	"time"
)

func TestRoute(t *testing.T) {
	tests := []struct {
		method, rel string
		key, major  string
		global      bool
	}{
		{"POST", "channels/1/messages", "POST channels/:major/messages", "1", true},
		{"PATCH", "channels/1/messages/22", "PATCH channels/:major/messages/:id", "1", true},
		{"GET", "channels/1/messages?after=5&limit=100", "GET channels/:major/messages", "1", true},
		{"POST", "channels/1/messages/22/threads", "POST channels/:major/messages/:id/threads", "1", true},
		{"POST", "interactions/9/tok/callback", "POST interactions/:major/:token/callback", "9/tok", false},
		{"PATCH", "webhooks/3/tok/messages/@original", "PATCH webhooks/:major/:token/messages/@original", "3/tok", false},
		{"GET", "users/@me", "GET users/@me", "", true},
		{"PUT", "applications/7/guilds/8/commands", "PUT applications/:id/guilds/:id/commands", "", true},
	}
	for _, tt := range tests {
		key, major, global := route(tt.method, tt.rel)
		if key != tt.key || major != tt.major || global != tt.global {
			t.Errorf("route(%s %s) = %q %q %v, want %q %q %v", tt.method, tt.rel, key, major, global, tt.key, tt.major, tt.global)
		}
	}
}

// headers are a bucket's rate-limit headers.
func headers(bucket string, remaining int, resetAfter string) http.Header {
	h := http.Header{}
	h.Set("X-RateLimit-Bucket", bucket)
	h.Set("X-RateLimit-Limit", "5")
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Reset-After", resetAfter)
	return h
}

func TestLimiterWaitsForSharedBucket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(time.Now)
		ctx := t.Context()
		// A create reports the bucket; an edit in the same channel learns
		// it is the same one only from its own response, then both share.
		tk, _ := l.acquire(ctx, "POST", "channels/1/messages")
		l.observe(tk, 200, headers("abc", 1, "5"), nil)
		tk, _ = l.acquire(ctx, "PATCH", "channels/1/messages/9")
		l.observe(tk, 200, headers("abc", 0, "4.5"), nil)

		start := time.Now()
		tk, err := l.acquire(ctx, "POST", "channels/1/messages")
		if err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited != 4500*time.Millisecond {
			t.Errorf("waited %s for a spent bucket, want its reset in 4.5s", waited)
		}
		l.observe(tk, 200, headers("abc", 4, "5"), nil)

		// Another channel has its own bucket.
		start = time.Now()
		if _, err := l.acquire(ctx, "POST", "channels/2/messages"); err != nil || time.Since(start) != 0 {
			t.Errorf("other channel waited %s (%v)", time.Since(start), err)
		}
	})
}

func TestLimiterWaitHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(time.Now)
		tk, _ := l.acquire(t.Context(), "PATCH", "channels/1/messages/9")
		l.observe(tk, 200, headers("abc", 0, "60"), nil)
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		_, err := l.acquire(ctx, "PATCH", "channels/1/messages/9")
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != time.Second {
			t.Errorf("got %v after %s, want the context's deadline after 1s", err, time.Since(start))
		}
	})
}

func TestLimiterGlobal429HoldsEveryRoute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(time.Now)
		tk, _ := l.acquire(t.Context(), "POST", "channels/1/messages")
		h := http.Header{}
		h.Set("X-RateLimit-Global", "true")
		lim := l.observe(tk, 429, h, []byte(`{"message":"slow down","retry_after":2.5,"global":true}`))
		if lim == nil || !lim.global || lim.retryAfter != 2500*time.Millisecond {
			t.Fatalf("got %+v, want a global 2.5s limit", lim)
		}
		start := time.Now()
		if _, err := l.acquire(t.Context(), "GET", "channels/7"); err != nil || time.Since(start) != 2500*time.Millisecond {
			t.Errorf("waited %s (%v), want 2.5s", time.Since(start), err)
		}
	})
}

func TestLimiterPacesGlobalLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(time.Now)
		start := time.Now()
		for i := range globalLimit + 1 {
			tk, err := l.acquire(t.Context(), "GET", "channels/"+strconv.Itoa(i%10)+"/messages")
			if err != nil {
				t.Fatal(err)
			}
			l.observe(tk, 200, http.Header{}, nil)
		}
		if waited := time.Since(start); waited != globalWindow {
			t.Errorf("call %d waited %s, want one window", globalLimit+1, waited)
		}
		// Interactions do not count.
		start = time.Now()
		for range globalLimit {
			tk, _ := l.acquire(t.Context(), "POST", "interactions/1/t/callback")
			l.observe(tk, 204, http.Header{}, nil)
		}
		if time.Since(start) != 0 {
			t.Error("interaction responses waited for the global limit")
		}
	})
}

func TestParse429(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		body   string
		want   limited
	}{
		{"json body", http.Header{}, `{"retry_after":0.25}`, limited{retryAfter: 250 * time.Millisecond}},
		{"header only", http.Header{"Retry-After": {"3"}}, `<html>`, limited{retryAfter: 3 * time.Second}},
		{"scope global", http.Header{"X-Ratelimit-Scope": {"global"}}, `{"retry_after":1}`, limited{retryAfter: time.Second, global: true}},
		{"nothing said", http.Header{}, ``, limited{retryAfter: time.Second}},
		{"nonsense", http.Header{"Retry-After": {"-5"}}, `{"retry_after":-1}`, limited{retryAfter: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parse429(tt.header, []byte(tt.body)); *got != tt.want {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

// BenchmarkLimiter measures the limiter's cost per REST call (reserve and
// record the headers), on buckets that never run out.
func BenchmarkLimiter(b *testing.B) {
	l := newLimiter(time.Now)
	h := headers("abc", 4, "5")
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tk, err := l.acquire(ctx, "PATCH", "channels/"+strconv.Itoa(i%1000)+"/messages/1")
		if err != nil {
			b.Fatal(err)
		}
		l.observe(tk, 200, h, nil)
		// Spread calls over time so that the global window never fills.
		l.sent[l.next] = time.Time{}
	}
}
