package slack

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	slackapi "github.com/slack-go/slack"

	"github.com/parleyhq/parley/bots"
)

// Slack's length limits.
const (
	// maxUpdateChars: chat.update answers msg_too_long well below the
	// documented 40,000 characters, around 4,000 in practice; postMessage
	// is held to the same so that every posted message can be edited.
	maxUpdateChars = 4000
	// updateMaxMarkdown is the Markdown a posted message may hold: its
	// mrkdwn must still fit maxUpdateChars (conversion rarely adds, but
	// entities do).
	updateMaxMarkdown = 3500
	// nativeMaxMarkdown is the Markdown a natively streamed message may
	// hold: Slack caps a streamed message's markdown at 12,000 characters
	// in all (and each startStream, appendStream or stopStream call's).
	nativeMaxMarkdown = 11000
)

// Slack's rate limits, per method, per workspace and per app (a 429's
// Retry-After is for that method alone); chat.postMessage is limited per
// channel as well. Sources: https://docs.slack.dev/apis/web-api/rate-limits
// and each method's page.
//
//	method                        tier     figure                     burst
//	chat.postMessage (channel)    special  1 a second per channel     3 ("short bursts")
//	chat.postMessage (workspace)  special  600 a minute (our reading  100 ("generous burst
//	                                       of "several hundred")          behavior")
//	chat.update, chat.delete      3        50 a minute                10
//	chat.startStream, stopStream  2        20 a minute                5
//	chat.appendStream             4        100 a minute               20
//	assistant.threads.setStatus   special  600 a minute (our reading) 100
//	files.*UploadExternal         4        100 a minute               20
//
// Slack keeps each as a token bucket; so does the engine, a little slower.
var (
	postPerChannel   = bots.Rate{Every: time.Second, Burst: 3, TokenBucket: true}
	postPerWorkspace = bots.Rate{Every: 100 * time.Millisecond, Burst: 100, TokenBucket: true}
	tier2            = bots.Rate{Every: 3 * time.Second, Burst: 5, TokenBucket: true}
	tier3            = bots.Rate{Every: 1200 * time.Millisecond, Burst: 10, TokenBucket: true}
	tier4            = bots.Rate{Every: 600 * time.Millisecond, Burst: 20, TokenBucket: true}
	statusRate       = bots.Rate{Every: 100 * time.Millisecond, Burst: 100, TokenBucket: true}
)

// Limits declares Slack's limits for a reply to dest. Native streaming is
// offered in thread replies to a known recipient (Slack requires one
// outside DMs), unless the mode is update or the workspace refused it; in
// auto mode the engine streams natively only when the streaming methods'
// budgets can pay for it, and posts otherwise. An assistant status clears
// itself after two minutes.
func (a *Adapter) Limits(dest bots.Destination) bots.Limits {
	ws := dest.Workspace
	per := func(method string, r bots.Rate) bots.Budget {
		return bots.Budget{Key: method + "/" + ws, Name: method, Rate: r, Shared: true}
	}
	l := bots.Limits{
		MaxChars:       updateMaxMarkdown,
		NativeMaxChars: nativeMaxMarkdown,
		ProgressEvery:  100 * time.Second,
		Budgets: map[bots.Call][]bots.Budget{
			bots.CallPost: {
				{Key: "chat.postMessage/" + ws + "/" + dest.Channel, Name: "chat.postMessage", Rate: postPerChannel},
				per("chat.postMessage", postPerWorkspace),
			},
			bots.CallEdit:     {per("chat.update", tier3)},
			bots.CallDelete:   {per("chat.delete", tier3)},
			bots.CallProgress: {per("assistant.threads.setStatus", statusRate)},
			// An upload is three calls: two of Tier 4 methods and the
			// file's own transfer.
			bots.CallUpload: {per("files.getUploadURLExternal", tier4), per("files.completeUploadExternal", tier4)},
			bots.CallStart:  {per("chat.startStream", tier2)},
			bots.CallAppend: {per("chat.appendStream", tier4)},
			bots.CallStop:   {per("chat.stopStream", tier2)},
		},
	}
	if a.native(dest) {
		l.Native = bots.NativeAuto
		if a.mode == StreamingNative {
			l.Native = bots.NativeAlways
		}
	}
	return l
}

// msgKey identifies a message: a ts is unique within its channel only.
type msgKey struct{ channel, ts string }

