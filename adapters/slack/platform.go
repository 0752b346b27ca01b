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
	// updateMaxMarkdown is the Markdown a message may hold in update mode:
	// its mrkdwn must still fit maxUpdateChars (conversion rarely adds, but
	// entities do).
	updateMaxMarkdown = 3500
	// maxAppend is the most markdown_text one startStream, appendStream or
	// stopStream call takes.
	maxAppend = 12000
	// nativeMaxMarkdown is the Markdown a natively streamed message may
	// hold: Slack caps a message's markdown at 12,000 characters.
	nativeMaxMarkdown = 11000
	// maxKept bounds the finished replies remembered because their
	// messages are not the one the engine knows (continuations,
	// replacements), and the texts remembered on the update path.
	maxKept = 4096
)

// Limits declares Slack's limits. chat.postMessage allows about one message
// a second per channel; chat.update is Tier 3 (about 50 a minute) per
// workspace, shared by every stream; chat.appendStream is Tier 4 (about 100
// a minute). An assistant status clears itself after two minutes. In auto
// mode the update limits hold, as any workspace may fall back to them.
func (a *Adapter) Limits() bots.Limits {
	l := bots.Limits{
		MaxChars:      updateMaxMarkdown,
		ChannelPost:   bots.Rate{Every: time.Second, Burst: 1},
		WorkspaceEdit: bots.PerMinute(50, 3),
		ProgressEvery: 100 * time.Second,
		// A native stream stays open until stopped: it must hear of the
		// end even when the text did not change.
		FinalEdit: a.mode != StreamingUpdate,
	}
	if a.mode == StreamingNative {
		l.MaxChars = nativeMaxMarkdown
		l.WorkspaceEdit = bots.PerMinute(100, 5)
	}
	return l
}

// msgKey identifies a message: a ts is unique within its channel only.
type msgKey struct{ channel, ts string }

// reply is a natively streamed answer: one message for the engine (its id),
// one or more messages on Slack. A stream that expired continues in a new
// message; a stream whose text was replaced (a placeholder giving way to the
// answer) is deleted and started again.
type reply struct {
	mu   chan struct{} // a lock that a waiting Edit can give up on with ctx
	id   msgKey        // the engine's id
	dest bots.Destination
	segs []*segment
	done bool // the engine's final edit went through
	// touched is when the engine last edited the reply; a stream left
	// untouched is stopped (see reapStreams). Guarded by Adapter.mu.
	touched time.Time
}

// segment is one Slack message of a reply.
type segment struct {
	ts     string
	start  int    // offset in the engine's text where this message begins
	text   string // the Markdown this message shows
	native bool   // written by appendStream (else by chat.update)
	open   bool   // the native stream is still open
	idled  bool   // stopped by the adapter for want of edits: now a plain message
}

