package bots

import (
	"context"
	"errors"
	"io"

	"github.com/parleyhq/parley/conversation"
)

// ErrTooLarge: a file exceeds a platform's or Parley's size limit.
var ErrTooLarge = errors.New("bots: file too large")

// File is a file to deliver into a reply's thread.
type File struct {
	Name string    // file name, with its extension
	MIME string    // content type
	Size int64     // exact size in bytes, known before the upload
	Body io.Reader // the Size bytes, read once
}

// Uploader is implemented by platforms that take files. The engine uploads
// the media an answer links to (a video model's .mp4, an image model's
// picture) into the reply's thread, after the answer's text.
type Uploader interface {
	// Upload puts f into dest's thread (or channel) as a native file and
	// returns what the store keeps of it (name, size, platform file id).
	// It returns an error wrapping ErrTooLarge when f exceeds the
	// platform's upload limit, and may return a *RateLimitError.
	Upload(ctx context.Context, dest Destination, f File) (conversation.Attachment, error)
}

// Downloader is implemented by platforms whose attachments need the bot's
// credentials to fetch (Slack's url_private). The engine downloads a
// user's images and text files again each time it sends them to a model:
// the store keeps references, not bytes.
type Downloader interface {
	// Download opens attachment a of an incoming message. The body yields
	// at most max bytes; a larger file gives an error wrapping
	// ErrTooLarge, before or while reading.
	Download(ctx context.Context, a conversation.Attachment, max int64) (io.ReadCloser, error)
}
