package slack

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/adapters/slack/slacktest"
	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/conversation/postgres"
	"github.com/parleyhq/parley/conversation/postgres/pgtest"
	"github.com/parleyhq/parley/conversation/sqlite"
	"github.com/parleyhq/parley/llm"
	"github.com/parleyhq/parley/llm/llmtest"
)

// loadRun is one load scenario through the real adapter, slack-go and the
// engine, against the fake Slack with Slack's limits (the default) and a
// fake model on loopback, in the default settings (SLACK_STREAMING=auto).
type loadRun struct {
	conversations int
	tokens        int           // per answer
	every         time.Duration // between tokens (25 ms: 40 tokens/s)
	ttft          time.Duration // the model's time to first token
	rate          float64       // arrivals a second, Poisson; 0: all at once
	oneChannel    bool          // threads of one channel (else a channel each)
	replicas      int           // engines sharing one PostgreSQL database (0, 1: one on SQLite)
	lone          bool          // then one more conversation, alone
}

// loadResult holds what users see.
type loadResult struct {
	limited        int // 429s, every method
	exact, replies int
	minUpdates     int     // fewest visible changes of a reply
	added95, lag50 float64 // ms
	intake95       float64 // ms from the question to the model's request, p95
	lag95          float64
	native, update int     // replies by delivery
	continued      int     // replies with more than one message
	loneFirst      float64 // ms from the lone question to its first visible text
	loneUpdates    int
	budgetUse      map[string]float64 // calls made / calls Slack allowed over the run
}

