package slacktest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	slackapi "github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/parleyhq/parley/adapters/slack/slacktest"
)

// recordingSocket is a slack-go Socket Mode client that keeps every
// request it receives and acknowledges them while ack is set.
type recordingSocket struct {
	mu   sync.Mutex
	reqs []socketmode.Request
	ack  bool
}

func startRecording(t *testing.T, srv *slacktest.Server, ack bool) *recordingSocket {
	t.Helper()
	cfg := srv.Config()
	api := slackapi.New(cfg.BotToken, slackapi.OptionAppLevelToken(cfg.AppToken),
		slackapi.OptionAPIURL(srv.APIURL),
		slackapi.OptionHTTPClient(&http.Client{Transport: slacktest.LoopbackTransport(), Timeout: 10 * time.Second}))
	sm := socketmode.New(api)
	ctx, cancel := context.WithCancel(context.Background())
	r := &recordingSocket{ack: ack}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-sm.Events:
				if ev.Request == nil || ev.Request.EnvelopeID == "" {
					continue
				}
				r.mu.Lock()
				r.reqs = append(r.reqs, *ev.Request)
				ack := r.ack
				r.mu.Unlock()
				if ack {
					sm.Ack(*ev.Request)
				}
			}
		}
	})
	wg.Go(func() { _ = sm.RunContext(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	waitUntil(t, srv, "the socket to open", srv.Connected)
	return r
}

func (r *recordingSocket) setAck(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ack = on
}

func (r *recordingSocket) requests() []socketmode.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

// of returns the requests of envelope id, in order.
func (r *recordingSocket) of(id string) []socketmode.Request {
	var out []socketmode.Request
	for _, q := range r.requests() {
		if q.EnvelopeID == id {
			out = append(out, q)
		}
	}
	return out
}

// event returns the inner event of an events_api request.
func event(t *testing.T, q socketmode.Request) map[string]any {
	t.Helper()
	var p struct {
		EventID string         `json:"event_id"`
		Event   map[string]any `json:"event"`
	}
	if err := json.Unmarshal(q.Payload, &p); err != nil {
		t.Fatalf("envelope %s: %v", q.EnvelopeID, err)
	}
	p.Event["event_id"] = p.EventID
	return p.Event
}

func TestSocketRedeliversWhatWasNotAcknowledged(t *testing.T) {
	srv, _, _ := newFake(t, slacktest.Config{})
	c := startRecording(t, srv, false)
	id := srv.SendEvent(map[string]any{"type": "message", "channel": "D1", "user": "U1", "text": "hi", "ts": "1.1"})
	waitUntil(t, srv, "the envelope", func() bool { return len(c.of(id)) == 1 })
	if _, ok := srv.Ack(id); ok || srv.Unacked() != 1 {
		t.Fatalf("an envelope not acknowledged counts as acknowledged (unacked %d)", srv.Unacked())
	}

	// The network fails: slack-go reconnects, and Slack delivers the
	// envelope again, saying it is a retry.
	c.setAck(true)
	srv.DropSocket()
	waitUntil(t, srv, "the envelope delivered again and acknowledged", func() bool {
		_, ok := srv.Ack(id)
		return ok && len(c.of(id)) == 2
	})
	again := c.of(id)[1]
	if again.RetryAttempt != 1 || again.RetryReason != "timeout" {
		t.Errorf("redelivery says retry %d (%q), want 1 (\"timeout\")", again.RetryAttempt, again.RetryReason)
	}
	if srv.Unacked() != 0 || srv.Connections() != 2 {
		t.Errorf("%d unacknowledged, %d connections; want 0 and 2", srv.Unacked(), srv.Connections())
	}

	// An acknowledged envelope is not delivered again on the next
	// connection.
	srv.Disconnect()
	waitUntil(t, srv, "the client to reconnect when asked", func() bool { return srv.Connections() == 3 && srv.Open() == 1 })
	next := srv.SendEvent(map[string]any{"type": "message", "channel": "D1", "user": "U1", "text": "again", "ts": "1.2"})
	waitUntil(t, srv, "the next envelope acknowledged", func() bool { _, ok := srv.Ack(next); return ok })
	if n := len(c.of(id)); n != 2 {
		t.Errorf("the acknowledged envelope came %d times, want 2", n)
	}
}

func TestSocketEventsAsSlackSendsThem(t *testing.T) {
	srv, api, _ := newFake(t, slacktest.Config{EchoBotMessages: true})
	c := startRecording(t, srv, true)
	ctx := context.Background()

	// A mention in a channel is two events; in a DM one.
	p := srv.UserMessage("C1", "", "U1", "<@U0BOT> hi")
	d := srv.UserMessage("D1", "", "U1", "<@U0BOT> hi")
	if len(p.Envelopes) != 2 || len(d.Envelopes) != 1 {
		t.Fatalf("envelopes: %d in a channel, %d in a DM; want 2 and 1", len(p.Envelopes), len(d.Envelopes))
	}
	// The bot's own messages come back to it, as to any subscriber.
	ts, err := post(api, "C1", "answer")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := api.UpdateMessageContext(ctx, "C1", ts, slackapi.MsgOptionText("answer, edited", false)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := api.DeleteMessageContext(ctx, "C1", ts); err != nil {
		t.Fatal(err)
	}
	// Slack retrying one event sends its id again.
	retry := srv.SendEventID("Ev-same", map[string]any{"type": "message", "channel": "D1", "user": "U1", "text": "x", "ts": "1.3"})
	retry2 := srv.SendEventID("Ev-same", map[string]any{"type": "message", "channel": "D1", "user": "U1", "text": "x", "ts": "1.3"})
	waitUntil(t, srv, "every envelope acknowledged", func() bool { return srv.Unacked() == 0 && len(c.requests()) == 8 })

	var got []string
	for _, q := range c.requests() {
		e := event(t, q)
		sub, _ := e["subtype"].(string)
		got = append(got, e["type"].(string)+"/"+sub+"/"+e["channel"].(string))
	}
	want := []string{"app_mention//C1", "message//C1", "message//D1", "message//C1",
		"message/message_changed/C1", "message/message_deleted/C1", "message//D1", "message//D1"}
	if !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	reqs := c.requests()
	if e := event(t, reqs[5]); e["deleted_ts"] != ts {
		t.Errorf("message_deleted names %v, want %s", e["deleted_ts"], ts)
	}
	if a, b := event(t, c.of(retry)[0]), event(t, c.of(retry2)[0]); a["event_id"] != "Ev-same" || b["event_id"] != "Ev-same" {
		t.Errorf("event ids %v and %v, want Ev-same twice", a["event_id"], b["event_id"])
	}
	// A slash command carries a response URL the fake serves.
	env, url := srv.SlashCommand("C1", "U1", "/model", "gpt")
	waitUntil(t, srv, "the command acknowledged", func() bool { _, ok := srv.Ack(env); return ok })
	if q := c.of(env); len(q) != 1 || q[0].Type != "slash_commands" {
		t.Fatalf("command envelope %+v", q)
	}
	var cmd slackapi.SlashCommand
	if err := json.Unmarshal(c.of(env)[0].Payload, &cmd); err != nil || cmd.Command != "/model" || cmd.Text != "gpt" || cmd.ResponseURL != url {
		t.Errorf("command %+v (%v), want /model gpt with response URL %s", cmd, err, url)
	}
}
