// Package media fetches the files an LLM answer links to (a video model's
// .mp4, an image model's picture) so that the engine can upload them into a
// chat: over http and https only, to public addresses only, within a size
// cap and a time limit, streamed to a temporary file, with a content type
// that fits the link. It does not upload, and it does not fetch users'
// attachments (the platforms' Downloaders do).
package media

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path"
	"strconv"
	"time"
)

// Errors Fetch returns, besides network errors; check them with errors.Is.
var (
	// ErrBlocked: the URL's scheme is not http or https, or its host (or a
	// redirect's) is not a public address.
	ErrBlocked = errors.New("media: blocked")
	// ErrType: the server sent something else than the link's extension
	// promises (an HTML page for an .mp4).
	ErrType = errors.New("media: wrong content type")
	// ErrTooLarge: the file is larger than Config.MaxBytes, as declared by
	// Content-Length or as counted while reading.
	//
	// It is not bots.ErrTooLarge: package bots imports media, so media
	// cannot import bots.
	ErrTooLarge = errors.New("media: file too large")
)

// kindError is an error of one of the kinds above, with the detail.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return target == e.kind }

func blocked(format string, a ...any) error {
	return &kindError{ErrBlocked, "blocked: " + fmt.Sprintf(format, a...)}
}

func wrongType(format string, a ...any) error {
	return &kindError{ErrType, "wrong content type: " + fmt.Sprintf(format, a...)}
}

func tooLarge(format string, a ...any) error {
	return &kindError{ErrTooLarge, "too large: " + fmt.Sprintf(format, a...)}
}

// Defaults of Config's zero values.
const (
	DefaultMaxBytes = 25 << 20
	DefaultTimeout  = 2 * time.Minute
	maxRedirects    = 5
)

// Config configures a Fetcher. Zero values are documented defaults.
type Config struct {
	MaxBytes int64         // MEDIA_MAX_BYTES; default 25 MiB
	Timeout  time.Duration // the whole fetch, body included; default 2 minutes
	// AllowPrivate (MEDIA_ALLOW_PRIVATE) allows loopback, private and
	// link-local addresses, for tests against local servers; never in
	// production, where it opens the cloud metadata service and internal
	// hosts to whoever can make a model print a link.
	AllowPrivate bool
	// Client fetches. The default connects directly (no HTTP proxy, whose
	// address the rule would judge instead of the target's) through a
	// dialer that refuses addresses that are not public at connect time.
	// A Client given here keeps its own Transport, and with it the duty to
	// refuse internal addresses: Fetch still checks schemes, redirects and
	// literal IP addresses in URLs.
	Client  *http.Client
	TempDir string // where fetched files are kept while uploading; default os.TempDir()
}

// Fetcher downloads media files. It is safe for concurrent use.
type Fetcher struct {
	max     int64
	timeout time.Duration
	client  *http.Client
	tempDir string
	// check judges an address about to be connected (and a literal IP
	// address in a URL); tests replace it to allow one server only.
	check func(netip.AddrPort) error
}

// New returns a Fetcher for cfg.
func New(cfg Config) *Fetcher {
	f := &Fetcher{
		max:     cfg.MaxBytes,
		timeout: cfg.Timeout,
		tempDir: cfg.TempDir,
		check:   func(ap netip.AddrPort) error { return checkAddr(ap.Addr()) },
	}
	if f.max <= 0 {
		f.max = DefaultMaxBytes
	}
	if f.timeout <= 0 {
		f.timeout = DefaultTimeout
	}
	if cfg.AllowPrivate {
		f.check = func(netip.AddrPort) error { return nil }
	}
	var c http.Client
	if cfg.Client != nil {
		c = *cfg.Client
	} else {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil
		d := &net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
			Control:   dialControl(func(ap netip.AddrPort) error { return f.check(ap) }),
		}
		t.DialContext = d.DialContext
		c.Transport = t
	}
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) > maxRedirects {
			return fmt.Errorf("more than %d redirects, the last to %s", maxRedirects, redact(req.URL))
		}
		if err := f.checkURL(req.URL); err != nil {
			return fmt.Errorf("redirect to %s: %w", redact(req.URL), err)
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
	f.client = &c
	return f
}

