package slack

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/parleyhq/parley/adapters/slack/slacktest"
)

// fuzzAdapter is an adapter in HTTP events mode that has heard auth.test
// but runs nothing in the background: a fuzzed request is read, verified,
// parsed and normalized, then found no running dispatcher (503), so that
// each input costs no network.
func fuzzAdapter(f *testing.F) *Adapter {
	a, err := newAdapter(Options{BotToken: "xoxb-fuzz", SigningSecret: signingSecretFuzz, APIURL: "http://127.0.0.1:1/api/"}, &fakeEngine{models: []string{"gpt-a", "gpt-b"}}, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	a.readyOnce.Do(func() {
		a.botUserID = "U0BOT"
		close(a.ready)
	})
	return a
}

const signingSecretFuzz = "fuzz-signing-secret"

// serveSigned posts body to path through the adapter's Handler, signed.
func serveSigned(a *Adapter, path string, body []byte) int {
	req := httptest.NewRequest("POST", path, bytes.NewReader(body))
	req.Header = slacktest.Sign(signingSecretFuzz, time.Now(), body)
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, req)
	return rec.Code
}

func checkStatus(t *testing.T, code int) {
	t.Helper()
	switch code {
	case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusServiceUnavailable, http.StatusInternalServerError:
	default:
		t.Fatalf("answered %d", code)
	}
}

// The seed corpora are in testdata/fuzz/Fuzz*.

// FuzzEvents posts arbitrary signed Events API bodies: nothing may panic,
// and every answer is one Slack understands.
func FuzzEvents(f *testing.F) {
	a := fuzzAdapter(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkStatus(t, serveSigned(a, "/slack/events", body))
	})
}

// FuzzCommands posts arbitrary signed slash command forms.
func FuzzCommands(f *testing.F) {
	a := fuzzAdapter(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkStatus(t, serveSigned(a, "/slack/commands", body))
	})
}

// FuzzInteractions posts arbitrary signed interaction payloads: block
// suggestions (answered from the engine's catalog) and block actions.
func FuzzInteractions(f *testing.F) {
	a := fuzzAdapter(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkStatus(t, serveSigned(a, "/slack/interactions", []byte("payload="+url.QueryEscape(string(payload)))))
	})
}
