package slack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/conversation"
)

// maxUpload is Slack's limit on one file: 1 GB.
const maxUpload = 1 << 30

// fileHosts are the hosts of Slack's url_private links; the bot token goes
// to them (over https) and to the Web API's host, nowhere else.
var fileHosts = map[string]bool{"files.slack.com": true, "files.slack-gov.com": true}

var (
	_ bots.Uploader   = (*Adapter)(nil)
	_ bots.Downloader = (*Adapter)(nil)
)

// attachments keeps references to a message's files; the engine downloads
// them (Download) when it sends them to a model.
func attachments(fs []slackapi.File) []conversation.Attachment {
	var out []conversation.Attachment
	for _, f := range fs {
		if f.ID == "" {
			continue
		}
		out = append(out, conversation.Attachment{
			Name:       firstNonEmpty(f.Name, f.Title, f.ID),
			MIME:       f.Mimetype,
			Size:       int64(f.Size),
			URL:        firstNonEmpty(f.URLPrivateDownload, f.URLPrivate),
			PlatformID: f.ID,
		})
	}
	return out
}

// Download opens a file a user shared: a GET of its url_private with the
// bot token (files:read). It refuses a URL on any host but Slack's file
// host and the Web API's, so that the token never leaves Slack. The body
// yields at most max bytes; a larger file gives an error wrapping
// bots.ErrTooLarge. Without files:read Slack answers its sign-in page,
// which Download reports as such.
func (a *Adapter) Download(ctx context.Context, att conversation.Attachment, max int64) (io.ReadCloser, error) {
	name := firstNonEmpty(att.Name, att.PlatformID)
	u, err := url.Parse(att.URL)
	if err != nil || att.URL == "" {
		return nil, fmt.Errorf("slack: download %s: no usable URL", name)
	}
	if !a.tokenHost(u) {
		return nil, fmt.Errorf("slack: download %s: %s is not a Slack file host: the bot token is sent to files.slack.com and the Web API only", name, u.Host)
	}
	if att.Size > max {
		return nil, fmt.Errorf("slack: download %s: %d bytes, more than %d: %w", name, att.Size, max, bots.ErrTooLarge)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, att.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("slack: download %s: %w", name, err)
	}
	req.Header.Set("Authorization", "Bearer "+a.opts.BotToken)
	resp, err := a.fileClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("slack: download %s: %w", name, redactErr{err})
	}
	fail := func(err error) (io.ReadCloser, error) {
		resp.Body.Close()
		return nil, fmt.Errorf("slack: download %s: %w", name, err)
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return fail(&bots.RateLimitError{RetryAfter: retryAfter(resp.Header)})
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return fail(fmt.Errorf("%s: %w", resp.Status, bots.ErrGone))
	case resp.StatusCode != http.StatusOK:
		return fail(fmt.Errorf("Slack answered %s", resp.Status))
	case loginPage(req, resp, att.MIME):
		return fail(errors.New("Slack answered a login page: add the files:read scope and reinstall the app"))
	case resp.ContentLength > max:
		return fail(fmt.Errorf("%d bytes, more than %d: %w", resp.ContentLength, max, bots.ErrTooLarge))
	}
	return &cappedBody{rc: resp.Body, max: max, name: name}, nil
}

// tokenHost reports whether the bot token may be sent to u: Slack's file
// host over https, or the Web API's scheme and host (a proxy, or a fake
// Slack in tests).
func (a *Adapter) tokenHost(u *url.URL) bool {
	if u.Scheme == "https" && fileHosts[strings.ToLower(u.Hostname())] {
		return true
	}
	api, err := url.Parse(a.opts.APIURL)
	return err == nil && api.Host != "" && u.Scheme == api.Scheme && strings.EqualFold(u.Host, api.Host)
}

// fileClient is the HTTP client of downloads: the adapter's, whose
// redirects keep the token only on token hosts (net/http already drops it
// on another domain; this holds for files.slack.com's subdomains too).
func (a *Adapter) fileClient() *http.Client {
	c := *a.client
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if !a.tokenHost(req.URL) {
			req.Header.Del("Authorization")
		}
		return nil
	}
	return &c
}