func runSlackLoad(tb testing.TB, run loadRun) loadResult {
	tb.Helper()
	fake := slacktest.New(tb, slacktest.Config{})
	srv := llmtest.NewServer()
	tb.Cleanup(srv.Close)
	words := make([]string, run.tokens)
	for i := range words {
		words[i] = fmt.Sprintf("w%d ", i%97)
		if i%40 == 39 {
			words[i] = fmt.Sprintf("w%d.\n\n", i%97)
		}
	}
	answer := strings.Join(words, "")
	srv.Answer = func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Chunks: words, Every: run.every, FirstDelay: run.ttft}
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.DiscardHandler)
	client, err := llm.New(llm.Config{BaseURL: srv.BaseURL(), APIKey: "sk-test-key", DefaultModel: "gpt-test",
		HTTPClient: &http.Client{Transport: slacktest.LoopbackTransport()}, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	tb.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	// Each replica is an engine with its store and an adapter with its
	// own socket: the fake spreads the events over the sockets as Slack
	// does. Replicas share one PostgreSQL database; a lone process keeps
	// the default SQLite file.
	replicas := max(run.replicas, 1)
	dbURL := ""
	if run.replicas > 1 {
		dbURL = pgtest.Schema(tb, "slackload")
	}
	var engines []*bots.Engine
	cfg := fake.Config()
	for i := range replicas {
		var store conversation.Store
		if dbURL != "" {
			store, err = postgres.Open(ctx, dbURL, postgres.Options{})
		} else {
			store, err = sqlite.Open(ctx, filepath.Join(tb.TempDir(), "load.db"), sqlite.Options{})
		}
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { store.Close() })
		engine := bots.New(bots.Config{DefaultModel: "gpt-test", Logger: log, Owner: fmt.Sprintf("replica-%d", i)}, store, client)
		a, err := New(Options{BotToken: cfg.BotToken, AppToken: cfg.AppToken, APIURL: fake.APIURL, HTTPClient: loopbackClient()}, engine, log)
		if err != nil {
			tb.Fatal(err)
		}
		wg.Go(func() { engine.Run(ctx) })
		<-engine.Started()
		wg.Go(func() { a.Run(ctx) })
		engines = append(engines, engine)
	}
	waitFor(tb, fake, 10*time.Second, "the sockets", func() bool { return fake.Open() == replicas })
	waitFor(tb, fake, 20*time.Second, "the replicas to see each other", func() bool {
		for _, e := range engines {
			if e.Replicas() != replicas {
				return false
			}
		}
		return true
	})

	type asked struct {
		channel, ts, prompt string
		at                  time.Time
	}
	var qs []asked
	ask := func(i int) {
		channel := fmt.Sprintf("C%d", i)
		if run.oneChannel {
			channel = "C1"
		}
		prompt := fmt.Sprintf("stream %d", i)
		at := time.Now()
		p := fake.UserMessage(channel, "", "U1", "<@"+cfg.BotUserID+"> "+prompt)
		qs = append(qs, asked{channel, p.TS, prompt, at})
	}
	start := time.Now()
	rng := rand.New(rand.NewPCG(1, 2))
	next := start
	for i := range run.conversations {
		if run.rate > 0 {
			next = next.Add(time.Duration(rng.ExpFloat64() / run.rate * float64(time.Second)))
			if d := time.Until(next); d > 0 {
				time.Sleep(d) // the arrival schedule of the load, not a wait for a result
			}
		}
		ask(i)
	}
	flat := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	want := flat(answer)
	shown := func(q asked) (string, []slacktest.Message) {
		ms := fake.BotMessages(q.channel, q.ts)
		var b strings.Builder
		for _, m := range ms {
			b.WriteString(m.Text)
			b.WriteString(" ")
		}
		return flat(b.String()), ms
	}
	settled := func(n int) bool {
		for _, q := range qs[:n] {
			if s, ms := shown(q); s != want || len(ms) == 0 || ms[len(ms)-1].Streaming {
				return false
			}
		}
		return true
	}
	wait := func(n int) {
		limit := time.Now().Add(5 * time.Minute)
		for !settled(n) && time.Now().Before(limit) {
			select {
			case <-fake.Changed():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	wait(len(qs))
	res := loadResult{replies: len(qs), minUpdates: 1 << 30}
	if run.lone {
		ask(len(qs))
		wait(len(qs))
	}
	end := time.Now()
	timings := srv.Timings()
	var added, intake, lag []float64
	for i, q := range qs {
		s, ms := shown(q)
		tm := timings[q.prompt]
		// Only changes that show answer text count: a placeholder or a
		// queued notice is progress, not the answer.
		var first, last time.Time
		changes := 0
		for _, m := range ms {
			for k, c := range m.Changes {
				if t := flat(m.Shown[k]); t == "" || !strings.Contains(want, t) {
					continue
				}
				changes++
				if first.IsZero() || c.Before(first) {
					first = c
				}
				if c.After(last) {
					last = c
				}
			}
		}
		if i == run.conversations {
			res.loneFirst = ms2(first.Sub(q.at))
			res.loneUpdates = changes
			continue
		}
		if s == want {
			res.exact++
		}
		res.minUpdates = min(res.minUpdates, changes)
		if len(ms) > 0 {
			if ms[0].Streamed {
				res.native++
			} else {
				res.update++
			}
			if len(ms) > 1 {
				res.continued++
			}
		}
		added = append(added, ms2(first.Sub(q.at)-tm.First.Sub(tm.Received)))
		intake = append(intake, ms2(tm.Received.Sub(q.at)))
		lag = append(lag, ms2(last.Sub(tm.Last)))
	}
	res.added95, res.lag50, res.lag95 = pctl(added, 0.95), pctl(lag, 0.5), pctl(lag, 0.95)
	res.intake95 = pctl(intake, 0.95)
	res.budgetUse = make(map[string]float64)
	for _, m := range []string{"chat.postMessage", "chat.update", "chat.startStream", "chat.appendStream", "chat.stopStream"} {
		res.limited += fake.RateLimited(m)
		l := slacktest.Tiers[m].Workspace
		allowed := float64(l.Burst) + float64(end.Sub(start))/float64(l.Every)
		res.budgetUse[m] = float64(fake.Calls(m)-fake.RateLimited(m)) / allowed
	}
	res.limited += fake.RateLimited("assistant.threads.setStatus")
	return res
}

func ms2(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func pctl(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func (r loadResult) report(b *testing.B) {
	b.ReportMetric(float64(r.limited), "429s")
	b.ReportMetric(float64(r.exact)/float64(max(r.replies, 1)), "exact-ratio")
	b.ReportMetric(float64(r.minUpdates), "min-updates")
	b.ReportMetric(r.added95, "added-p95-ms")
	b.ReportMetric(r.intake95, "intake-p95-ms")
	b.ReportMetric(r.lag50, "final-lag-p50-ms")
	b.ReportMetric(r.lag95, "final-lag-p95-ms")
	b.ReportMetric(float64(r.native), "native")
	b.ReportMetric(float64(r.update), "update")
	b.ReportMetric(float64(r.continued), "continued")
	if r.loneFirst > 0 {
		b.ReportMetric(r.loneFirst, "lone-first-ms")
		b.ReportMetric(float64(r.loneUpdates), "lone-updates")
	}
	for m, u := range r.budgetUse {
		b.ReportMetric(u, m+"-use")
	}
}

// BenchmarkSlackLoad runs the load scenarios of a whole workspace talking
// at once, in the default settings, through slack-go against the fake
// Slack with Slack's limits. Run:
//
//	go test ./adapters/slack -run '^$' -bench SlackLoad -benchtime 1x
func BenchmarkSlackLoad(b *testing.B) {
	std := loadRun{tokens: 300, every: 25 * time.Millisecond, ttft: 300 * time.Millisecond}
	with := func(f func(*loadRun)) loadRun { r := std; f(&r); return r }
	for _, sc := range []struct {
		name string
		run  loadRun
	}{
		{"burst-50", with(func(r *loadRun) { r.conversations = 50 })},
		{"burst-100-then-lone", with(func(r *loadRun) { r.conversations = 100; r.lone = true })},
		{"long-20x600", with(func(r *loadRun) { r.conversations = 20; r.tokens = 600 })},
		{"poisson-2s-2min", with(func(r *loadRun) { r.conversations = 240; r.rate = 2 })},
		{"one-channel-20", with(func(r *loadRun) { r.conversations = 20; r.oneChannel = true })},
		{"two-replicas-50", with(func(r *loadRun) { r.conversations = 50; r.replicas = 2 })},
	} {
		b.Run(sc.name, func(b *testing.B) {
			for range b.N {
				res := runSlackLoad(b, sc.run)
				res.report(b)
				if res.limited != 0 || res.exact != res.replies {
					b.Errorf("%d 429s, %d of %d exact", res.limited, res.exact, res.replies)
				}
			}
		})
	}
}

// TestSlackLoadShort is the load benchmark's short form, for CI: a burst of
// conversations in their own channels, then a lone one, in the default
// settings against Slack's limits. Every reply is exact, shows its text at
// least twice (its first text, then more), no call draws a 429, and the
// lone conversation is not starved.
func TestSlackLoadShort(t *testing.T) {
	res := runSlackLoad(t, loadRun{conversations: 30, tokens: 120, every: 25 * time.Millisecond, ttft: 200 * time.Millisecond, lone: true})
	t.Logf("%+v", res)
	if res.limited != 0 {
		t.Errorf("%d 429s, want none", res.limited)
	}
	if res.exact != res.replies {
		t.Errorf("%d of %d replies exact", res.exact, res.replies)
	}
	if res.minUpdates < 2 {
		t.Errorf("a reply showed its text %d time(s), want at least 2", res.minUpdates)
	}
	if res.native == 0 || res.update == 0 {
		t.Errorf("deliveries: %d native, %d update; want both budgets used", res.native, res.update)
	}
	if res.loneUpdates < 2 {
		t.Errorf("the lone conversation showed its text %d time(s), want at least 2", res.loneUpdates)
	}
}

// TestSlackLoadTwoReplicasShort is the two-replica load's short form, for
// CI: two engines on one PostgreSQL database, each with its own socket,
// split the workspace's budgets between them, so a burst draws no 429.
func TestSlackLoadTwoReplicasShort(t *testing.T) {
	res := runSlackLoad(t, loadRun{conversations: 30, tokens: 120, every: 25 * time.Millisecond, ttft: 200 * time.Millisecond, replicas: 2})
	t.Logf("%+v", res)
	if res.limited != 0 {
		t.Errorf("%d 429s, want none", res.limited)
	}
	if res.exact != res.replies {
		t.Errorf("%d of %d replies exact", res.exact, res.replies)
	}
}
