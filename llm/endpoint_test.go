package llm

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/llm/llmtest"
)

// counts records OnError and OnRetry calls.
type counts struct {
	mu      sync.Mutex
	errors  []string
	retries []string
}

func (c *counts) config(cfg *Config) {
	cfg.OnError = func(kind string) { c.mu.Lock(); c.errors = append(c.errors, kind); c.mu.Unlock() }
	cfg.OnRetry = func(kind string) { c.mu.Lock(); c.retries = append(c.retries, kind); c.mu.Unlock() }
}

func (c *counts) get() (errs, retries []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.errors), slices.Clone(c.retries)
}

// A base URL without /v1 answers 404 on the model list: Check says the
// base URL probably lacks /v1 and names the URL tried, and an answer says
// the same instead of "model not found, did you mean <the same model>".
func TestCheckBaseURLWithoutV1(t *testing.T) {
	srv := llmtest.NewServer()
	defer srv.Close()
	var n counts
	c, err := New(Config{BaseURL: srv.URL, APIKey: testKey, DefaultModel: "fake-small", Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	n.config(&c.cfg)

	err = c.Check(context.Background())
	var ee *EndpointError
	if !errors.As(err, &ee) || !errors.Is(err, ErrEndpointNotFound) {
		t.Fatalf("Check: got %v, want an *EndpointError matching ErrEndpointNotFound", err)
	}
	msg := err.Error()
	for _, want := range []string{"GET " + srv.URL + "/models", "404", "lacks /v1", "try " + srv.URL + "/v1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Check: %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, testKey) {
		t.Errorf("Check shows the API key: %s", msg)
	}
	if !errors.Is(c.Health(), ErrEndpointNotFound) {
		t.Errorf("Health: got %v, want the endpoint not found", c.Health())
	}

	_, err = c.Stream(context.Background(), userRequest("fake-small", "hi"))
	var nf *ModelNotFoundError
	if errors.As(err, &nf) || !errors.Is(err, ErrEndpointNotFound) || !strings.Contains(err.Error(), "lacks /v1") {
		t.Errorf("Stream: got %v, want ErrEndpointNotFound saying the base URL lacks /v1", err)
	}
	if errs, _ := n.get(); !slices.Equal(errs, []string{"endpoint_not_found"}) {
		t.Errorf("errors counted %q, want one endpoint_not_found", errs)
	}
	if len(srv.Requests()) != 0 {
		t.Errorf("the fake got %d chat requests at its /v1, want none", len(srv.Requests()))
	}
}

// A base URL that already ends in /v1 and still 404s is not told to add
// another /v1.
func TestCheckNotFoundWithV1(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	c, _ := newClient(t, srv, nil)
	err := c.Check(context.Background())
	if !errors.Is(err, ErrEndpointNotFound) || strings.Contains(err.Error(), "lacks /v1") || !strings.Contains(err.Error(), srv.URL+"/v1/models") {
		t.Errorf("Check: got %v, want endpoint not found at %s/v1/models without a /v1 hint", err, srv.URL)
	}
}

// An endpoint nobody listens on is named unreachable at once, and the
// client keeps trying it in the background until it answers.
func TestCheckUnreachableThenBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	c, err := New(Config{BaseURL: "http://" + addr + "/v1", APIKey: testKey, DefaultModel: "fake-small",
		CatalogTTL: 20 * time.Millisecond, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Check(context.Background())
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "http://"+addr+"/v1/models") || !strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("Check: got %v, want unreachable naming the URL", err)
	}
	if !errors.Is(c.Health(), ErrUnreachable) {
		t.Fatalf("Health: got %v, want unreachable", c.Health())
	}
	// An answer meanwhile fails at once, without the retry budget.
	var n counts
	n.config(&c.cfg)
	if _, err := c.Stream(context.Background(), userRequest("fake-small", "hi")); !errors.Is(err, ErrUnreachable) || !errors.Is(err, ErrServer) {
		t.Errorf("Stream: got %v, want unreachable (a server error)", err)
	}
	if errs, retries := n.get(); len(retries) != 0 || !slices.Equal(errs, []string{"unreachable"}) {
		t.Errorf("retries %q and errors %q, want none and one unreachable", retries, errs)
	}
	c.cfg.OnError, c.cfg.OnRetry = nil, nil

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// The endpoint comes up on the same address.
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	fake := llmtest.NewServer()
	fake.Close()
	back := &http.Server{Handler: fake.Config.Handler}
	go back.Serve(ln)
	defer back.Close()

	waitFor(t, "the endpoint to be healthy again", func() bool { return c.Health() == nil })
	models, err := c.Models(context.Background())
	if err != nil || len(models) != 3 {
		t.Errorf("after the endpoint came back: models %v, %v; want the fake's three", models, err)
	}
}

// A refused key is named, without the key, even when the endpoint echoes it.
func TestCheckUnauthorized(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"message":"Incorrect API key provided: `+testKey+`","code":"invalid_api_key"}}`, http.StatusUnauthorized)
	})
	c, _ := newClient(t, srv, nil)
	err := c.Check(context.Background())
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "refused the API key") || !strings.Contains(err.Error(), "401") {
		t.Errorf("Check: got %v, want unauthorized", err)
	}
	if strings.Contains(err.Error(), testKey) {
		t.Errorf("Check shows the API key: %s", err)
	}
}

// After a failed listing the catalog is tried again soon, then less
// often; a working listing clears the endpoint's error.
func TestCatalogRetryBackoff(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	var lists atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		lists.Add(1)
		if fail.Load() {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"data":[{"id":"gpt-4o-mini"}]}`))
	})
	c, clock := newClient(t, srv, nil)
	ctx := context.Background()
	if err := c.Check(ctx); !errors.Is(err, ErrServer) {
		t.Fatalf("Check: got %v, want a server error", err)
	}
	for i, wait := range []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second} {
		before := lists.Load()
		clock.Advance(wait - time.Millisecond)
		c.Models(ctx)
		if lists.Load() != before {
			t.Fatalf("retry %d came before %s", i+1, wait)
		}
		clock.Advance(time.Millisecond)
		c.Models(ctx)
		if lists.Load() != before+1 {
			t.Fatalf("retry %d did not come after %s", i+1, wait)
		}
	}
	fail.Store(false)
	clock.Advance(40 * time.Second)
	c.Models(ctx)
	if err := c.Health(); err != nil {
		t.Errorf("Health after a good listing: %v", err)
	}
}

