package slack

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/parleyhq/parley/adapters/slack/slacktest"
)

func TestHTTPEventsInOrderWithinAConversation(t *testing.T) {
	const secret = "s3cret-signing"
	fake := slacktest.New(t, slacktest.Config{})
	eng := newHeldEngine()
	a := newTestAdapter(t, fake, eng, Options{SigningSecret: secret}, nil)
	a.ackWait = 50 * time.Millisecond
	a.retry = retryPolicy{first: time.Millisecond, max: time.Millisecond, within: time.Second}
	runAdapter(t, a)
	defer eng.releaseAll()
	srv := newSignedPoster(t, a, secret)

	eng.hold("first")
	eng.fail("first", 1) // once answered, a failure is retried here
	first := map[string]any{"type": "message", "channel": "D1", "channel_type": "im", "user": "U1", "text": "first", "ts": "1.000001"}
	second := map[string]any{"type": "message", "channel": "D1", "channel_type": "im", "user": "U1", "text": "second", "ts": "1.000002"}
	other := map[string]any{"type": "message", "channel": "D2", "channel_type": "im", "user": "U2", "text": "other", "ts": "1.000003"}
	// A held event is answered 200 once ackWait is over: it is queued and
	// will be handled.
	if code := srv.post(fake.EventBody("Ev1", first)); code != 200 {
		t.Errorf("a held event: %d, want 200", code)
	}
	if code := srv.post(fake.EventBody("Ev2", second)); code != 200 {
		t.Errorf("an event behind it: %d, want 200", code)
	}
	if code := srv.post(fake.EventBody("Ev3", other)); code != 200 {
		t.Errorf("another conversation's event: %d, want 200", code)
	}
	waitFor(t, fake, 5*time.Second, "the other conversation handled", eng.has(eng.handled, "other"))
	if got := eng.began(); slices.Contains(got, "second") {
		t.Errorf("began %q: second before first was done", got)
	}
	eng.release("first")
	waitFor(t, fake, 5*time.Second, "the conversation handled", settled(a))
	if got := eng.handled(); !slices.Equal(got, []string{"other", "first", "second"}) {
		t.Errorf("handled %q, want other, then first and second in order", got)
	}
}

// signedPoster posts signed Events API requests to an adapter's Handler.
type signedPoster struct {
	t      *testing.T
	url    string
	secret string
}

func newSignedPoster(t *testing.T, a *Adapter, secret string) *signedPoster {
	t.Helper()
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &signedPoster{t: t, url: srv.URL + "/slack/events", secret: secret}
}

func (p *signedPoster) post(body []byte) int {
	p.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.url, bytes.NewReader(body))
	req.Header = slacktest.Sign(p.secret, time.Now(), body)
	res, err := loopbackClient().Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}
