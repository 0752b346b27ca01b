package conversation

import (
	"context"
	"time"
)

// UsageKey identifies one usage counter: one user's use of one model in one channel on one day.
type UsageKey struct {
	Platform, Workspace, Channel, User, Model string
	Day                                       time.Time // the day, UTC; only its date counts
}

// Usage counts requests and tokens.
type Usage struct {
	Requests, PromptTokens, CompletionTokens int64
}

// UsageFilter selects counters to add up. Platform and Workspace are required; an empty field matches all; Since and Until bound the days (Since inclusive, Until exclusive; zero means unbounded).
//
// Workspace is matched exactly even when empty (Discord DMs have the
// workspace ""), so a sum never reaches across (Platform, Workspace). Since
// and Until count by their UTC date, as UsageKey.Day does.
type UsageFilter struct {
	Platform, Workspace, Channel, User, Model string
	Since, Until                              time.Time
}

// Ops are the store operations that several replicas and usage accounting need.
//
// Claims and recovery: Store.Stranded skips the messages of a conversation
// under a live claim of any owner, so that a replica's recovery never
// touches a stream that another live replica is writing. A restarted
// replica finds its own earlier streams once their claims have expired, so
// an owner names one process run (say, host name and start time), and
// recovery claims a conversation before correcting its stranded answers.
//
// Replicas: a platform's rate limits belong to a whole workspace, so
// replicas sharing one database split each budget between the replicas
// alive. Each replica calls Heartbeat well within its ttl, under the same
// owner it claims conversations as, and Leave when it shuts down; the
// owners Heartbeat returns are the replicas to split between. A lease is
// timed by the database's clock, never the caller's, so that clock skew
// between replica hosts can neither end a live replica's lease early nor
// keep a dead one's.
type Ops interface {
	// AddUsage adds u to the counter k (creating it), atomically across processes.
	// It returns an error when k has no Platform or no Day.
	AddUsage(ctx context.Context, k UsageKey, u Usage) error
	// SumUsage adds up the counters f selects.
	// It returns an error when f has no Platform.
	SumUsage(ctx context.Context, f UsageFilter) (Usage, error)
	// ClaimConversation makes owner the one replica answering conversation convID until ttl has passed. It reports false while another owner's claim is live. Claiming again as the same owner renews the claim.
	// A claim is live while the store's clock is before its expiry. It
	// returns the claim's fencing token: it stays the same while owner
	// renews the claim and changes whenever the claim changes hands (a
	// new claim, one taken over after it expired, or Takeover), so that a
	// write fenced by it (UpdateAnswer) fails once the claim is lost. It
	// returns ErrNotFound when the conversation does not exist, and an
	// error when owner is empty or ttl is not positive.
	ClaimConversation(ctx context.Context, convID int64, owner string, ttl time.Duration) (token int64, ok bool, err error)
	// ReleaseConversation ends owner's claim on convID; releasing a claim one does not hold is not an error.
	ReleaseConversation(ctx context.Context, convID int64, owner string) error
	// Pending returns the user messages of conversation convID that no assistant message answers yet (none has ReplyTo equal to their ID), oldest first, at most limit (0: all).
	// It returns ErrNotFound when the conversation does not exist.
	Pending(ctx context.Context, convID int64, limit int) ([]Message, error)
	// Heartbeat records that replica owner is alive until ttl from now, removes the replicas whose lease has lapsed, and returns the owners alive now, owner among them, sorted.
	// Each heartbeat sets owner's lease to ttl from its own now, so
	// renewing extends it. Now is the database's clock. The owners sort by
	// their bytes, as slices.Sort sorts them. It returns an error when owner
	// is empty or ttl is not positive.
	Heartbeat(ctx context.Context, owner string, ttl time.Duration) (live []string, err error)
	// Leave ends owner's lease at once (a clean shutdown), so that the others stop counting it without waiting for the lease to lapse; leaving without a lease is not an error.
	Leave(ctx context.Context, owner string) error

	// Accept stores user message m in conversation convID as accepted by instance in.Owner, and marks the platform events in.Events as seen (as MarkEvent does, for in.TTL), in one transaction: all of it is written or none. With convID 0 the conversation is in.Key's, created if needed. When one of the events was seen within its ttl, or the conversation already holds a message with m.PlatformID, nothing is written (not even the conversation) and created is false.
	// The accepted message is in the owner's inbox (Inbox) until an answer replies to it (Append of an assistant message whose ReplyTo is its ID). It returns ErrNotFound when the conversation does not exist, and an error when in.Owner is empty.
	Accept(ctx context.Context, convID int64, m Message, in Intake) (stored Message, created bool, err error)
	// Seen reports whether a platform event id was marked (MarkEvent, Accept) within its ttl, without marking it.
	Seen(ctx context.Context, platform, workspace, eventID string) (bool, error)
	// Inbox returns the user messages of conversation convID that no assistant message answers yet, oldest first (as Pending), each with the instance that accepted it ("" when it was stored by Append) and whether that instance is alive: its heartbeat lease has not lapsed by the store's clock. It returns ErrNotFound when the conversation does not exist.
	Inbox(ctx context.Context, convID int64) ([]Question, error)
	// Takeover moves to owner, in one transaction, the claims and the accepted questions (Inbox) of platform's conversations that belong to instances no longer alive (no heartbeat lease, or a lapsed one), or, with everyone, to any instance but owner (the caller knows it is the only one: an SQLite file it holds). A claim taken over gets a new fencing token and lasts ttl. Of instances taking over at once, each claim and question goes to one. At most limit conversations move (0: all), the lowest IDs first, so that survivors share a dead instance's work. It returns the conversations whose claims or questions moved, by ID.
	Takeover(ctx context.Context, owner, platform string, ttl time.Duration, everyone bool, limit int) ([]Conversation, error)
	// UpdateAnswer is UpdateMessage fenced by a claim: it writes m only while owner holds the claim on m's conversation convID with this token, and returns ErrClaimLost, writing nothing, once the claim has changed hands. It returns ErrNotFound for an unknown message.
	UpdateAnswer(ctx context.Context, convID int64, m Message, owner string, token int64) error
	// SetReply records platformID as the message that shows question messageID's reply while it waits (a queued notice), so that the instance that answers it writes the answer there; a question no longer waiting is left alone.
	SetReply(ctx context.Context, messageID int64, platformID string) error
	// Recent returns platform's conversations with a message stored at or after since (by the store's clock), the most recently active first, at most limit, each with the platform id of its newest message that has one: where an adapter that was disconnected looks for the messages it missed.
	Recent(ctx context.Context, platform string, since time.Time, limit int) ([]Recent, error)
}

// Recent is a recently active conversation and the platform id of its newest stored message ("" when none has one). Platform ids compare as the platforms' ids do: a longer one is newer, then by their bytes.
type Recent struct {
	Conversation
	LastID string
}

// Intake says who accepted a message and which platform events delivered it (see Ops.Accept).
type Intake struct {
	Owner               string // the instance that accepted it, as it heartbeats
	Platform, Workspace string // the events' platform and workspace
	Events              []string
	TTL                 time.Duration // how long the events are remembered
	// Key is, when Accept is given conversation id 0, the conversation to
	// store the message in: found, or created in the same transaction
	// (the stored message's ConversationID names it). A first question
	// then costs one write, not two.
	Key Key
}

// Question is a user message still waiting for its answer, with the instance that accepted it.
type Question struct {
	Message
	Owner      string
	OwnerAlive bool
	ReplyID    string // the message showing that it waits (SetReply), or ""
}
