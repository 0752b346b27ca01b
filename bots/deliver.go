package bots

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/parleyhq/parley/bots/media"
	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/llm"
)

// maxDeliveries bounds the files one answer may deliver.
const maxDeliveries = 4

// deliver fetches the media an answer links to (a video model's .mp4, an
// image model's picture) and uploads each into the reply's thread as a
// native file. The answer's text keeps the links, so where an upload fails
// the link still works; a short note says why the file is not attached.
// It returns what was delivered, for the store.
func (e *Engine) deliver(ctx context.Context, j *job, answer string) []conversation.Attachment {
	up, ok := j.p.(Uploader)
	if !ok || e.cfg.Media == nil {
		return nil
	}
	urls := llm.MediaURLs(answer)
	if len(urls) > maxDeliveries {
		urls = urls[:maxDeliveries]
	}
	var delivered []conversation.Attachment
	for _, u := range urls {
		att, err := e.deliverOne(ctx, j, up, u)
		if err == nil {
			delivered = append(delivered, att)
			continue
		}
		e.log.Warn("media not attached", "platform", j.p.Name(), "conversation", j.conv.ID, "err", err)
		if ctx.Err() != nil {
			break
		}
		e.say(ctx, j.p, j.dest, "📎 _"+notAttached(u, err)+" The link above still works._")
	}
	return delivered
}

func (e *Engine) deliverOne(ctx context.Context, j *job, up Uploader, url string) (conversation.Attachment, error) {
	f, err := e.cfg.Media.Fetch(ctx, url)
	if err != nil {
		return conversation.Attachment{}, err
	}
	defer f.Close()
	// Where a file is sent as a message (Discord), the upload draws on the
	// channel's budget like a post; elsewhere (Slack's upload methods have
	// a budget of their own) only on the bot's. A 429 is waited out.
	buckets := j.reply.globalOnly
	if j.reply.lim.SharedChannel {
		buckets = j.reply.postBuckets
	}
	for attempt := 0; ; attempt++ {
		if err := e.sched.acquire(ctx, prioFinal, buckets...); err != nil {
			return conversation.Attachment{}, err
		}
		att, err := up.Upload(ctx, j.dest, File{Name: f.Name, MIME: f.MIME, Size: f.Size, Body: f.Reader()})
		e.obs.Call(j.p.Name(), "upload", isRateLimit(err))
		var rl *RateLimitError
		if errors.As(err, &rl) && attempt < 5 {
			e.sched.penalize(rl.RetryAfter, buckets...)
			continue
		}
		if err != nil {
			return att, err
		}
		if att.Name == "" {
			att.Name, att.MIME, att.Size = f.Name, f.MIME, f.Size
		}
		return att, nil
	}
}

func isRateLimit(err error) bool {
	var rl *RateLimitError
	return errors.As(err, &rl)
}

// notAttached says, in a few words, why a linked file is not attached.
func notAttached(url string, err error) string {
	name := url
	if i := strings.LastIndexByte(strings.SplitN(url, "?", 2)[0], '/'); i >= 0 {
		name = strings.SplitN(url, "?", 2)[0][i+1:]
	}
	switch {
	case errors.Is(err, ErrTooLarge), errors.Is(err, media.ErrTooLarge):
		return fmt.Sprintf("%s is not attached: it is larger than this chat allows.", name)
	case errors.Is(err, media.ErrBlocked):
		return fmt.Sprintf("%s is not attached: its address is not a public one.", name)
	case errors.Is(err, media.ErrType):
		return fmt.Sprintf("%s is not attached: the server did not send the kind of file its name says.", name)
	default:
		return fmt.Sprintf("%s could not be attached.", name)
	}
}
