package discord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"path"
	"strings"
	"unicode"

	"github.com/bwmarrin/discordgo"

	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/conversation"
)

// DefaultMaxUploadBytes is Discord's upload limit for a bot in a server
// without boosts: 10 MiB per file (8 MiB before 2024). Boosted servers
// allow more; Options.MaxUploadBytes raises it.
const DefaultMaxUploadBytes = 10 << 20

// codeTooLarge is Discord's JSON code for a refused upload ("Request
// entity too large"); it comes with HTTP 413.
const codeTooLarge = 40005

var (
	_ bots.Uploader   = (*Adapter)(nil)
	_ bots.Downloader = (*Adapter)(nil)
)

// Upload implements bots.Uploader: it posts f as a message of its own,
// into the answer's thread (thread mode) or as a reply to the message
// answered (reply mode), paced like Post.
//
// discordgo sends a multipart body from a []byte it builds in a growing
// buffer, after the caller has read the file into memory too: a 9 MiB
// file would be held two or three times over. Upload instead reads f.Body
// once, straight into a body of exactly the right size, and hands that to
// discordgo's RequestRaw.
func (a *Adapter) Upload(ctx context.Context, dest bots.Destination, f bots.File) (conversation.Attachment, error) {
	limit := a.opts.MaxUploadBytes
	if f.Size > limit {
		return conversation.Attachment{}, fmt.Errorf("discord: upload %s: %d bytes, over the %d bytes this bot may upload (MaxUploadBytes): %w",
			f.Name, f.Size, limit, bots.ErrTooLarge)
	}
	if f.Size < 0 || f.Body == nil {
		return conversation.Attachment{}, fmt.Errorf("discord: upload %s: no body or a negative size", f.Name)
	}
	channel, replyTo, err := a.postTarget(ctx, dest)
	if err != nil {
		return conversation.Attachment{}, err
	}
	data := &discordgo.MessageSend{AllowedMentions: noMentions()}
	if replyTo != "" {
		no := false
		data.Reference = &discordgo.MessageReference{MessageID: replyTo, FailIfNotExists: &no}
	}
	name := fileName(f.Name)
	contentType, body, err := multipartBody(data, name, f)
	if err != nil {
		return conversation.Attachment{}, fmt.Errorf("discord: upload %s: %w", name, err)
	}
	endpoint := discordgo.EndpointChannelMessages(channel)
	var m *discordgo.Message
	err = a.do(ctx, "POST", endpoint, 0, func(o []discordgo.RequestOption) error {
		o = append(o, discordgo.WithClient(a.uploads))
		resp, err := a.s.RequestRaw("POST", endpoint, contentType, body, endpoint, 0, o...)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(resp, &m); err != nil {
			return fmt.Errorf("%w: %w", discordgo.ErrJSONUnmarshal, err)
		}
		return nil
	})
	if err != nil {
		return conversation.Attachment{}, fmt.Errorf("discord: upload %s in channel %s: %w", name, channel, err)
	}
	if m == nil || m.ID == "" || len(m.Attachments) == 0 || m.Attachments[0] == nil {
		return conversation.Attachment{}, fmt.Errorf("discord: upload %s in channel %s: Discord returned no attachment", name, channel)
	}
	a.cache.setPosted(m.ID, channel)
	got := m.Attachments[0]
	att := conversation.Attachment{Name: got.Filename, MIME: got.ContentType, Size: int64(got.Size), URL: got.URL, PlatformID: got.ID}
	if att.Name == "" {
		att.Name = name
	}
	if att.MIME == "" {
		att.MIME = f.MIME
	}
	if att.Size == 0 {
		att.Size = f.Size
	}
	return att, nil
}

