package discord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/adapters/discord/discordtest"
	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/conversation/sqlite"
	"github.com/parleyhq/parley/llm"
	"github.com/parleyhq/parley/llm/llmtest"
)

// loadRun is one load scenario through the real adapter, discordgo and the
// engine, against the fake Discord with Discord's limits (the default
// table and the 50 a second global limit) and a fake model on loopback,
// in the default settings (DISCORD_REPLY_MODE=thread).
type loadRun struct {
	mentions int           // at once, each in a channel of its own, in one guild
	tokens   int           // per answer
	every    time.Duration // between tokens (25 ms: 40 tokens/s)
	ttft     time.Duration // the model's time to first token
}

// loadResult holds what users see.
type loadResult struct {
	limited      int                          // 429s, every route
	global       int                          // of which the global limit's
	routes       map[discordtest.Route][2]int // route -> 429s of its bucket, of the global limit
	exact        int                          // replies whose text is the answer
	replies      int
	minUpdates   int     // fewest visible changes of a reply
	added50      float64 // ms: first text - mention - the model's time to first token
	added95      float64
	floor95      float64 // ms: the added latency the global limit forces, p95
	lag50, lag95 float64 // ms: last visible change - the model's last token
	typing       int     // typing indicators sent
	threads      int     // threads started
	channelGets  int     // GET /channels/{id} (thread lookups)
	requests     int     // REST requests
}

// ratio is added-p95 over floor-p95.
func (r loadResult) ratio() float64 {
	if r.floor95 == 0 {
		return 0
	}
	return r.added95 / r.floor95
}

// callsBeforeFirstText is what a reply spends of the bot's global limit
// before its first text shows in thread mode: the thread's creation and
// the first post.
const callsBeforeFirstText = 2

// globalFloor returns the least delay, after a burst of n mentions, with
// which the k-th reply (from 0) in the best order can show its first text
// when each needs callsBeforeFirstText calls of the bot's globalLimit a
// globalWindow: its calls are calls 2k and 2k+1 of the burst, sent in
// window floor((2k+1)/50), the same as floor(2k/50).
func globalFloor(k int) time.Duration {
	return time.Duration(callsBeforeFirstText*k/globalLimit) * globalWindow
}

