// Package conversation holds Parley's normalized chat model (conversations,
// messages, settings scopes) and the Store interface that keeps them.
//
// It holds no SQL: the implementations live in conversation/sqlite (the
// embedded default) and conversation/postgres (several replicas on one
// database), and both pass the suite in conversation/storetest.
package conversation

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors returned by Store implementations.
var (
	// ErrNotFound is returned when a conversation or message does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNewerSchema is returned when opening a database written by a newer
	// Parley: it is refused rather than downgraded.
	ErrNewerSchema = errors.New("database schema is newer than this build of parley")
	// ErrClaimLost is returned by a write fenced by a claim (UpdateAnswer)
	// once the claim belongs to another instance: the writer was taken for
	// dead and its work taken over.
	ErrClaimLost = errors.New("the conversation's claim was taken over")
	// ErrLocked is returned when opening a database that another live
	// process holds for itself (an SQLite file opened exclusively).
	ErrLocked = errors.New("the database is in use by another parley process")
)

// Key identifies a conversation. Nothing is ever read across a
// (Platform, Workspace) boundary.
type Key struct {
	Platform  string // "slack", "discord", "console"
	Workspace string // Slack team id, Discord guild id ("" for Discord DMs)
	Channel   string
	Thread    string // thread root; "" when the conversation is the channel itself (DMs)
}

