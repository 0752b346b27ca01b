// Package botstest holds test doubles for the bots engine: a fake Platform
// that keeps messages in memory and enforces a platform's rate and size
// limits the way the platform does, answering 429s when they are exceeded.
package botstest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/conversation"
)

var (
	_ bots.Platform   = (*Platform)(nil)
	_ bots.Uploader   = (*Platform)(nil)
	_ bots.Downloader = (*Platform)(nil)
)

// Limit is a limit the fake enforces: N calls per Per. Window selects a
// fixed window that starts with the first call after the last reset
// (Discord's buckets); otherwise a token bucket of Burst refilled N per Per
// (Slack's tiers).
type Limit struct {
	N      int
	Per    time.Duration
	Burst  int
	Window bool
}

// Enforced are the limits the fake platform enforces.
type Enforced struct {
	MaxChars      int
	ChannelPost   Limit
	ChannelEdit   Limit
	SharedChannel bool // posts count against ChannelEdit
	ThreadBuckets bool // each thread has its own channel limits
	WorkspaceEdit Limit
	Global        Limit
}

// DiscordLike are Discord's limits: 2,000 characters; creates and edits 5
// per 5 s per channel (threads are channels); 50 requests a second.
var DiscordLike = Enforced{
	MaxChars:      2000,
	ChannelEdit:   Limit{N: 5, Per: 5 * time.Second, Window: true},
	SharedChannel: true,
	ThreadBuckets: true,
	Global:        Limit{N: 50, Per: time.Second, Window: true},
}

// SlackLike are Slack's limits on the post-and-update path: about 4,000
// characters; chat.postMessage about 1 a second per channel; chat.update
// about 50 a minute per workspace with a small burst.
var SlackLike = Enforced{
	MaxChars:      4000,
	ChannelPost:   Limit{N: 1, Per: time.Second, Burst: 2},
	WorkspaceEdit: Limit{N: 50, Per: time.Minute, Burst: 3},
}

// Declared returns the bots.Limits an adapter would declare for e.
func (e Enforced) Declared() bots.Limits {
	rate := func(l Limit) bots.Rate {
		if l.N == 0 {
			return bots.Rate{}
		}
		burst := l.Burst
		if l.Window || burst == 0 {
			burst = l.N
		}
		return bots.Rate{Every: l.Per / time.Duration(l.N), Burst: min(burst, l.N)}
	}
	return bots.Limits{
		MaxChars:      e.MaxChars,
		ChannelPost:   rate(e.ChannelPost),
		ChannelEdit:   rate(e.ChannelEdit),
		SharedChannel: e.SharedChannel,
		ThreadBuckets: e.ThreadBuckets,
		WorkspaceEdit: rate(e.WorkspaceEdit),
		Global:        rate(e.Global),
	}
}

type limiter struct {
	l      Limit
	start  time.Time // fixed window: its start
	count  int
	tokens float64 // token bucket
	last   time.Time
}

// allow reports whether a call may go now, and when it may go otherwise.
func (lm *limiter) allow(now time.Time) (bool, time.Duration) {
	l := lm.l
	if l.N == 0 {
		return true, 0
	}
	if l.Window {
		if lm.count == 0 || !now.Before(lm.start.Add(l.Per)) {
			lm.start, lm.count = now, 0
		}
		if lm.count >= l.N {
			return false, lm.start.Add(l.Per).Sub(now)
		}
		lm.count++
		return true, 0
	}
	burst := float64(max(l.Burst, 1))
	if lm.last.IsZero() {
		lm.tokens, lm.last = burst, now
	}
	lm.tokens += float64(now.Sub(lm.last)) / float64(l.Per) * float64(l.N)
	lm.tokens = min(lm.tokens, burst)
	lm.last = now
	if lm.tokens < 1 {
		return false, time.Duration((1 - lm.tokens) / float64(l.N) * float64(l.Per))
	}
	lm.tokens--
	return true, 0
}

