package llm

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// The timeout tests run in a synctest bubble: fake time, so real timeouts
// (90s idle, minutes of video progress) take no time and do not depend on
// the machine's load. A bubble cannot wait on real sockets, so the HTTP
// server and client talk over in-memory pipes (net.Pipe); the rest of the
// path (net/http, openai-go, the SSE decoder) is the real one.

// pipeListener is a net.Listener whose connections are net.Pipe ends.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// pipeClient serves h over in-memory pipes and returns a client of it with
// mod applied to its config. Call it inside a bubble; it stops the server
// when the bubble's test ends.
func pipeClient(t *testing.T, h http.HandlerFunc, mod func(*Config)) *Client {
	t.Helper()
	l := newPipeListener()
	srv := &http.Server{Handler: readBodyFirst(h)}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(l)
	}()
	tr := &http.Transport{DialContext: l.dial}
	t.Cleanup(func() {
		_ = srv.Close()
		tr.CloseIdleConnections()
		<-served
	})
	cfg := Config{
		BaseURL:    "http://llm.test/v1",
		APIKey:     testKey,
		HTTPClient: &http.Client{Transport: tr},
		Logger:     discardLogger(),
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// streamFor opens a stream for model, failing the test on error.
func streamFor(t *testing.T, c *Client, model string) *Stream {
	t.Helper()
	s, err := c.Stream(t.Context(), userRequest(model, "hi"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sleepOrDone pauses a handler for d of (fake) time, or until the client
// goes away; it reports whether to carry on.
func sleepOrDone(r *http.Request, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-r.Context().Done():
		return false
	}
}

func TestIdleTimeoutFiresOnSilence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := pipeClient(t, func(w http.ResponseWriter, r *http.Request) {
			startSSE(w)
			writeFlush(w, []byte(chunk("thinking...")))
			<-r.Context().Done()
		}, nil)
		start := time.Now()
		r := collect(t, streamFor(t, c, "gpt-4o"))
		if !errors.Is(r.err, ErrTimeout) {
			t.Fatalf("got %v, want ErrTimeout", r.err)
		}
		if r.text != "thinking..." {
			t.Errorf("got text %q, want the text before the silence", r.text)
		}
		if got := time.Since(start); got != DefaultIdleTimeout {
			t.Errorf("gave up after %s of silence, want the default %s", got, DefaultIdleTimeout)
		}
	})
}

func TestKeepAliveCommentsHoldIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A video model: queued, then `: PING` every 15s for 10 minutes,
		// progress lines now and then, then the link.
		c := pipeClient(t, func(w http.ResponseWriter, r *http.Request) {
			startSSE(w)
			writeFlush(w, []byte(chunk("> queued\n")))
			for i := 1; i <= 40; i++ {
				if !sleepOrDone(r, 15*time.Second) {
					return
				}
				writeFlush(w, []byte(": PING\n\n"))
				if i%10 == 0 {
					writeFlush(w, []byte(chunk("progress "+string(rune('0'+i/10))+"0%\n")))
				}
			}
			writeFlush(w, []byte(chunk("[video](https://cdn.example.com/v.mp4)")+finishChunk+"data: [DONE]\n\n"))
		}, nil)
		r := collect(t, streamFor(t, c, "sora-2"))
		if r.err != nil {
			t.Fatalf("got %v, want the whole answer", r.err)
		}
		want := "> queued\nprogress 10%\nprogress 20%\nprogress 30%\nprogress 40%\n[video](https://cdn.example.com/v.mp4)"
		if r.text != want {
			t.Errorf("got %q, want %q", r.text, want)
		}
	})
}

