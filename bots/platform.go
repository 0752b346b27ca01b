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
//
// The engine alone decides how an answer becomes messages: how it is split,
// when each call is made, which delivery a reply uses (a native stream where
// the platform is a Streamer, else a post and edits), and when the rest of
// an answer goes into a new message. An adapter only translates each call.
type Platform interface {
	// Name is the platform's name as stored: "slack", "discord", "console".
	Name() string
	// Limits declares the platform's limits for replies to dest; the engine
	// paces to them. They may differ per destination (a thread, a DM, a
	// workspace that refused native streaming).
	Limits(dest Destination) Limits
	// Post creates a message holding text (Markdown) and returns its id.
	Post(ctx context.Context, dest Destination, text string) (id string, err error)
	// Edit replaces the text of message id. final is true on the last edit of
	// a message; platforms with Limits.FinalEdit hear it even when the text
	// did not change.
	Edit(ctx context.Context, dest Destination, id, text string, final bool) error
	// Delete removes message id.
	Delete(ctx context.Context, dest Destination, id string) error
	// Progress shows that the bot is working: a typing indicator or a status
	// line; an empty status clears it where the platform allows.
	Progress(ctx context.Context, dest Destination, status string) error
}

// Streamer is implemented by a platform that can stream a message natively
// (Slack's chat.startStream, appendStream and stopStream): the message grows
// by appends and shows that it is being written until it is stopped. The
// engine drives it: it starts a stream only where Limits.Native allows, when
// the budgets can pay for its start now and its stop later, and always stops
// what it started. Besides the errors of Platform, a Streamer returns
// ErrStreamClosed when the stream ended on its own (appends are refused) and
// ErrNoStream when the platform refused to start one here (the engine posts
// instead).
type Streamer interface {
	// StartStream starts a streamed message holding text in dest's thread
	// and returns its id.
	StartStream(ctx context.Context, dest Destination, text string) (id string, err error)
	// AppendStream adds text to the end of streamed message id.
	AppendStream(ctx context.Context, dest Destination, id, text string) error
	// StopStream adds text (possibly empty) to streamed message id and ends
	// the stream: the message is final.
	StopStream(ctx context.Context, dest Destination, id, text string) error
}

// Preparer is implemented by a platform whose first post to a destination
// needs a call of its own first (Discord starts the reply's thread). The
// engine makes that call as soon as it starts answering, while the model
// thinks, paced by Limits.Budgets[CallPrepare]; a destination with nothing
// to prepare lists no such budget. The first post waits for it, and then
// costs only its own call.
type Preparer interface {
	// Prepare makes ready what the first post to dest needs.
	Prepare(ctx context.Context, dest Destination) error
	// Unprepared tells the platform that the first post to dest comes
	// without Prepare, because its budget would make the answer late:
	// Discord then answers in the channel instead of starting a thread.
	Unprepared(dest Destination)
}

// Call is a kind of platform call the engine makes.
type Call int

// The calls the engine makes, each paced by the budgets Limits lists for it.
const (
	CallPost     Call = iota // Platform.Post
	CallEdit                 // Platform.Edit
	CallDelete               // Platform.Delete
	CallProgress             // Platform.Progress
	CallUpload               // Uploader.Upload
	CallStart                // Streamer.StartStream
	CallAppend               // Streamer.AppendStream
	CallStop                 // Streamer.StopStream
	CallPrepare              // Preparer.Prepare
	numCalls
)

var callNames = [numCalls]string{"post", "edit", "delete", "progress", "upload", "start", "append", "stop", "prepare"}

// String returns the call's name as metrics show it: "post", "edit", ...
func (c Call) String() string {
	if c < 0 || c >= numCalls {
		return "unknown"
	}
	return callNames[c]
}

// Rate is a budget of calls. The zero Rate is unlimited.
//
// By default it is paced as a sliding window: at most Burst calls in any
// window of Burst×Every. That never exceeds a fixed window of the same size
// starting at any moment (Discord's buckets) or a token bucket, so a steady
// stream draws no 429. With TokenBucket set it is paced as the token bucket
// the platform keeps (Slack's tiers): Burst calls at once, then one per
// Every, which lets a budget refill while it is being used.
type Rate struct {
	Every       time.Duration
	Burst       int
	TokenBucket bool
}

// PerMinute returns a Rate of n events a minute with the given burst,
// paced as a sliding window.
func PerMinute(n, burst int) Rate { return Rate{Every: time.Minute / time.Duration(n), Burst: burst} }

// Budget is one rate limit a call draws on.
type Budget struct {
	// Key identifies the budget: calls whose budgets have the same Key share
	// it, across replies. It names the scope, e.g. "chat.update/T123" for a
	// Slack workspace's chat.update or "channel/123" for a Discord channel.
	Key string
	// Name is the budget's kind without its scope, for metrics:
	// "chat.update", "channel", "global".
	Name string
	Rate Rate
	// Cost is how many of the budget's calls one call spends; default 1
	// (Discord's first post in a new thread also creates the thread).
	Cost int
	// Shared budgets (a workspace's, the whole bot's) keep their last
	// calls for first texts and final edits: progress indicators and
	// interim edits may not spend them.
	Shared bool
}

// Native says whether a reply to a destination may be streamed natively.
type Native int

const (
	// NativeNever: post and edit (the zero value).
	NativeNever Native = iota
	// NativeAuto: stream natively when the budgets can pay for the start
	// now and the stop later; otherwise post and edit.
	NativeAuto
	// NativeAlways: stream natively, waiting for the budgets if need be.
	NativeAlways
)

// Limits are a platform's limits for one destination, as the engine paces
// to them.
type Limits struct {
	// MaxChars is the most characters of Markdown one posted message may
	// hold (after the adapter's markup conversion it must still fit).
	MaxChars int
	// Budgets lists, per kind of call, the budgets a call draws on; a call
	// kind without budgets is not paced.
	Budgets map[Call][]Budget
	// Native says whether replies here may be streamed natively; the
	// platform must be a Streamer.
	Native Native
	// NativeMaxChars is the most characters of Markdown a natively streamed
	// message may hold; default MaxChars.
	NativeMaxChars int
	// FinalEdit: the platform must hear a message's final edit even when
	// its text did not change (the console learns so that an answer ended).
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
	// ErrStreamClosed: a native stream ended on its own; its message keeps
	// what it shows and takes no more appends.
	ErrStreamClosed = errors.New("bots: stream closed")
	// ErrNoStream: the platform refused to start a native stream here.
	ErrNoStream = errors.New("bots: native streaming refused")
)

// RateLimitError is a platform's 429. The engine pauses the budgets of the
// call that drew it for RetryAfter, then retries the newest text.
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
	// UserTeam is the caller's own team (Slack: their workspace, which in
	// a Slack Connect channel is not Workspace); "" when it is Workspace,
	// UnknownTeam when the adapter could not learn it.
	UserTeam string
	Roles    []string // the caller's roles (Discord), for access control
	DM       bool
	Name     string // without the slash: "model", "models", "reset", "system", "help", "ask"
	Args     string
}

// UnknownTeam is Command.UserTeam when the adapter could not learn the
// caller's team: with an allow-list of workspaces the caller is refused.
const UnknownTeam = "?"

// CommandReply is a command's answer.
type CommandReply struct {
	Text      string
	Ephemeral bool // only the caller should see it
	// ChooseModel asks the adapter to offer a model picker (Slack's select
	// menu) next to Text.
	ChooseModel bool
}
