package slack

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"time"

	slackapi "github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
)

const (
	maxBody   = 1 << 20 // bytes of a request from Slack
	readyWait = 2 * time.Second
)

// Handler serves the HTTP Events API: POST /slack/events (the Event
// Subscriptions request URL), /slack/commands (each slash command's URL) and
// /slack/interactions (Interactivity, and the select menus' options load
// URL). Every request must carry a valid signature from the last five
// minutes. It answers 503 until Run has called auth.test.
func (a *Adapter) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /slack/events", a.verified(a.serveEvents))
	mux.Handle("POST /slack/commands", a.verified(a.serveCommands))
	mux.Handle("POST /slack/interactions", a.verified(a.serveInteractions))
	return mux
}

// verified checks the request's signature and timestamp before next sees
// the body.
func (a *Adapter) verified(next func(w http.ResponseWriter, r *http.Request, body []byte)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.opts.SigningSecret == "" {
			http.Error(w, "HTTP mode is off: set SLACK_SIGNING_SECRET", http.StatusNotFound)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			http.Error(w, "body unreadable or too large", http.StatusRequestEntityTooLarge)
			return
		}
		sv, err := slackapi.NewSecretsVerifier(r.Header, a.opts.SigningSecret)
		if err == nil {
			_, _ = sv.Write(body)
			err = sv.Ensure()
		}
		if err != nil {
			a.log.Warn("slack request refused", "path", r.URL.Path, "err", err)
			http.Error(w, "invalid or expired signature", http.StatusUnauthorized)
			return
		}
		next(w, r, body)
	})
}

// serveEvents answers an Events API request. Its event goes through the
// dispatcher as in Socket Mode, so that the events of one conversation are
// handled in order even when Slack posts them at once. The request waits
// for the first attempt, up to ackWait from its arrival (Slack waits 3 s):
// when the engine did not take the event the answer is a 500, and Slack
// delivers it again, which outlives this process, unlike a retry of ours.
// An event still waiting for its conversation's turn at ackWait is answered
// 200 and retried here, as in Socket Mode.
func (a *Adapter) serveEvents(w http.ResponseWriter, r *http.Request, body []byte) {
	arrived := time.Now()
	var outer struct {
		Type      string `json:"type"`
		Challenge string `json:"challenge"`
	}
	if err := json.Unmarshal(body, &outer); err != nil {
		a.log.Warn("slack event unreadable: skipped", "err", err)
		http.Error(w, "malformed event", http.StatusBadRequest)
		return
	}
	switch outer.Type {
	case slackevents.URLVerification:
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, outer.Challenge)
	case slackevents.CallbackEvent:
		var cb slackevents.EventsAPICallbackEvent
		if err := json.Unmarshal(body, &cb); err != nil {
			a.log.Warn("slack event unreadable: skipped", "err", err)
			w.WriteHeader(http.StatusOK) // a retry would not read better
			return
		}
		if !a.waitReady(r.Context(), readyWait) {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		ev, ok := a.callbackEvent(&cb)
		if !ok {
			w.WriteHeader(http.StatusOK)
			return
		}
		wait := newWaiter()
		if !a.dispatch(ev, wait) {
			a.log.Warn("slack event not queued: Parley is busy or stopping; Slack will deliver it again", "event_id", cb.EventID, "channel", ev.channel, "ts", ev.ts)
			http.Error(w, "busy: try again", http.StatusServiceUnavailable)
			return
		}
		t := time.NewTimer(a.ackWait - time.Since(arrived))
		defer t.Stop()
		select {
		case err := <-wait.outcome:
			if err != nil {
				a.log.Warn("slack event not taken, Slack will deliver it again", "event_id", cb.EventID, "channel", ev.channel, "ts", ev.ts, "err", redact(err))
				http.Error(w, "try again", http.StatusInternalServerError)
				return
			}
		case <-t.C:
			close(wait.gaveUp)
		case <-r.Context().Done():
			close(wait.gaveUp)
			return
		}
		w.WriteHeader(http.StatusOK)
	case slackevents.AppRateLimited:
		a.log.Warn("slack is dropping events: the app exceeded 30,000 events an hour in a workspace")
		w.WriteHeader(http.StatusOK)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

func (a *Adapter) serveCommands(w http.ResponseWriter, r *http.Request, body []byte) {
	v, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "malformed command", http.StatusBadRequest)
		return
	}
	if !a.waitReady(r.Context(), readyWait) {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	sc := slackapi.SlashCommand{
		TeamID:      v.Get("team_id"),
		ChannelID:   v.Get("channel_id"),
		UserID:      v.Get("user_id"),
		Command:     v.Get("command"),
		Text:        v.Get("text"),
		ResponseURL: v.Get("response_url"),
		TriggerID:   v.Get("trigger_id"),
	}
	writeJSON(w, a.command(r.Context(), sc))
}

func (a *Adapter) serveInteractions(w http.ResponseWriter, r *http.Request, body []byte) {
	v, err := url.ParseQuery(string(body))
	var ic slackapi.InteractionCallback
	if err == nil {
		err = json.Unmarshal([]byte(v.Get("payload")), &ic)
	}
	if err != nil {
		a.log.Warn("slack interaction unreadable: skipped", "err", err)
		http.Error(w, "malformed payload", http.StatusBadRequest)
		return
	}
	if !a.waitReady(r.Context(), readyWait) {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, a.interaction(r.Context(), &ic))
}

// writeJSON writes v, or an empty 200 for nil.
func writeJSON(w http.ResponseWriter, v any) {
	if v == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	if a, ok := v.(*answer); ok && a == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
