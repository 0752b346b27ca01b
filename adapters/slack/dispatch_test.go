package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/slack-go/slack/slackevents"

	"github.com/parleyhq/parley/bots"
)

// owner starts a dispatcher's workers as the adapter's Run does: in its
// context, waited for by stop.
type owner struct {
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	stopped bool
}

func newOwner(t *testing.T) *owner {
	o := &owner{}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	t.Cleanup(o.stop)
	return o
}

func (o *owner) spawn(f func(ctx context.Context)) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped {
		return false
	}
	o.wg.Go(func() { f(o.ctx) })
	return true
}

func (o *owner) stop() {
	o.mu.Lock()
	o.stopped = true
	o.mu.Unlock()
	o.cancel()
	o.wg.Wait()
}

func TestDispatcherOrderWithinKeys(t *testing.T) {
	o := newOwner(t)
	const limit, keys, perKey = 4, 20, 50
	d := newDispatcher(limit, keys*perKey, o.spawn, slog.New(slog.DiscardHandler))

	var mu sync.Mutex
	next := make(map[string]int)    // a key's next task number
	running := make(map[string]int) // a key's tasks running now
	var now, peak int               // tasks running now, at most
	var wrong []string              // what went wrong
	tasks := make([]string, 0, keys*perKey)
	for k := range keys {
		for range perKey {
			tasks = append(tasks, fmt.Sprintf("k%d", k))
		}
	}
	rand.Shuffle(len(tasks), func(i, j int) { tasks[i], tasks[j] = tasks[j], tasks[i] })
	submitted := make(map[string]int)
	for _, key := range tasks {
		n := submitted[key]
		submitted[key]++
		if !d.submit(key, func(context.Context) {
			mu.Lock()
			running[key]++
			now++
			peak = max(peak, now)
			if running[key] > 1 {
				wrong = append(wrong, key+" ran two tasks at once")
			}
			if next[key] != n {
				wrong = append(wrong, fmt.Sprintf("%s ran task %d, want %d", key, n, next[key]))
			}
			next[key] = n + 1
			mu.Unlock()
			runtime.Gosched()
			mu.Lock()
			running[key]--
			now--
			mu.Unlock()
		}) {
			t.Fatalf("submit %s refused", key)
		}
	}
	waitFor(t, nil, 10*time.Second, "every task run", func() bool {
		workers, waiting, queues := d.load()
		return workers == 0 && waiting == 0 && queues == 0
	})
	mu.Lock()
	defer mu.Unlock()
	for _, w := range wrong {
		t.Error(w)
	}
	for k := range keys {
		if key := fmt.Sprintf("k%d", k); next[key] != perKey {
			t.Errorf("%s ran %d tasks, want %d", key, next[key], perKey)
		}
	}
	if peak > limit {
		t.Errorf("%d tasks ran at once, want at most %d", peak, limit)
	}
}

func TestDispatcherBusyKeyDoesNotStarveOthers(t *testing.T) {
	o := newOwner(t)
	d := newDispatcher(1, 100, o.spawn, slog.New(slog.DiscardHandler))
	started, gate := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var ran []string
	task := func(name string) func(context.Context) {
		return func(context.Context) {
			if name == "a0" {
				close(started)
				<-gate
			}
			mu.Lock()
			ran = append(ran, name)
			mu.Unlock()
		}
	}
	d.submit("a", task("a0"))
	<-started
	d.submit("a", task("a1"))
	d.submit("a", task("a2"))
	d.submit("b", task("b0"))
	close(gate)
	waitFor(t, nil, 5*time.Second, "every task run", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ran) == 4
	})
	// One worker: after a0, the waiting key b goes before a's next task.
	if got := strings.Join(ran, " "); got != "a0 b0 a1 a2" {
		t.Errorf("ran %s, want a0 b0 a1 a2", got)
	}
}