func runDiscordLoad(tb testing.TB, run loadRun) loadResult {
	tb.Helper()
	fake := discordtest.New(tb, discordtest.Options{})
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
	store, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "load.db"), sqlite.Options{})
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	client, err := llm.New(llm.Config{BaseURL: srv.BaseURL(), APIKey: "sk-test-key", DefaultModel: "gpt-test",
		HTTPClient: &http.Client{}, Logger: log})
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	engine := bots.New(bots.Config{DefaultModel: "gpt-test", Logger: log}, store, client)
	a, err := New(Options{Token: fake.Token(), APIURL: fake.APIURL(), HTTPClient: &http.Client{Timeout: 20 * time.Second}}, engine, log)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { engine.Run(ctx) })
	<-engine.Started()
	wg.Go(func() {
		if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			tb.Errorf("Run: %v", err)
		}
	})
	tb.Cleanup(func() {
		cancel()
		wg.Wait()
		store.Close()
	})
	fake.Await(tb, wait, "the bot to connect and register its commands", func() bool {
		return fake.Connected() && fake.Commands("global") != nil
	})
	// The burst comes to a running bot: its start-up calls (the bot
	// user, the gateway, the commands) are a window old.
	// (Time passes, nothing changes in the fake: poll.)
	for limit := time.Now().Add(wait); !a.rl.idle(); {
		if time.Now().After(limit) {
			tb.Fatalf("the start-up calls still in the global window after %s", wait)
		}
		t := time.NewTimer(20 * time.Millisecond)
		<-t.C
	}

	user := fake.AddUser("ann")
	channels := make([]string, run.mentions)
	for i := range channels {
		channels[i] = fake.AddChannel(fmt.Sprintf("room-%d", i))
		// Discord tells the bot of a new channel, as it lists the
		// existing ones in GUILD_CREATE: no lookup per mention.
		fake.Dispatch("CHANNEL_CREATE", map[string]any{"id": channels[i], "type": discordtest.ChannelText,
			"guild_id": fake.GuildID, "name": fmt.Sprintf("room-%d", i)})
	}
	before := fake.Stats()

	type asked struct {
		thread, prompt string // the thread starts from the mention: same id
		channel        string
		at             time.Time
	}
	qs := make([]asked, run.mentions)
	for i, ch := range channels {
		prompt := fmt.Sprintf("stream %d", i)
		at := time.Now()
		m := fake.Post(ch, user, "<@"+fake.BotID+"> "+prompt, "")
		qs[i] = asked{m.ID, prompt, ch, at}
	}
	flat := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	want := flat(answer)
	shown := func(q asked) (string, []discordtest.Message) {
		ms := fake.BotMessages(q.thread)
		if len(ms) == 0 {
			// No thread (the guild's thread budget was spent): the answer
			// replies to the mention in its channel.
			for _, m := range fake.BotMessages(q.channel) {
				if m.ReplyTo == q.thread {
					ms = append(ms, m)
				}
			}
		}
		var b strings.Builder
		for _, m := range ms {
			b.WriteString(m.Content)
			b.WriteString(" ")
		}
		return flat(b.String()), ms
	}
	// A reply is done when its answer is stored with the id of its first
	// message, which the engine does once the answer is fully shown.
	done := make([]bool, len(qs))
	settled := func() bool {
		for i, q := range qs {
			if done[i] {
				continue
			}
			s, ms := shown(q)
			if s != want || len(ms) == 0 {
				return false
			}
			_, m, err := store.MessageByPlatformID(ctx, "discord", fake.GuildID, ms[0].ID)
			if err != nil || m.Role != conversation.RoleAssistant {
				return false
			}
			done[i] = true
		}
		return true
	}
	limit := time.Now().Add(10 * time.Minute)
	for !settled() && time.Now().Before(limit) {
		select {
		case <-fake.Changed():
		case <-time.After(100 * time.Millisecond):
		}
	}

	st := fake.Stats()
	res := loadResult{replies: len(qs), minUpdates: 1 << 30, routes: make(map[discordtest.Route][2]int)}
	res.limited = st.RateLimited - before.RateLimited
	res.global = st.GlobalLimit - before.GlobalLimit
	for r, rs := range st.Routes {
		b := before.Routes[r]
		if l, g := rs.Limited-b.Limited, rs.GlobalLimited-b.GlobalLimited; l+g > 0 {
			res.routes[r] = [2]int{l, g}
		}
	}
	res.typing = st.Typing - before.Typing
	res.threads = st.Threads - before.Threads
	res.channelGets = st.Routes[discordtest.RouteChannel].Calls - before.Routes[discordtest.RouteChannel].Calls
	res.requests = st.Requests - before.Requests

	timings := srv.Timings()
	var added, lag, floor []float64
	for k, q := range qs {
		s, ms := shown(q)
		if s == want {
			res.exact++
		}
		tm := timings[q.prompt]
		var first, last time.Time
		changes := 0
		for _, m := range ms {
			for _, c := range m.Changes {
				changes++
				if first.IsZero() || c.Before(first) {
					first = c
				}
				if c.After(last) {
					last = c
				}
			}
		}
		res.minUpdates = min(res.minUpdates, changes)
		added = append(added, ms2(first.Sub(q.at)-tm.First.Sub(tm.Received)))
		lag = append(lag, ms2(last.Sub(tm.Last)))
		floor = append(floor, ms2(globalFloor(k)))
	}
	if os.Getenv("PARLEY_LOAD_DEBUG") != "" {
		s := slices.Clone(added)
		slices.Sort(s)
		fmt.Println("added", s)
	}
	res.added50, res.added95 = pctl(added, 0.5), pctl(added, 0.95)
	res.floor95 = pctl(floor, 0.95)
	res.lag50, res.lag95 = pctl(lag, 0.5), pctl(lag, 0.95)
	return res
}

