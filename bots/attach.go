package bots

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/llm"
)

// Limits on what a user's attachments may add to a request.
const (
	defaultMaxImageBytes = 20 << 20  // an image sent to a vision model
	maxTextFileBytes     = 100 << 10 // a text file sent as text
)

// textExts are source and data files sent to the model as text.
var textExts = map[string]bool{
	".txt": true, ".md": true, ".csv": true, ".json": true, ".yaml": true, ".yml": true, ".toml": true, ".xml": true,
	".go": true, ".py": true, ".js": true, ".ts": true, ".java": true, ".c": true, ".h": true, ".cpp": true, ".rs": true,
	".rb": true, ".php": true, ".sh": true, ".sql": true, ".html": true, ".css": true, ".kt": true, ".swift": true, ".log": true,
}

func isImage(a conversation.Attachment) bool { return strings.HasPrefix(a.MIME, "image/") }

func isText(a conversation.Attachment) bool {
	if strings.HasPrefix(a.MIME, "text/") || a.MIME == "application/json" || strings.HasSuffix(a.MIME, "+json") || strings.HasSuffix(a.MIME, "+xml") {
		return true
	}
	return textExts[strings.ToLower(path.Ext(a.Name))]
}

// visionModel reports whether model takes images (LLM_VISION_MODELS).
func (e *Engine) visionModel(model string) bool {
	m := strings.ToLower(model)
	for _, p := range e.cfg.VisionModels {
		if ok, _ := path.Match(strings.ToLower(p), m); ok {
			return true
		}
	}
	return false
}

// attachmentParts turns a user message's attachments into what the model
// sees: images as image parts (base64 data URLs, since the endpoint cannot
// reach a platform's private URLs) for vision models, text files as text,
// and a short note for what is not sent. Files are downloaded again for
// each request: the store keeps references, not bytes.
func (e *Engine) attachmentParts(ctx context.Context, p Platform, model string, atts []conversation.Attachment) (text string, images []llm.Image) {
	dl, _ := p.(Downloader)
	var notes []string
	for _, a := range atts {
		switch {
		case isImage(a) && !e.visionModel(model):
			notes = append(notes, fmt.Sprintf("[An image was attached (%s); it is not sent because the model %s does not take images.]", a.Name, model))
		case isImage(a):
			b, err := download(ctx, dl, a, e.maxImageBytes())
			if err != nil {
				e.log.Warn("attachment not sent", "file", a.Name, "err", err)
				notes = append(notes, fmt.Sprintf("[An image was attached (%s) but could not be read.]", a.Name))
				continue
			}
			mime := a.MIME
			images = append(images, llm.Image{URL: "data:" + mime + ";base64," + base64.StdEncoding.EncodeToString(b)})
		case isText(a):
			b, err := download(ctx, dl, a, maxTextFileBytes)
			if err != nil {
				e.log.Warn("attachment not sent", "file", a.Name, "err", err)
				notes = append(notes, fmt.Sprintf("[A file was attached (%s) but could not be read, or is larger than %d KiB.]", a.Name, maxTextFileBytes>>10))
				continue
			}
			notes = append(notes, fmt.Sprintf("--- %s ---\n%s\n--- end of %s ---", a.Name, strings.ToValidUTF8(string(b), "�"), a.Name))
		default:
			notes = append(notes, fmt.Sprintf("[A file was attached (%s, %s); its content is not sent.]", a.Name, a.MIME))
		}
	}
	return strings.Join(notes, "\n\n"), images
}

func (e *Engine) maxImageBytes() int64 {
	if e.cfg.MaxImageBytes > 0 {
		return e.cfg.MaxImageBytes
	}
	return defaultMaxImageBytes
}

// download reads attachment a through the platform, at most max bytes.
func download(ctx context.Context, dl Downloader, a conversation.Attachment, max int64) ([]byte, error) {
	if dl == nil {
		return nil, fmt.Errorf("the platform cannot download files")
	}
	rc, err := dl.Download(ctx, a, max)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: %w", a.Name, ErrTooLarge)
	}
	return b, nil
}

// deliveredNote tells the model which files an earlier answer delivered.
func deliveredNote(atts []conversation.Attachment) string {
	var names []string
	for _, a := range atts {
		names = append(names, fmt.Sprintf("%s (%s, %d bytes)", a.Name, a.MIME, a.Size))
	}
	return "[Parley attached to this answer: " + strings.Join(names, ", ") + "]"
}
