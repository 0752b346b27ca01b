package llm

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const modelList = `{"object":"list","data":[
{"id":"gpt-4o","object":"model","created":1715367049,"owned_by":"system"},
{"id":"gpt-4o-mini","object":"model","created":1721172741,"owned_by":"system"},
{"id":"chatgpt-4o-latest","object":"model","created":1723515131,"owned_by":"system"},
{"id":"GPT-4.1","object":"model","owned_by":"system"},
{"id":"claude-3-5-sonnet-20241022","object":"model","owned_by":"anthropic"},
{"id":"Meta-Llama/Llama-3.3-70B-Instruct","owned_by":"meta"},
{"id":"dall-e-3","object":"model","owned_by":"system"},
{"id":"sora-2","object":"model","owned_by":"openai"},
{"id":"gpt-4o","object":"model","owned_by":"duplicate"}
]}`

// catalogServer serves GET /v1/models with status and body, counting calls.
func catalogServer(t *testing.T, status int, body string) (*atomic.Int32, func(http.ResponseWriter, *http.Request)) {
	var calls atomic.Int32
	return &calls, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/models" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func ids(models []Model) []string {
	var out []string
	for _, m := range models {
		out = append(out, m.ID)
	}
	return out
}

func TestModelsFilteredAndCached(t *testing.T) {
	calls, h := catalogServer(t, 200, modelList)
	srv := newServer(t, h)
	c, clock := newClient(t, srv, func(cfg *Config) {
		cfg.Models = []string{"gpt-4*", "meta-llama*", "SORA-2", "claude-*"}
		cfg.CatalogTTL = time.Minute
	})
	got, err := c.Models(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"GPT-4.1", "Meta-Llama/Llama-3.3-70B-Instruct", "claude-3-5-sonnet-20241022", "gpt-4o", "gpt-4o-mini", "sora-2"}
	if !slices.Equal(ids(got), want) {
		t.Errorf("got %q, want %q", ids(got), want)
	}
	if _, err := c.Models(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("got %d fetches within the TTL, want 1", n)
	}
	clock.Advance(2 * time.Minute)
	if _, err := c.Models(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("got %d fetches after the TTL, want 2", n)
	}
}

