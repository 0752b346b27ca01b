// Package storetest is the conformance suite every conversation.Store
// passes: Run holds one behaviour per subtest, each on a fresh store, and
// RunShared checks two stores opened on one database, as two processes
// would share it. It also holds the store benchmarks.
//
// It is for tests only; nothing outside tests imports it.
package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/conversation"
)

// Run runs the conformance suite. newStore returns a fresh, empty store for
// one subtest and arranges its closing with t.Cleanup; it passes Now(t) as
// the store's clock so that the suite can move time. The store must also
// implement conversation.Ops.
func Run(t *testing.T, newStore func(t *testing.T) conversation.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s conversation.Store)
	}{
		{"Conversation/GetOrCreate", testGetOrCreate},
		{"Conversation/FindNotFound", testFindNotFound},
		{"Append/ReturnsStored", testAppendReturnsStored},
		{"Append/IdempotentOnPlatformID", testAppendIdempotent},
		{"Append/EmptyPlatformIDAlwaysAppends", testAppendEmptyPlatformID},
		{"Append/UnknownConversation", testAppendUnknownConversation},
		{"UpdateMessage", testUpdateMessage},
		{"UpdateMessage/NotFound", testUpdateMessageNotFound},
		{"ToolRounds", testToolRounds},
		{"History/Bounds", testHistoryBounds},
		{"History/MaxChars", testHistoryMaxChars},
		{"History/OrderedByCreatedAt", testHistoryOrder},
		{"History/AnswersFollowQuestions", testHistoryAnswersFollowQuestions},
		{"History/EmptyAndUnknown", testHistoryEmptyAndUnknown},
		{"Forget", testForget},
		{"Stranded", testStranded},
		{"MarkEvent", testMarkEvent},
		{"Settings/Precedence", testSettingsPrecedence},
		{"Settings/Validation", testSettingsValidation},
		{"MessageByPlatformID", testMessageByPlatformID},
		{"Isolation/Conversations", testIsolationConversations},
		{"Isolation/Messages", testIsolationMessages},
		{"Isolation/Events", testIsolationEvents},
		{"Isolation/Settings", testIsolationSettings},
		{"Concurrency/Append", testConcurrentAppend},
		{"Concurrency/Conversation", testConcurrentConversation},

		// conversation.Ops
		{"Usage/AddAndSum", testUsageAddAndSum},
		{"Usage/Validation", testUsageValidation},
		{"Usage/SurvivesForget", testUsageSurvivesForget},
		{"Claim/Exclusive", testClaimExclusive},
		{"Claim/PerConversation", testClaimPerConversation},
		{"Claim/Validation", testClaimValidation},
		{"Stranded/SkipsClaimed", testStrandedSkipsClaimed},
		{"Pending", testPending},
		{"Isolation/Usage", testIsolationUsage},
		{"Concurrency/Claim", testConcurrentClaim},
		{"Concurrency/AddUsage", testConcurrentAddUsage},
		{"Heartbeat/SeesItself", testHeartbeatSeesItself},
		{"Heartbeat/SeeEachOther", testHeartbeatSeeEachOther},
		{"Heartbeat/Lapse", testHeartbeatLapse},
		{"Heartbeat/Renew", testHeartbeatRenew},
		{"Heartbeat/Leave", testHeartbeatLeave},
		{"Heartbeat/Validation", testHeartbeatValidation},
		{"Concurrency/Heartbeat", testConcurrentHeartbeat},
		{"Accept", testAccept},
		{"AcceptCreates", testAcceptCreates},
		{"Takeover", testTakeover},
		{"UpdateAnswer", testUpdateAnswer},
		{"Recent", testRecent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// RunShared checks two stores opened on one database, as two processes (or
// replicas) would open it: what one writes the other reads, and concurrent
// writes through both lose nothing and duplicate nothing. newPair returns
// the two stores on a fresh database and arranges their closing with
// t.Cleanup; both take Now(t) as their clock.
func RunShared(t *testing.T, newPair func(t *testing.T) (a, b conversation.Store)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, a, b conversation.Store)
	}{
		{"SeeEachOther", testSharedSeeEachOther},
		{"ConcurrentAppend", testSharedConcurrentAppend},
		{"ConcurrentConversation", testSharedConcurrentConversation},
		{"ConcurrentMarkEvent", testSharedConcurrentMarkEvent},
		{"StrandedSkipsClaimed", testSharedStrandedSkipsClaimed},
		{"ConcurrentClaim", testSharedConcurrentClaim},
		{"ConcurrentAddUsage", testSharedConcurrentAddUsage},
		{"Heartbeat", testSharedHeartbeat},
		{"ConcurrentHeartbeat", testSharedConcurrentHeartbeat},
		{"ConcurrentAccept", testSharedConcurrentAccept},
		{"ConcurrentAcceptCreates", testSharedConcurrentAcceptCreates},
		{"ConcurrentTakeover", testSharedConcurrentTakeover},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newPair(t)
			tc.fn(t, a, b)
		})
	}
}

