package slack

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/adapters/slack/slacktest"
	"github.com/parleyhq/parley/bots"
)

func TestHTTPHandler(t *testing.T) {
	const secret = "s3cret-signing"
	fake := slacktest.New(t, slacktest.Config{})
	eng := &fakeEngine{models: []string{"gpt-a", "gpt-b"}, reply: bots.CommandReply{Text: "Help **text**.", Ephemeral: true}}
	logs := &logBuffer{}
	a := newTestAdapter(t, fake, eng, Options{SigningSecret: secret}, logs)
	runAdapter(t, a)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)

	post := func(path string, body []byte, signedAt time.Time) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
		req.Header = slacktest.Sign(secret, signedAt, body)
		res, err := loopbackClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(res.Body)
		return res.StatusCode, strings.TrimSpace(b.String())
	}

	event := fake.EventBody("Ev1", map[string]any{"type": "message", "channel": "D1", "channel_type": "im", "user": "U1", "text": "hi", "ts": "1.000001"})
	eng.setHandleErr(errors.New("store down"))
	if code, _ := post("/slack/events", event, time.Now()); code != http.StatusInternalServerError {
		t.Errorf("an event the engine refused: %d, want 500 so that Slack retries", code)
	}
	eng.setHandleErr(nil)
	if code, _ := post("/slack/events", event, time.Now()); code != http.StatusOK || len(eng.incoming()) != 1 {
		t.Errorf("the retry: %d, %d messages handled", code, len(eng.incoming()))
	}
	if code, _ := post("/slack/events", []byte("{not json"), time.Now()); code != http.StatusBadRequest {
		t.Errorf("malformed event: %d, want 400", code)
	}
	if code, _ := post("/slack/events", event, time.Now().Add(6*time.Minute)); code != http.StatusUnauthorized {
		t.Errorf("a timestamp from the future: %d, want 401", code)
	}

	form := url.Values{"team_id": {"T0TEAM"}, "channel_id": {"D1"}, "user_id": {"U1"}, "command": {"/help"}}
	code, body := post("/slack/commands", []byte(form.Encode()), time.Now())
	if code != http.StatusOK || body != `{"response_type":"ephemeral","text":"Help *text*."}` {
		t.Errorf("/help: %d %s", code, body)
	}
	payload := url.Values{"payload": {`{"type":"block_suggestion","action_id":"parley_model","value":"b","team":{"id":"T0TEAM"},"user":{"id":"U1"}}`}}
	code, body = post("/slack/interactions", []byte(payload.Encode()), time.Now())
	if code != http.StatusOK || !strings.Contains(body, `"value":"gpt-b"`) || strings.Contains(body, "gpt-a") {
		t.Errorf("options: %d %s", code, body)
	}
	checkNoSecrets(t, logs.String(), secret, fake.Config().BotToken)
}

func TestOptionsLogMasked(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&b, nil))
	log.Info("config", "slack", Options{BotToken: "xoxb-123", AppToken: "xapp-456", SigningSecret: "789", Streaming: "auto"})
	for _, s := range []string{"xoxb-123", "xapp-456", "789"} {
		if strings.Contains(b.String(), s) {
			t.Errorf("logged options show %q: %s", s, b.String())
		}
	}
	if !strings.Contains(b.String(), `"streaming":"auto"`) {
		t.Errorf("logged options lost their settings: %s", b.String())
	}
}