// native reports whether a reply to dest may be streamed natively: Slack
// streams only thread replies, and outside DMs only to a known recipient.
func (a *Adapter) native(dest bots.Destination) bool {
	if a.mode == StreamingUpdate || dest.Thread == "" {
		return false
	}
	if !dest.DM && (dest.User == "" || dest.UserTeam == "") {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.noNative[dest.Workspace]
}

// Post creates a message with chat.postMessage, in mrkdwn.
func (a *Adapter) Post(ctx context.Context, dest bots.Destination, text string) (string, error) {
	ts, _, err := a.postMessage(ctx, dest, text)
	return ts, err
}

// StartStream starts a native stream in dest's thread with
// chat.startStream. A workspace that refuses native streaming is
// remembered: its replies are posted from then on (bots.ErrNoStream).
func (a *Adapter) StartStream(ctx context.Context, dest bots.Destination, text string) (string, error) {
	opts := []slackapi.MsgOption{slackapi.MsgOptionTS(dest.Thread)}
	if !dest.DM {
		opts = append(opts, slackapi.MsgOptionRecipientUserID(dest.User), slackapi.MsgOptionRecipientTeamID(dest.UserTeam))
	}
	if text != "" {
		opts = append(opts, slackapi.MsgOptionMarkdownText(text))
	}
	_, ts, err := a.api.StartStreamContext(ctx, dest.Channel, opts...)
	if err != nil && declined(err) {
		a.nativeFailed(dest, err)
		return "", fmt.Errorf("slack: chat.startStream: %w: %w", bots.ErrNoStream, redactErr{err})
	}
	return ts, wrap("chat.startStream", err)
}

// AppendStream adds text to stream id with chat.appendStream.
func (a *Adapter) AppendStream(ctx context.Context, dest bots.Destination, id, text string) error {
	_, _, err := a.api.AppendStreamContext(ctx, dest.Channel, id, slackapi.MsgOptionMarkdownText(text))
	return wrapStream("chat.appendStream", err)
}

// StopStream ends stream id with chat.stopStream, adding text.
func (a *Adapter) StopStream(ctx context.Context, dest bots.Destination, id, text string) error {
	var opts []slackapi.MsgOption
	if text != "" {
		opts = append(opts, slackapi.MsgOptionMarkdownText(text))
	}
	_, _, err := a.api.StopStreamContext(ctx, dest.Channel, id, opts...)
	return wrapStream("chat.stopStream", err)
}

// wrapStream is wrap for the streaming methods: a stream that Slack closed
// is bots.ErrStreamClosed.
func wrapStream(method string, err error) error {
	if streamClosedCodes[apiCode(err)] {
		return fmt.Errorf("slack: %s: %w: %w", method, bots.ErrStreamClosed, redactErr{err})
	}
	return wrap(method, err)
}

// nativeFailed records that Slack declined a native stream to dest: a
// refusal of the feature holds for the whole workspace from then on.
func (a *Adapter) nativeFailed(dest bots.Destination, err error) {
	if !refused(err) {
		a.log.Warn("slack native stream declined, posting instead", "channel", dest.Channel, "code", apiCode(err))
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.noNative[dest.Workspace] {
		a.noNative[dest.Workspace] = true
		a.log.Warn("slack native streaming refused: this workspace gets chat.update instead",
			"workspace", dest.Workspace, "code", apiCode(err))
	}
}

// declined reports whether Slack answered a stream request with a refusal
// that a plain post may not meet: an API error other than a missing target,
// a length or a rate limit, or an unknown method.
func declined(err error) bool {
	var rl *slackapi.RateLimitedError
	if errors.As(err, &rl) {
		return false
	}
	if code := apiCode(err); code != "" {
		return !goneCodes[code] && code != "msg_too_long" && code != "ratelimited"
	}
	return refused(err)
}

// postMessage posts md as mrkdwn; it returns the ts and the mrkdwn sent.
func (a *Adapter) postMessage(ctx context.Context, dest bots.Destination, md string) (ts, text string, err error) {
	text, err = mrkdwnFor(md)
	if err != nil {
		return "", "", fmt.Errorf("slack: chat.postMessage: %w", err)
	}
	opts := []slackapi.MsgOption{slackapi.MsgOptionText(text, false)}
	if dest.Thread != "" {
		opts = append(opts, slackapi.MsgOptionTS(dest.Thread))
	}
	_, ts, err = a.api.PostMessageContext(ctx, dest.Channel, opts...)
	if err != nil {
		return "", "", wrap("chat.postMessage", err)
	}
	return ts, text, nil
}

// mrkdwnFor converts md for chat.postMessage and chat.update; Slack refuses
// an empty text.
func mrkdwnFor(md string) (string, error) {
	text := toMrkdwn(md)
	if strings.TrimSpace(text) == "" {
		text = "…"
	}
	if n := utf8.RuneCountInString(text); n > maxUpdateChars {
		return "", fmt.Errorf("%w: %d characters of mrkdwn, Slack takes %d", bots.ErrTooLong, n, maxUpdateChars)
	}
	return text, nil
}

// Edit replaces message id's text with chat.update. A stream left open (by
// an earlier run: recovery corrects such messages) is stopped first.
func (a *Adapter) Edit(ctx context.Context, dest bots.Destination, id, text string, final bool) error {
	return a.update(ctx, dest.Channel, id, text)
}

// update rewrites message ts with md as mrkdwn. A stream left open refuses
// updates: it is stopped first.
func (a *Adapter) update(ctx context.Context, channel, ts, md string) error {
	text, err := mrkdwnFor(md)
	if err != nil {
		return fmt.Errorf("slack: chat.update: %w", err)
	}
	_, _, _, err = a.api.UpdateMessageContext(ctx, channel, ts, slackapi.MsgOptionText(text, false))
	if apiCode(err) == "streaming_state_conflict" {
		if _, _, serr := a.api.StopStreamContext(ctx, channel, ts); serr != nil && !streamClosedCodes[apiCode(serr)] {
			return wrap("chat.stopStream", serr)
		}
		_, _, _, err = a.api.UpdateMessageContext(ctx, channel, ts, slackapi.MsgOptionText(text, false))
	}
	return wrap("chat.update", err)
}

// Delete removes message id.
func (a *Adapter) Delete(ctx context.Context, dest bots.Destination, id string) error {
	return a.delete(ctx, dest.Channel, id)
}

func (a *Adapter) delete(ctx context.Context, channel, ts string) error {
	// Slack tells subscribers of the deletion, perhaps before it answers
	// the call: mark it first (see ownDeletion).
	key := msgKey{channel, ts}
	a.mu.Lock()
	if len(a.deleting) >= maxDeleting {
		clear(a.deleting)
	}
	a.deleting[key] = true
	a.mu.Unlock()
	err := a.deleteMessage(ctx, channel, ts)
	if err != nil && !errors.Is(err, bots.ErrGone) {
		a.mu.Lock()
		delete(a.deleting, key)
		a.mu.Unlock()
	}
	return err
}

// maxDeleting bounds the deletions remembered by ownDeletion.
const maxDeleting = 4096

// ownDeletion reports (once) whether the adapter deleted message
// (channel, ts) itself: the engine's own deletion is no news to it.
func (a *Adapter) ownDeletion(channel, ts string) bool {
	key := msgKey{channel, ts}
	a.mu.Lock()
	defer a.mu.Unlock()
	own := a.deleting[key]
	delete(a.deleting, key)
	return own
}

func (a *Adapter) deleteMessage(ctx context.Context, channel, ts string) error {
	_, _, err := a.api.DeleteMessageContext(ctx, channel, ts)
	if apiCode(err) == "streaming_state_conflict" {
		if _, _, serr := a.api.StopStreamContext(ctx, channel, ts); serr != nil && !streamClosedCodes[apiCode(serr)] {
			return wrap("chat.stopStream", serr)
		}
		_, _, err = a.api.DeleteMessageContext(ctx, channel, ts)
	}
	return wrap("chat.delete", err)
}

// errNoStatus is returned by Progress where Slack shows no status; the
// engine then shows its own placeholder.
var errNoStatus = errors.New("slack: no assistant status here")

// Progress shows "is thinking…" under the thread with
// assistant.threads.setStatus (an empty status clears it). A workspace that
// refuses the method is remembered and not asked again.
func (a *Adapter) Progress(ctx context.Context, dest bots.Destination, status string) error {
	if dest.Thread == "" {
		return fmt.Errorf("%w: the status shows in threads only", errNoStatus)
	}
	a.mu.Lock()
	no := a.noStatus[dest.Workspace]
	a.mu.Unlock()
	if no {
		return fmt.Errorf("%w: the workspace refused it", errNoStatus)
	}
	if status != "" && !strings.HasPrefix(status, "is ") {
		status = "is thinking…"
	}
	err := a.api.SetAssistantThreadsStatusContext(ctx, slackapi.AssistantThreadsSetStatusParameters{
		ChannelID: dest.Channel,
		ThreadTS:  dest.Thread,
		Status:    status,
	})
	if err != nil && refused(err) {
		a.mu.Lock()
		if !a.noStatus[dest.Workspace] {
			a.noStatus[dest.Workspace] = true
			a.log.Info("slack assistant status refused: no status in this workspace", "workspace", dest.Workspace, "code", apiCode(err))
		}
		a.mu.Unlock()
		return fmt.Errorf("%w: %w", errNoStatus, wrap("assistant.threads.setStatus", err))
	}
	return wrap("assistant.threads.setStatus", err)
}
