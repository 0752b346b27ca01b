package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/parleyhq/parley/bots"
)

// handleTimeout bounds one engine.Handle call. The event is acknowledged
// apart from its handling, so the bound is not Slack's 3 seconds; a store
// slow under load gets its time, as a call cut short may have marked the
// event seen without storing the message, and a new attempt would then be
// taken for a duplicate.
const handleTimeout = 10 * time.Second

// retryPolicy paces the new attempts at an event the engine did not take.
type retryPolicy struct {
	first, max time.Duration // the first wait, doubled up to max
	within     time.Duration // no attempt starts later than this after the first
}

// defaultRetry rides out a short outage of the store (a restart, a
// failover). The event's conversation waits meanwhile, to keep its order;
// the others go on.
var defaultRetry = retryPolicy{first: 250 * time.Millisecond, max: 4 * time.Second, within: 30 * time.Second}

// messageSubtypes are the message subtypes that carry a new message; the
// others (message_changed, channel_join, …) are ignored.
var messageSubtypes = map[string]bool{
	"":                 true,
	"file_share":       true,
	"thread_broadcast": true,
	"me_message":       true,
	"bot_message":      true, // forwarded as a bot's message, for the engine to skip
}

// event is one Events API event for the engine, read and normalized.
type event struct {
	key     string // its conversation: the dispatcher's key
	id      string // Slack's event id
	channel string
	ts      string // the message's ts; for a reaction or deletion, its target's
	// try makes one attempt at handing the event to the engine.
	try func(ctx context.Context) error
	// ack, when set, acknowledges the event's envelope (Socket Mode): it
	// is called once the engine took the event, so that an event Parley
	// did not store is one Slack delivers again.
	ack func()
}

// conversationKey names the conversation an event belongs to, within which
// events are handled in order: team, channel and thread root, a top-level
// message being the root of its own thread. A DM is one key whatever its
// threads: the events of one person's DM are few, and a reaction or a
// deletion, whose event does not name its thread, then falls in its
// conversation for sure.
//
// Elsewhere, a reaction or a deletion whose thread is unknown is keyed by
// its target as a thread root. That is its conversation when the target is
// a question at the top level, the case where order matters: a question
// deleted, or stopped, right after it was asked. A target inside a thread
// known only by its ts was handled before (a reaction to the bot's reply
// comes after the reply), so a key of its own costs no order.
func conversationKey(team, channel, thread string) string {
	if isDMChannel(channel) {
		thread = ""
	}
	return team + "/" + channel + "/" + thread
}

// callbackEvent reads one Events API event. It reports false for an event
// to skip: malformed (logged) or of no interest to the engine.
func (a *Adapter) callbackEvent(cb *slackevents.EventsAPICallbackEvent) (event, bool) {
	if cb == nil || cb.InnerEvent == nil {
		a.log.Warn("slack event without inner event: skipped")
		return event{}, false
	}
	raw := []byte(*cb.InnerEvent)
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		a.log.Warn("slack event unreadable: skipped", "event_id", cb.EventID, "err", err)
		return event{}, false
	}
	switch head.Type {
	case "app_mention":
		var ev slackevents.AppMentionEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			a.log.Warn("slack app_mention unreadable: skipped", "event_id", cb.EventID, "err", err)
			return event{}, false
		}
		return a.incomingEvent(a.mention(cb, &ev))
	case "message":
		var ev slackevents.MessageEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			a.log.Warn("slack message unreadable: skipped", "event_id", cb.EventID, "err", err)
			return event{}, false
		}
		if ev.SubType == "message_deleted" {
			if ev.Channel == "" || ev.DeletedTimeStamp == "" {
				return event{}, false
			}
			thread := ev.DeletedTimeStamp
			if ev.PreviousMessage != nil && ev.PreviousMessage.ThreadTimestamp != "" {
				thread = ev.PreviousMessage.ThreadTimestamp
			}
			team, channel, ts := cb.TeamID, ev.Channel, ev.DeletedTimeStamp
			return event{key: conversationKey(team, channel, thread), id: cb.EventID, channel: channel, ts: ts, try: func(context.Context) error {
				if !a.ownDeletion(channel, ts) {
					a.eng.Deleted(a, team, channel, ts)
				}
				return nil
			}}, true
		}
		if !messageSubtypes[ev.SubType] || ev.Channel == "" || ev.TimeStamp == "" {
			return event{}, false
		}
		return a.incomingEvent(a.message(cb, &ev))
	case "reaction_added":
		var ev slackevents.ReactionAddedEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			a.log.Warn("slack reaction_added unreadable: skipped", "event_id", cb.EventID, "err", err)
			return event{}, false
		}
		if ev.Item.Type != "message" || ev.Item.Channel == "" || ev.Item.Timestamp == "" {
			return event{}, false
		}
		team, channel, ts, user, emoji := cb.TeamID, ev.Item.Channel, ev.Item.Timestamp, ev.User, ev.Reaction
		return event{key: conversationKey(team, channel, ts), id: cb.EventID, channel: channel, ts: ts, try: func(context.Context) error {
			a.eng.Reacted(a, team, channel, ts, user, emoji)
			return nil
		}}, true
	}
	return event{}, false
}