// start is where every test clock starts: a fixed instant, in UTC, with no
// sub-microsecond part, so that stores keeping microseconds round-trip it.
var start = time.Date(2025, time.March, 1, 9, 30, 0, 0, time.UTC)

// clock is a fake clock that moves only when a test advances it.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var clocks sync.Map // testing.TB -> *clock

// Now returns the fake clock of test t, for the store's Now option. The
// suite advances it to test expiry and timestamps; it starts at a fixed
// instant and never moves by itself.
func Now(t testing.TB) func() time.Time {
	return clockOf(t).Now
}

func clockOf(t testing.TB) *clock {
	if c, ok := clocks.Load(t); ok {
		return c.(*clock)
	}
	c, loaded := clocks.LoadOrStore(t, &clock{now: start})
	if !loaded {
		t.Cleanup(func() { clocks.Delete(t) })
	}
	return c.(*clock)
}

// clockHint is appended to failures that a store ignoring Now(t) causes.
const clockHint = " (does newStore pass storetest.Now(t) as the store's clock?)"

// ctx returns a context that ends with the test.
func ctx(t testing.TB) context.Context {
	return t.Context()
}

// key returns a Slack key in workspace T1 for a channel and thread.
func key(channel, thread string) conversation.Key {
	return conversation.Key{Platform: "slack", Workspace: "T1", Channel: channel, Thread: thread}
}

// opsOf returns s as conversation.Ops, or fails t.
func opsOf(t testing.TB, s conversation.Store) conversation.Ops {
	t.Helper()
	o, ok := s.(conversation.Ops)
	if !ok {
		t.Fatalf("%T does not implement conversation.Ops", s)
	}
	return o
}

func mustConversation(t testing.TB, s conversation.Store, k conversation.Key) conversation.Conversation {
	t.Helper()
	c, err := s.Conversation(ctx(t), k)
	if err != nil {
		t.Fatalf("Conversation(%+v): %v", k, err)
	}
	return c
}

func mustAppend(t testing.TB, s conversation.Store, convID int64, m conversation.Message) conversation.Message {
	t.Helper()
	stored, _, err := s.Append(ctx(t), convID, m)
	if err != nil {
		t.Fatalf("Append(%d, %q): %v", convID, m.Text, err)
	}
	return stored
}

func mustHistory(t testing.TB, s conversation.Store, convID int64, q conversation.HistoryQuery) []conversation.Message {
	t.Helper()
	h, err := s.History(ctx(t), convID, q)
	if err != nil {
		t.Fatalf("History(%d, %+v): %v", convID, q, err)
	}
	return h
}

// userMessage returns a user message with text and platform id.
func userMessage(text, platformID string) conversation.Message {
	return conversation.Message{
		Role:       conversation.RoleUser,
		Author:     "U1",
		PlatformID: platformID,
		Text:       text,
		Status:     conversation.StatusComplete,
	}
}

// texts returns the texts of ms, in order.
func texts(ms []conversation.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Text
	}
	return out
}

// diffMessage describes how got differs from want, or returns "".
// Times compare with Equal so that the location does not matter.
func diffMessage(got, want conversation.Message) string {
	var d string
	add := func(field string, g, w any) {
		d += fmt.Sprintf("\n\t%s: got %v, want %v", field, g, w)
	}
	if got.ID != want.ID {
		add("ID", got.ID, want.ID)
	}
	if got.ConversationID != want.ConversationID {
		add("ConversationID", got.ConversationID, want.ConversationID)
	}
	if got.Role != want.Role {
		add("Role", got.Role, want.Role)
	}
	if got.Author != want.Author {
		add("Author", got.Author, want.Author)
	}
	if got.PlatformID != want.PlatformID {
		add("PlatformID", got.PlatformID, want.PlatformID)
	}
	if got.Text != want.Text {
		add("Text", fmt.Sprintf("%q", got.Text), fmt.Sprintf("%q", want.Text))
	}
	if got.Model != want.Model {
		add("Model", got.Model, want.Model)
	}
	if got.PromptTokens != want.PromptTokens {
		add("PromptTokens", got.PromptTokens, want.PromptTokens)
	}
	if got.CompletionTokens != want.CompletionTokens {
		add("CompletionTokens", got.CompletionTokens, want.CompletionTokens)
	}
	if got.ReplyTo != want.ReplyTo {
		add("ReplyTo", got.ReplyTo, want.ReplyTo)
	}
	if got.Status != want.Status {
		add("Status", got.Status, want.Status)
	}
	if !slices.Equal(got.Attachments, want.Attachments) {
		add("Attachments", fmt.Sprintf("%#v", got.Attachments), fmt.Sprintf("%#v", want.Attachments))
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		add("CreatedAt", got.CreatedAt, want.CreatedAt)
	}
	if !got.UpdatedAt.Equal(want.UpdatedAt) {
		add("UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	}
	return d
}
