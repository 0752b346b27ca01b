package llm

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"golang.org/x/sync/singleflight"
)

// Defaults for the zero values of Config.
const (
	DefaultBaseURL           = "https://api.n1n.ai/v1"
	DefaultFirstTokenTimeout = 120 * time.Second
	DefaultIdleTimeout       = 90 * time.Second
	DefaultRetryBudget       = 30 * time.Second
	DefaultCatalogTTL        = 10 * time.Minute
)

// Backoff between retries before the first byte: exponential from
// backoffBase, capped at backoffMax, with "equal jitter" (half fixed, half
// random) so that replicas hit by the same 503 do not come back in step.
const (
	backoffBase = 500 * time.Millisecond
	backoffMax  = 8 * time.Second
)

// Client is an OpenAI-compatible Chat Completions client. It is safe for
// concurrent use.
type Client struct {
	cfg      Config
	oa       openai.Client
	patterns []string // cfg.Models, lowered and validated
	idle     []idlePattern
	log      *slog.Logger

	// sleep waits between retries and jitter returns a number in [0, 1);
	// tests replace them so that backoff costs no real time.
	sleep  func(ctx context.Context, d time.Duration) error
	jitter func() float64

	catalog catalog
	// streamed is when a stream last connected (Unix nanoseconds of
	// cfg.Now), 0 before the first: the endpoint answers.
	streamed atomic.Int64
}

type idlePattern struct {
	pattern string // lowered
	timeout time.Duration
}

// New returns a Client for cfg. It checks the configuration only; it makes
// no request.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("llm: base URL %q is not an http(s) URL like %s", redactURL(cfg.BaseURL), DefaultBaseURL)
	}
	if cfg.HTTPClient == nil {
		// No client timeout: a streamed answer may last minutes; the stream
		// timeouts bound each wait instead.
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.FirstTokenTimeout <= 0 {
		cfg.FirstTokenTimeout = DefaultFirstTokenTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.RetryBudget <= 0 {
		cfg.RetryBudget = DefaultRetryBudget
	}
	if cfg.CatalogTTL <= 0 {
		cfg.CatalogTTL = DefaultCatalogTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Client{
		cfg:    cfg,
		log:    cfg.Logger,
		sleep:  sleepCtx,
		jitter: rand.Float64,
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	for _, p := range cfg.Models {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("llm: model pattern %q: %w; use * ? and [a-z] like gpt-4o*", p, err)
		}
		c.patterns = append(c.patterns, p)
	}
	for p, d := range cfg.ModelIdleTimeouts {
		p = strings.ToLower(strings.TrimSpace(p))
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("llm: idle timeout pattern %q: %w; use * ? and [a-z] like sora-*", p, err)
		}
		if d <= 0 {
			return nil, fmt.Errorf("llm: idle timeout for %q is %s; give a positive duration like 10m", p, d)
		}
		c.idle = append(c.idle, idlePattern{pattern: p, timeout: d})
	}
	// The most specific (longest) pattern wins when several match.
	sort.Slice(c.idle, func(i, j int) bool {
		if len(c.idle[i].pattern) != len(c.idle[j].pattern) {
			return len(c.idle[i].pattern) > len(c.idle[j].pattern)
		}
		return c.idle[i].pattern < c.idle[j].pattern
	})

	// openai-go reads OPENAI_* variables from the environment; the base URL
	// and key given here override them, and the organization and project
	// headers are dropped because a gateway would not expect them.
	c.oa = openai.NewClient(
		option.WithBaseURL(strings.TrimRight(cfg.BaseURL, "/")+"/"),
		option.WithAPIKey(cfg.APIKey),
		option.WithHTTPClient(cfg.HTTPClient),
		// openai-go retries 429 and 5xx twice by default, which would
		// multiply our own retries; Stream owns the retry policy.
		option.WithMaxRetries(0),
		option.WithHeaderDel("OpenAI-Organization"),
		option.WithHeaderDel("OpenAI-Project"),
		option.WithMiddleware(c.errorMiddleware),
	)
	return c, nil
}

// timeouts returns the first-token and idle timeouts for model.
func (c *Client) timeouts(model string) (first, idle time.Duration) {
	if d, ok := c.modelTimeout(model); ok {
		return d, d
	}
	return c.cfg.FirstTokenTimeout, c.cfg.IdleTimeout
}

func (c *Client) modelTimeout(model string) (time.Duration, bool) {
	name := strings.ToLower(model)
	for _, p := range c.idle {
		if globMatch(p.pattern, name) {
			return p.timeout, true
		}
	}
	return 0, false
}

// allowed reports whether model matches the Models patterns (all when none).
func (c *Client) allowed(model string) bool {
	if len(c.patterns) == 0 {
		return true
	}
	name := strings.ToLower(model)
	for _, p := range c.patterns {
		if globMatch(p, name) {
			return true
		}
	}
	return false
}

// globMatch is path.Match on lowered strings, except that * and ? also match
// "/": model ids like "meta-llama/llama-3" should match "meta-llama*" and "*".
func globMatch(pattern, name string) bool {
	const sep = "\x00"
	ok, _ := path.Match(strings.ReplaceAll(pattern, "/", sep), strings.ReplaceAll(name, "/", sep))
	return ok
}

// redact removes the API key from s: providers echo it in some messages.
func (c *Client) redact(s string) string {
	if k := c.cfg.APIKey; len(k) >= 4 {
		s = strings.ReplaceAll(s, k, "***")
	}
	return s
}

// redactURL drops userinfo and the query (either may carry a key).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// catalog is the cached model list.
type catalog struct {
	mu       sync.Mutex
	ok       bool // models holds a list (possibly empty)
	models   []Model
	verified bool      // the list came from the endpoint, not the fallback
	err      error     // why the list is empty, when it is
	expires  time.Time // when to fetch again
	// health is the *EndpointError of the last listing, nil when it
	// worked; healthAt is when it was seen, failures how many listings
	// in a row failed (for the retry's backoff).
	health   error
	healthAt time.Time
	failures int
	group    singleflight.Group
}
