package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/conversation"
)

// usageKey returns a key of Slack workspace T1 on the day at offset days
// from the test clock's start.
func usageKey(channel, user, model string, days int) conversation.UsageKey {
	return conversation.UsageKey{Platform: "slack", Workspace: "T1", Channel: channel, User: user, Model: model,
		Day: start.AddDate(0, 0, days)}
}

func mustAddUsage(t testing.TB, o conversation.Ops, k conversation.UsageKey, u conversation.Usage) {
	t.Helper()
	if err := o.AddUsage(ctx(t), k, u); err != nil {
		t.Fatalf("AddUsage(%+v): %v", k, err)
	}
}

// checkSum asserts what SumUsage adds up for f.
func checkSum(t testing.TB, o conversation.Ops, f conversation.UsageFilter, want conversation.Usage) {
	t.Helper()
	got, err := o.SumUsage(ctx(t), f)
	if err != nil {
		t.Fatalf("SumUsage(%+v): %v", f, err)
	}
	if got != want {
		t.Errorf("SumUsage(%+v): got %+v, want %+v", f, got, want)
	}
}

// use returns a Usage of one request with the given tokens.
func use(prompt, completion int64) conversation.Usage {
	return conversation.Usage{Requests: 1, PromptTokens: prompt, CompletionTokens: completion}
}

func testUsageAddAndSum(t *testing.T, s conversation.Store) {
	o := opsOf(t, s)
	all := conversation.UsageFilter{Platform: "slack", Workspace: "T1"}
	checkSum(t, o, all, conversation.Usage{})

	// start is 09:30 UTC on day 0.
	mustAddUsage(t, o, usageKey("C1", "U1", "gpt-4o", 0), use(100, 10))
	// Later on the same day, in another time zone: the same counter.
	later := usageKey("C1", "U1", "gpt-4o", 0)
	later.Day = start.Add(14 * time.Hour).In(time.FixedZone("UTC-5", -5*3600)) // 23:30 UTC, 18:30 local
	mustAddUsage(t, o, later, use(200, 20))
	// 01:00 local on day 1 is still day 0 in UTC.
	early := usageKey("C1", "U1", "gpt-4o", 1)
	early.Day = time.Date(2025, time.March, 2, 1, 0, 0, 0, time.FixedZone("UTC+2", 2*3600))
	mustAddUsage(t, o, early, use(300, 30))
	mustAddUsage(t, o, usageKey("C1", "U1", "o3", 1), use(1000, 100))
	mustAddUsage(t, o, usageKey("C2", "U1", "gpt-4o", 2), use(10, 1))
	mustAddUsage(t, o, usageKey("C2", "U2", "gpt-4o", 2), use(20, 2))
	mustAddUsage(t, o, usageKey("C1", "U2", "o3", 31), conversation.Usage{Requests: 2, PromptTokens: 40, CompletionTokens: 4})
	// A counter may carry no channel, user or model.
	mustAddUsage(t, o, usageKey("", "", "", 0), conversation.Usage{Requests: 1})

	day := func(n int) time.Time { return start.AddDate(0, 0, n) }
	tests := []struct {
		name string
		f    conversation.UsageFilter
		want conversation.Usage
	}{
		{"everything", all, conversation.Usage{Requests: 9, PromptTokens: 1670, CompletionTokens: 167}},
		{"one user", conversation.UsageFilter{Platform: "slack", Workspace: "T1", User: "U1"},
			conversation.Usage{Requests: 5, PromptTokens: 1610, CompletionTokens: 161}},
		{"one channel", conversation.UsageFilter{Platform: "slack", Workspace: "T1", Channel: "C2"},
			conversation.Usage{Requests: 2, PromptTokens: 30, CompletionTokens: 3}},
		{"one model", conversation.UsageFilter{Platform: "slack", Workspace: "T1", Model: "o3"},
			conversation.Usage{Requests: 3, PromptTokens: 1040, CompletionTokens: 104}},
		{"user, channel and model", conversation.UsageFilter{Platform: "slack", Workspace: "T1", User: "U1", Channel: "C1", Model: "gpt-4o"},
			conversation.Usage{Requests: 3, PromptTokens: 600, CompletionTokens: 60}},
		{"one day", conversation.UsageFilter{Platform: "slack", Workspace: "T1", Since: day(0), Until: day(1)},
			conversation.Usage{Requests: 4, PromptTokens: 600, CompletionTokens: 60}},
		{"days count by date", conversation.UsageFilter{Platform: "slack", Workspace: "T1", Since: day(1).Add(12 * time.Hour), Until: day(2).Add(time.Hour)},
			conversation.Usage{Requests: 1, PromptTokens: 1000, CompletionTokens: 100}},
		{"since", conversation.UsageFilter{Platform: "slack", Workspace: "T1", Since: day(2)},
			conversation.Usage{Requests: 4, PromptTokens: 70, CompletionTokens: 7}},
		{"until", conversation.UsageFilter{Platform: "slack", Workspace: "T1", Until: day(2)},
			conversation.Usage{Requests: 5, PromptTokens: 1600, CompletionTokens: 160}},
		{"a month", conversation.UsageFilter{Platform: "slack", Workspace: "T1", User: "U2",
			Since: time.Date(2025, time.March, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2025, time.April, 1, 0, 0, 0, 0, time.UTC)},
			conversation.Usage{Requests: 1, PromptTokens: 20, CompletionTokens: 2}},
		{"the next month", conversation.UsageFilter{Platform: "slack", Workspace: "T1",
			Since: time.Date(2025, time.April, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2025, time.May, 1, 0, 0, 0, 0, time.UTC)},
			conversation.Usage{Requests: 2, PromptTokens: 40, CompletionTokens: 4}},
		{"empty range", conversation.UsageFilter{Platform: "slack", Workspace: "T1", Since: day(2), Until: day(2)}, conversation.Usage{}},
		{"unknown user", conversation.UsageFilter{Platform: "slack", Workspace: "T1", User: "U9"}, conversation.Usage{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkSum(t, o, tc.f, tc.want)
		})
	}
}