// incomingEvent makes the event that hands message in to the engine; it
// reports false for a message without a channel or ts.
func (a *Adapter) incomingEvent(in bots.Incoming) (event, bool) {
	if in.Channel == "" || in.MessageID == "" {
		return event{}, false
	}
	return event{key: conversationKey(in.Workspace, in.Channel, in.Thread), id: in.EventID, channel: in.Channel, ts: in.MessageID, try: func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, handleTimeout)
		defer cancel()
		if err := a.eng.Handle(ctx, a, in); err != nil {
			return fmt.Errorf("slack: handle event %s: %w", in.EventID, err)
		}
		return nil
	}}, true
}

// dispatch queues ev in its conversation's turn; it reports false, queuing
// nothing, when the backlog is full or Run is not running: the event is
// then for Slack to deliver again. With a waiter, the first attempt's
// outcome goes to the waiter as long as it waits.
func (a *Adapter) dispatch(ev event, w *waiter) bool {
	return a.events.submit(ev.key, func(ctx context.Context) { a.handOver(ctx, ev, w) })
}

// waiter is an HTTP request waiting to answer Slack with the outcome of its
// event's first attempt.
type waiter struct {
	outcome chan error    // unbuffered: a send succeeds only while the request waits
	gaveUp  chan struct{} // closed when the request answered without the outcome
}

func newWaiter() *waiter {
	return &waiter{outcome: make(chan error), gaveUp: make(chan struct{})}
}

// tell hands err to the request and reports whether it took it.
func (w *waiter) tell(err error) bool {
	select {
	case w.outcome <- err:
		return true
	case <-w.gaveUp:
		return false
	}
}

// handOver hands ev to the engine. An error from the engine means the
// message was not stored, and Slack will not deliver it again: its envelope
// was acknowledged at once, or its HTTP request answered before the
// outcome. So handOver tries again with backoff, for a bounded time that
// keeps the conversation moving, and logs the event as lost, by channel and
// ts, when it gives up. With a waiter that takes the first outcome, Slack
// learns it: a failure answered non-2xx is Slack's to deliver again, and
// handOver stops there.
func (a *Adapter) handOver(ctx context.Context, ev event, w *waiter) {
	start := time.Now()
	wait := a.retry.first
	for attempt := 1; ; attempt++ {
		err := ctx.Err()
		if err == nil {
			err = ev.try(ctx)
		}
		if w != nil {
			if w.tell(err) {
				return
			}
			w = nil
		}
		if err == nil {
			if ev.ack != nil {
				ev.ack()
			}
			if attempt > 1 {
				a.log.Info("slack event handled after retries", "channel", ev.channel, "ts", ev.ts, "event_id", ev.id, "attempts", attempt)
			}
			return
		}
		if ctx.Err() != nil {
			a.log.Error("slack event not handled: Parley is stopping", "channel", ev.channel, "ts", ev.ts, "event_id", ev.id)
			return
		}
		if time.Since(start)+wait > a.retry.within {
			a.log.Error("slack event lost: the engine did not take it", "channel", ev.channel, "ts", ev.ts, "event_id", ev.id, "attempts", attempt, "err", redact(err))
			return
		}
		a.log.Warn("slack event not taken, retrying", "channel", ev.channel, "ts", ev.ts, "event_id", ev.id, "attempt", attempt, "in", wait, "err", redact(err))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		wait = min(2*wait, a.retry.max)
	}
}

