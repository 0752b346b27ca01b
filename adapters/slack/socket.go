package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	slackapi "github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
)

// ackTimeout bounds the wait to queue an acknowledgement on the socket.
const ackTimeout = 5 * time.Second

// runSocket holds the Socket Mode connection until ctx ends. slack-go
// reconnects when Slack asks to or the socket drops; an envelope not
// acknowledged is delivered again by Slack.
//
// The read loop only reads: events are handled by the dispatcher, in order
// within a conversation and concurrently across conversations, so that a
// slow one delays no other. An event is acknowledged once the engine took
// it (its message stored, and marked seen with it); until then handOver
// retries a failure, and an event never taken (a crash, a store down for
// long, Run stopping with it queued, a full backlog) is left
// unacknowledged, for Slack to deliver again.
func (a *Adapter) runSocket(ctx context.Context) error {
	smc := socketmode.New(a.api,
		socketmode.OptionDialer(a.dialer()),
		socketmode.OptionLog(slog.NewLogLogger(a.log.Handler(), slog.LevelDebug)),
	)
	runErr := make(chan error, 1)
	go func() { runErr <- smc.RunContext(ctx) }()
	for {
		select {
		case err := <-runErr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("slack: socket mode: %w: check SLACK_APP_TOKEN (an xapp- token with connections:write) and that Socket Mode is on", redactErr{err})
		case evt := <-smc.Events:
			a.socketEvent(ctx, smc, evt)
		}
	}
}

func (a *Adapter) socketEvent(ctx context.Context, smc *socketmode.Client, evt socketmode.Event) {
	ack := func(envelopeID string, payload any) {
		if envelopeID == "" {
			return
		}
		ctx, cancel := context.WithTimeout(ctx, ackTimeout)
		defer cancel()
		if err := smc.AckCtx(ctx, envelopeID, payload); err != nil {
			a.log.Warn("slack ack failed", "envelope", envelopeID, "err", err)
		}
	}
	envelope := ""
	if evt.Request != nil {
		envelope = evt.Request.EnvelopeID
	}
	switch evt.Type {
	case socketmode.EventTypeConnecting:
		a.log.Debug("slack socket connecting")
	case socketmode.EventTypeConnected:
		a.connected.Store(true)
		a.authenticated()
		a.log.Info("slack socket connected")
	case socketmode.EventTypeHello:
		a.log.Debug("slack socket hello")
	case socketmode.EventTypeDisconnect:
		a.connected.Store(false)
	case socketmode.EventTypeConnectionError:
		a.connected.Store(false)
		if e, ok := evt.Data.(*slackapi.ConnectionErrorEvent); ok {
			a.log.Warn("slack socket connection failed, retrying", "attempt", e.Attempt, "in", e.Backoff, "err", redact(e.ErrorObj))
		}
	case socketmode.EventTypeInvalidAuth:
		a.log.Error("slack socket refused the app token: check SLACK_APP_TOKEN")
	case socketmode.EventTypeIncomingError:
		if e, ok := evt.Data.(*slackapi.IncomingEventError); ok {
			a.log.Warn("slack socket read failed", "err", redact(e.ErrorObj))
		}
	case socketmode.EventTypeErrorWriteFailed:
		if e, ok := evt.Data.(*socketmode.ErrorWriteFailed); ok {
			a.log.Warn("slack socket write failed", "err", redact(e.Cause))
		}
	case socketmode.EventTypeErrorBadMessage:
		// slack-go could not parse the envelope (an event type it does not
		// know, a malformed payload): acknowledge it so that Slack does not
		// send it again, and skip it.
		if e, ok := evt.Data.(*socketmode.ErrorBadMessage); ok {
			var env struct {
				EnvelopeID string `json:"envelope_id"`
				Type       string `json:"type"`
			}
			_ = json.Unmarshal(e.Message, &env)
			a.log.Warn("slack envelope unreadable: skipped", "type", env.Type, "err", e.Cause)
			ack(env.EnvelopeID, nil)
		}
	case socketmode.EventTypeEventsAPI:
		ev, ok := evt.Data.(slackevents.EventsAPIEvent)
		if !ok {
			ack(envelope, nil)
			return
		}
		cb, _ := ev.Data.(*slackevents.EventsAPICallbackEvent)
		if ev.Type != slackevents.CallbackEvent || cb == nil {
			ack(envelope, nil)
			return
		}
		cev, ok := a.callbackEvent(cb)
		if !ok {
			ack(envelope, nil)
			return
		}
		// Acknowledged once the engine has it (its message stored): an
		// event lost to a crash, a store down or a shutdown before that
		// is one Slack delivers again.
		cev.ack = func() { ack(envelope, nil) }
		if !a.dispatch(cev, nil) {
			a.log.Warn("slack event not queued: Parley is busy or stopping; Slack will deliver it again", "event_id", cb.EventID, "channel", cev.channel, "ts", cev.ts)
		}
	// Commands and interactions do not wait for a turn in the dispatcher:
	// their answer goes in the acknowledgement, within ackWait.
	case socketmode.EventTypeSlashCommand:
		sc, ok := evt.Data.(slackapi.SlashCommand)
		if !ok {
			ack(envelope, nil)
			return
		}
		a.background(func(ctx context.Context) {
			var payload any // an empty ack when the answer comes later
			if ans := a.command(ctx, sc); ans != nil {
				payload = ans
			}
			ack(envelope, payload)
		})
	case socketmode.EventTypeInteractive:
		ic, ok := evt.Data.(slackapi.InteractionCallback)
		if !ok {
			ack(envelope, nil)
			return
		}
		a.background(func(ctx context.Context) {
			ack(envelope, a.interaction(ctx, &ic))
		})
	}
}