func (r *reply) lock(ctx context.Context) error {
	select {
	case r.mu <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *reply) tryLock() bool {
	select {
	case r.mu <- struct{}{}:
		return true
	default:
		return false
	}
}

func (r *reply) unlock() { <-r.mu }

func (r *reply) last() *segment { return r.segs[len(r.segs)-1] }

// shown is the text the reply's messages show, in order.
func (r *reply) shown() string {
	var b strings.Builder
	for _, s := range r.segs {
		b.WriteString(s.text)
	}
	return b.String()
}

// Post creates a message. In a thread, where the workspace allows it, the
// message is a native stream that later Edits append to; elsewhere it is a
// chat.postMessage in mrkdwn.
func (a *Adapter) Post(ctx context.Context, dest bots.Destination, text string) (string, error) {
	if a.native(dest) {
		seg, err := a.openSegment(ctx, dest, 0, text)
		if err == nil {
			key := msgKey{dest.Channel, seg.ts}
			a.mu.Lock()
			a.replies[key] = &reply{mu: make(chan struct{}, 1), id: key, dest: dest, segs: []*segment{seg}, touched: time.Now()}
			a.mu.Unlock()
			return seg.ts, nil
		}
		if a.mode != StreamingAuto || !declined(err) {
			return "", wrap("chat.startStream", err)
		}
		a.nativeFailed(dest, err)
	}
	ts, out, err := a.postMessage(ctx, dest, text)
	if err == nil {
		a.remember(msgKey{dest.Channel, ts}, out)
	}
	return ts, err
}

// native reports whether a reply to dest is streamed natively: Slack
// streams only thread replies, and outside DMs only to a known recipient.
func (a *Adapter) native(dest bots.Destination) bool {
	if a.mode == StreamingUpdate || dest.Thread == "" {
		return false
	}
	if !dest.DM && (dest.User == "" || dest.UserTeam == "") {
		return false
	}
	if a.mode == StreamingAuto {
		a.mu.Lock()
		defer a.mu.Unlock()
		return !a.noNative[dest.Workspace]
	}
	return true
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
// or an unknown method.
func declined(err error) bool {
	if code := apiCode(err); code != "" {
		return !goneCodes[code]
	}
	return refused(err)
}

// openSegment starts a native stream in dest's thread holding text, which
// begins at offset start of the engine's text. The Slack error is returned
// unwrapped.
func (a *Adapter) openSegment(ctx context.Context, dest bots.Destination, start int, text string) (*segment, error) {
	chunks := splitRunes(text, maxAppend)
	opts := []slackapi.MsgOption{slackapi.MsgOptionTS(dest.Thread)}
	if !dest.DM {
		opts = append(opts, slackapi.MsgOptionRecipientUserID(dest.User), slackapi.MsgOptionRecipientTeamID(dest.UserTeam))
	}
	if len(chunks) > 0 {
		opts = append(opts, slackapi.MsgOptionMarkdownText(chunks[0]))
	}
	_, ts, err := a.api.StartStreamContext(ctx, dest.Channel, opts...)
	if err != nil {
		return nil, err
	}
	seg := &segment{ts: ts, start: start, native: true, open: true}
	if len(chunks) > 0 {
		seg.text = chunks[0]
	}
	for _, c := range chunks[1:] {
		// What does not go through now goes with the next Edit.
		if _, _, err := a.api.AppendStreamContext(ctx, dest.Channel, ts, slackapi.MsgOptionMarkdownText(c)); err != nil {
			break
		}
		seg.text += c
	}
	return seg, nil
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

// remember keeps the mrkdwn a plain message shows, so that a final edit
// with the same text (sent for native streams' sake) makes no call.
func (a *Adapter) remember(key msgKey, text string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.sent) >= maxKept {
		clear(a.sent)
	}
	a.sent[key] = text
}

// Edit replaces message id's text with text. On a native stream it appends
// what text adds to what was sent (Slack streams only append), and stops
// the stream when final.
func (a *Adapter) Edit(ctx context.Context, dest bots.Destination, id, text string, final bool) error {
	key := msgKey{dest.Channel, id}
	a.mu.Lock()
	r := a.replies[key]
	if r != nil {
		r.touched = time.Now()
	}
	a.mu.Unlock()
	if r == nil {
		return a.updatePlain(ctx, key, text, final)
	}
	if err := r.lock(ctx); err != nil {
		return err
	}
	defer r.unlock()
	err := a.editReply(ctx, r, text, final)
	if err == nil && final && !r.done {
		r.done = true
		a.finish(r)
	}
	return err
}

// updatePlain edits a message posted with chat.postMessage.
func (a *Adapter) updatePlain(ctx context.Context, key msgKey, md string, final bool) error {
	text, err := mrkdwnFor(md)
	if err != nil {
		return fmt.Errorf("slack: chat.update: %w", err)
	}
	a.mu.Lock()
	same := a.sent[key] == text
	if final {
		delete(a.sent, key)
	}
	a.mu.Unlock()
	if same {
		return nil
	}
	if err := a.update(ctx, key.channel, key.ts, md); err != nil {
		return err
	}
	if !final {
		a.remember(key, text)
	}
	return nil
}

// editReply brings reply r to text. r is locked.
func (a *Adapter) editReply(ctx context.Context, r *reply, text string, final bool) error {
	channel := r.dest.Channel
	// Each turn either finishes or opens a new message; a stream closing
	// again at once is not chased forever.
	for range 3 {
		cur := r.last()
		shown := r.shown()
		switch {
		case r.done:
			return a.rewrite(ctx, r, text)
		case !strings.HasPrefix(text, shown):
			if len(r.segs) == 1 && cur.native && cur.open {
				// The engine replaced its first text (a placeholder):
				// a stream only appends, so start it again.
				if err := a.restart(ctx, r, text); err != nil {
					return err
				}
				continue
			}
			return a.rewrite(ctx, r, text)
		}
		rest := text[len(shown):]
		switch {
		case !cur.native || cur.idled:
			// A plain message (a fallback, or a stream stopped for want
			// of edits): chat.update holds the rest.
			body := text[cur.start:]
			if err := a.update(ctx, channel, cur.ts, body); err != nil {
				return err
			}
			cur.native, cur.text = false, body
			return nil
		case !cur.open:
			// Expired: continue in a new message.
			if rest == "" {
				return nil
			}
			if err := a.continueReply(ctx, r, text); err != nil {
				return err
			}
			continue
		}
		err := a.send(ctx, channel, cur, rest, final)
		if err == nil {
			return nil
		}
		if !streamClosedCodes[apiCode(err)] {
			return wrap("chat.appendStream", err)
		}
		a.log.Info("slack stream closed, continuing in a new message", "channel", channel, "ts", cur.ts, "code", apiCode(err))
		cur.open = false
	}
	return fmt.Errorf("slack: stream %s keeps closing: %w", r.id.ts, bots.ErrGone)
}

// send appends rest to the open stream cur, in pieces Slack takes, and
// stops it when final. cur.text grows with each piece that went through.
// The Slack error is returned unwrapped.
func (a *Adapter) send(ctx context.Context, channel string, cur *segment, rest string, final bool) error {
	chunks := splitRunes(rest, maxAppend)
	for i, c := range chunks {
		if final && i == len(chunks)-1 {
			break // goes with stopStream
		}
		if _, _, err := a.api.AppendStreamContext(ctx, channel, cur.ts, slackapi.MsgOptionMarkdownText(c)); err != nil {
			return err
		}
		cur.text += c
	}
	if !final {
		return nil
	}
	var opts []slackapi.MsgOption
	last := ""
	if len(chunks) > 0 {
		last = chunks[len(chunks)-1]
		opts = append(opts, slackapi.MsgOptionMarkdownText(last))
	}
	if _, _, err := a.api.StopStreamContext(ctx, channel, cur.ts, opts...); err != nil {
		return err
	}
	cur.text += last
	cur.open = false
	return nil
}

// continueReply posts the part of text that r does not show yet as a new
// message in the thread: a new stream where possible, else a plain post.
func (a *Adapter) continueReply(ctx context.Context, r *reply, text string) error {
	start := len(r.shown())
	seg, err := a.newSegment(ctx, r, start, text[start:])
	if err != nil {
		return err
	}
	r.segs = append(r.segs, seg)
	a.alias(r, seg)
	return nil
}

// restart replaces r's only message, an open stream, with a new one
// holding text.
func (a *Adapter) restart(ctx context.Context, r *reply, text string) error {
	old := r.segs[0]
	if _, _, err := a.api.StopStreamContext(ctx, r.dest.Channel, old.ts); err != nil && !streamClosedCodes[apiCode(err)] {
		return wrap("chat.stopStream", err)
	}
	old.open = false
	seg, err := a.newSegment(ctx, r, 0, text)
	if err != nil {
		return err
	}
	if err := a.delete(ctx, r.dest.Channel, old.ts); err != nil && !errors.Is(err, bots.ErrGone) {
		a.log.Warn("slack replaced stream not deleted", "channel", r.dest.Channel, "ts", old.ts, "err", err)
	}
	r.segs = []*segment{seg}
	a.alias(r, seg)
	return nil
}

// newSegment opens a message for text in r's thread: a stream where
// possible, else a plain post.
func (a *Adapter) newSegment(ctx context.Context, r *reply, start int, text string) (*segment, error) {
	if a.native(r.dest) {
		seg, err := a.openSegment(ctx, r.dest, start, text)
		if err == nil {
			return seg, nil
		}
		if a.mode == StreamingNative || !declined(err) {
			return nil, wrap("chat.startStream", err)
		}
		a.nativeFailed(r.dest, err)
	}
	ts, _, err := a.postMessage(ctx, r.dest, text)
	if err != nil {
		return nil, err
	}
	return &segment{ts: ts, start: start, text: text}, nil
}

// alias makes a reaction to seg count as a reaction to the reply the engine
// knows.
func (a *Adapter) alias(r *reply, seg *segment) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.aliases) >= maxKept {
		clear(a.aliases)
	}
	a.aliases[msgKey{r.id.channel, seg.ts}] = r.id.ts
}