// Conversation is one thread of talk between people and the bot.
type Conversation struct {
	ID        int64
	Key       Key
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Role is who wrote a message, in the OpenAI sense.
type Role string

// Roles.
const (
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
)

// Status is the life stage of a message; only assistant messages change it.
type Status string

// Statuses.
const (
	StatusComplete  Status = "complete"
	StatusStreaming Status = "streaming" // being written by a live stream
	StatusPartial   Status = "partial"   // stopped or interrupted; Text holds what was shown
	StatusFailed    Status = "failed"    // the LLM failed before any text
)

// Attachment is a file that came with a message or was delivered by the bot.
// The store keeps references, never the bytes.
type Attachment struct {
	Name       string `json:"name,omitempty"`
	MIME       string `json:"mime,omitempty"`
	Size       int64  `json:"size,omitempty"`
	URL        string `json:"url,omitempty"`         // where the platform serves it
	PlatformID string `json:"platform_id,omitempty"` // the platform's file id
}

// ToolRound is one turn of an answer in which the model called tools: what
// it wrote before the calls, and each call with its result. An answer's
// rounds come before its final text; a follow-up request replays them as
// OpenAI messages (the assistant's calls, then a tool message per call with
// its id), so the model sees what its tools said.
type ToolRound struct {
	Text  string     `json:"text,omitempty"`
	Calls []ToolCall `json:"calls"`
}

// ToolCall is one call of a ToolRound. Arguments and Result are untrusted
// text: the model's and the tool's.
type ToolCall struct {
	ID        string `json:"id"`
	Name      string `json:"name"` // as the model called it (server__tool)
	Arguments string `json:"arguments"`
	Result    string `json:"result"`
	Error     bool   `json:"error,omitempty"` // the result is an error the model was told
}

// Message is one message of a conversation.
type Message struct {
	ID             int64
	ConversationID int64
	Role           Role
	Author         string // platform user id; the bot's own id for assistant messages
	// PlatformID is the platform's message id (Slack ts, Discord snowflake).
	// Append is idempotent on it: the same PlatformID twice stores one message.
	// Empty means the message has no platform id yet.
	PlatformID       string
	Text             string
	Model            string
	PromptTokens     int
	CompletionTokens int
	Status           Status
	Attachments      []Attachment
	// Tools are the rounds of tool calls an assistant message made before
	// its final text (nil when it used none). Text is the whole reply as
	// shown: the rounds' texts, then the final text, a blank line apart.
	Tools []ToolRound
	// ReplyTo is, for an assistant message, the ID of the user message it
	// answers (0 when unknown): answers are written after later questions
	// may already be stored, so history is rebuilt in question order.
	ReplyTo   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// HistoryQuery bounds a History call. Zero fields mean no bound.
type HistoryQuery struct {
	Limit    int // the newest Limit messages
	MaxChars int // the newest messages whose Text lengths add up to at most MaxChars
}

// ScopeKind is the level a setting applies to.
type ScopeKind string

// Scope kinds, from the most specific to the least.
const (
	ScopeThread    ScopeKind = "thread"
	ScopeChannel   ScopeKind = "channel"
	ScopeUser      ScopeKind = "user"
	ScopeWorkspace ScopeKind = "workspace"
)

// Scope names where a setting applies: a thread, channel or user id inside
// one (Platform, Workspace). ID is empty for ScopeWorkspace.
type Scope struct {
	Kind      ScopeKind
	Platform  string
	Workspace string
	ID        string
}

// StoredID is the id a scope is stored under: ID, or "" for
// ScopeWorkspace. It returns an error for an unknown kind.
func (s Scope) StoredID() (string, error) {
	switch s.Kind {
	case ScopeThread, ScopeChannel, ScopeUser:
		return s.ID, nil
	case ScopeWorkspace:
		return "", nil
	}
	return "", fmt.Errorf("unknown scope kind %q; want thread, channel, user or workspace", s.Kind)
}

// Setting names a per-scope setting.
type Setting string

// Settings.
const (
	SettingModel        Setting = "model"
	SettingSystemPrompt Setting = "system_prompt"
)

// Stranded is an assistant message left in StatusStreaming, with the key of
// its conversation, as found after a crash.
type Stranded struct {
	Key     Key
	Message Message
}

// Store keeps conversations, messages, settings and seen events.
// Implementations are safe for concurrent use, also by several processes
// sharing one database where the implementation allows it.
type Store interface {
	// Conversation returns the conversation for key, creating it if needed.
	Conversation(ctx context.Context, key Key) (Conversation, error)
	// FindConversation returns the conversation for key or ErrNotFound.
	FindConversation(ctx context.Context, key Key) (Conversation, error)
	// MessageByPlatformID finds a message by its platform id inside one
	// (platform, workspace), with its conversation, or returns ErrNotFound.
	MessageByPlatformID(ctx context.Context, platform, workspace, platformID string) (Conversation, Message, error)

	// Append adds m to conversation convID and returns it as stored.
	// When m.PlatformID is set and the conversation already holds a message
	// with that PlatformID, nothing is written: the stored message is
	// returned with created false.
	Append(ctx context.Context, convID int64, m Message) (stored Message, created bool, err error)
	// UpdateMessage rewrites a message's PlatformID, Text, Model, token
	// counts, Status, Attachments and Tools; it returns ErrNotFound for an
	// unknown ID.
	UpdateMessage(ctx context.Context, m Message) error
	// History returns the newest messages of a conversation within q,
	// oldest first.
	History(ctx context.Context, convID int64, q HistoryQuery) ([]Message, error)
	// Forget deletes every message of a conversation (a reset); the
	// conversation itself remains.
	Forget(ctx context.Context, convID int64) error
	// Stranded returns the assistant messages still in StatusStreaming,
	// of one platform, oldest first. Messages of a conversation under a
	// live claim (ClaimConversation) of any owner are left out.
	Stranded(ctx context.Context, platform string) ([]Stranded, error)

	// MarkEvent records that a platform event id was seen and reports whether
	// this is the first time within ttl. Expired records are removed.
	MarkEvent(ctx context.Context, platform, workspace, eventID string, ttl time.Duration) (first bool, err error)

	// SetSetting stores a setting for a scope; an empty value removes it.
	SetSetting(ctx context.Context, scope Scope, name Setting, value string) error
	// ResolveSetting returns the value of the first scope in scopes that has
	// the setting, and that scope; ok is false when none has it.
	ResolveSetting(ctx context.Context, name Setting, scopes ...Scope) (value string, from Scope, ok bool, err error)

	// Ops: usage counters, conversation claims, pending questions,
	// replica heartbeats.
	Ops

	// Close releases the store's connections.
	Close() error
}
