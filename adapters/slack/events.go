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

// handleTimeout bounds one engine.Handle call, inside Slack's 3 seconds.
const handleTimeout = 2500 * time.Millisecond

// messageSubtypes are the message subtypes that carry a new message; the
// others (message_changed, channel_join, …) are ignored.
var messageSubtypes = map[string]bool{
	"":                 true,
	"file_share":       true,
	"thread_broadcast": true,
	"me_message":       true,
	"bot_message":      true, // forwarded as a bot's message, for the engine to skip
}

// handleCallback hands one Events API event to the engine. It returns an
// error only when the event should be delivered again (the engine could not
// take it); a malformed or uninteresting event is logged and skipped.
func (a *Adapter) handleCallback(ctx context.Context, cb *slackevents.EventsAPICallbackEvent) error {
	if cb == nil || cb.InnerEvent == nil {
		a.log.Warn("slack event without inner event: skipped")
		return nil
	}
	raw := []byte(*cb.InnerEvent)
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		a.log.Warn("slack event unreadable: skipped", "event_id", cb.EventID, "err", err)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, handleTimeout)
	defer cancel()
	switch head.Type {
	case "app_mention":
		var ev slackevents.AppMentionEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			a.log.Warn("slack app_mention unreadable: skipped", "event_id", cb.EventID, "err", err)
			return nil
		}
		return a.handle(ctx, a.mention(cb, &ev))
	case "message":
		var ev slackevents.MessageEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			a.log.Warn("slack message unreadable: skipped", "event_id", cb.EventID, "err", err)
			return nil
		}
		if ev.SubType == "message_deleted" {
			if ev.DeletedTimeStamp != "" && !a.ownDeletion(ev.Channel, ev.DeletedTimeStamp) {
				a.eng.Deleted(a, cb.TeamID, ev.Channel, ev.DeletedTimeStamp)
			}
			return nil
		}
		if !messageSubtypes[ev.SubType] || ev.Channel == "" || ev.TimeStamp == "" {
			return nil
		}
		return a.handle(ctx, a.message(cb, &ev))
	case "reaction_added":
		var ev slackevents.ReactionAddedEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			a.log.Warn("slack reaction_added unreadable: skipped", "event_id", cb.EventID, "err", err)
			return nil
		}
		if ev.Item.Type == "message" && ev.Item.Channel != "" && ev.Item.Timestamp != "" {
			a.eng.Reacted(a, cb.TeamID, ev.Item.Channel, ev.Item.Timestamp, ev.User, ev.Reaction)
		}
		return nil
	}
	return nil
}

func (a *Adapter) handle(ctx context.Context, in bots.Incoming) error {
	if in.Channel == "" || in.MessageID == "" {
		return nil
	}
	if err := a.eng.Handle(ctx, a, in); err != nil {
		return fmt.Errorf("slack: handle event %s: %w", in.EventID, err)
	}
	return nil
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
