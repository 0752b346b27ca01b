// Package llm talks to OpenAI-compatible Chat Completions endpoints:
// streaming answers, typed errors, retries before the first byte, the model
// catalog, history budgets and media links in answers.
//
// It knows nothing of chat platforms or of the conversation store.
package llm

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Role is a message role in the OpenAI sense.
type Role string

// Roles.
const (
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
)

// Image is an image part of a user message: a data: URL (base64) or an
// https URL the endpoint can fetch.
type Image struct {
	URL string
}

// Message is one entry of a request's messages.
type Message struct {
	Role    Role
	Content string
	Images  []Image // user messages only
}

// Request is one chat completion.
type Request struct {
	Model     string
	Messages  []Message
	MaxTokens int // 0: the endpoint's default
}

// Usage is the token count reported by the endpoint.
type Usage struct {
	PromptTokens     int
	CompletionTokens int
}

// Delta is one piece of a streamed answer. Any field may be empty.
type Delta struct {
	Text         string // answer text
	Reasoning    string // reasoning_content, kept apart from the answer
	FinishReason string // set once, on the chunk that carries it
	Usage        *Usage // set when the endpoint reports usage
}

// Config configures a Client. Zero values are documented defaults.
type Config struct {
	BaseURL string // default https://api.n1n.ai/v1
	APIKey  string
	// HTTPClient is used for every request; default a client without timeout
	// (the stream timeouts below apply instead).
	HTTPClient *http.Client
	// FirstTokenTimeout bounds the wait from request to the first streamed
	// byte; default 120s.
	FirstTokenTimeout time.Duration
	// IdleTimeout bounds the gap between bytes read from the stream,
	// keep-alive comments included; default 90s.
	IdleTimeout time.Duration
	// ModelIdleTimeouts overrides IdleTimeout and FirstTokenTimeout for
	// models matching a glob pattern (video models are slow). Patterns are
	// matched like Models; the longest matching pattern wins.
	ModelIdleTimeouts map[string]time.Duration
	// RetryBudget bounds the total time spent retrying failures before the
	// first byte; default 30s.
	RetryBudget time.Duration
	// Models are glob patterns of allowed models (path.Match syntax,
	// case-insensitive, and * also matches "/"); empty allows all. When the
	// endpoint cannot list its models, the names without wildcards (and
	// DefaultModel) are the catalog.
	Models []string
	// DefaultModel is always part of the fallback catalog.
	DefaultModel string
	// CatalogTTL is how long a fetched model list is fresh; default 10m.
	CatalogTTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives warnings (catalog fallbacks); default slog.Default().
	Logger *slog.Logger
}

// Errors. Each error returned by Stream or Recv that comes from the endpoint
// matches one of these with errors.Is and keeps the provider's message.
var (
	ErrUnauthorized  = errors.New("llm: unauthorized")
	ErrModelNotFound = errors.New("llm: model not found")
	ErrRateLimited   = errors.New("llm: rate limited")
	// ErrContextLength means the conversation is too long for the model;
	// shorten it with Shrink (or Fit with a smaller budget) and send again.
	ErrContextLength = errors.New("llm: context length exceeded")
	ErrServer        = errors.New("llm: server error")
	ErrStreamCut     = errors.New("llm: stream cut before the end")
	ErrTimeout       = errors.New("llm: timeout")

	// ErrBadRequest is any other request the endpoint refused (HTTP 4xx):
	// an unsupported parameter, a bad image URL, a content policy refusal.
	ErrBadRequest = errors.New("llm: request rejected")
)

// RateLimitError is returned for a 429; it matches ErrRateLimited.
type RateLimitError struct {
	RetryAfter time.Duration // 0 when the endpoint did not say
	Message    string
}

func (e *RateLimitError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("llm: rate limited (retry after %s): %s", e.RetryAfter, e.Message)
	}
	return "llm: rate limited: " + e.Message
}

// Is reports whether target is ErrRateLimited.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// ModelNotFoundError is returned when a model is unknown to the endpoint or
// not allowed by the catalog; it matches ErrModelNotFound.
type ModelNotFoundError struct {
	Model       string
	Suggestions []string // nearest allowed names, best first
	Message     string   // the provider's message, if any
}

func (e *ModelNotFoundError) Error() string {
	s := fmt.Sprintf("llm: model %q not found", e.Model)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is reports whether target is ErrModelNotFound.
func (e *ModelNotFoundError) Is(target error) bool { return target == ErrModelNotFound }
