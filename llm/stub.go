package llm

import (
	"context"
	"errors"
	"io"
)

var errTODO = errors.New("llm: not implemented")

// Client is an OpenAI-compatible Chat Completions client.
type Client struct{ cfg Config }

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) { return &Client{cfg: cfg}, nil }

// Stream starts a streamed completion. It returns once the endpoint has
// answered with a streaming response (after retries), or with the error.
// Cancelling ctx ends the stream and its HTTP request.
func (c *Client) Stream(ctx context.Context, req Request) (*Stream, error) { return nil, errTODO }

// Stream is one streamed answer. It is not safe for concurrent use.
type Stream struct{}

// Recv returns the next delta, io.EOF at the normal end of the answer, or an
// error (ErrStreamCut, ErrTimeout, an in-stream provider error, ...).
func (s *Stream) Recv() (Delta, error) { return Delta{}, io.EOF }

// Close ends the stream and releases its connection.
func (s *Stream) Close() error { return nil }

// Model is one entry of the catalog.
type Model struct {
	ID      string
	OwnedBy string
}

// Models returns the allowed models, from the cache when fresh.
func (c *Client) Models(ctx context.Context) ([]Model, error) { return nil, errTODO }

// SearchModels returns at most n allowed model names matching query:
// exact, then prefix, then substring matches.
func (c *Client) SearchModels(ctx context.Context, query string, n int) []string { return nil }

// ValidateModel returns nil when name is an allowed model, or a
// *ModelNotFoundError with suggestions.
func (c *Client) ValidateModel(ctx context.Context, name string) error { return errTODO }

// Fit trims msgs to budget tokens, keeping the leading system message and
// the last message, dropping the oldest turns first. It returns the kept
// messages and how many were dropped.
func Fit(msgs []Message, budget int) (kept []Message, dropped int) { return msgs, 0 }

// EstimateTokens estimates the tokens of a message list.
func EstimateTokens(msgs []Message) int { return 0 }

// MediaURLs returns the media links (video and image) in a finished answer,
// in order of appearance, without duplicates.
func MediaURLs(answer string) []string { return nil }
