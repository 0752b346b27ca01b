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
	// returns ErrNotFound when the conversation does not exist, and an error
	// when owner is empty or ttl is not positive.
	ClaimConversation(ctx context.Context, convID int64, owner string, ttl time.Duration) (bool, error)
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
}
