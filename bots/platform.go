package bots

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parleyhq/parley/conversation"
)

// Incoming is one message from a platform, normalized by its adapter.
type Incoming struct {
	Workspace string // Slack team id, Discord guild id ("" in Discord DMs)
	Channel   string // the channel (for a Discord thread: its parent channel)
	// Thread is the conversation's thread root: for a message inside a
	// thread, the thread's id; for a top-level channel message, the id the
	// reply's thread would get (Slack: the message ts; Discord: the message
	// id, which becomes the thread id). Empty in DMs answered at top level.
	Thread    string
	MessageID string
	// ReplyTo is the id of the message this one replies to (Discord reply
	// chains); a reply to one of the bot's messages continues its
	// conversation without a mention.
	ReplyTo string
	// EventID deduplicates deliveries (Slack retries); empty when the
	// platform delivers each event once.
	EventID     string
	Author      string // platform user id
	AuthorName  string
	AuthorTeam  string   // Slack: the author's team id (needed by native streams)
	AuthorIsBot bool     // bots, webhooks, system messages, the bot itself
	Roles       []string // the author's roles (Discord), for access control
	DM          bool
	Mentioned   bool
	Text        string // with the bot's mention removed
	Attachments []conversation.Attachment
	Time        time.Time
	// Model overrides the resolved model for this message only (a one-shot
	// /ask with a model option).
	Model string
}

// Destination is where a reply goes.
type Destination struct {
	Workspace string
	Channel   string
	Thread    string // "" for a top-level reply
	ReplyTo   string // the user message being answered
	User      string // the user being answered
	UserTeam  string
	DM        bool
}

// Platform is what an adapter implements for the engine. Methods return a
// *RateLimitError for a 429, ErrGone when the target message or channel no
// longer exists, and ErrTooLong when the platform refused the text's length.
type Platform interface {
	// Name is the platform's name as stored: "slack", "discord", "console".
	Name() string
	// Limits declares the platform's limits; the engine paces to them.
	Limits() Limits
	// Post creates a message holding text (Markdown) and returns its id.
	Post(ctx context.Context, dest Destination, text string) (id string, err error)
	// Edit replaces the text of message id. final is true on the last edit of
	// a reply (a native stream is stopped then).
	Edit(ctx context.Context, dest Destination, id, text string, final bool) error
	// Delete removes message id.
	Delete(ctx context.Context, dest Destination, id string) error
	// Progress shows that the bot is working: a typing indicator or a status
	// line; an empty status clears it where the platform allows.
	Progress(ctx context.Context, dest Destination, status string) error
}

// Rate is a budget of calls: at most Burst in any window of Burst×Every,
// so one per Every on average, Burst at once. The zero Rate is unlimited.
type Rate struct {
	Every time.Duration
	Burst int
}

// PerMinute returns a Rate of n events a minute with the given burst.
func PerMinute(n, burst int) Rate { return Rate{Every: time.Minute / time.Duration(n), Burst: burst} }

// Limits are a platform's limits, as the engine paces to them.
type Limits struct {
	// MaxChars is the most characters of Markdown one message may hold
	// (after the adapter's markup conversion it must still fit).
	MaxChars int
	// ChannelPost and ChannelEdit pace creates and edits per channel. When
	// SharedChannel is set, posts and edits draw from ChannelEdit together
	// (Discord reports one bucket for both).
	ChannelPost   Rate
	ChannelEdit   Rate
	SharedChannel bool
	// WorkspaceEdit paces edits across a whole workspace (Slack's
	// chat.update is limited per workspace and shared by every stream).
	WorkspaceEdit Rate
	// Global paces every call of the bot (Discord: 50 requests a second).
	Global Rate
	// ThreadBuckets: each thread has its own channel budget (Discord
	// threads are channels); otherwise threads share their channel's.
	ThreadBuckets bool
	// FinalEdit: the platform must be told when a message is final even
	// when its text did not change (a native stream must be stopped).
	FinalEdit bool
	// ProgressEvery is how often Progress must be repeated to stay visible
	// (Discord's typing lasts 10 s, Slack's status 2 minutes); 0: once.
	ProgressEvery time.Duration
}

// Errors an adapter returns to the engine.
var (
	// ErrGone: the message, thread or channel no longer exists.
	ErrGone = errors.New("bots: target gone")
	// ErrTooLong: the platform refused the text as too long.
	ErrTooLong = errors.New("bots: text too long for the platform")
)

// RateLimitError is a platform's 429. The engine waits RetryAfter, then
// retries the newest text.
type RateLimitError struct {
	RetryAfter time.Duration
	Global     bool // the whole bot is limited, not one route
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("bots: rate limited, retry after %s", e.RetryAfter)
}

// Command is a command invocation, from a slash command or a mention that
// starts with "/".
type Command struct {
	Workspace string
	Channel   string
	Thread    string // "" outside threads
	User      string
	Roles     []string // the caller's roles (Discord), for access control
	DM        bool
	Name      string // without the slash: "model", "models", "reset", "system", "help", "ask"
	Args      string
}

// CommandReply is a command's answer.
type CommandReply struct {
	Text      string
	Ephemeral bool // only the caller should see it
	// ChooseModel asks the adapter to offer a model picker (Slack's select
	// menu) next to Text.
	ChooseModel bool
}
