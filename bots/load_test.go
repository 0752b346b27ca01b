package bots_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/bots/botstest"
	"github.com/parleyhq/parley/conversation/sqlite"
	"github.com/parleyhq/parley/llm"
	"github.com/parleyhq/parley/llm/llmtest"
)

// loadScenario is one load run: streams concurrent answers against a fake
// platform that enforces limits, and a fake model on loopback.
type loadScenario struct {
	name     string
	streams  int
	tokens   int           // tokens per answer
	every    time.Duration // between tokens (20 ms: 50 tokens/s)
	ttft     time.Duration // the model's time to first token
	stagger  time.Duration // between arrivals
	limits   botstest.Enforced
	channels bool // each stream in its own channel (else threads of one channel)
}

var loadScenarios = []loadScenario{
	// 100 answers of 8 s arriving one per 80 ms: about 100 streams live at once.
	{name: "discord-100", streams: 100, tokens: 400, every: 20 * time.Millisecond, ttft: 300 * time.Millisecond,
		stagger: 80 * time.Millisecond, limits: botstest.DiscordLike},
	{name: "slack-channels-100", streams: 100, tokens: 400, every: 20 * time.Millisecond, ttft: 300 * time.Millisecond,
		stagger: 80 * time.Millisecond, limits: botstest.SlackLike, channels: true},
	{name: "slack-lone", streams: 1, tokens: 400, every: 20 * time.Millisecond, ttft: 300 * time.Millisecond,
		limits: botstest.SlackLike, channels: true},
	{name: "discord-lone", streams: 1, tokens: 400, every: 20 * time.Millisecond, ttft: 300 * time.Millisecond,
		limits: botstest.DiscordLike},
	{name: "slack-spent-20x600", streams: 20, tokens: 600, every: 20 * time.Millisecond, ttft: 300 * time.Millisecond,
		stagger: 10 * time.Millisecond, limits: botstest.SlackLike, channels: true},
	{name: "slack-native-50", streams: 50, tokens: 300, every: 25 * time.Millisecond, ttft: 300 * time.Millisecond,
		limits: botstest.SlackNativeLike, channels: true},
	{name: "slack-native-100", streams: 100, tokens: 300, every: 25 * time.Millisecond, ttft: 300 * time.Millisecond,
		limits: botstest.SlackNativeLike, channels: true},
	{name: "slack-native-20x600", streams: 20, tokens: 600, every: 25 * time.Millisecond, ttft: 300 * time.Millisecond,
		limits: botstest.SlackNativeLike, channels: true},
}

// BenchmarkLoad runs the load scenarios and reports, per scenario: 429s,
// answers whose final text is exact, visible updates per stream against
// what the limits allow, the latency Parley adds before the first token is
// visible, the lag from the model's last token to the whole answer shown,
// CPU per 1,000 streamed tokens (the fakes' share included) and heap per
// active stream. Run: go test ./bots -run '^$' -bench Load -benchtime 1x
func BenchmarkLoad(b *testing.B) {
	for _, sc := range loadScenarios {
		b.Run(sc.name, func(b *testing.B) {
			for range b.N {
				runLoad(b, sc)
			}
		})
	}
}

func runLoad(b *testing.B, sc loadScenario) {
	srv := llmtest.NewServer()
	defer srv.Close()
	words := make([]string, sc.tokens)
	for i := range words {
		words[i] = fmt.Sprintf("w%d ", i%97)
		if i%40 == 39 {
			words[i] = fmt.Sprintf("w%d.\n\n", i%97)
		}
	}
	answer := strings.Join(words, "")
	srv.Answer = func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Chunks: words, Every: sc.every, FirstDelay: sc.ttft}
	}
	store, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "load.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	client, err := llm.New(llm.Config{BaseURL: srv.BaseURL(), APIKey: "k", DefaultModel: "fake-small"})
	if err != nil {
		b.Fatal(err)
	}
	e := bots.New(bots.Config{DefaultModel: "fake-small", MaxConcurrent: 200, Logger: slog.New(slog.DiscardHandler)}, store, client)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-e.Started()
	p := botstest.New("fake", sc.limits)

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := cpuTime()
	accepted := make([]time.Time, sc.streams)
	start := time.Now()
	for i := range sc.streams {
		if d := time.Until(start.Add(time.Duration(i) * sc.stagger)); d > 0 {
			time.Sleep(d) // the arrival schedule of the load, not a wait for a result
		}
		in := bots.Incoming{Workspace: "W1", Channel: "C1", Thread: fmt.Sprintf("t%d", i), MessageID: fmt.Sprintf("t%d", i),
			Author: "U1", Mentioned: true, Text: fmt.Sprintf("stream %d", i)}
		if sc.channels {
			in.Channel = fmt.Sprintf("C%d", i)
		}
		if err := e.Handle(ctx, p, in); err != nil {
			b.Fatal(err)
		}
		accepted[i] = time.Now()
	}
	// Heap per active stream, sampled while all are streaming.
	var during runtime.MemStats
	runtime.ReadMemStats(&during)

	byStream := func(ms []botstest.Message) map[string][]botstest.Message {
		out := make(map[string][]botstest.Message)
		for _, m := range ms {
			out[m.Dest.Thread] = append(out[m.Dest.Thread], m)
		}
		return out
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer wcancel()
	p.WaitFor(wctx, func(p *botstest.Platform) bool {
		exact := 0
		for _, ms := range byStream(p.Messages()) {
			if joined(ms) == answer {
				exact++
			}
		}
		return exact == sc.streams
	})
	cpu := cpuTime() - cpu0

	timings := srv.Timings()
	streams := byStream(p.Messages())
	var added, lag []time.Duration
	exact, updates := 0, 0
	var streamTime time.Duration
	for i := range sc.streams {
		ms := streams[fmt.Sprintf("t%d", i)]
		if joined(ms) == answer {
			exact++
		}
		tm := timings[fmt.Sprintf("stream %d", i)]
		if len(ms) == 0 {
			continue
		}
		var last time.Time
		for _, m := range ms {
			updates += len(m.Updates)
			for _, u := range m.Updates {
				if u.At.After(last) {
					last = u.At
				}
			}
		}
		first := ms[0].CreatedAt
		added = append(added, first.Sub(accepted[i])-tm.First.Sub(tm.Received))
		lag = append(lag, last.Sub(tm.Last))
		streamTime += tm.Last.Sub(tm.First)
	}
	stats := p.Stats()
	conc := float64(sc.streams)
	b.ReportMetric(float64(stats.RateLimited), "429s")
	b.ReportMetric(float64(exact)/conc, "exact-ratio")
	b.ReportMetric(float64(updates)/conc, "updates/stream")
	b.ReportMetric(pct(added, 0.95).Seconds()*1000, "added-p95-ms")
	b.ReportMetric(pct(lag, 0.50).Seconds()*1000, "final-lag-p50-ms")
	b.ReportMetric(pct(lag, 0.95).Seconds()*1000, "final-lag-p95-ms")
	b.ReportMetric(cpu.Seconds()*1000/(float64(sc.tokens)*conc/1000), "cpu-ms/1k-tokens")
	b.ReportMetric(float64(int64(during.HeapInuse)-int64(before.HeapInuse))/conc/1024, "heap-KiB/stream")
	if exact != sc.streams {
		b.Errorf("%d of %d final texts exact", exact, sc.streams)
	}
}

func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
