package slack

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/adapters/slack/slacktest"
	"github.com/parleyhq/parley/bots"
)

func TestMain(m *testing.M) {
	slacktest.RefuseNonLoopback()
	os.Exit(m.Run())
}

// waitFor waits until cond holds, failing the test after timeout. It wakes
// on each change of the fake Slack and polls meanwhile for other state.
func waitFor(t testing.TB, fake *slacktest.Server, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		var changed <-chan struct{}
		if fake != nil {
			changed = fake.Changed()
		}
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

// logBuffer collects an adapter's logs, to check that no secret leaks.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// checkNoSecrets fails when a token or secret shows in the logs.
func checkNoSecrets(t *testing.T, logs string, secrets ...string) {
	t.Helper()
	for _, s := range append(secrets, "secret-ticket") {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("a secret (%.8s…) shows in the logs", s)
		}
	}
}

// fakeEngine records what the adapter hands to the engine.
type fakeEngine struct {
	mu        sync.Mutex
	handled   []bots.Incoming
	attempts  int
	handleErr error
	commands  []bots.Command
	reply     bots.CommandReply
	hold      chan struct{} // when set, Command waits for it
	models    []string
	queries   []string
	deleted   [][3]string
	reacted   [][5]string
}

func (f *fakeEngine) Handle(ctx context.Context, p bots.Platform, in bots.Incoming) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.handleErr != nil {
		return f.handleErr
	}
	f.handled = append(f.handled, in)
	return nil
}

func (f *fakeEngine) Command(ctx context.Context, p bots.Platform, cmd bots.Command) bots.CommandReply {
	f.mu.Lock()
	f.commands = append(f.commands, cmd)
	hold, reply := f.hold, f.reply
	f.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
		}
	}
	return reply
}

func (f *fakeEngine) Models(ctx context.Context, query string, n int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, query)
	var out []string
	for _, m := range f.models {
		if strings.Contains(m, query) && len(out) < n {
			out = append(out, m)
		}
	}
	return out
}

func (f *fakeEngine) Deleted(p bots.Platform, workspace, channel, messageID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted = append(f.deleted, [3]string{workspace, channel, messageID})
}

func (f *fakeEngine) Reacted(p bots.Platform, workspace, channel, messageID, user, emoji string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reacted = append(f.reacted, [5]string{workspace, channel, messageID, user, emoji})
}

func (f *fakeEngine) incoming() []bots.Incoming {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bots.Incoming(nil), f.handled...)
}

func (f *fakeEngine) handleAttempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts
}

func (f *fakeEngine) setHandleErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handleErr = err
}

// loopbackClient is the HTTP client the adapters use in tests.
func loopbackClient() *http.Client {
	return &http.Client{Transport: slacktest.LoopbackTransport(), Timeout: 30 * time.Second}
}

// startAdapter builds an adapter on fake with eng and runs it until the
// test ends.
func startAdapter(t *testing.T, fake *slacktest.Server, eng engine, opts Options, logs *logBuffer) *Adapter {
	t.Helper()
	a := newTestAdapter(t, fake, eng, opts, logs)
	runAdapter(t, a)
	if a.opts.AppToken != "" {
		waitFor(t, fake, 10*time.Second, "the socket to connect", fake.Connected)
	}
	return a
}

// newTestAdapter builds an adapter on fake without running it.
func newTestAdapter(t testing.TB, fake *slacktest.Server, eng engine, opts Options, logs *logBuffer) *Adapter {
	t.Helper()
	cfg := fake.Config()
	if opts.BotToken == "" {
		opts.BotToken = cfg.BotToken
	}
	if opts.AppToken == "" && opts.SigningSecret == "" {
		opts.AppToken = cfg.AppToken
	}
	opts.APIURL = fake.APIURL
	opts.HTTPClient = loopbackClient()
	if logs == nil {
		logs = &logBuffer{}
	}
	a, err := newAdapter(opts, eng, logs.logger())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// runAdapter runs a until the test ends.
func runAdapter(t *testing.T, a *Adapter) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, nil, 10*time.Second, "auth.test", func() bool {
		select {
		case <-a.ready:
			return true
		default:
			return false
		}
	})
}