// engineID returns the id the engine knows for message (channel, ts).
func (a *Adapter) engineID(channel, ts string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if id, ok := a.aliases[msgKey{channel, ts}]; ok {
		return id
	}
	return ts
}

// rewrite handles a text that does not extend what was streamed (rare: the
// engine replaced the text): the stream is stopped and its message
// rewritten with chat.update. Earlier continuation messages keep their text.
func (a *Adapter) rewrite(ctx context.Context, r *reply, text string) error {
	cur := r.last()
	if cur.native && cur.open {
		if _, _, err := a.api.StopStreamContext(ctx, r.dest.Channel, cur.ts); err != nil && !streamClosedCodes[apiCode(err)] {
			return wrap("chat.stopStream", err)
		}
		cur.open = false
	}
	body := text[min(cur.start, len(text)):]
	if body == cur.text {
		return nil
	}
	if err := a.update(ctx, r.dest.Channel, cur.ts, body); err != nil {
		return err
	}
	cur.native, cur.text = false, body
	return nil
}

// finish forgets a finished reply, unless its messages are not just the
// one the engine knows: those are remembered (a bounded number) so that
// Delete removes them all.
func (a *Adapter) finish(r *reply) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(r.segs) == 1 && r.segs[0].ts == r.id.ts {
		delete(a.replies, r.id)
		return
	}
	a.done = append(a.done, r.id)
	if len(a.done) > maxKept {
		delete(a.replies, a.done[0])
		a.done = a.done[1:]
	}
}