func TestSearchModels(t *testing.T) {
	_, h := catalogServer(t, 200, modelList)
	srv := newServer(t, h)
	c, _ := newClient(t, srv, nil)
	tests := []struct {
		query string
		n     int
		want  []string
	}{
		{"gpt-4o", 10, []string{"gpt-4o", "gpt-4o-mini", "chatgpt-4o-latest"}},
		{"GPT-4O", 2, []string{"gpt-4o", "gpt-4o-mini"}},
		{"llama", 10, []string{"Meta-Llama/Llama-3.3-70B-Instruct"}},
		{"  sora  ", 10, []string{"sora-2"}},
		{"nothing-like-it", 10, nil},
		{"", 3, []string{"GPT-4.1", "Meta-Llama/Llama-3.3-70B-Instruct", "chatgpt-4o-latest"}},
		{"4o", 0, []string{"chatgpt-4o-latest", "gpt-4o", "gpt-4o-mini"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			if got := c.SearchModels(t.Context(), tt.query, tt.n); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidateModel(t *testing.T) {
	_, h := catalogServer(t, 200, modelList)
	srv := newServer(t, h)
	c, _ := newClient(t, srv, func(cfg *Config) { cfg.Models = []string{"gpt-*", "chatgpt-*", "claude-*"} })
	tests := []struct {
		name        string
		model       string
		ok          bool
		suggestions []string // a prefix of the suggestions
		message     string
	}{
		{name: "known", model: "gpt-4o", ok: true},
		{name: "typo", model: "gpt-4p", suggestions: []string{"gpt-4o"}},
		{name: "case slip", model: "GPT-4O-MINI", suggestions: []string{"gpt-4o-mini"}},
		{name: "no separators", model: "gpt4omini", suggestions: []string{"gpt-4o-mini"}},
		{name: "partial", model: "claude", suggestions: []string{"claude-3-5-sonnet-20241022"}},
		{name: "not allowed", model: "dall-e-3", message: "not among the models this bot allows"},
		{name: "empty", model: " "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.ValidateModel(t.Context(), tt.model)
			if tt.ok {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			var mnf *ModelNotFoundError
			if !errors.As(err, &mnf) || !errors.Is(err, ErrModelNotFound) {
				t.Fatalf("got %v, want a *ModelNotFoundError", err)
			}
			if len(mnf.Suggestions) < len(tt.suggestions) || !slices.Equal(mnf.Suggestions[:len(tt.suggestions)], tt.suggestions) {
				t.Errorf("got suggestions %q, want them to start with %q", mnf.Suggestions, tt.suggestions)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("got %q, want it to say %q", err, tt.message)
			}
		})
	}
}

func TestCatalogFallback(t *testing.T) {
	for _, status := range []int{404, 500} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			_, h := catalogServer(t, status, `{"error":{"message":"no such endpoint"}}`)
			srv := newServer(t, h)
			c, _ := newClient(t, srv, func(cfg *Config) {
				cfg.Models = []string{"gpt-4o", "gpt-4o-*", "claude-3-5-sonnet-latest"}
				cfg.DefaultModel = "gpt-4o-mini"
			})
			got, err := c.Models(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"claude-3-5-sonnet-latest", "gpt-4o", "gpt-4o-mini"}
			if !slices.Equal(ids(got), want) {
				t.Errorf("got %q, want the literal names and the default %q", ids(got), want)
			}
			// The endpoint could not say, so a name the patterns allow passes.
			if err := c.ValidateModel(t.Context(), "gpt-4o-2024-08-06"); err != nil {
				t.Errorf("got %v for an allowed name, want nil", err)
			}
			if err := c.ValidateModel(t.Context(), "o3"); !errors.Is(err, ErrModelNotFound) {
				t.Errorf("got %v for a name outside the patterns, want ErrModelNotFound", err)
			}
		})
	}
}

func TestCatalogEmptyFallbackIsAnError(t *testing.T) {
	_, h := catalogServer(t, 404, "404 page not found")
	srv := newServer(t, h)
	c, _ := newClient(t, srv, func(cfg *Config) { cfg.DefaultModel = ""; cfg.Models = []string{"gpt-*"} })
	models, err := c.Models(t.Context())
	if err == nil || len(models) != 0 {
		t.Fatalf("got %q, %v; want an error", ids(models), err)
	}
	if !strings.Contains(err.Error(), "HTTP 404") {
		t.Errorf("got %q, want the cause", err)
	}
}

func TestCatalogKeepsLastListOnFailure(t *testing.T) {
	var fail atomic.Bool
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			http.Error(w, "upstream down", http.StatusBadGateway)
			return
		}
		_, _ = io.WriteString(w, modelList)
	})
	c, clock := newClient(t, srv, func(cfg *Config) { cfg.Models = []string{"sora-*"} })
	if got, _ := c.Models(t.Context()); !slices.Equal(ids(got), []string{"sora-2"}) {
		t.Fatalf("got %q, want [sora-2]", ids(got))
	}
	fail.Store(true)
	clock.Advance(time.Hour)
	if got, err := c.Models(t.Context()); err != nil || !slices.Equal(ids(got), []string{"sora-2"}) {
		t.Errorf("got %q, %v; want the last good list", ids(got), err)
	}
}

func TestRunRefreshesUntilCancelled(t *testing.T) {
	calls, h := catalogServer(t, 200, modelList)
	srv := newServer(t, h)
	c, _ := newClient(t, srv, func(cfg *Config) { cfg.CatalogTTL = 20 * time.Millisecond })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, "three refreshes", func() bool { return calls.Load() >= 3 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"base URL without scheme", Config{BaseURL: "api.n1n.ai/v1"}},
		{"bad model pattern", Config{Models: []string{"gpt-[4"}}},
		{"bad idle pattern", Config{ModelIdleTimeouts: map[string]time.Duration{"sora-[": time.Minute}}},
		{"zero idle override", Config{ModelIdleTimeouts: map[string]time.Duration{"sora-*": 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Error("got no error")
			}
		})
	}
}

func TestSuggestFrom(t *testing.T) {
	models := []Model{{ID: "gpt-4o"}, {ID: "gpt-4o-mini"}, {ID: "o3-mini"}, {ID: "deepseek-chat"}, {ID: "deepseek-reasoner"}}
	tests := []struct {
		name string
		want []string
	}{
		{"gpt4o", []string{"gpt-4o", "gpt-4o-mini"}},
		{"deepseek", []string{"deepseek-chat", "deepseek-reasoner"}},
		{"o3mini", []string{"o3-mini"}},
		{"zzzzzzzz", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := suggestFrom(models, tt.name); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