func TestModelIdleTimeoutOverride(t *testing.T) {
	// Progress every 3 minutes and no keep-alives: too slow for the default
	// idle timeout, fine for the sora-* override.
	slow := func(w http.ResponseWriter, r *http.Request) {
		startSSE(w)
		for _, p := range []string{"progress 50%\n", "progress 100%\n"} {
			writeFlush(w, []byte(chunk(p)))
			if !sleepOrDone(r, 3*time.Minute) {
				return
			}
		}
		writeFlush(w, []byte(finishChunk))
	}
	cfg := func(cfg *Config) {
		cfg.ModelIdleTimeouts = map[string]time.Duration{"SORA-*": 10 * time.Minute, "*": time.Second}
	}
	synctest.Test(t, func(t *testing.T) {
		c := pipeClient(t, slow, cfg)
		if r := collect(t, streamFor(t, c, "sora-2")); r.err != nil || r.text != "progress 50%\nprogress 100%\n" {
			t.Errorf("sora-2: got %q, %v; want the whole answer", r.text, r.err)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		c := pipeClient(t, slow, func(cfg *Config) { cfg.ModelIdleTimeouts = map[string]time.Duration{"sora-*": 10 * time.Minute} })
		if r := collect(t, streamFor(t, c, "gpt-4o")); !errors.Is(r.err, ErrTimeout) {
			t.Errorf("gpt-4o: got %v, want ErrTimeout", r.err)
		}
	})
}

func TestFirstTokenTimeout(t *testing.T) {
	tests := []struct {
		name    string
		headers bool // the server answers with headers, then nothing
	}{
		{"no headers", false},
		{"headers but no byte", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := pipeClient(t, func(w http.ResponseWriter, r *http.Request) {
					if tt.headers {
						startSSE(w)
					}
					<-r.Context().Done()
				}, nil)
				start := time.Now()
				s, err := c.Stream(t.Context(), userRequest("gpt-4o", "hi"))
				if err == nil {
					err = collect(t, s).err
				}
				if !errors.Is(err, ErrTimeout) {
					t.Fatalf("got %v, want ErrTimeout", err)
				}
				if got := time.Since(start); got != DefaultFirstTokenTimeout {
					t.Errorf("gave up after %s, want the default %s", got, DefaultFirstTokenTimeout)
				}
			})
		})
	}
}

func TestFirstByteStopsFirstTokenTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A keep-alive within the first-token timeout, then the answer after
		// it: the idle timeout governs from the first byte on.
		c := pipeClient(t, func(w http.ResponseWriter, r *http.Request) {
			startSSE(w)
			if !sleepOrDone(r, 10*time.Second) {
				return
			}
			writeFlush(w, []byte(": PROCESSING\n\n"))
			if !sleepOrDone(r, 50*time.Second) {
				return
			}
			writeFlush(w, []byte(chunk("late but fine")+finishChunk))
		}, func(cfg *Config) { cfg.FirstTokenTimeout = 30 * time.Second; cfg.IdleTimeout = time.Minute })
		if r := collect(t, streamFor(t, c, "gpt-4o")); r.err != nil || r.text != "late but fine" {
			t.Errorf("got %q, %v; want the answer", r.text, r.err)
		}
	})
}

func TestSlowConsumerDoesNotTripIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// "a" and "b" now, "c" 3 minutes later. The consumer is busy
		// (rate-limited chat edits) for 2 minutes after "b", then waits 1
		// more minute for "c": the endpoint was silent for 3 minutes but the
		// stream only waited 1, within the 90s idle timeout.
		c := pipeClient(t, func(w http.ResponseWriter, r *http.Request) {
			startSSE(w)
			writeFlush(w, []byte(chunk("a")))
			if !sleepOrDone(r, time.Second) {
				return
			}
			writeFlush(w, []byte(chunk("b")))
			if sleepOrDone(r, 3*time.Minute) {
				writeFlush(w, []byte(chunk("c")+finishChunk))
			}
		}, nil)
		s := streamFor(t, c, "gpt-4o")
		defer s.Close()
		for _, want := range []string{"a", "b"} {
			if d, err := s.Recv(); err != nil || d.Text != want {
				t.Fatalf("got %q, %v; want %q", d.Text, err, want)
			}
		}
		time.Sleep(2 * time.Minute)
		if r := collect(t, s); r.err != nil || r.text != "c" {
			t.Errorf("got %q, %v; want the rest of the answer", r.text, r.err)
		}
	})
}
