package discord

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/parleyhq/parley/bots"
)

// Discord JSON error codes Parley branches on.
const (
	codeUnknownChannel     = 10003
	codeUnknownMessage     = 10008
	codeUnknownInteraction = 10062
	codeInvalidFormBody    = 50035
	codeThreadExists       = 160004
)

// noMentions is every message's allowed_mentions: the model's output never
// pings anyone, not even the user it replies to.
func noMentions() *discordgo.MessageAllowedMentions {
	return &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}}
}

// Post implements bots.Platform. In thread mode the first answer to a
// mention starts a thread from it; in reply mode answers reply to the
// message answered.
func (a *Adapter) Post(ctx context.Context, dest bots.Destination, text string) (string, error) {
	channel, replyTo, err := a.postTarget(ctx, dest)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(text) == "" {
		text = "…" // Discord refuses an empty message
	}
	data := &discordgo.MessageSend{Content: text, AllowedMentions: noMentions()}
	if replyTo != "" {
		no := false
		data.Reference = &discordgo.MessageReference{MessageID: replyTo, FailIfNotExists: &no}
	}
	var m *discordgo.Message
	err = a.do(ctx, "POST", discordgo.EndpointChannelMessages(channel), 0, func(o []discordgo.RequestOption) error {
		var err error
		m, err = a.s.ChannelMessageSendComplex(channel, data, o...)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("discord: post in channel %s: %w", channel, err)
	}
	if m == nil || m.ID == "" {
		return "", fmt.Errorf("discord: post in channel %s: Discord returned no message id", channel)
	}
	a.cache.setPosted(m.ID, channel)
	return m.ID, nil
}

// Prepare starts the reply's thread, if dest's answer goes into a thread
// that does not exist yet: the engine calls it while the model thinks.
func (a *Adapter) Prepare(ctx context.Context, dest bots.Destination) error {
	if !a.startsThread(dest) {
		return nil
	}
	_, _, err := a.postTarget(ctx, dest)
	return err
}

// Unprepared makes dest's answer a reply in the channel: the guild's
// thread budget is spent, and a thread would come minutes late.
func (a *Adapter) Unprepared(dest bots.Destination) {
	if a.startsThread(dest) {
		a.cache.setThread(dest.Thread, threadNone)
	}
}

// postTarget returns the channel an answer goes to and the message it
// replies to, starting the conversation's thread when needed.
func (a *Adapter) postTarget(ctx context.Context, dest bots.Destination) (channel, replyTo string, err error) {
	if dest.DM || dest.Thread == "" {
		return dest.Channel, "", nil
	}
	st := a.cache.thread(dest.Thread)
	if a.opts.ReplyMode == ReplyReply {
		if st == threadUnknown {
			st = a.resolveThread(ctx, dest.Thread)
		}
		if st == threadExists {
			return dest.Thread, dest.ReplyTo, nil
		}
		return dest.Channel, dest.ReplyTo, nil
	}
	switch st {
	case threadExists:
		return dest.Thread, "", nil
	case threadNone:
		return dest.Channel, dest.ReplyTo, nil
	}
	return a.startThread(ctx, dest)
}

// startThread starts the conversation's thread from message dest.Thread.
func (a *Adapter) startThread(ctx context.Context, dest bots.Destination) (string, string, error) {
	name := threadName(a.cache.prompt(dest.Thread))
	endpoint := discordgo.EndpointChannelMessageThread(dest.Channel, dest.Thread)
	err := a.do(ctx, "POST", endpoint, 0, func(o []discordgo.RequestOption) error {
		_, err := a.s.MessageThreadStartComplex(dest.Channel, dest.Thread, &discordgo.ThreadStart{Name: name}, o...)
		return err
	})
	var rle *bots.RateLimitError
	switch {
	case err == nil, discordCode(err) == codeThreadExists:
		a.cache.setThread(dest.Thread, threadExists)
		a.cache.setChannel(dest.Thread, chanInfo{parent: dest.Channel, thread: true})
		return dest.Thread, "", nil
	case errors.As(err, &rle), ctx.Err() != nil:
		return "", "", fmt.Errorf("discord: start a thread in channel %s: %w", dest.Channel, err)
	case discordCode(err) == codeUnknownMessage:
		// Deleted, or a thread that did not start from a message.
		if a.resolveThread(ctx, dest.Thread) == threadExists {
			return dest.Thread, "", nil
		}
		return "", "", fmt.Errorf("discord: start a thread from message %s: %w", dest.Thread, err)
	case errors.Is(err, bots.ErrGone):
		return "", "", fmt.Errorf("discord: start a thread in channel %s: %w", dest.Channel, err)
	case discordCode(err) != 0:
		// No thread here (a channel type without threads, or a missing
		// Create Public Threads permission): answer with a reply instead.
		a.log.Warn("cannot start a thread; replying in the channel instead",
			"channel", dest.Channel, "err", err)
		a.cache.setThread(dest.Thread, threadNone)
		return dest.Channel, dest.ReplyTo, nil
	}
	return "", "", fmt.Errorf("discord: start a thread in channel %s: %w", dest.Channel, err)
}

// resolveThread asks Discord whether id is a thread channel.
func (a *Adapter) resolveThread(ctx context.Context, id string) threadState {
	var c *discordgo.Channel
	err := a.do(ctx, "GET", discordgo.EndpointChannel(id), 1, func(o []discordgo.RequestOption) error {
		var err error
		c, err = a.s.Channel(id, o...)
		return err
	})
	switch {
	case err == nil && c != nil && c.IsThread():
		a.cache.setChannel(id, chanInfo{guild: c.GuildID, parent: c.ParentID, thread: true})
		return threadExists
	case discordCode(err) == codeUnknownChannel:
		a.cache.setThread(id, threadMessage)
		return threadMessage
	}
	return threadUnknown
}

// target returns the channel that holds the conversation's answers.
func (a *Adapter) target(dest bots.Destination) string {
	if dest.DM || dest.Thread == "" {
		return dest.Channel
	}
	switch a.cache.thread(dest.Thread) {
	case threadExists:
		return dest.Thread
	case threadNone, threadMessage:
		return dest.Channel
	}
	if a.opts.ReplyMode == ReplyThread {
		return dest.Thread
	}
	return dest.Channel
}

// messageChannel returns the channel of one of our messages.
func (a *Adapter) messageChannel(dest bots.Destination, id string) string {
	if ch, ok := a.cache.postedIn(id); ok {
		return ch
	}
	return a.target(dest)
}

// Edit implements bots.Platform.
func (a *Adapter) Edit(ctx context.Context, dest bots.Destination, id, text string, final bool) error {
	channel := a.messageChannel(dest, id)
	if strings.TrimSpace(text) == "" {
		text = "…"
	}
	edit := &discordgo.MessageEdit{ID: id, Channel: channel, Content: &text, AllowedMentions: noMentions()}
	err := a.do(ctx, "PATCH", discordgo.EndpointChannelMessage(channel, id), 1, func(o []discordgo.RequestOption) error {
		_, err := a.s.ChannelMessageEditComplex(edit, o...)
		return err
	})
	if err != nil {
		return fmt.Errorf("discord: edit message %s: %w", id, err)
	}
	return nil
}

// Delete implements bots.Platform.
func (a *Adapter) Delete(ctx context.Context, dest bots.Destination, id string) error {
	channel := a.messageChannel(dest, id)
	err := a.do(ctx, "DELETE", discordgo.EndpointChannelMessage(channel, id), 1, func(o []discordgo.RequestOption) error {
		return a.s.ChannelMessageDelete(channel, id, o...)
	})
	if err != nil {
		return fmt.Errorf("discord: delete message %s: %w", id, err)
	}
	return nil
}

// Progress implements bots.Platform with the typing indicator, which
// lasts 10 s; an empty status cannot clear it and does nothing.
func (a *Adapter) Progress(ctx context.Context, dest bots.Destination, status string) error {
	if status == "" {
		return nil
	}
	channel := dest.Channel
	if !dest.DM && dest.Thread != "" && a.cache.thread(dest.Thread) == threadExists {
		channel = dest.Thread
	}
	err := a.do(ctx, "POST", discordgo.EndpointChannelTyping(channel), 0, func(o []discordgo.RequestOption) error {
		return a.s.ChannelTyping(channel, o...)
	})
	if err != nil {
		return fmt.Errorf("discord: typing in channel %s: %w", channel, err)
	}
	return nil
}

// threadName makes a thread name of the prompt's first words: at most 100
// characters, on one line.
func threadName(prompt string) string {
	words := strings.Fields(prompt)
	var b strings.Builder
	for _, w := range words {
		n := utf8.RuneCountInString(b.String())
		if b.Len() > 0 {
			if n+1+utf8.RuneCountInString(w) > 99 {
				b.WriteString("…")
				break
			}
			b.WriteByte(' ')
		} else if utf8.RuneCountInString(w) > 99 {
			b.WriteString(string([]rune(w)[:99]) + "…")
			break
		}
		b.WriteString(w)
	}
	if b.Len() == 0 {
		return "Parley"
	}
	return b.String()
}

// do makes one REST call: it waits, honouring ctx, until the call's bucket
// has room, so that discordgo's own uncancellable wait never runs, then
// calls f with the request options (context, no retry on 429, retries on
// 502) and converts its error for the engine.
func (a *Adapter) do(ctx context.Context, method, endpoint string, retries int, f func([]discordgo.RequestOption) error) error {
	c := &call{}
	if u, err := url.Parse(endpoint); err == nil {
		if p, ok := rel(u); ok {
			t, err := a.rl.acquire(ctx, method, p)
			if err != nil {
				return err
			}
			c.ticket = t
		}
	}
	opts := []discordgo.RequestOption{
		discordgo.WithContext(withCall(ctx, c)),
		discordgo.WithRetryOnRatelimit(false),
		discordgo.WithRestRetries(retries),
	}
	err := f(opts)
	if t := c.take(); t != nil {
		a.rl.cancel(t) // the request never left
	}
	return convert(c, err)
}

// opts0 are the options of a call that was not reserved beforehand.
func (a *Adapter) opts0(ctx context.Context) []discordgo.RequestOption {
	return []discordgo.RequestOption{discordgo.WithContext(ctx), discordgo.WithRetryOnRatelimit(false)}
}

// convert turns discordgo's errors into the engine's: a 429 into a
// *bots.RateLimitError, a vanished message or channel into bots.ErrGone,
// the 2,000-character refusal into bots.ErrTooLong, a refused upload (413,
// code 40005) into bots.ErrTooLarge.
func convert(c *call, err error) error {
	if err == nil {
		return nil
	}
	var lim *limited
	if c != nil {
		lim = c.limited()
	}
	// discordgo returns *RateLimitError for a 429 when told not to retry
	// (its retry_after comes from the body; it has no global flag).
	var rle *discordgo.RateLimitError
	if errors.As(err, &rle) {
		e := &bots.RateLimitError{}
		if rle.RateLimit != nil && rle.TooManyRequests != nil {
			e.RetryAfter = rle.RetryAfter
		}
		if lim != nil {
			e.Global = lim.global
			if e.RetryAfter <= 0 {
				e.RetryAfter = lim.retryAfter
			}
		}
		if e.RetryAfter <= 0 {
			e.RetryAfter = time.Second
		}
		return e
	}
	var re *discordgo.RESTError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		code, msg := 0, ""
		if re.Message != nil {
			code, msg = re.Message.Code, re.Message.Message
		}
		detail := fmt.Errorf("HTTP %d, Discord code %d: %s", status, code, msg)
		switch {
		case status == http.StatusTooManyRequests:
			e := &bots.RateLimitError{RetryAfter: time.Second}
			if lim != nil {
				e.RetryAfter, e.Global = lim.retryAfter, lim.global
			}
			return e
		case code == codeUnknownMessage || code == codeUnknownChannel || code == codeUnknownInteraction:
			return &codeError{code: code, err: fmt.Errorf("%w: %w", bots.ErrGone, detail)}
		case status == http.StatusRequestEntityTooLarge || code == codeTooLarge:
			return &codeError{code: code, err: fmt.Errorf("%w: %w", bots.ErrTooLarge, detail)}
		case code == codeInvalidFormBody && tooLong(re.ResponseBody):
			return &codeError{code: code, err: fmt.Errorf("%w: %w", bots.ErrTooLong, detail)}
		}
		return &codeError{code: code, err: detail}
	}
	if errors.Is(err, discordgo.ErrJSONUnmarshal) {
		return fmt.Errorf("unexpected answer from Discord: %w", redact(err))
	}
	return redact(err)
}

// tooLong reports whether a 50035 body complains of a length.
func tooLong(body []byte) bool {
	return bytes.Contains(body, []byte("BASE_TYPE_MAX_LENGTH")) ||
		bytes.Contains(body, []byte("2000 or fewer")) ||
		bytes.Contains(body, []byte(`"content"`))
}

// codeError keeps Discord's JSON error code for callers that branch on it.
type codeError struct {
	code int
	err  error
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

// discordCode returns the Discord JSON error code in err, or 0.
func discordCode(err error) int {
	var ce *codeError
	if errors.As(err, &ce) {
		return ce.code
	}
	return 0
}