// mention normalizes an app_mention: always in a channel, answered in the
// mention's thread.
func (a *Adapter) mention(cb *slackevents.EventsAPICallbackEvent, ev *slackevents.AppMentionEvent) bots.Incoming {
	in := bots.Incoming{
		Workspace:   cb.TeamID,
		Channel:     ev.Channel,
		Thread:      firstNonEmpty(ev.ThreadTimeStamp, ev.TimeStamp),
		MessageID:   ev.TimeStamp,
		EventID:     cb.EventID,
		Author:      ev.User,
		AuthorTeam:  firstNonEmpty(ev.UserTeam, cb.TeamID),
		AuthorIsBot: ev.BotID != "" || ev.User == a.botUserID,
		DM:          isDMChannel(ev.Channel),
		Mentioned:   true,
		Text:        a.stripMention(ev.Text),
		Attachments: attachments(ev.Files),
		Time:        tsTime(ev.TimeStamp),
	}
	if in.DM {
		in.Thread = ev.ThreadTimeStamp
	}
	return in
}

// message normalizes a message event: in a DM the conversation is the
// channel itself unless the user wrote in a thread; elsewhere it is the
// message's thread (or the thread the message would start).
func (a *Adapter) message(cb *slackevents.EventsAPICallbackEvent, ev *slackevents.MessageEvent) bots.Incoming {
	var files []slackapi.File
	if ev.Message != nil {
		files = ev.Message.Files
	}
	dm := ev.ChannelType == slackevents.ChannelTypeIM || (ev.ChannelType == "" && isDMChannel(ev.Channel))
	in := bots.Incoming{
		Workspace:   cb.TeamID,
		Channel:     ev.Channel,
		Thread:      firstNonEmpty(ev.ThreadTimeStamp, ev.TimeStamp),
		MessageID:   ev.TimeStamp,
		EventID:     cb.EventID,
		Author:      firstNonEmpty(ev.User, ev.BotID),
		AuthorTeam:  firstNonEmpty(ev.UserTeam, cb.TeamID),
		AuthorIsBot: ev.BotID != "" || ev.SubType == "bot_message" || (a.botUserID != "" && ev.User == a.botUserID),
		DM:          dm,
		Mentioned:   a.mentions(ev.Text),
		Text:        a.stripMention(ev.Text),
		Attachments: attachments(files),
		Time:        tsTime(ev.TimeStamp),
	}
	if dm {
		in.Thread = ev.ThreadTimeStamp
	}
	return in
}

// mentions reports whether text mentions the bot.
func (a *Adapter) mentions(text string) bool {
	return a.botUserID != "" && (strings.Contains(text, "<@"+a.botUserID+">") || strings.Contains(text, "<@"+a.botUserID+"|"))
}

// stripMention removes the bot's mentions and converts the rest to the
// plain text the model reads.
func (a *Adapter) stripMention(text string) string {
	if a.botUserID != "" {
		mention := "<@" + a.botUserID
		for {
			i := strings.Index(text, mention)
			if i < 0 {
				break
			}
			end := strings.IndexByte(text[i:], '>')
			if end < 0 {
				break
			}
			text = text[:i] + text[i+end+1:]
		}
	}
	return strings.TrimSpace(fromMrkdwn(text))
}

// isDMChannel reports whether a channel id is a direct message: Slack's DM
// ids start with D.
func isDMChannel(id string) bool { return strings.HasPrefix(id, "D") }

// tsTime converts a Slack ts ("1712345678.123456") to a time; zero when
// malformed.
func tsTime(ts string) time.Time {
	sec, frac, _ := strings.Cut(ts, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}
	}
	var us int64
	if len(frac) == 6 {
		us, _ = strconv.ParseInt(frac, 10, 64)
	}
	return time.Unix(s, us*1000).UTC()
}

// firstNonEmpty returns the first non-empty string.
func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
