package llm

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/llm/llmtest"
)

// failThen answers the first n chat requests with status (and headers),
// then streams answer; it counts chat requests.
func failThen(n int, status int, header map[string]string, answer string) (http.HandlerFunc, *atomic.Int32) {
	var count atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/models" {
			http.NotFound(w, r)
			return
		}
		if int(count.Add(1)) <= n {
			for k, v := range header {
				w.Header().Set(k, v)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, `{"error":{"message":"try later","type":"server_error"}}`)
			return
		}
		replay([]byte(chunk(answer)+finishChunk+"data: [DONE]\n\n"))(w, r)
	}, &count
}

func TestRetriesBeforeFirstByte(t *testing.T) {
	for _, status := range []int{429, 502, 503, 504} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			h, count := failThen(2, status, nil, "finally")
			srv := newServer(t, h)
			c, clock := newClient(t, srv, nil)
			s, err := c.Stream(t.Context(), userRequest("gpt-4o", "hi"))
			if err != nil {
				t.Fatal(err)
			}
			if r := collect(t, s); r.err != nil || r.text != "finally" {
				t.Fatalf("got %q, %v; want the answer after retries", r.text, r.err)
			}
			if got := count.Load(); got != 3 {
				t.Errorf("got %d requests, want 3", got)
			}
			// Jitter fixed at 0.5: 3/4 of 500ms, then of 1s.
			want := []time.Duration{375 * time.Millisecond, 750 * time.Millisecond}
			if got := clock.Sleeps(); !slices.Equal(got, want) {
				t.Errorf("got backoff %v, want %v", got, want)
			}
		})
	}
}

func TestRetryHonoursRetryAfter(t *testing.T) {
	h, count := failThen(1, 429, map[string]string{"Retry-After": "3"}, "ok")
	srv := newServer(t, h)
	c, clock := newClient(t, srv, nil)
	s, err := c.Stream(t.Context(), userRequest("gpt-4o", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	if r := collect(t, s); r.err != nil {
		t.Fatal(r.err)
	}
	if got, want := clock.Sleeps(), []time.Duration{3 * time.Second}; !slices.Equal(got, want) {
		t.Errorf("got waits %v, want %v", got, want)
	}
	if got := count.Load(); got != 2 {
		t.Errorf("got %d requests, want 2", got)
	}
}

func TestRetryAfterBeyondBudgetReturnsAtOnce(t *testing.T) {
	h, count := failThen(100, 429, map[string]string{"Retry-After": "60"}, "never")
	srv := newServer(t, h)
	c, clock := newClient(t, srv, func(cfg *Config) { cfg.RetryBudget = 30 * time.Second })
	_, err := c.Stream(t.Context(), userRequest("gpt-4o", "hi"))
	var rl *RateLimitError
	if !errors.As(err, &rl) || rl.RetryAfter != time.Minute {
		t.Fatalf("got %v, want a RateLimitError with RetryAfter 1m", err)
	}
	if got := count.Load(); got != 1 {
		t.Errorf("got %d requests, want 1", got)
	}
	if len(clock.Sleeps()) != 0 {
		t.Errorf("waited %v, want no wait", clock.Sleeps())
	}
}

func TestRetryBudgetBoundsAttempts(t *testing.T) {
	h, count := failThen(1000, 503, nil, "never")
	srv := newServer(t, h)
	c, clock := newClient(t, srv, func(cfg *Config) { cfg.RetryBudget = 10 * time.Second })
	_, err := c.Stream(t.Context(), userRequest("gpt-4o", "hi"))
	if !errors.Is(err, ErrServer) {
		t.Fatalf("got %v, want ErrServer", err)
	}
	var total time.Duration
	for _, d := range clock.Sleeps() {
		total += d
	}
	if total > 10*time.Second {
		t.Errorf("waited %s in all, want at most the 10s budget", total)
	}
	// 0.375 + 0.75 + 1.5 + 3 = 5.625s, the next (6s) would overrun.
	if got := count.Load(); got != 5 {
		t.Errorf("got %d requests, want 5", got)
	}
}

func TestNoRetryOnOtherStatuses(t *testing.T) {
	for _, status := range []int{400, 401, 404, 500} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			h, count := failThen(1, status, nil, "never")
			srv := newServer(t, h)
			c, _ := newClient(t, srv, nil)
			if _, err := c.Stream(t.Context(), userRequest("gpt-4o", "hi")); err == nil {
				t.Fatal("got a stream, want an error")
			}
			if got := count.Load(); got != 1 {
				t.Errorf("got %d requests, want 1", got)
			}
		})
	}
}