func testUsageValidation(t *testing.T, s conversation.Store) {
	o := opsOf(t, s)
	if err := o.AddUsage(ctx(t), conversation.UsageKey{Workspace: "T1", Day: start}, use(1, 1)); err == nil {
		t.Error("AddUsage with no platform: got nil error, want one")
	}
	if err := o.AddUsage(ctx(t), conversation.UsageKey{Platform: "slack", Workspace: "T1"}, use(1, 1)); err == nil {
		t.Error("AddUsage with no day: got nil error, want one")
	}
	if _, err := o.SumUsage(ctx(t), conversation.UsageFilter{Workspace: "T1"}); err == nil {
		t.Error("SumUsage with no platform: got nil error, want one")
	}
	checkSum(t, o, conversation.UsageFilter{Platform: "slack", Workspace: "T1"}, conversation.Usage{})
}

// testUsageSurvivesForget checks that a reset forgets messages, not what
// they cost.
func testUsageSurvivesForget(t *testing.T, s conversation.Store) {
	o := opsOf(t, s)
	c := mustConversation(t, s, key("C1", "1.1"))
	mustAppend(t, s, c.ID, userMessage("hello", "1.2"))
	mustAddUsage(t, o, usageKey("C1", "U1", "gpt-4o", 0), use(100, 10))
	if err := s.Forget(ctx(t), c.ID); err != nil {
		t.Fatalf("Forget: %v", err)
	}
	checkSum(t, o, conversation.UsageFilter{Platform: "slack", Workspace: "T1", User: "U1"}, use(100, 10))
}

func testIsolationUsage(t *testing.T, s conversation.Store) {
	o := opsOf(t, s)
	for i, tn := range tenants {
		k := conversation.UsageKey{Platform: tn.platform, Workspace: tn.workspace, Channel: "C1", User: "U1", Model: "gpt-4o", Day: start}
		mustAddUsage(t, o, k, use(int64(i+1), 0))
	}
	for i, tn := range tenants {
		for _, f := range []conversation.UsageFilter{
			{Platform: tn.platform, Workspace: tn.workspace},
			{Platform: tn.platform, Workspace: tn.workspace, Channel: "C1", User: "U1", Model: "gpt-4o", Since: start, Until: start.AddDate(0, 0, 1)},
		} {
			checkSum(t, o, f, use(int64(i+1), 0))
		}
	}
	checkSum(t, o, conversation.UsageFilter{Platform: "slack", Workspace: "T3"}, conversation.Usage{})
	checkSum(t, o, conversation.UsageFilter{Platform: "console", Workspace: "T1"}, conversation.Usage{})
}

func testConcurrentAddUsage(t *testing.T, s conversation.Store) {
	addUsageStorm(t, []conversation.Store{s})
}

func testSharedConcurrentAddUsage(t *testing.T, a, b conversation.Store) {
	addUsageStorm(t, []conversation.Store{a, b})
}

// addUsageStorm has workers goroutines, spread over stores, add to the
// same counters at once, some of which they create as they go: the sums
// come out exact.
func addUsageStorm(t *testing.T, stores []conversation.Store) {
	const adds = 25
	var wg sync.WaitGroup
	for w := range workers {
		o := opsOf(t, stores[w%len(stores)])
		wg.Go(func() {
			for i := range adds {
				for _, k := range []conversation.UsageKey{
					usageKey("C1", "U1", "gpt-4o", 0),                     // everyone's
					usageKey("C1", "U1", "gpt-4o", 1+i%5),                 // created in the race
					usageKey("C1", fmt.Sprintf("U%d", 10+w), "gpt-4o", 0), // the worker's own
				} {
					if err := o.AddUsage(ctx(t), k, use(10, 1)); err != nil {
						t.Errorf("AddUsage(%+v): %v", k, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	o := opsOf(t, stores[0])
	times := func(n int64) conversation.Usage {
		return conversation.Usage{Requests: n, PromptTokens: 10 * n, CompletionTokens: n}
	}
	f := conversation.UsageFilter{Platform: "slack", Workspace: "T1", User: "U1"}
	checkSum(t, o, f, times(2*workers*adds))
	f.Since, f.Until = start, start.AddDate(0, 0, 1)
	checkSum(t, o, f, times(workers*adds))
	for d := 1; d <= 5; d++ {
		f.Since, f.Until = start.AddDate(0, 0, d), start.AddDate(0, 0, d+1)
		checkSum(t, o, f, times(workers*adds/5))
	}
	for w := range workers {
		checkSum(t, o, conversation.UsageFilter{Platform: "slack", Workspace: "T1", User: fmt.Sprintf("U%d", 10+w)}, times(adds))
	}
}
