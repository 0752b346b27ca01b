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
	// Uploads draw on the budgets the platform declares for them (Discord:
	// the channel's, like a post; Slack: the upload methods' own). A 429
	// is waited out.
	for attempt := 0; ; attempt++ {
		var att conversation.Attachment
		err := j.reply.call(ctx, CallUpload, prioFinal, func() error {
			var err error
			att, err = up.Upload(ctx, j.dest, File{Name: f.Name, MIME: f.MIME, Size: f.Size, Body: f.Reader()})
			return err
		})
		var rl *RateLimitError
		if errors.As(err, &rl) && attempt < 5 {
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