func ms2(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pctl returns the q-quantile of xs (the nearest rank at or above it).
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
	b.ReportMetric(float64(r.global), "global-429s")
	b.ReportMetric(float64(r.exact)/float64(max(r.replies, 1)), "exact-ratio")
	b.ReportMetric(float64(r.minUpdates), "min-updates")
	b.ReportMetric(r.added50, "added-p50-ms")
	b.ReportMetric(r.added95, "added-p95-ms")
	b.ReportMetric(r.floor95, "floor-p95-ms")
	b.ReportMetric(r.ratio(), "added/floor")
	b.ReportMetric(r.lag50, "final-lag-p50-ms")
	b.ReportMetric(r.lag95, "final-lag-p95-ms")
	b.ReportMetric(float64(r.typing), "typing")
	b.ReportMetric(float64(r.threads), "threads")
	b.ReportMetric(float64(r.channelGets), "channel-gets")
	b.ReportMetric(float64(r.requests), "requests")
}

// BenchmarkDiscordLoad runs bursts of mentions in channels of one guild,
// all at once, in the default settings, through discordgo against the
// fake Discord with Discord's limits. Run:
//
//	go test ./adapters/discord -run '^$' -bench DiscordLoad -benchtime 1x
func BenchmarkDiscordLoad(b *testing.B) {
	std := loadRun{tokens: 300, every: 25 * time.Millisecond, ttft: 300 * time.Millisecond}
	with := func(f func(*loadRun)) loadRun { r := std; f(&r); return r }
	for _, sc := range []struct {
		name string
		run  loadRun
	}{
		{"burst-50", with(func(r *loadRun) { r.mentions = 50 })},
		{"burst-100", with(func(r *loadRun) { r.mentions = 100 })},
	} {
		b.Run(sc.name, func(b *testing.B) {
			for range b.N {
				res := runDiscordLoad(b, sc.run)
				res.report(b)
				b.Logf("%+v", res)
				if res.limited != 0 || res.exact != res.replies {
					b.Errorf("%d 429s %v, %d of %d exact", res.limited, res.routes, res.exact, res.replies)
				}
			}
		})
	}
}

// TestDiscordLoadShort is the load benchmark's short form, for CI: a burst
// of mentions in their own channels of one guild, in the default settings
// against Discord's limits. No call draws a 429, every reply is exact and
// shows its text at least twice (its first text, then more), and the
// added latency is what the global limit forces, give or take.
func TestDiscordLoadShort(t *testing.T) {
	res := runDiscordLoad(t, loadRun{mentions: 30, tokens: 120, every: 25 * time.Millisecond, ttft: 200 * time.Millisecond})
	t.Logf("%+v", res)
	if res.limited != 0 {
		t.Errorf("%d 429s (%d global), by route %v; want none", res.limited, res.global, res.routes)
	}
	if res.exact != res.replies {
		t.Errorf("%d of %d replies exact", res.exact, res.replies)
	}
	if res.minUpdates < 2 {
		t.Errorf("a reply showed its text %d time(s), want at least 2", res.minUpdates)
	}
	// The bound: added-p95 <= 1.5 × floor-p95 + one interval of a
	// channel's message bucket (5 s / 5 = 1 s), the most a first post can
	// wait for its channel's bucket besides the global limit.
	bound := 1.5*res.floor95 + ms2(time.Second)
	if res.added95 > bound {
		t.Errorf("added latency p95 %.0f ms, want at most 1.5 × the floor %.0f ms + 1000 ms = %.0f ms", res.added95, res.floor95, bound)
	}
}