// multipartBody returns the body of a message create with one file, as
// Discord takes it (payload_json, then files[0]), read from f.Body into
// one allocation of the body's exact size.
func multipartBody(data *discordgo.MessageSend, name string, f bots.File) (string, []byte, error) {
	payload, err := json.Marshal(data)
	if err != nil {
		return "", nil, err
	}
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", `form-data; name="payload_json"`)
	h.Set("Content-Type", "application/json")
	p, err := mw.CreatePart(h)
	if err != nil {
		return "", nil, err
	}
	p.Write(payload)
	ct := f.MIME
	if ct == "" || strings.ContainsAny(ct, "\r\n") {
		ct = "application/octet-stream"
	}
	h = make(textproto.MIMEHeader)
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="files[0]"; filename="%s"`, quoteEscaper.Replace(name)))
	h.Set("Content-Type", ct)
	if _, err := mw.CreatePart(h); err != nil {
		return "", nil, err
	}
	n := head.Len()
	if err := mw.Close(); err != nil { // writes the closing boundary
		return "", nil, err
	}
	tail := head.Bytes()[n:]

	body := make([]byte, n+int(f.Size)+len(tail))
	copy(body, head.Bytes()[:n])
	if _, err := io.ReadFull(f.Body, body[n:n+int(f.Size)]); err != nil {
		return "", nil, fmt.Errorf("read the file (%d bytes announced): %w", f.Size, err)
	}
	var extra [1]byte
	if k, _ := io.ReadFull(f.Body, extra[:]); k > 0 {
		return "", nil, fmt.Errorf("read the file: longer than the %d bytes announced", f.Size)
	}
	copy(body[n+int(f.Size):], tail)
	return mw.FormDataContentType(), body, nil
}

var quoteEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// fileName makes a name safe for a multipart header: no path, no control
// characters, never empty.
func fileName(name string) string {
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '_'
		}
		return r
	}, name)
	if name == "" || name == "." || name == "/" {
		return "file"
	}
	return name
}

// Download implements bots.Downloader. Discord's CDN URLs are signed and
// need no credentials: the bot token is never sent with them (the request
// does not go through the REST transport).
func (a *Adapter) Download(ctx context.Context, att conversation.Attachment, max int64) (io.ReadCloser, error) {
	u, err := url.Parse(att.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("discord: download %s: the attachment has no http(s) URL", att.Name)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("discord: download %s: %w", att.Name, err)
	}
	resp, err := a.downloads.Do(req)
	if err != nil {
		return nil, fmt.Errorf("discord: download %s: %w", att.Name, stripQuery(err))
	}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusGone:
		resp.Body.Close()
		// Deleted, or a signed link past its expiry.
		return nil, fmt.Errorf("discord: download %s: HTTP %d: %w", att.Name, resp.StatusCode, bots.ErrGone)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		resp.Body.Close()
		return nil, fmt.Errorf("discord: download %s: HTTP %d", att.Name, resp.StatusCode)
	case resp.ContentLength > max:
		resp.Body.Close()
		return nil, fmt.Errorf("discord: download %s: %d bytes, over %d: %w", att.Name, resp.ContentLength, max, bots.ErrTooLarge)
	}
	return &capped{rc: resp.Body, left: max, name: att.Name, max: max}, nil
}

// capped yields at most max bytes of rc and fails, wrapping
// bots.ErrTooLarge, when rc holds more.
type capped struct {
	rc   io.ReadCloser
	left int64
	name string
	max  int64
}

func (c *capped) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.left <= 0 {
		// max bytes read: one more means the file is too large.
		var b [1]byte
		n, err := io.ReadFull(c.rc, b[:])
		if n > 0 {
			return 0, fmt.Errorf("discord: download %s: over %d bytes: %w", c.name, c.max, bots.ErrTooLarge)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.rc.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *capped) Close() error { return c.rc.Close() }

// stripQuery removes a URL's query (a CDN signature) from an error's text.
func stripQuery(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		u := ue.URL
		if i := strings.IndexByte(u, '?'); i >= 0 {
			u = u[:i]
		}
		return &redacted{msg: fmt.Sprintf("%s %s: %v", ue.Op, u, ue.Err), err: ue.Err}
	}
	return err
}