func TestDispatcherRefuses(t *testing.T) {
	o := newOwner(t)
	d := newDispatcher(1, 2, o.spawn, slog.New(slog.DiscardHandler))
	started, gate := make(chan struct{}), make(chan struct{})
	defer close(gate)
	hold := func(context.Context) { <-gate }
	if !d.submit("a", func(context.Context) { close(started); <-gate }) {
		t.Fatal("the first task refused")
	}
	<-started
	for _, key := range []string{"b", "c"} {
		if !d.submit(key, hold) {
			t.Fatalf("task %s refused", key)
		}
	}
	if workers, waiting, keys := d.load(); workers != 1 || waiting != 2 || keys != 3 {
		t.Errorf("%d workers, %d waiting, %d keys; want 1, 2, 3", workers, waiting, keys)
	}
	if d.submit("a", hold) || d.submit("d", hold) {
		t.Error("a task beyond the backlog was taken")
	}

	stopped := newOwner(t)
	stopped.stop()
	if newDispatcher(1, 2, stopped.spawn, slog.New(slog.DiscardHandler)).submit("a", hold) {
		t.Error("a task was taken while the owner stops")
	}
}

func TestDispatcherSurvivesPanics(t *testing.T) {
	o := newOwner(t)
	logs := &logBuffer{}
	d := newDispatcher(2, 10, o.spawn, logs.logger())
	var mu sync.Mutex
	var ran []string
	d.submit("k", func(context.Context) { panic("bug") })
	d.submit("k", func(context.Context) {
		mu.Lock()
		ran = append(ran, "after")
		mu.Unlock()
	})
	waitFor(t, nil, 5*time.Second, "the task after the panic", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ran) == 1
	})
	waitFor(t, nil, 5*time.Second, "the queue gone", func() bool {
		workers, waiting, keys := d.load()
		return workers == 0 && waiting == 0 && keys == 0
	})
	if l := logs.String(); !strings.Contains(l, "panicked") || !strings.Contains(l, "key=k") {
		t.Errorf("the panic is not logged with its key:\n%s", l)
	}
}

func TestConversationKeys(t *testing.T) {
	for _, tc := range []struct {
		name  string
		event map[string]any
		want  string
	}{
		{"top-level message", map[string]any{"type": "message", "channel": "C1", "user": "U1", "text": "hi", "ts": "1.000001"}, "T0TEAM/C1/1.000001"},
		{"reply in a thread", map[string]any{"type": "message", "channel": "C1", "user": "U1", "text": "hi", "ts": "1.000002", "thread_ts": "1.000001"}, "T0TEAM/C1/1.000001"},
		{"mention in a thread", map[string]any{"type": "app_mention", "channel": "C1", "user": "U1", "text": "<@U0BOT> hi", "ts": "1.000002", "thread_ts": "1.000001"}, "T0TEAM/C1/1.000001"},
		{"DM", map[string]any{"type": "message", "channel": "D1", "channel_type": "im", "user": "U1", "text": "hi", "ts": "1.000003"}, "T0TEAM/D1/"},
		{"DM thread", map[string]any{"type": "message", "channel": "D1", "channel_type": "im", "user": "U1", "text": "hi", "ts": "1.000004", "thread_ts": "1.000003"}, "T0TEAM/D1/"},
		{"reaction", map[string]any{"type": "reaction_added", "user": "U1", "reaction": "x", "item": map[string]any{"type": "message", "channel": "C1", "ts": "1.000001"}}, "T0TEAM/C1/1.000001"},
		{"reaction in a DM", map[string]any{"type": "reaction_added", "user": "U1", "reaction": "x", "item": map[string]any{"type": "message", "channel": "D1", "ts": "1.000004"}}, "T0TEAM/D1/"},
		{"deletion at the top level", map[string]any{"type": "message", "subtype": "message_deleted", "channel": "C1", "ts": "1.000009", "deleted_ts": "1.000001"}, "T0TEAM/C1/1.000001"},
		{"deletion in a thread", map[string]any{"type": "message", "subtype": "message_deleted", "channel": "C1", "ts": "1.000009", "deleted_ts": "1.000002",
			"previous_message": map[string]any{"ts": "1.000002", "thread_ts": "1.000001"}}, "T0TEAM/C1/1.000001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := newAdapter(Options{BotToken: "xoxb-x", SigningSecret: "s"}, &fakeEngine{}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			a.botUserID = "U0BOT"
			ev, ok := a.callbackEvent(callback(t, tc.event))
			if !ok || ev.key != tc.want {
				t.Errorf("got key %q (%v), want %q", ev.key, ok, tc.want)
			}
		})
	}
}

