package storetest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/conversation"
)

// BenchHistoryLast50 loads the newest 50 messages of a conversation that
// holds 10,000, as the engine does before each answer, and reports the
// median and 99th percentile latency of one load (p50-ms, p99-ms).
// s is a fresh store; seeding it is not timed.
func BenchHistoryLast50(b *testing.B, s conversation.Store) {
	const size, last = 10_000, 50
	c, err := s.Conversation(b.Context(), conversation.Key{Platform: "slack", Workspace: "TBENCH", Channel: "C1", Thread: "1.1"})
	if err != nil {
		b.Fatalf("Conversation: %v", err)
	}
	// A few other conversations share the tables, as in a real workspace.
	for i := range 4 {
		other, err := s.Conversation(b.Context(), conversation.Key{Platform: "slack", Workspace: "TBENCH", Channel: fmt.Sprintf("C%d", i+2)})
		if err != nil {
			b.Fatalf("Conversation: %v", err)
		}
		for j := range 100 {
			if _, _, err := s.Append(b.Context(), other.ID, benchMessage(j)); err != nil {
				b.Fatalf("Append: %v", err)
			}
		}
	}
	for i := range size {
		if _, _, err := s.Append(b.Context(), c.ID, benchMessage(i)); err != nil {
			b.Fatalf("Append: %v", err)
		}
	}

	var took []time.Duration
	for b.Loop() {
		t0 := time.Now()
		h, err := s.History(b.Context(), c.ID, conversation.HistoryQuery{Limit: last})
		took = append(took, time.Since(t0))
		if err != nil {
			b.Fatalf("History: %v", err)
		}
		if len(h) != last || h[last-1].Text != benchMessage(size-1).Text {
			b.Fatalf("History: got %d messages, want the newest %d", len(h), last)
		}
	}
	slices.Sort(took)
	b.ReportMetric(percentile(took, 0.50), "p50-ms")
	b.ReportMetric(percentile(took, 0.99), "p99-ms")
}

// BenchAppendParallel appends from 8 goroutines, each to its own
// conversation, and reports messages stored per second (msgs/s).
func BenchAppendParallel(b *testing.B, s conversation.Store) {
	const goroutines = 8
	run := time.Now().UnixNano() // platform ids unique across calls on one store
	convs := make([]int64, goroutines)
	for w := range convs {
		c, err := s.Conversation(b.Context(), conversation.Key{Platform: "slack", Workspace: "TBENCH", Channel: fmt.Sprintf("C%d-%d", run, w)})
		if err != nil {
			b.Fatalf("Conversation: %v", err)
		}
		convs[w] = c.ID
	}
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	b.ResetTimer()
	for w := range goroutines {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > b.N {
					return
				}
				m := benchMessage(i)
				m.PlatformID = fmt.Sprintf("%d.%d", run, i)
				if _, _, err := s.Append(b.Context(), convs[w], m); err != nil {
					b.Errorf("Append: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// benchMessage returns message i of a conversation: users and the
// assistant take turns, with texts of 40 to 600 characters.
func benchMessage(i int) conversation.Message {
	text := fmt.Sprintf("message %d: ", i) + strings.Repeat("lorem ipsum ", 3+i%50)
	if i%2 == 0 {
		return conversation.Message{Role: conversation.RoleUser, Author: "U1", Text: text, Status: conversation.StatusComplete}
	}
	return conversation.Message{Role: conversation.RoleAssistant, Author: "B1", Text: text, Model: "gpt-4o-mini",
		PromptTokens: 1200 + i, CompletionTokens: 80, Status: conversation.StatusComplete}
}

// percentile returns the p-th percentile of sorted durations, in
// milliseconds.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i]) / float64(time.Millisecond)
}

// BenchSumUsageMonth adds up one month of usage, as a /usage command does:
// of one user ("user") and of a whole workspace ("workspace"), over 60
// days of counters for 20 users in 3 channels with 2 models. It reports
// the median and 99th percentile latency of one sum (p50-ms, p99-ms).
// s is a fresh store; seeding it is not timed.
func BenchSumUsageMonth(b *testing.B, s conversation.Store) {
	const users, channels, models, days = 20, 3, 2, 60
	o := opsOf(b, s)
	first := time.Date(2025, time.January, 1, 12, 0, 0, 0, time.UTC)
	for d := range days {
		for u := range users {
			for c := range channels {
				for m := range models {
					k := conversation.UsageKey{Platform: "slack", Workspace: "TBENCH", Channel: fmt.Sprintf("C%d", c),
						User: fmt.Sprintf("U%d", u), Model: fmt.Sprintf("model-%d", m), Day: first.AddDate(0, 0, d)}
					if err := o.AddUsage(b.Context(), k, conversation.Usage{Requests: 1, PromptTokens: 1000, CompletionTokens: 100}); err != nil {
						b.Fatalf("AddUsage: %v", err)
					}
				}
			}
		}
	}
	month := conversation.UsageFilter{Platform: "slack", Workspace: "TBENCH",
		Since: time.Date(2025, time.February, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2025, time.March, 1, 0, 0, 0, 0, time.UTC)}
	user := month
	user.User = "U7"
	for _, bc := range []struct {
		name     string
		f        conversation.UsageFilter
		requests int64
	}{
		{"user", user, 28 * channels * models},
		{"workspace", month, 28 * users * channels * models},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				t0 := time.Now()
				u, err := o.SumUsage(b.Context(), bc.f)
				took = append(took, time.Since(t0))
				if err != nil {
					b.Fatalf("SumUsage: %v", err)
				}
				if u.Requests != bc.requests {
					b.Fatalf("SumUsage: got %d requests, want %d", u.Requests, bc.requests)
				}
			}
			slices.Sort(took)
			b.ReportMetric(percentile(took, 0.50), "p50-ms")
			b.ReportMetric(percentile(took, 0.99), "p99-ms")
		})
	}
}

// BenchPending finds the unanswered questions of a conversation of 10,000
// messages, all answered but the last two, as a replica taking over a
// conversation does, and reports the median and 99th percentile latency
// of one call (p50-ms, p99-ms). s is a fresh store; seeding it is not
// timed.
func BenchPending(b *testing.B, s conversation.Store) {
	const size, waiting = 10_000, 2
	o := opsOf(b, s)
	c, err := s.Conversation(b.Context(), conversation.Key{Platform: "slack", Workspace: "TBENCH", Channel: "C1", Thread: "1.1"})
	if err != nil {
		b.Fatalf("Conversation: %v", err)
	}
	var question int64
	for i := range size - waiting {
		m := benchMessage(i)
		if m.Role == conversation.RoleAssistant {
			m.ReplyTo = question
		}
		stored, _, err := s.Append(b.Context(), c.ID, m)
		if err != nil {
			b.Fatalf("Append: %v", err)
		}
		question = stored.ID
	}
	for i := range waiting {
		if _, _, err := s.Append(b.Context(), c.ID, benchMessage(2*i)); err != nil {
			b.Fatalf("Append: %v", err)
		}
	}

	var took []time.Duration
	for b.Loop() {
		t0 := time.Now()
		p, err := o.Pending(b.Context(), c.ID, 0)
		took = append(took, time.Since(t0))
		if err != nil {
			b.Fatalf("Pending: %v", err)
		}
		if len(p) != waiting {
			b.Fatalf("Pending: got %d messages, want %d", len(p), waiting)
		}
	}
	slices.Sort(took)
	b.ReportMetric(percentile(took, 0.50), "p50-ms")
	b.ReportMetric(percentile(took, 0.99), "p99-ms")
}
