// Package bots is Parley's engine: it turns a normalized incoming message
// into a streamed, stored reply on any platform. It holds the conversation
// rules, the commands, the edit scheduler and the message splitter, and
// defines the Platform interface the adapters implement.
//
// It knows no platform SDK: adapters translate to and from its types.
package bots

import (
	"context"
	"log/slog"
	"time"

	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/llm"
)

// Config configures an Engine. Zero values are documented defaults.
type Config struct {
	DefaultModel  string
	SystemPrompt  string
	ContextTokens int      // history budget; default 16000
	MaxConcurrent int      // conversations answered at once; default 64
	StopEmoji     []string // reaction names that stop a stream; default octagonal_sign, 🛑
	Now           func() time.Time
	Logger        *slog.Logger
}

// Engine answers messages. Create it with New and run it with Run.
type Engine struct {
	cfg   Config
	store conversation.Store
	llm   *llm.Client
}

// New returns an Engine.
func New(cfg Config, store conversation.Store, client *llm.Client) *Engine {
	return &Engine{cfg: cfg, store: store, llm: client}
}

// Run runs the engine's workers until ctx ends, then waits for the replies in
// flight to finish.
func (e *Engine) Run(ctx context.Context) error { <-ctx.Done(); return nil }

// Handle takes one incoming message: it deduplicates, applies the
// conversation rules, stores the message and queues the reply. It returns
// quickly (before any LLM work), so adapters can acknowledge the event.
func (e *Engine) Handle(ctx context.Context, p Platform, in Incoming) error { return nil }

// Command runs a command and returns its answer.
func (e *Engine) Command(ctx context.Context, p Platform, cmd Command) CommandReply {
	return CommandReply{}
}

// Models returns at most n allowed model names matching query, for
// autocomplete and select menus.
func (e *Engine) Models(ctx context.Context, query string, n int) []string { return nil }

// Deleted tells the engine a message was deleted; a stream answering it stops.
func (e *Engine) Deleted(p Platform, workspace, channel, messageID string) {}

// Reacted tells the engine a user reacted to a message; a stop emoji on a
// reply being streamed stops it.
func (e *Engine) Reacted(p Platform, workspace, channel, messageID, user, emoji string) {}