// failingEngine fails Handle fails times, then takes the message.
type failingEngine struct {
	fakeEngine
	fails    int
	attempts []time.Time
}

func (f *failingEngine) Handle(ctx context.Context, p bots.Platform, in bots.Incoming) error {
	f.attempts = append(f.attempts, time.Now())
	if f.fails != 0 {
		f.fails--
		return errors.New("store down")
	}
	return nil
}

func TestHandOverRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fails    int // -1: always
		attempts int
		spent    time.Duration // from the first attempt to the last
		log      string
	}{
		{"taken at once", 0, 1, 0, ""},
		{"taken at the third attempt", 2, 3, 750 * time.Millisecond, "handled after retries"},
		// 250 ms, doubled up to 4 s, while the next attempt starts within
		// 30 s of the first: 27.75 s.
		{"never taken", -1, 11, 27750 * time.Millisecond, "event lost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				eng := &failingEngine{fails: tc.fails}
				logs := &logBuffer{}
				a, err := newAdapter(Options{BotToken: "xoxb-x", SigningSecret: "s"}, eng, logs.logger())
				if err != nil {
					t.Fatal(err)
				}
				ev, ok := a.callbackEvent(callback(t, map[string]any{"type": "message", "channel": "D1", "channel_type": "im", "user": "U1", "text": "hi", "ts": "1.000001"}))
				if !ok {
					t.Fatal("the message was skipped")
				}
				a.handOver(context.Background(), ev, nil)
				if len(eng.attempts) != tc.attempts {
					t.Fatalf("%d attempts, want %d", len(eng.attempts), tc.attempts)
				}
				if spent := eng.attempts[len(eng.attempts)-1].Sub(eng.attempts[0]); spent != tc.spent {
					t.Errorf("attempts over %s, want %s", spent, tc.spent)
				}
				if l := logs.String(); tc.log != "" && (!strings.Contains(l, tc.log) || !strings.Contains(l, "channel=D1 ts=1.000001")) {
					t.Errorf("logs lack %q with the channel and ts:\n%s", tc.log, l)
				}
			})
		})
	}
}

func TestHandOverStopsWithItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := &failingEngine{fails: -1}
		logs := &logBuffer{}
		a, err := newAdapter(Options{BotToken: "xoxb-x", SigningSecret: "s"}, eng, logs.logger())
		if err != nil {
			t.Fatal(err)
		}
		ev, _ := a.callbackEvent(callback(t, map[string]any{"type": "message", "channel": "D1", "channel_type": "im", "user": "U1", "text": "hi", "ts": "1.000001"}))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		a.handOver(ctx, ev, nil)
		if len(eng.attempts) != 3 { // at 0, 250 ms, 750 ms; the next would be at 1.75 s
			t.Errorf("%d attempts, want 3", len(eng.attempts))
		}
		if l := logs.String(); !strings.Contains(l, "not handled: Parley is stopping") || !strings.Contains(l, "channel=D1 ts=1.000001") {
			t.Errorf("the stop is not logged with the channel and ts:\n%s", l)
		}
	})
}

// callback wraps event as Slack sends it in an Events API callback.
func callback(t *testing.T, event map[string]any) *slackevents.EventsAPICallbackEvent {
	t.Helper()
	b, err := json.Marshal(map[string]any{"type": "event_callback", "team_id": "T0TEAM", "event_id": "Ev1", "event": event})
	if err != nil {
		t.Fatal(err)
	}
	var cb slackevents.EventsAPICallbackEvent
	if err := json.Unmarshal(b, &cb); err != nil {
		t.Fatal(err)
	}
	return &cb
}