// checkURL refuses a URL whose scheme is not http or https, or whose host
// is an IP address that is not allowed. Host names are judged when
// connecting, on the addresses they resolve to.
func (f *Fetcher) checkURL(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return blocked("scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" {
		return blocked("no host")
	}
	if a, err := netip.ParseAddr(u.Hostname()); err == nil {
		port := uint64(80)
		if u.Scheme == "https" {
			port = 443
		}
		if p, err := strconv.ParseUint(u.Port(), 10, 16); err == nil {
			port = p
		}
		return f.check(netip.AddrPortFrom(a, uint16(port)))
	}
	return nil
}

// File is a fetched file, kept in a temporary file until Close. Except on
// Windows the file has no name left in TempDir by the time Fetch returns:
// its bytes go when it is closed, or when the process ends.
type File struct {
	Name string // the link's last path segment, sanitized, with its extension
	MIME string // the checked content type
	Size int64  // bytes
	URL  string // the link, as given to Fetch

	f    *os.File
	path string // to remove on Close; "" when already unlinked
}

// Reader reads the file from the start; each call returns a new reader.
// It fits bots.File.Body.
func (f *File) Reader() io.Reader { return io.NewSectionReader(f.f, 0, f.Size) }

// Close closes and removes the temporary file.
func (f *File) Close() error {
	err := f.f.Close()
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	if f.path != "" {
		if rerr := os.Remove(f.path); rerr != nil && err == nil {
			err = rerr
		}
	}
	if err != nil {
		return fmt.Errorf("media: close %s: %w", f.Name, err)
	}
	return nil
}

// Fetch downloads rawURL into a temporary file; the caller closes the File.
// Errors: ErrBlocked (scheme not http or https, or an address that is not
// allowed, for the URL or a redirect), ErrTooLarge (Content-Length or the
// bytes read exceed MaxBytes), ErrType (the content type does not fit the
// extension), context.DeadlineExceeded when the fetch outlasts Timeout, or
// the network error. Errors name the URL without its query string, which
// may hold a signed token.
func (f *Fetcher) Fetch(ctx context.Context, rawURL string) (*File, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message quotes the whole URL
		}
		return nil, fmt.Errorf("media: the link is not a valid URL: %w", err)
	}
	where := redact(u)
	if err := f.checkURL(u); err != nil {
		return nil, fmt.Errorf("media: fetch %s: %w", where, err)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, f.timeout, errTimeout)
	defer cancel()
	file, err := f.fetch(ctx, u, rawURL)
	if err == nil {
		return file, nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its message quotes the whole URL
	}
	if context.Cause(ctx) == errTimeout {
		err = fmt.Errorf("not complete within %v: %w", f.timeout, context.DeadlineExceeded)
	}
	return nil, fmt.Errorf("media: fetch %s: %w", where, err)
}

var errTimeout = errors.New("media: fetch timed out")

func (f *Fetcher) fetch(ctx context.Context, u *url.URL, rawURL string) (*File, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "video/*, image/*;q=0.9, */*;q=0.1")
	req.Header.Set("User-Agent", "Parley")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("the server answered %s", resp.Status)
	}
	if resp.ContentLength > f.max {
		return nil, tooLarge("%d bytes, over the limit of %d (MEDIA_MAX_BYTES)", resp.ContentLength, f.max)
	}
	// The final URL's path names the file when a redirect led elsewhere.
	final := resp.Request.URL
	ext := path.Ext(u.Path)
	body := bufio.NewReaderSize(io.LimitReader(resp.Body, f.max+1), sniffLen)
	head, err := body.Peek(sniffLen)
	if err != nil && err != io.EOF {
		return nil, err
	}
	if len(head) == 0 {
		return nil, errors.New("the server sent an empty file")
	}
	mimeType, err := checkType(ext, resp.Header.Get("Content-Type"), head)
	if err != nil {
		return nil, err
	}
	name := fileName(u.EscapedPath(), mimeType)
	if family(ext) == "" && family(path.Ext(final.Path)) != "" {
		name = fileName(final.EscapedPath(), mimeType)
	}

	tmp, err := os.CreateTemp(f.tempDir, "parley-media-*"+path.Ext(name))
	if err != nil {
		return nil, fmt.Errorf("keep the file: %w (set TMPDIR to a writable directory)", err)
	}
	file := &File{Name: name, MIME: mimeType, URL: rawURL, f: tmp, path: tmp.Name()}
	// Unlinked at once where the system allows it (not Windows), the
	// file's bytes go when it is closed, even if the process dies first.
	if os.Remove(tmp.Name()) == nil {
		file.path = ""
	}
	n, err := io.Copy(tmp, body)
	if err == nil && n > f.max {
		err = tooLarge("more than the limit of %d bytes (MEDIA_MAX_BYTES)", f.max)
	}
	if err != nil {
		file.Close()
		return nil, err
	}
	file.Size = n
	return file, nil
}

// redact prints a URL as scheme://host/path: the query string and the
// fragment may hold signed tokens, the user info a password.
func redact(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return r.String()
}