// update rewrites message ts with md as mrkdwn. A stream left open (by an
// earlier run) refuses updates: it is stopped first.
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

// Delete removes message id, and the other messages of its reply.
func (a *Adapter) Delete(ctx context.Context, dest bots.Destination, id string) error {
	key := msgKey{dest.Channel, id}
	a.mu.Lock()
	r := a.replies[key]
	delete(a.replies, key)
	delete(a.sent, key)
	a.mu.Unlock()
	if r == nil {
		return a.delete(ctx, dest.Channel, id)
	}
	if err := r.lock(ctx); err != nil {
		return err
	}
	defer r.unlock()
	var first error
	for _, s := range r.segs {
		if err := a.delete(ctx, dest.Channel, s.ts); err != nil && first == nil {
			first = err
		}
	}
	r.done = true
	return first
}

func (a *Adapter) delete(ctx context.Context, channel, ts string) error {
	// Slack tells subscribers of the deletion, perhaps before it answers
	// the call: mark it first (see ownDeletion).
	key := msgKey{channel, ts}
	a.mu.Lock()
	if len(a.deleting) >= maxKept {
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

// ownDeletion reports (once) whether the adapter deleted message
// (channel, ts) itself: a replaced stream is not a reply the user deleted.
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

// reapStreams stops the native streams the engine has not edited for
// streamIdle, until ctx ends. A reply posted whole gets no final edit from
// the engine, and an open stream shows as still being written; if edits
// resume, the stopped message takes them as chat.update.
func (a *Adapter) reapStreams(ctx context.Context) {
	t := time.NewTicker(a.streamIdle / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var idle []*reply
		a.mu.Lock()
		for _, r := range a.replies {
			if !r.done && time.Since(r.touched) >= a.streamIdle {
				idle = append(idle, r)
			}
		}
		a.mu.Unlock()
		for _, r := range idle {
			if !r.tryLock() {
				continue // an edit is under way
			}
			if cur := r.last(); cur.native && cur.open {
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, _, err := a.api.StopStreamContext(sctx, r.dest.Channel, cur.ts)
				cancel()
				switch {
				case err == nil:
					cur.open, cur.idled = false, true
				case streamClosedCodes[apiCode(err)]:
					cur.open = false
				default:
					a.log.Debug("slack idle stream not stopped", "ts", cur.ts, "err", redact(err))
				}
			}
			if !r.last().open {
				r.done = true
				a.finish(r)
			}
			r.unlock()
		}
	}
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

// splitRunes cuts s into pieces of at most n runes, never inside a rune.
func splitRunes(s string, n int) []string {
	var out []string
	for s != "" {
		i, count := 0, 0
		for i < len(s) && count < n {
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
			count++
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	return out
}
