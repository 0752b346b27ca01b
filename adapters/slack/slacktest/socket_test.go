package slacktest_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	slackapi "github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/parleyhq/parley/adapters/slack/slacktest"
)

// socketClient is a slack-go Socket Mode client on srv that records the
// envelopes it receives and acknowledges them unless told not to.
type socketClient struct {
	mu     sync.Mutex
	got    []string // envelope ids
	ack    bool
	cancel context.CancelFunc
	done   chan struct{}
}

func startSocket(t *testing.T, srv *slacktest.Server, ack bool) *socketClient {
	t.Helper()
	cfg := srv.Config()
	api := slackapi.New(cfg.BotToken, slackapi.OptionAppLevelToken(cfg.AppToken),
		slackapi.OptionAPIURL(srv.APIURL),
		slackapi.OptionHTTPClient(&http.Client{Transport: slacktest.LoopbackTransport(), Timeout: 10 * time.Second}))
	sm := socketmode.New(api)
	ctx, cancel := context.WithCancel(context.Background())
	c := &socketClient{ack: ack, cancel: cancel, done: make(chan struct{})}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-sm.Events:
				if ev.Request == nil || ev.Request.EnvelopeID == "" {
					continue
				}
				c.mu.Lock()
				c.got = append(c.got, ev.Request.EnvelopeID)
				ack := c.ack
				c.mu.Unlock()
				if ack {
					sm.Ack(*ev.Request)
				}
			}
		}
	}()
	go func() {
		defer close(c.done)
		_ = sm.RunContext(ctx)
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *socketClient) stop() {
	c.cancel()
	<-c.done
}

func (c *socketClient) received() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

// waitUntil waits for cond, or fails the test after 10 s.
func waitUntil(t *testing.T, srv *slacktest.Server, what string, cond func() bool) {
	t.Helper()
	limit := time.NewTimer(10 * time.Second)
	defer limit.Stop()
	for !cond() {
		select {
		case <-srv.Changed():
		case <-time.After(20 * time.Millisecond):
		case <-limit.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// Slack spreads an app's envelopes over its open sockets; what one socket
// left unacknowledged when it closed goes to another.
func TestEnvelopesSpreadOverSockets(t *testing.T) {
	srv, _, _ := newFake(t, slacktest.Config{})
	a := startSocket(t, srv, true)
	b := startSocket(t, srv, false)
	waitUntil(t, srv, "two sockets", func() bool { return srv.Open() == 2 })
	var sent []string
	for range 10 {
		sent = append(sent, srv.SendEvent(map[string]any{"type": "message", "channel": "D1", "user": "U1", "text": "hi", "ts": "1.1"}))
	}
	waitUntil(t, srv, "every envelope delivered", func() bool { return len(a.received())+len(b.received()) == len(sent) })
	if na, nb := len(a.received()), len(b.received()); na != 5 || nb != 5 {
		t.Fatalf("got %d and %d envelopes on the two sockets, want 5 each", na, nb)
	}
	waitUntil(t, srv, "the acknowledging socket's 5 acknowledged", func() bool { return srv.Unacked() <= 5 })
	if n := srv.Unacked(); n != 5 {
		t.Fatalf("%d envelopes unacknowledged, want the 5 of the socket that does not acknowledge", n)
	}
	b.stop()
	waitUntil(t, srv, "the closed socket's envelopes acknowledged by the other", func() bool { return srv.Unacked() == 0 })
	if got := len(a.received()); got != len(sent) {
		t.Errorf("the open socket got %d envelopes, want all %d", got, len(sent))
	}
	if srv.Open() != 1 {
		t.Errorf("%d sockets open, want 1", srv.Open())
	}
}
