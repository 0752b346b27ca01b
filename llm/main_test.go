package llm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain refuses any dial that is not to loopback: tests talk to
// httptest servers only.
func TestMain(m *testing.M) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	dialer := &net.Dialer{}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("test dialed %s: only loopback is allowed", addr)
		}
		return dialer.DialContext(ctx, network, addr)
	}
	http.DefaultTransport = t
	os.Exit(m.Run())
}

const testKey = "sk-test-7b1d4e0f9a2c"

// fakeClock is the clock of test clients: sleeping advances it at once, so
// retry backoff costs no real time.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func (f *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sleeps = append(f.sleeps, d)
	f.now = f.now.Add(d)
	return nil
}

func (f *fakeClock) Sleeps() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.sleeps...)
}

// newServer starts an httptest server for h, closed at the end of the test.
// The request body is read before h runs, as a real endpoint does: only
// then does net/http notice a client that goes away (r.Context()).
func newServer(t testing.TB, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(readBodyFirst(h))
	t.Cleanup(srv.Close)
	return srv
}

// newClient returns a client of srv with a fake clock; mod adjusts the
// config.
func newClient(t testing.TB, srv *httptest.Server, mod func(*Config)) (*Client, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	cfg := Config{
		BaseURL:      srv.URL + "/v1",
		APIKey:       testKey,
		DefaultModel: "gpt-4o-mini",
		Now:          clock.Now,
		Logger:       discardLogger(),
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.sleep = clock.Sleep
	c.jitter = func() float64 { return 0.5 }
	return c, clock
}

// readBodyFirst reads the request body before h runs.
func readBodyFirst(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		h(w, r)
	}
}

// capture reads a recorded stream from testdata.
func capture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startSSE writes the headers of a streamed answer.
func startSSE(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
}

// writeFlush writes b and flushes it to the socket.
func writeFlush(w http.ResponseWriter, b []byte) {
	_, _ = w.Write(b)
	w.(http.Flusher).Flush()
}

// replay serves body byte for byte, flushing after every event.
func replay(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		startSSE(w)
		for _, ev := range bytes.SplitAfter(body, []byte("\n\n")) {
			writeFlush(w, ev)
		}
	}
}

// chunk renders one SSE event carrying a content delta.
func chunk(text string) string {
	return fmt.Sprintf("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":null}]}\n\n", text)
}

const finishChunk = "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"

// result is everything a stream delivered.
type result struct {
	text, reasoning, finish string
	calls                   map[int]ToolCallDelta // joined per index
	toolDeltas              []ToolCallDelta       // as received
	usage                   *Usage
	deltas                  int
	err                     error // nil at io.EOF
}

// collect reads s to the end.
func collect(t testing.TB, s *Stream) result {
	t.Helper()
	defer s.Close()
	var r result
	var text, reasoning strings.Builder
	for {
		d, err := s.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				r.err = err
			}
			break
		}
		r.deltas++
		text.WriteString(d.Text)
		reasoning.WriteString(d.Reasoning)
		for _, tc := range d.ToolCalls {
			r.toolDeltas = append(r.toolDeltas, tc)
			if r.calls == nil {
				r.calls = make(map[int]ToolCallDelta)
			}
			c := r.calls[tc.Index]
			c.Index = tc.Index
			if tc.ID != "" {
				c.ID = tc.ID
			}
			if tc.Name != "" {
				c.Name = tc.Name
			}
			c.Arguments += tc.Arguments
			r.calls[tc.Index] = c
		}
		if d.FinishReason != "" {
			if r.finish != "" {
				t.Errorf("finish reason %q reported twice", d.FinishReason)
			}
			r.finish = d.FinishReason
		}
		if d.Usage != nil {
			r.usage = d.Usage
		}
	}
	r.text, r.reasoning = text.String(), reasoning.String()
	return r
}

func userRequest(model, text string) Request {
	return Request{Model: model, Messages: []Message{{Role: RoleUser, Content: text}}}
}

// waitFor waits until cond holds, failing the test after a deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