// loginPage reports whether resp is Slack's sign-in page instead of the
// file: without files:read, files.slack.com redirects there (redir set to
// the file's path) and the page is HTML.
func loginPage(req *http.Request, resp *http.Response, fileMIME string) bool {
	if final := resp.Request; final != nil {
		if redir := final.URL.Query().Get("redir"); redir != "" && redir == req.URL.Path {
			return true
		}
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	want, _, _ := mime.ParseMediaType(fileMIME)
	return mt == "text/html" && want != "text/html"
}

// retryAfter reads a 429's Retry-After in seconds; at least a second.
func retryAfter(h http.Header) time.Duration {
	var s int
	if _, err := fmt.Sscan(h.Get("Retry-After"), &s); err != nil || s < 1 {
		s = 1
	}
	return time.Duration(s) * time.Second
}

// cappedBody yields at most max bytes of a download; beyond, an error
// wrapping bots.ErrTooLarge.
type cappedBody struct {
	rc   io.ReadCloser
	n    int64
	max  int64
	name string
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.n > b.max {
		return 0, b.tooLarge()
	}
	// One byte more than allowed tells a file of exactly max bytes from a
	// larger one.
	if room := b.max + 1 - b.n; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if b.n > b.max {
		return n - int(b.n-b.max), b.tooLarge()
	}
	return n, err
}

func (b *cappedBody) tooLarge() error {
	return fmt.Errorf("slack: download %s: more than %d bytes: %w", b.name, b.max, bots.ErrTooLarge)
}

func (b *cappedBody) Close() error { return b.rc.Close() }

// Upload puts f into dest's thread (or channel) with Slack's external
// upload: files.getUploadURLExternal, the bytes to the URL it returns,
// files.completeUploadExternal with the channel and thread_ts. slack-go
// streams f.Body through a pipe into the request: the file is never held
// in memory. A file over Slack's 1 GB (or the workspace's limit) gives an
// error wrapping bots.ErrTooLarge; a 429 a *bots.RateLimitError, after
// which f.Body is spent: a retry needs the file again.
//
// Slack's answer carries no permalink: the attachment returned holds the
// name, type, size and file id.
func (a *Adapter) Upload(ctx context.Context, dest bots.Destination, f bots.File) (conversation.Attachment, error) {
	name := firstNonEmpty(f.Name, "file")
	switch {
	case f.Size <= 0:
		return conversation.Attachment{}, fmt.Errorf("slack: upload %s: empty file: Slack takes files of at least 1 byte", name)
	case f.Size > maxUpload:
		return conversation.Attachment{}, fmt.Errorf("slack: upload %s: %d bytes, more than Slack's 1 GB: %w", name, f.Size, bots.ErrTooLarge)
	case f.Body == nil:
		return conversation.Attachment{}, fmt.Errorf("slack: upload %s: no body", name)
	}
	body := &uploadBody{r: f.Body, left: f.Size, turn: make(chan struct{}, 1)}
	// The whole upload may take longer than one Web API call: it is bound
	// by a deadline that grows with the size instead of the client's
	// timeout.
	ctx, cancel := context.WithTimeout(ctx, uploadTimeout(f.Size))
	defer cancel()
	sum, err := a.upAPI.UploadFileContext(ctx, slackapi.UploadFileParameters{
		Reader:          body,
		FileSize:        int(f.Size),
		Filename:        name,
		Title:           name,
		Channel:         dest.Channel,
		ThreadTimestamp: dest.Thread,
	})
	// slack-go copies the body in a goroutine of its own, which may still
	// be in a Read when an upload fails: wait for it, so that the caller
	// owns f.Body again.
	body.release(ctx)
	if err != nil {
		return conversation.Attachment{}, uploadErr(name, err)
	}
	return conversation.Attachment{Name: name, MIME: f.MIME, Size: f.Size, PlatformID: sum.ID}, nil
}

// uploadTimeout bounds an upload of size bytes: a minute, plus a second
// for each 256 KiB (a floor of 256 KiB/s).
func uploadTimeout(size int64) time.Duration {
	return time.Minute + time.Duration(size/(256<<10))*time.Second
}

// uploadErr converts an upload's error for the engine.
func uploadErr(name string, err error) error {
	var sc slackapi.StatusCodeError
	switch code := apiCode(err); {
	case code == "file_upload_size_restricted" || code == "file_too_large",
		errors.As(err, &sc) && sc.Code == http.StatusRequestEntityTooLarge:
		return fmt.Errorf("slack: upload %s: %w: %w", name, bots.ErrTooLarge, redactErr{err})
	case code == "missing_scope":
		return fmt.Errorf("slack: upload %s: missing_scope: add the files:write and files:read scopes and reinstall the app", name)
	}
	return wrap("upload "+name, err)
}

// uploadBody is f.Body as slack-go reads it: exactly Size bytes (a short
// body fails the upload), and a Read at a time, so that release can wait
// for the last one.
type uploadBody struct {
	r    io.Reader
	left int64
	turn chan struct{} // held during a Read
	done bool
}

// errUploadOver: the upload has returned; slack-go's copy may not read on.
var errUploadOver = errors.New("slack: upload over")

func (b *uploadBody) Read(p []byte) (int, error) {
	b.turn <- struct{}{}
	defer func() { <-b.turn }()
	switch {
	case b.done:
		return 0, errUploadOver
	case b.left <= 0:
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if err == io.EOF {
		if b.left > 0 {
			return n, fmt.Errorf("slack: upload body ended %d bytes short of its size: %w", b.left, io.ErrUnexpectedEOF)
		}
		err = nil
	}
	return n, err
}

// release waits for a Read in progress (until ctx ends) and stops later
// ones.
func (b *uploadBody) release(ctx context.Context) {
	select {
	case b.turn <- struct{}{}:
		b.done = true
		<-b.turn
	case <-ctx.Done():
	}
}