// Update is one visible state of a message.
type Update struct {
	Text string
	At   time.Time
}

// Message is a message as the fake platform shows it.
type Message struct {
	ID        string
	Dest      bots.Destination
	Text      string
	Final     bool
	Updates   []Update // every text it showed, the first being its creation
	CreatedAt time.Time
}

// Platform is a fake bots.Platform.
type Platform struct {
	name     string
	declared bots.Limits
	enforced Enforced
	// ProgressErr, when set, is returned by Progress.
	ProgressErr error
	// MaxUpload is the largest file Upload takes; 0 is unlimited.
	MaxUpload int64

	mu        sync.Mutex
	changed   chan struct{}
	seq       int
	messages  map[string]*Message
	order     []string
	limiters  map[string]*limiter
	ratelimit int // 429s answered
	calls     int
	progress  int
	deleted   map[string]bool
	uploads   []Upload
	files     map[string][]byte // by URL, for Download
}

// Upload is a file uploaded through the fake.
type Upload struct {
	Dest bots.Destination
	Name string
	MIME string
	Data []byte
}

// New returns a fake platform called name that enforces e and declares
// e.Declared() to the engine.
func New(name string, e Enforced) *Platform {
	return &Platform{
		name: name, declared: e.Declared(), enforced: e,
		changed:  make(chan struct{}),
		messages: make(map[string]*Message),
		limiters: make(map[string]*limiter),
		deleted:  make(map[string]bool),
		files:    make(map[string][]byte),
	}
}

// Upload implements bots.Uploader.
func (p *Platform) Upload(ctx context.Context, dest bots.Destination, f bots.File) (conversation.Attachment, error) {
	if p.MaxUpload > 0 && f.Size > p.MaxUpload {
		return conversation.Attachment{}, fmt.Errorf("fake: %s: %w", f.Name, bots.ErrTooLarge)
	}
	data, err := io.ReadAll(f.Body)
	if err != nil {
		return conversation.Attachment{}, err
	}
	if int64(len(data)) != f.Size {
		return conversation.Attachment{}, fmt.Errorf("fake: %s: declared %d bytes, read %d", f.Name, f.Size, len(data))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.checkLocked(time.Now(), "global"); err != nil {
		return conversation.Attachment{}, err
	}
	p.uploads = append(p.uploads, Upload{Dest: dest, Name: f.Name, MIME: f.MIME, Data: data})
	p.notifyLocked()
	return conversation.Attachment{Name: f.Name, MIME: f.MIME, Size: f.Size, PlatformID: "F" + strconv.Itoa(len(p.uploads))}, nil
}

// Uploads returns the files uploaded so far.
func (p *Platform) Uploads() []Upload {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Upload(nil), p.uploads...)
}

// AddFile makes data downloadable as an attachment with URL url.
func (p *Platform) AddFile(url string, data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.files[url] = data
}

