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
	// RoleTool is a tool's result, answering the assistant's call with
	// ToolCallID.
	RoleTool Role = "tool"
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
	// ToolCalls are the calls an assistant message made (its Content may
	// be empty then).
	ToolCalls []ToolCall
	// ToolCallID is, on a RoleTool message, the id of the call it answers.
	ToolCallID string
}

// ToolCall is one whole function call of the model: Arguments is the JSON
// text the model wrote, unchecked (it may not even be JSON).
type ToolCall struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// Tool is a function the model may call. Name must match
// ^[a-zA-Z0-9_-]{1,64}$ (OpenAI's rule); Parameters is a JSON Schema
// object, nil for none.
type Tool struct {
	Name        string
	Description string
	Parameters  map[string]any
}

// Request is one chat completion.
type Request struct {
	Model     string
	Messages  []Message
	MaxTokens int // 0: the endpoint's default
	// Tools are offered to the model; none: the request has no tools field.
	Tools []Tool
}

// Usage is the token count reported by the endpoint.
type Usage struct {
	PromptTokens     int
	CompletionTokens int
}

// Delta is one piece of a streamed answer. Any field may be empty.
type Delta struct {
	Text      string // answer text
	Reasoning string // reasoning_content or reasoning, kept apart from the answer
	// ToolCalls are pieces of the function calls the model makes, as
	// received; see ToolCallDelta. An answer may hold only tool calls and no
	// text: that is a complete answer (finish reason "tool_calls"), not an
	// empty one.
	ToolCalls []ToolCallDelta
	// FinishReason is set once, on the chunk that carries it: one of the
	// Finish constants, or another word the endpoint uses. An answer may end
	// without one (io.EOF all the same); some endpoints send none.
	FinishReason string
	Usage        *Usage // set when the endpoint reports usage
}

// Finish reasons the endpoints send.
const (
	FinishStop = "stop" // the answer is complete
	// FinishLength means the model hit its token limit (the request's
	// MaxTokens or its own): the answer is cut short, though the stream
	// ended normally.
	FinishLength        = "length"
	FinishToolCalls     = "tool_calls"     // the model asks for the calls in ToolCalls
	FinishContentFilter = "content_filter" // the provider withheld the rest
)

// ToolCallDelta is one piece of a function call, passed through as the
// endpoint streams it (choices[0].delta.tool_calls[]). Index tells the calls
// of one answer apart (0, 1, ...); all pieces of a call share it. The first
// piece of a call carries its ID and Name; Arguments arrives in pieces, over
// several deltas, to be appended in order per Index: only the joined text is
// JSON. Pieces that carry nothing are dropped.
type ToolCallDelta struct {
	Index     int
	ID        string
	Name      string
	Arguments string
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
	// OnError, when set, is called once for each answer that fails (at
	// Stream or in Recv; a stop by the caller is no failure) with the
	// error's ErrorKind, for metrics.
	OnError func(kind string)
	// OnRetry, when set, is called before each retry with the kind of the
	// failure retried, one of RetryKinds.
	OnRetry func(kind string)
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
	// ErrMidAnswer means the endpoint reported an error inside the stream
	// (an error event after HTTP 200, possibly after some text): the answer
	// is incomplete. The error is a *MidAnswerError and also matches its
	// kind (ErrServer, ErrRateLimited, ErrContextLength, ...).
	ErrMidAnswer = errors.New("llm: the endpoint reported an error mid-answer")
	ErrTimeout   = errors.New("llm: timeout")

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

// MidAnswerError is an error the endpoint reported in the stream, as a
// `data: {"error":{...}}` event, where gateways put a failure that comes
// after the response headers. Recv returns it; it matches ErrMidAnswer, and
// Err is its kind, for errors.Is and errors.As: ErrServer, ErrRateLimited
// (a *RateLimitError), ErrContextLength, ErrUnauthorized, ErrModelNotFound
// (a *ModelNotFoundError) or ErrBadRequest. The text received before it is
// all there is of the answer; nothing is retried.
type MidAnswerError struct {
	Code    string // the provider's code ("" when none; a number as text)
	Type    string // the provider's type, like "server_error"
	Message string // the provider's message, without the API key
	Err     error
}

func (e *MidAnswerError) Error() string {
	s := "llm: the endpoint reported an error mid-answer"
	if e.Code != "" {
		s += fmt.Sprintf(" (code %s)", e.Code)
	}
	s += ": " + e.Message + "; the answer is incomplete, "
	switch {
	case errors.Is(e.Err, ErrContextLength):
		return s + "shorten the conversation and ask again"
	case errors.Is(e.Err, ErrUnauthorized):
		return s + "check the API key"
	case errors.Is(e.Err, ErrModelNotFound):
		return s + "choose another model"
	case errors.Is(e.Err, ErrRateLimited):
		return s + "try again later"
	default:
		return s + "try again"
	}
}

// Is reports whether target is ErrMidAnswer.
func (e *MidAnswerError) Is(target error) bool { return target == ErrMidAnswer }

// Unwrap returns the error's kind.
func (e *MidAnswerError) Unwrap() error { return e.Err }