func TestRetryCutBeforeFirstByte(t *testing.T) {
	// 200 and headers, then the connection drops before any byte.
	var count atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if count.Add(1) == 1 {
			hijackCut()(w, r)
			return
		}
		replay([]byte(chunk("second try")+finishChunk))(w, r)
	})
	c, _ := newClient(t, srv, nil)
	s, err := c.Stream(t.Context(), userRequest("gpt-4o", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	if r := collect(t, s); r.err != nil || r.text != "second try" {
		t.Fatalf("got %q, %v; want the second attempt's answer", r.text, r.err)
	}
	if got := count.Load(); got != 2 {
		t.Errorf("got %d requests, want 2", got)
	}
}

func TestNoRetryAfterText(t *testing.T) {
	var count atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		count.Add(1)
		hijackCut(chunk("Once"))(w, r)
	})
	c, clock := newClient(t, srv, nil)
	s, err := c.Stream(t.Context(), userRequest("gpt-4o", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	r := collect(t, s)
	if !errors.Is(r.err, ErrStreamCut) || r.text != "Once" {
		t.Fatalf("got %q, %v; want the text and ErrStreamCut", r.text, r.err)
	}
	if got := count.Load(); got != 1 || len(clock.Sleeps()) != 0 {
		t.Errorf("got %d requests and waits %v, want 1 request and no wait", got, clock.Sleeps())
	}
}

func TestConnectErrorsAreRetried(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	srv.Close()
	c, clock := newClient(t, srv, func(cfg *Config) { cfg.RetryBudget = 5 * time.Second })
	_, err := c.Stream(t.Context(), userRequest("gpt-4o", "hi"))
	if !errors.Is(err, ErrServer) {
		t.Fatalf("got %v, want ErrServer", err)
	}
	if len(clock.Sleeps()) == 0 {
		t.Error("a refused connection was not retried")
	}
}

// The fake answers 429 or 503 with Retry-After (and retry-after-ms) twice,
// then streams: the client waits what the endpoint asked, no more, no
// less, and the answer arrives.
func TestRetryHonoursTheFakesRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter time.Duration // Retry-After rounds it up to seconds; retry-after-ms is exact
	}{
		{"429 seconds", http.StatusTooManyRequests, 3 * time.Second},
		{"503 seconds", http.StatusServiceUnavailable, 2 * time.Second},
		{"429 milliseconds", http.StatusTooManyRequests, 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := llmtest.NewServer()
			t.Cleanup(srv.Close)
			busy := llmtest.Reply{Status: tt.status, RetryAfter: tt.retryAfter}
			srv.Answer = llmtest.Sequence(busy, busy, llmtest.Reply{Chunks: []string{"after ", "the wait"}})
			c, clock := newClient(t, srv.Server, nil)
			s, err := c.Stream(t.Context(), userRequest("gpt-4o", "hi"))
			if err != nil {
				t.Fatal(err)
			}
			if r := collect(t, s); r.err != nil || r.text != "after the wait" {
				t.Fatalf("got %q, %v; want the answer after two retries", r.text, r.err)
			}
			if got, want := clock.Sleeps(), []time.Duration{tt.retryAfter, tt.retryAfter}; !slices.Equal(got, want) {
				t.Errorf("got waits %v, want %v", got, want)
			}
			if got := len(srv.Requests()); got != 3 {
				t.Errorf("got %d requests, want 3", got)
			}
		})
	}
}