// An endpoint without a model list that answers all the same is healthy
// once an answer has streamed.
func TestHealthAfterAnswerWithoutModelList(t *testing.T) {
	fake := llmtest.NewServer()
	defer fake.Close()
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/models") {
			http.NotFound(w, r)
			return
		}
		fake.Config.Handler.ServeHTTP(w, r)
	})
	c, _ := newClient(t, srv, func(cfg *Config) { cfg.DefaultModel = "fake-small" })
	if err := c.Check(context.Background()); !errors.Is(err, ErrEndpointNotFound) {
		t.Fatalf("Check: got %v, want endpoint not found", err)
	}
	s, err := c.Stream(context.Background(), userRequest("fake-small", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	if r := collect(t, s); r.err != nil || r.text != "ok" {
		t.Fatalf("answer %q, %v", r.text, r.err)
	}
	if err := c.Health(); err != nil {
		t.Errorf("Health after an answer: %v, want nil", err)
	}
}

// "Did you mean" never proposes the name that was refused: neither from
// the endpoint's list nor from the configured fallback.
func TestSuggestionsNeverTheRefusedName(t *testing.T) {
	for _, tt := range []struct {
		name   string
		models func(w http.ResponseWriter)
		want   []string
	}{
		{"listed", func(w http.ResponseWriter) { w.Write([]byte(`{"data":[{"id":"fake-small"},{"id":"fake-smaller"}]}`)) }, []string{"fake-smaller"}},
		{"fallback", func(w http.ResponseWriter) { http.Error(w, "down", http.StatusBadGateway) }, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/models") {
					tt.models(w)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				w.Write([]byte(`{"error":{"message":"The model fake-small does not exist","code":"model_not_found"}}`))
			})
			c, _ := newClient(t, srv, func(cfg *Config) { cfg.DefaultModel = "fake-small" })
			c.Check(context.Background())
			_, err := c.Stream(context.Background(), userRequest("fake-small", "hi"))
			var nf *ModelNotFoundError
			if !errors.As(err, &nf) {
				t.Fatalf("got %v, want a *ModelNotFoundError", err)
			}
			if !slices.Equal(nf.Suggestions, tt.want) {
				t.Errorf("suggestions %q, want %q", nf.Suggestions, tt.want)
			}
		})
	}
}

// Retries are counted by the kind of failure retried, failed answers by
// the kind of their error; a stop by the caller is not a failure.
func TestErrorAndRetryCounts(t *testing.T) {
	var calls atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			http.Error(w, `{"error":{"message":"busy"}}`, http.StatusServiceUnavailable)
		case 2:
			http.Error(w, `{"error":{"message":"slow down"}}`, http.StatusTooManyRequests)
		case 3:
			startSSE(w)
			writeFlush(w, []byte(chunk("hello")))
			<-r.Context().Done()
		default:
			http.Error(w, `{"error":{"message":"bad key"}}`, http.StatusUnauthorized)
		}
	})
	var n counts
	c, _ := newClient(t, srv, n.config)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := c.Stream(ctx, userRequest("gpt-4o-mini", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := s.Recv(); err != nil || d.Text != "hello" {
		t.Fatalf("first delta %+v, %v", d, err)
	}
	cancel() // the person stopped it
	if _, err := s.Recv(); err == nil {
		t.Fatal("Recv after cancel: no error")
	}
	s.Close()
	if errs, retries := n.get(); len(errs) != 0 || !slices.Equal(retries, []string{"server", "rate_limited"}) {
		t.Errorf("after a stopped answer: errors %q, retries %q; want none and server, rate_limited", errs, retries)
	}
	if _, err := c.Stream(context.Background(), userRequest("gpt-4o-mini", "hi")); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("got %v, want unauthorized", err)
	}
	if errs, _ := n.get(); !slices.Equal(errs, []string{"unauthorized"}) {
		t.Errorf("errors %q, want unauthorized", errs)
	}
}

func TestErrorKind(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{&RateLimitError{}, "rate_limited"},
		{&ModelNotFoundError{}, "model_not_found"},
		{&MidAnswerError{Err: ErrContextLength}, "context_length"},
		{&EndpointError{Kind: ErrUnreachable}, "unreachable"},
		{errors.New("llm: something"), "other"},
	} {
		if got := ErrorKind(tt.err); got != tt.want || !slices.Contains(ErrorKinds, got) {
			t.Errorf("ErrorKind(%v) = %q, want %q (among ErrorKinds)", tt.err, got, tt.want)
		}
	}
}
