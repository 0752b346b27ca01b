package discord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/adapters/discord/discordtest"
	"github.com/parleyhq/parley/bots"
)

// wait bounds every wait on a condition; nothing waits on the clock.
const wait = 15 * time.Second

// TestMain refuses any dial that is not to loopback: every call must reach
// the fake, never discord.com.
func TestMain(m *testing.M) {
	http.DefaultTransport.(*http.Transport).DialContext = loopbackDial
	os.Exit(m.Run())
}

func loopbackDial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("test dialed %s: only loopback is allowed", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// recorder is an engine double that records what the adapter passes.
type recorder struct {
	mu      sync.Mutex
	changed chan struct{}
	in      []bots.Incoming
	cmds    []bots.Command
	deleted []string
	reacted []string
	queries []string
	models  []string
	reply   bots.CommandReply
	handle  func(bots.Incoming) // optional, called after recording
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *recorder) Handle(ctx context.Context, p bots.Platform, in bots.Incoming) error {
	r.mu.Lock()
	r.in = append(r.in, in)
	f := r.handle
	r.notifyLocked()
	r.mu.Unlock()
	if f != nil {
		f(in)
	}
	return nil
}

func (r *recorder) Command(ctx context.Context, p bots.Platform, cmd bots.Command) bots.CommandReply {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cmds = append(r.cmds, cmd)
	r.notifyLocked()
	return r.reply
}

func (r *recorder) Models(ctx context.Context, query string, n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries = append(r.queries, query)
	r.notifyLocked()
	var out []string
	for _, m := range r.models {
		if len(out) < n && (query == "" || contains(m, query)) {
			out = append(out, m)
		}
	}
	return out
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func (r *recorder) Deleted(p bots.Platform, workspace, channel, messageID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deleted = append(r.deleted, workspace+"/"+channel+"/"+messageID)
	r.notifyLocked()
}

func (r *recorder) Reacted(p bots.Platform, workspace, channel, messageID, user, emoji string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reacted = append(r.reacted, fmt.Sprintf("%s/%s/%s/%s/%s", workspace, channel, messageID, user, emoji))
	r.notifyLocked()
}

// incoming returns the recorded message with id, waiting for it.
func (r *recorder) incoming(t *testing.T, id string) bots.Incoming {
	t.Helper()
	var got bots.Incoming
	r.await(t, "message "+id+" handled", func() bool {
		for _, in := range r.in {
			if in.MessageID == id {
				got = in
				return true
			}
		}
		return false
	})
	return got
}

// await waits until cond (run under the recorder's lock) holds.
func (r *recorder) await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok, ch := cond(), r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// testLogger writes warnings and errors to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// run starts an adapter on the fake until the test ends, and waits until
// it is connected and its commands are registered.
func run(t *testing.T, fake *discordtest.Server, e engine, opts Options, tweaks ...func(*Adapter)) *Adapter {
	t.Helper()
	opts.Token = fake.Token()
	opts.APIURL = fake.APIURL()
	opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	a, err := newAdapter(opts, e, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range tweaks {
		f(a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	})
	scope := "global"
	if opts.GuildID != "" {
		scope = opts.GuildID
	}
	fake.Await(t, wait, "the bot to connect and register its commands", func() bool {
		return fake.Connected() && fake.Commands(scope) != nil
	})
	return a
}