// Download implements bots.Downloader.
func (p *Platform) Download(ctx context.Context, a conversation.Attachment, max int64) (io.ReadCloser, error) {
	p.mu.Lock()
	data, ok := p.files[a.URL]
	p.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("fake: no file at %s", a.URL)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("fake: %s: %w", a.Name, bots.ErrTooLarge)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// SetDeclared overrides the limits declared to the engine.
func (p *Platform) SetDeclared(l bots.Limits) { p.declared = l }

// Name implements bots.Platform.
func (p *Platform) Name() string { return p.name }

// Limits implements bots.Platform.
func (p *Platform) Limits() bots.Limits { return p.declared }

func (p *Platform) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// check applies the limits named by keys; the lock is held.
func (p *Platform) checkLocked(now time.Time, keys ...string) error {
	p.calls++
	for _, k := range keys {
		lm := p.limiterLocked(k)
		if lm == nil {
			continue
		}
		if ok, wait := lm.allow(now); !ok {
			p.ratelimit++
			p.notifyLocked()
			return &bots.RateLimitError{RetryAfter: wait, Global: k == "global"}
		}
	}
	return nil
}

func (p *Platform) limiterLocked(key string) *limiter {
	lm, ok := p.limiters[key]
	if ok {
		return lm
	}
	var l Limit
	switch key[:3] {
	case "glo":
		l = p.enforced.Global
	case "pos":
		l = p.enforced.ChannelPost
	case "edi":
		l = p.enforced.ChannelEdit
	case "wor":
		l = p.enforced.WorkspaceEdit
	}
	if l.N == 0 {
		return nil
	}
	lm = &limiter{l: l}
	p.limiters[key] = lm
	return lm
}

func (p *Platform) channelKey(d bots.Destination) string {
	k := d.Workspace + "/" + d.Channel
	if p.enforced.ThreadBuckets && d.Thread != "" {
		k += "/" + d.Thread
	}
	return k
}

func (p *Platform) tooLong(text string) bool {
	return p.enforced.MaxChars > 0 && utf8.RuneCountInString(text) > p.enforced.MaxChars
}

// Post implements bots.Platform.
func (p *Platform) Post(ctx context.Context, dest bots.Destination, text string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	post := "post/" + p.channelKey(dest)
	if p.enforced.SharedChannel {
		post = "edit/" + p.channelKey(dest)
	}
	if err := p.checkLocked(now, "global", post); err != nil {
		return "", err
	}
	if p.tooLong(text) {
		return "", fmt.Errorf("fake: %w", bots.ErrTooLong)
	}
	p.seq++
	id := strconv.Itoa(p.seq)
	p.messages[id] = &Message{ID: id, Dest: dest, Text: text, CreatedAt: now, Updates: []Update{{Text: text, At: now}}}
	p.order = append(p.order, id)
	p.notifyLocked()
	return id, nil
}

// Edit implements bots.Platform.
func (p *Platform) Edit(ctx context.Context, dest bots.Destination, id, text string, final bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	m, ok := p.messages[id]
	if !ok || p.deleted[id] {
		return fmt.Errorf("fake: message %s: %w", id, bots.ErrGone)
	}
	if err := p.checkLocked(now, "global", "edit/"+p.channelKey(dest), "workspace/"+dest.Workspace); err != nil {
		return err
	}
	if p.tooLong(text) {
		return fmt.Errorf("fake: %w", bots.ErrTooLong)
	}
	if m.Text != text {
		m.Updates = append(m.Updates, Update{Text: text, At: now})
	}
	m.Text = text
	m.Final = m.Final || final
	p.notifyLocked()
	return nil
}

// Delete implements bots.Platform.
func (p *Platform) Delete(ctx context.Context, dest bots.Destination, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.checkLocked(time.Now(), "global"); err != nil {
		return err
	}
	p.deleted[id] = true
	p.notifyLocked()
	return nil
}

// Progress implements bots.Platform.
func (p *Platform) Progress(ctx context.Context, dest bots.Destination, status string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.progress++
	p.notifyLocked()
	return p.ProgressErr
}

// DeleteByUser marks a message deleted, as a person deleting it would.
func (p *Platform) DeleteByUser(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deleted[id] = true
	p.notifyLocked()
}

// Messages returns copies of the messages, in creation order.
func (p *Platform) Messages() []Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Message, 0, len(p.order))
	for _, id := range p.order {
		m := *p.messages[id]
		m.Updates = append([]Update(nil), m.Updates...)
		out = append(out, m)
	}
	return out
}

// Stats are the fake's counters.
type Stats struct {
	Calls, RateLimited, Progress int
}

// Stats returns the counters.
func (p *Platform) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Calls: p.calls, RateLimited: p.ratelimit, Progress: p.progress}
}

// WaitFor waits until cond holds (checked at each change of the fake) or
// ctx ends, and reports whether it held.
func (p *Platform) WaitFor(ctx context.Context, cond func(*Platform) bool) bool {
	for {
		p.mu.Lock()
		ch := p.changed
		p.mu.Unlock()
		if cond(p) {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return cond(p)
		}
	}
}
