// Package botstest holds test doubles for the bots engine: a fake Platform
// that keeps messages in memory and enforces a platform's rate and size
// limits the way the platform does, answering 429s when they are exceeded.
package botstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/conversation"
)

var (
	_ bots.Platform   = (*Platform)(nil)
	_ bots.Streamer   = (*Platform)(nil)
	_ bots.Uploader   = (*Platform)(nil)
	_ bots.Preparer   = (*Platform)(nil)
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

// Scope is what a rule's budget belongs to.
type Scope int

const (
	PerChannel   Scope = iota // one budget per channel (threads share it)
	PerThread                 // one per thread, as Discord's threads are channels
	PerWorkspace              // one per workspace
	PerBot                    // one for the whole bot
)

// Rule is one budget a kind of call draws on.
type Rule struct {
	Name  string // "chat.update", "channel", "global"
	Scope Scope
	Limit Limit
}

// Enforced are the limits the fake platform enforces, and declares.
type Enforced struct {
	MaxChars int
	// Rules lists, per kind of call, the budgets it draws on.
	Rules map[bots.Call][]Rule
	// Native makes the fake a native streamer (declared as this mode);
	// NativeMaxChars bounds a streamed message.
	Native         bots.Native
	NativeMaxChars int
	// ThreadCost: the first post into a new thread also creates the
	// thread (Discord), one more call of each of the post's budgets.
	ThreadCost bool
	// ThreadRules are the budgets creating a thread draws on besides the
	// post's (Discord: 50 new threads per 5 minutes per server).
	ThreadRules []Rule
	// ProgressEvery is declared to the engine.
	ProgressEvery time.Duration
}

var (
	discordChannel = Rule{Name: "channel", Scope: PerThread, Limit: Limit{N: 5, Per: 5 * time.Second, Window: true}}
	discordGlobal  = Rule{Name: "global", Scope: PerBot, Limit: Limit{N: 50, Per: time.Second, Window: true}}
)

// DiscordLike are Discord's limits: 2,000 characters; creates and edits 5
// per 5 s per channel (threads are channels), typing and deletes their own
// buckets; 50 requests a second for the whole bot; a first post into a new
// thread creates it.
var DiscordLike = Enforced{
	MaxChars: 2000,
	Rules: map[bots.Call][]Rule{
		bots.CallPost:     {discordChannel, discordGlobal},
		bots.CallEdit:     {discordChannel, discordGlobal},
		bots.CallUpload:   {discordChannel, discordGlobal},
		bots.CallProgress: {{Name: "typing", Scope: PerThread, Limit: Limit{N: 5, Per: 5 * time.Second, Window: true}}, discordGlobal},
		bots.CallDelete:   {{Name: "delete", Scope: PerThread, Limit: Limit{N: 5, Per: time.Second, Window: true}}, discordGlobal},
	},
	ThreadCost:    true,
	ThreadRules:   []Rule{{Name: "threads", Scope: PerWorkspace, Limit: Limit{N: 50, Per: 5 * time.Minute, Window: true}}},
	ProgressEvery: 8 * time.Second,
}

func slackTier(name string, perMinute, burst int) Rule {
	return Rule{Name: name, Scope: PerWorkspace, Limit: Limit{N: perMinute, Per: time.Minute, Burst: burst}}
}

// SlackLike are Slack's limits on the post-and-update path: about 4,000
// characters; chat.postMessage 1 a second per channel (burst 3) and 600 a
// minute per workspace (burst 100); chat.update and chat.delete Tier 3;
// assistant.threads.setStatus 600 a minute.
var SlackLike = Enforced{
	MaxChars: 4000,
	Rules: map[bots.Call][]Rule{
		bots.CallPost: {
			{Name: "chat.postMessage", Scope: PerChannel, Limit: Limit{N: 1, Per: time.Second, Burst: 3}},
			slackTier("chat.postMessage.workspace", 600, 100),
		},
		bots.CallEdit:     {slackTier("chat.update", 50, 10)},
		bots.CallDelete:   {slackTier("chat.delete", 50, 10)},
		bots.CallProgress: {slackTier("assistant.threads.setStatus", 600, 100)},
		bots.CallUpload:   {slackTier("files.completeUploadExternal", 100, 20)},
	},
	ProgressEvery: 100 * time.Second,
}

// SlackNativeLike are SlackLike with native streaming in auto mode:
// chat.startStream and chat.stopStream Tier 2, chat.appendStream Tier 4,
// 12,000 characters a streamed message.
var SlackNativeLike = func() Enforced {
	e := SlackLike
	e.Rules = maps.Clone(SlackLike.Rules)
	e.Rules[bots.CallStart] = []Rule{slackTier("chat.startStream", 20, 5)}
	e.Rules[bots.CallAppend] = []Rule{slackTier("chat.appendStream", 100, 20)}
	e.Rules[bots.CallStop] = []Rule{slackTier("chat.stopStream", 20, 5)}
	e.Native, e.NativeMaxChars = bots.NativeAuto, 11000
	return e
}()

// Unlimited enforces only a message length: for tests of behaviour
// that limits would only slow down (their names say so).
var Unlimited = Enforced{MaxChars: 4000}

// rate is the bots.Rate an adapter declares for l.
func (l Limit) rate() bots.Rate {
	if l.N == 0 {
		return bots.Rate{}
	}
	if l.Window {
		return bots.Rate{Every: l.Per / time.Duration(l.N), Burst: l.N}
	}
	return bots.Rate{Every: l.Per / time.Duration(l.N), Burst: max(l.Burst, 1), TokenBucket: true}
}

// scopeKey is the key of scope s's budget for dest.
func scopeKey(s Scope, d bots.Destination) string {
	switch s {
	case PerThread:
		if d.Thread != "" {
			return d.Workspace + "/" + d.Channel + "/" + d.Thread
		}
		return d.Workspace + "/" + d.Channel
	case PerChannel:
		return d.Workspace + "/" + d.Channel
	case PerWorkspace:
		return d.Workspace
	}
	return ""
}

// Declared returns the bots.Limits an adapter would declare for e at dest.
func (e Enforced) Declared(dest bots.Destination) bots.Limits {
	l := bots.Limits{
		MaxChars: e.MaxChars, Native: e.Native, NativeMaxChars: e.NativeMaxChars,
		ProgressEvery: e.ProgressEvery, Budgets: make(map[bots.Call][]bots.Budget),
	}
	for c, rules := range e.Rules {
		for _, r := range rules {
			b := bots.Budget{Key: r.Name + "/" + scopeKey(r.Scope, dest), Name: r.Name, Rate: r.Limit.rate(),
				Shared: r.Scope == PerWorkspace || r.Scope == PerBot}
			l.Budgets[c] = append(l.Budgets[c], b)
			if c == bots.CallPost && e.ThreadCost && dest.Thread != "" {
				// The thread is created by Prepare, from the post's budgets.
				l.Budgets[bots.CallPrepare] = append(l.Budgets[bots.CallPrepare], b)
			}
		}
	}
	if e.ThreadCost && dest.Thread != "" {
		for _, r := range e.ThreadRules {
			l.Budgets[bots.CallPrepare] = append(l.Budgets[bots.CallPrepare], bots.Budget{
				Key: r.Name + "/" + scopeKey(r.Scope, dest), Name: r.Name, Rate: r.Limit.rate(),
				Shared: r.Scope == PerWorkspace || r.Scope == PerBot})
		}
	}
	return l
}

type limiter struct {
	l      Limit
	start  time.Time // fixed window: its start
	count  int
	tokens float64 // token bucket
	last   time.Time
}

// allow reports whether a call of cost n may go now, and when it may go
// otherwise.
func (lm *limiter) allow(now time.Time, n int) (bool, time.Duration) {
	l := lm.l
	if l.N == 0 {
		return true, 0
	}
	if l.Window {
		if lm.count == 0 || !now.Before(lm.start.Add(l.Per)) {
			lm.start, lm.count = now, 0
		}
		if lm.count+n > l.N {
			return false, lm.start.Add(l.Per).Sub(now)
		}
		lm.count += n
		return true, 0
	}
	burst := float64(max(l.Burst, 1))
	if lm.last.IsZero() {
		lm.tokens, lm.last = burst, now
	}
	lm.tokens += float64(now.Sub(lm.last)) / float64(l.Per) * float64(l.N)
	lm.tokens = min(lm.tokens, burst)
	lm.last = now
	if lm.tokens < float64(n) {
		return false, time.Duration((float64(n) - lm.tokens) / float64(l.N) * float64(l.Per))
	}
	lm.tokens -= float64(n)
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
	Streamed  bool     // started as a native stream
	Streaming bool     // a native stream not stopped yet
	Updates   []Update // every text it showed, the first being its creation
	CreatedAt time.Time
}

// Platform is a fake bots.Platform and bots.Streamer.
type Platform struct {
	name     string
	enforced Enforced
	declared *bots.Limits // SetDeclared's override
	// ProgressErr, when set, is returned by Progress.
	ProgressErr error
	// MaxUpload is the largest file Upload takes; 0 is unlimited.
	MaxUpload int64

	mu         sync.Mutex
	changed    chan struct{}
	seq        int
	messages   map[string]*Message
	order      []string
	limiters   map[string]*limiter
	threads    map[string]bool // threads created (by Prepare or a first post)
	unthreaded map[string]bool // destinations answered without a thread
	faults     map[bots.Call][]error
	ratelimit  int // 429s answered
	calls      map[bots.Call]int
	limited    map[bots.Call]int
	progress   int
	deleted    map[string]bool
	uploads    []Upload
	files      map[string][]byte // by URL, for Download
}

// Upload is a file uploaded through the fake.
type Upload struct {
	Dest bots.Destination
	Name string
	MIME string
	Data []byte
}

// New returns a fake platform called name that enforces e and declares
// e.Declared to the engine.
func New(name string, e Enforced) *Platform {
	return &Platform{
		name: name, enforced: e,
		changed:    make(chan struct{}),
		messages:   make(map[string]*Message),
		limiters:   make(map[string]*limiter),
		threads:    make(map[string]bool),
		unthreaded: make(map[string]bool),
		faults:     make(map[bots.Call][]error),
		calls:      make(map[bots.Call]int),
		limited:    make(map[bots.Call]int),
		deleted:    make(map[string]bool),
		files:      make(map[string][]byte),
	}
}

// Inject queues errors for the next calls of kind c, one per call, before
// any limit is checked: a *bots.RateLimitError (global or per route),
// bots.ErrGone, bots.ErrTooLong, bots.ErrStreamClosed, a server error, a
// timeout.
func (p *Platform) Inject(c bots.Call, errs ...error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults[c] = append(p.faults[c], errs...)
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
	if err := p.checkLocked(time.Now(), bots.CallUpload, dest); err != nil {
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

// SetDeclared overrides the limits declared to the engine, for every
// destination.
func (p *Platform) SetDeclared(l bots.Limits) { p.declared = &l }

// Name implements bots.Platform.
func (p *Platform) Name() string { return p.name }

// Limits implements bots.Platform.
func (p *Platform) Limits(dest bots.Destination) bots.Limits {
	if p.declared != nil {
		return *p.declared
	}
	l := p.enforced.Declared(dest)
	p.mu.Lock()
	defer p.mu.Unlock()
	if k := scopeKey(PerThread, dest); p.threads[k] || p.unthreaded[k] {
		delete(l.Budgets, bots.CallPrepare) // nothing left to prepare
	}
	return l
}

// Prepare implements bots.Preparer: with ThreadCost, it creates dest's
// thread, a call on the post's budgets.
func (p *Platform) Prepare(ctx context.Context, dest bots.Destination) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := scopeKey(PerThread, dest)
	if !p.enforced.ThreadCost || dest.Thread == "" || p.threads[k] || p.unthreaded[k] {
		return nil
	}
	return p.checkLocked(time.Now(), bots.CallPrepare, dest)
}

// Unprepared implements bots.Preparer: dest's answer goes without a
// thread (its first post creates none).
func (p *Platform) Unprepared(dest bots.Destination) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unthreaded[scopeKey(PerThread, dest)] = true
}

func (p *Platform) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// checkLocked counts a call of kind c to dest and applies its injected
// faults and its rules; the lock is held.
func (p *Platform) checkLocked(now time.Time, c bots.Call, dest bots.Destination) error {
	p.calls[c]++
	if f := p.faults[c]; len(f) > 0 {
		p.faults[c] = f[1:]
		var rl *bots.RateLimitError
		if errors.As(f[0], &rl) {
			p.ratelimit++
			p.limited[c]++
		}
		p.notifyLocked()
		return f[0]
	}
	cost := 1
	k := scopeKey(PerThread, dest)
	thread := c == bots.CallPrepare
	if c == bots.CallPost && p.enforced.ThreadCost && dest.Thread != "" && !p.threads[k] && !p.unthreaded[k] {
		cost, thread = 2, true // not prepared: the thread is created first
	}
	rules := p.enforced.Rules[c]
	if c == bots.CallPrepare {
		rules = p.enforced.Rules[bots.CallPost]
	}
	if thread {
		rules = append(slices.Clone(rules), p.enforced.ThreadRules...)
	}
	// A refused call takes nothing: check every rule before taking.
	for _, r := range rules {
		lm := p.limiterLocked(r, dest)
		if lm == nil {
			continue
		}
		probe := *lm
		if ok, wait := probe.allow(now, cost); !ok {
			p.ratelimit++
			p.limited[c]++
			p.notifyLocked()
			return &bots.RateLimitError{RetryAfter: wait, Global: r.Scope == PerBot}
		}
	}
	for _, r := range rules {
		if lm := p.limiterLocked(r, dest); lm != nil {
			lm.allow(now, cost)
		}
	}
	if thread {
		p.threads[k] = true
	}
	return nil
}

func (p *Platform) limiterLocked(r Rule, dest bots.Destination) *limiter {
	if r.Limit.N == 0 {
		return nil
	}
	key := r.Name + "/" + scopeKey(r.Scope, dest)
	lm, ok := p.limiters[key]
	if !ok {
		lm = &limiter{l: r.Limit}
		p.limiters[key] = lm
	}
	return lm
}

func (p *Platform) tooLong(text string, max int) bool {
	return max > 0 && utf8.RuneCountInString(text) > max
}

func (p *Platform) addLocked(dest bots.Destination, text string, now time.Time, streamed bool) string {
	p.seq++
	id := strconv.Itoa(p.seq)
	p.messages[id] = &Message{ID: id, Dest: dest, Text: text, CreatedAt: now, Updates: []Update{{Text: text, At: now}},
		Streamed: streamed, Streaming: streamed}
	p.order = append(p.order, id)
	p.notifyLocked()
	return id
}

// Post implements bots.Platform.
func (p *Platform) Post(ctx context.Context, dest bots.Destination, text string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if err := p.checkLocked(now, bots.CallPost, dest); err != nil {
		return "", err
	}
	if p.tooLong(text, p.enforced.MaxChars) {
		return "", fmt.Errorf("fake: %w", bots.ErrTooLong)
	}
	return p.addLocked(dest, text, now, false), nil
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
	if err := p.checkLocked(now, bots.CallEdit, dest); err != nil {
		return err
	}
	if m.Streaming {
		return fmt.Errorf("fake: message %s is streaming: edits are refused", id)
	}
	if p.tooLong(text, p.enforced.MaxChars) {
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

// StartStream implements bots.Streamer.
func (p *Platform) StartStream(ctx context.Context, dest bots.Destination, text string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.enforced.Native == bots.NativeNever {
		return "", fmt.Errorf("fake: %w", bots.ErrNoStream)
	}
	if err := p.checkLocked(now, bots.CallStart, dest); err != nil {
		return "", err
	}
	if p.tooLong(text, p.enforced.NativeMaxChars) {
		return "", fmt.Errorf("fake: %w", bots.ErrTooLong)
	}
	return p.addLocked(dest, text, now, true), nil
}

// AppendStream implements bots.Streamer.
func (p *Platform) AppendStream(ctx context.Context, dest bots.Destination, id, text string) error {
	return p.appendStream(dest, id, text, bots.CallAppend)
}

// StopStream implements bots.Streamer.
func (p *Platform) StopStream(ctx context.Context, dest bots.Destination, id, text string) error {
	return p.appendStream(dest, id, text, bots.CallStop)
}

func (p *Platform) appendStream(dest bots.Destination, id, text string, c bots.Call) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	m, ok := p.messages[id]
	if !ok || p.deleted[id] {
		return fmt.Errorf("fake: message %s: %w", id, bots.ErrGone)
	}
	if err := p.checkLocked(now, c, dest); err != nil {
		if errors.Is(err, bots.ErrStreamClosed) {
			m.Streaming = false // an injected close is a real one
		}
		return err
	}
	switch {
	case !m.Streaming:
		return fmt.Errorf("fake: message %s: %w", id, bots.ErrStreamClosed)
	case c == bots.CallAppend && text == "":
		return fmt.Errorf("fake: empty append to %s", id)
	case p.tooLong(m.Text+text, p.enforced.NativeMaxChars):
		return fmt.Errorf("fake: %w", bots.ErrTooLong)
	}
	if text != "" {
		m.Text += text
		m.Updates = append(m.Updates, Update{Text: m.Text, At: now})
	}
	if c == bots.CallStop {
		m.Streaming, m.Final = false, true
	}
	p.notifyLocked()
	return nil
}

// CloseStream ends a native stream on the platform's side, as Slack does
// to a stream left alone for long: appends are then refused.
func (p *Platform) CloseStream(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m := p.messages[id]; m != nil {
		m.Streaming = false
		p.notifyLocked()
	}
}

// Delete implements bots.Platform.
func (p *Platform) Delete(ctx context.Context, dest bots.Destination, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.checkLocked(time.Now(), bots.CallDelete, dest); err != nil {
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
	if err := p.checkLocked(time.Now(), bots.CallProgress, dest); err != nil {
		return err
	}
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

// Messages returns copies of the messages shown (not deleted), in
// creation order.
func (p *Platform) Messages() []Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Message, 0, len(p.order))
	for _, id := range p.order {
		if p.deleted[id] {
			continue // no longer shown
		}
		m := *p.messages[id]
		m.Updates = append([]Update(nil), m.Updates...)
		out = append(out, m)
	}
	return out
}

// Stats are the fake's counters.
type Stats struct {
	Calls, RateLimited, Progress int
	// ByCall and LimitedByCall count calls and 429s per kind of call.
	ByCall, LimitedByCall map[bots.Call]int
	Threads               int // threads created by first posts
}

// Stats returns the counters.
func (p *Platform) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Stats{RateLimited: p.ratelimit, Progress: p.progress, ByCall: maps.Clone(p.calls),
		LimitedByCall: maps.Clone(p.limited), Threads: len(p.threads)}
	for _, n := range p.calls {
		st.Calls += n
	}
	return st
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
