package bots

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// part is one platform message of a reply.
type part struct {
	id        string    // platform id, "" until posted
	text      string    // what it should show
	sent      string    // what it shows
	sealed    bool      // its text will not change any more
	finalSent bool      // nothing more to tell the platform
	offset    int       // byte offset of its body in the answer
	start     fence     // fence state at its start
	max       int       // characters it may hold, fixed when it is posted
	native    bool      // a native stream (else a post and edits)
	open      bool      // the native stream is not stopped yet
	promised  []*bucket // the stop's promised calls, while open
}

// reply shows one answer on a platform. It owns the answer's messages: it
// splits the text across them, chooses each message's delivery (a native
// stream or a post and edits) and sends each change through the
// scheduler. Only the newest text is sent once the budget lets a call go,
// so edits coalesce and never queue up stale text.
type reply struct {
	p        Platform
	streamer Streamer // nil where the platform cannot stream natively
	lim      Limits
	dest     Destination
	sched    *scheduler
	log      *slog.Logger
	obs      Observer
	posted   func(id string, first bool) // called for each new message
	onGone   func()                      // called when the platform says the reply is gone
	dropped  func(id string)             // called for a placeholder message given up
	bg       sync.WaitGroup              // deletions of placeholders given up
	// guard, when set, is asked before each platform call; its error
	// stops the call (errClaimLost: the reply is another instance's now).
	guard func(ctx context.Context) error

	mu          sync.Mutex
	text        string // the whole reply: answer, then any notice
	done        bool
	placeholder string // shown while there is no text yet
	parts       []*part
	visible     bool   // some text of the answer is visible
	noNative    bool   // the platform refused a native stream: post
	delivered   bool   // the delivery was counted
	continued   bool   // a continuation was counted
	firstDone   func() // ends the expectation of the first text (expectFirst)
	changed     chan struct{}
	gone        error // ErrGone from the platform: nothing more can be shown
	flushing    bool
	finished    chan struct{} // closed when the flusher has sent everything final
	prepared    chan struct{} // closed when prepare is done; nil: not started
	recorded    chan struct{} // closed when the answer's record is stored; nil: no wait
	madeReady   bool          // prepare made its call (Discord: a thread shows)
	doneCtx     context.Context
	markDone    context.CancelFunc // ends doneCtx once the text is final
}

func newReply(e *Engine, p Platform, dest Destination) *reply {
	lim := p.Limits(dest)
	if lim.MaxChars <= 0 {
		lim.MaxChars = 4000
	}
	if lim.NativeMaxChars <= 0 {
		lim.NativeMaxChars = lim.MaxChars
	}
	r := &reply{
		p: p, lim: lim, dest: dest, sched: e.sched, log: e.log, obs: e.obs,
		parts:    []*part{{}},
		changed:  make(chan struct{}, 1),
		finished: make(chan struct{}),
	}
	r.streamer, _ = p.(Streamer)
	if r.streamer == nil {
		r.lim.Native = NativeNever
	}
	// The reply's end is a signal, not a deadline: it lives until cancelled.
	r.doneCtx, r.markDone = context.WithCancel(context.Background())
	return r
}

// draws returns the buckets a call of kind c draws on.
func (r *reply) draws(c Call) []draw {
	r.mu.Lock()
	bs := r.lim.Budgets[c] // prepare may change them
	r.mu.Unlock()
	out := make([]draw, 0, len(bs))
	for _, b := range bs {
		if b.Rate.Every <= 0 {
			continue
		}
		out = append(out, draw{b: r.sched.bucket(b), cost: max(b.Cost, 1), global: b.Name == "global"})
	}
	return out
}

// buckets returns the buckets of a call of kind c, for promises.
func (r *reply) buckets(c Call) []*bucket {
	var out []*bucket
	for _, d := range r.draws(c) {
		out = append(out, d.b)
	}
	return out
}

// expectFirst tells the scheduler that this reply's first text is coming:
// progress indicators leave its cost alone until it is shown.
func (r *reply) expectFirst() {
	done := r.sched.expect(r.draws(CallPost))
	r.mu.Lock()
	r.firstDone = done
	r.mu.Unlock()
}

// showedLocked records that part p shows what it holds: unless that is a
// placeholder (a part without text of its own), the answer is visible.
func (r *reply) showedLocked(p *part) {
	if p.text != "" {
		r.visible = true
		r.shownFirstLocked()
	}
}

// shownFirstLocked ends the expectation of the first text.
func (r *reply) shownFirstLocked() {
	if r.firstDone != nil {
		r.firstDone()
	}
}

// signal wakes the flusher.
func (r *reply) signal() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// setPlaceholder shows s until the answer's first text arrives.
func (r *reply) setPlaceholder(s string) {
	r.mu.Lock()
	r.placeholder = s
	r.mu.Unlock()
	r.signal()
}

// set makes text the reply's whole text; done marks it final. text extends
// the previous text (an answer only grows; a notice is appended).
func (r *reply) set(text string, done bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(text) < len(r.text) {
		// Should not happen: a reply only grows. This runs for every
		// streamed chunk, so only the cheap half of the check is made.
		r.log.Warn("reply text does not extend the shown text")
	}
	r.text = text
	r.done = r.done || done
	if r.done {
		r.markDone()
	}
	r.resplitLocked(r.firstOpenLocked())
	r.signal()
}

// firstOpenLocked is the index of the first part that is not sealed.
func (r *reply) firstOpenLocked() int {
	for i, p := range r.parts {
		if !p.sealed {
			return i
		}
	}
	return len(r.parts) - 1
}

// maxLocked is how many characters part p may hold: fixed once posted,
// else what a posted message may hold.
func (r *reply) maxLocked(p *part) int {
	if p.max > 0 {
		return p.max
	}
	return r.lim.MaxChars
}

// resplitLocked lays the text out again from part i on, keeping the ids of
// the parts already posted.
func (r *reply) resplitLocked(i int) {
	start := r.parts[i]
	rest := ""
	if start.offset <= len(r.text) {
		rest = r.text[start.offset:]
	}
	st, off := start.start, start.offset
	for j := i; ; j++ {
		if j == len(r.parts) {
			r.parts = append(r.parts, &part{})
		}
		p := r.parts[j]
		p.offset, p.start = off, st
		pt, more, next := splitOne(st, rest, r.maxLocked(p))
		p.text = pt.Text
		p.sealed = more != "" || r.done
		if more == "" {
			// Parts beyond the text's end are posted messages with
			// nothing left to show: they get a single character.
			for _, extra := range r.parts[j+1:] {
				extra.text, extra.sealed, extra.offset = "…", true, len(r.text)
			}
			return
		}
		off += len(pt.Body)
		rest, st = more, next
	}
}

// shownLocked is what part i should show now: its text, or the
// placeholder. While a part is still growing it shows whole words only: no
// half word flickers, and the shown text always ends where a message may be
// cut.
func (r *reply) shownLocked(i int) string {
	p := r.parts[i]
	if p.text == "" && i == 0 && !r.done {
		return r.placeholder
	}
	if !p.sealed && !r.done {
		if k := strings.LastIndexAny(p.text, " \n"); k >= len(p.start.reopen()) && k > 0 {
			return p.text[:k+1]
		}
		if p.native {
			return p.sent // a stream only grows by whole words
		}
	}
	return p.text
}

// continueAfter is how long a message's final edit may wait for its budget
// before the rest of the answer goes into a new message instead.
const continueAfter = time.Second

// sealAtSentLocked ends part i with the text it already shows and lays the
// rest of the answer out in new parts. It refuses when the shown text is
// not a prefix of the answer (a placeholder), or ends inside a code block
// but not at a line's end. Inside a code block the part keeps its open
// fence (it renders to the message's end), and the next part reopens it.
func (r *reply) sealAtSentLocked(i int) bool {
	p := r.parts[i]
	prefix := p.start.reopen()
	if p.id == "" || !strings.HasPrefix(p.sent, prefix) || p.sent == p.text {
		return false
	}
	body := p.sent[len(prefix):]
	end := p.offset + len(body)
	if body == "" || end > len(r.text) || r.text[p.offset:end] != body {
		return false
	}
	if scanFences(p.start, body).open && !strings.HasSuffix(body, "\n") {
		// Inside a code block a message may end at a line's end only:
		// the next one reopens the block on a line of its own.
		return false
	}
	p.text, p.sealed = p.sent, true
	if !p.native || !p.open {
		p.finalSent = true
	}
	next := &part{offset: end, start: scanFences(p.start, body)}
	r.parts = append(r.parts[:i+1], next)
	r.resplitLocked(i + 1)
	return true
}

type opKind int

const (
	opPost   opKind = iota // a new message: a post, or a native stream's start
	opEdit                 // a posted message's new text
	opAppend               // a native stream's new text
	opStop                 // a native stream's end
)

type op struct {
	index int
	kind  opKind
	prio  priority
}

// nextOp finds the earliest part that needs a call.
func (r *reply) nextOp() (op, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone != nil {
		return op{}, false
	}
	for i, p := range r.parts {
		shown := r.shownLocked(i)
		switch {
		case p.id == "" && shown != "":
			prio := prioFirst
			switch {
			case p.sealed:
				prio = prioFinal
			case p.text == "":
				prio = prioSpare // a placeholder: only from spare budget
			}
			return op{index: i, kind: opPost, prio: prio}, true
		case p.id != "" && p.native && p.open && p.sealed:
			return op{index: i, kind: opStop, prio: prioFinal}, true
		case p.id != "" && p.native && p.open && shown != p.sent && strings.HasPrefix(shown, p.sent):
			prio := prioInterim
			if !r.visible {
				prio = prioFirst
			}
			return op{index: i, kind: opAppend, prio: prio}, true
		case p.id != "" && !p.native && shown != p.sent && shown != "":
			prio := prioInterim
			switch {
			case p.sealed:
				prio = prioFinal
			case !r.visible:
				prio = prioFirst
			}
			return op{index: i, kind: opEdit, prio: prio}, true
		case p.id != "" && !p.native && p.sealed && !p.finalSent && r.lim.FinalEdit:
			return op{index: i, kind: opEdit, prio: prioFinal}, true
		case p.id != "" && p.sealed && !p.open && !p.finalSent:
			p.finalSent = true // the text is final and shown; nothing to tell
		}
	}
	return op{}, false
}

// errWoken ends a wait for an interim call when the answer is done: its
// final text goes with a final's priority.
var errWoken = errors.New("bots: answer done while waiting")

// wait acquires g for a call of kind c. A wait below a final's priority
// ends with errWoken when the answer is done.
func (r *reply) wait(ctx context.Context, c Call, g grant) error {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if g.prio < prioFinal {
		stop := context.AfterFunc(r.doneCtx, func() { cancel(errWoken) })
		defer stop()
	}
	waited, err := r.sched.acquire(actx, g)
	if waited > 0 {
		r.obs.Wait(r.p.Name(), c.String(), waited)
	}
	if err != nil && ctx.Err() == nil && errors.Is(err, errWoken) {
		return errWoken
	}
	return err
}

// observe counts a call and, for a 429, pauses the budgets it drew on: a
// global 429 the bot-wide ones only, any other all but those. The call
// counts from now, when the platform answered it (see scheduler.settle);
// it was asked for at asked and granted at granted.
func (r *reply) observe(c Call, draws []draw, asked, granted time.Time, err error) {
	r.sched.settle(asked, granted, draws)
	var rl *RateLimitError
	limited := errors.As(err, &rl)
	r.obs.Call(r.p.Name(), c.String(), limited)
	if !limited {
		return
	}
	var pause []*bucket
	for _, d := range draws {
		if d.global == rl.Global || len(draws) == 1 {
			pause = append(pause, d.b)
		}
	}
	r.sched.penalize(rl.RetryAfter, pause...)
	r.log.Debug("rate limited", "platform", r.p.Name(), "call", c.String(), "retry_after", rl.RetryAfter, "global", rl.Global)
}

// allowed asks the guard whether the reply may call the platform now.
func (r *reply) allowed(ctx context.Context) error {
	if r.guard == nil {
		return nil
	}
	return r.guard(ctx)
}

// abandon stops the reply without a word more: another instance owns it.
func (r *reply) abandon(cause error) {
	r.mu.Lock()
	if r.gone == nil {
		r.gone = cause
	}
	r.done = true
	r.markDone()
	r.mu.Unlock()
	r.signal()
}

// call makes one paced call of kind c outside a message's text (progress,
// uploads, deletions): it waits for the budgets, calls f and counts it.
func (r *reply) call(ctx context.Context, c Call, prio priority, f func() error) error {
	ds := r.draws(c)
	asked := r.sched.now()
	if err := r.wait(ctx, c, grant{prio: prio, draws: ds}); err != nil {
		return err
	}
	granted := r.sched.now()
	if err := r.allowed(ctx); err != nil {
		return err
	}
	err := f()
	r.observe(c, ds, asked, granted, err)
	return err
}

// flush runs until every part shows its final text, ctx ends or the
// platform says the target is gone. It is the only goroutine that talks to
// the platform for this reply's text.
func (r *reply) flush(ctx context.Context) {
	defer close(r.finished)
	defer r.bg.Wait()
	defer r.releasePromises()
	defer func() {
		r.mu.Lock()
		r.shownFirstLocked()
		r.mu.Unlock()
	}()
	failures := 0
	for {
		o, ok := r.nextOp()
		if !ok {
			r.mu.Lock()
			finished := r.done || r.gone != nil
			r.mu.Unlock()
			if finished {
				// Everything final was sent; but a set() may have raced
				// in after done: nextOp saw all of it under the lock.
				return
			}
			select {
			case <-r.changed:
				continue
			case <-ctx.Done():
				return
			}
		}
		var err error
		switch o.kind {
		case opPost:
			err = r.post(ctx, o)
		case opEdit:
			err = r.edit(ctx, o)
		case opAppend, opStop:
			err = r.stream(ctx, o)
		}
		if err == nil || errors.Is(err, errWoken) {
			failures = 0
			continue
		}
		var rl *RateLimitError
		switch {
		case ctx.Err() != nil:
			return
		case errors.As(err, &rl):
			// observe paused the budgets; the next turn waits them out.
		case errors.Is(err, ErrTooLong):
			r.mu.Lock()
			p := r.parts[o.index]
			if p.native && p.id != "" {
				// A stream cannot shrink: it ends with what it shows.
				if !r.sealAtSentLocked(o.index) {
					p.sealed = true
				}
			} else {
				n := utf8.RuneCountInString(r.shownLocked(o.index)) * 4 / 5
				p.max = max(min(n, r.maxLocked(p)*4/5), 200)
				r.resplitLocked(o.index)
			}
			r.mu.Unlock()
			r.log.Debug("message too long, splitting smaller", "platform", r.p.Name())
		case errors.Is(err, errClaimLost):
			r.mu.Lock()
			r.gone = err
			r.mu.Unlock()
			return
		case errors.Is(err, ErrGone):
			r.mu.Lock()
			r.gone = err
			r.mu.Unlock()
			if r.onGone != nil {
				r.onGone()
			}
			return
		default:
			failures++
			r.log.Warn("platform call failed", "platform", r.p.Name(), "attempt", failures, "err", err)
			if failures >= 8 {
				return
			}
			// Back off (0.25 s, 0.5 s, ... 8 s) before trying the newest text again.
			t := time.NewTimer(min(250*time.Millisecond<<(failures-1), 8*time.Second))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
	}
}

// prepareLate is how long the call that prepares a first post may wait
// for its budget: longer, and the post does without. A burst fills the
// bot-wide budget for a second or so; a spent thread budget takes minutes.
const prepareLate = 3 * time.Second

// prepare makes the Preparer's call for the reply's first post, if dest
// needs one: at once, with a first text's priority, unless its budget
// cannot pay for it within prepareLate; then the first post does without
// (Discord answers in the channel rather than minutes late in a thread).
// The first post waits until prepare is done.
func (r *reply) prepare(ctx context.Context) {
	r.mu.Lock()
	done := r.prepared
	r.mu.Unlock()
	if done == nil {
		return
	}
	defer close(done)
	pr := r.p.(Preparer)
	if len(r.p.Limits(r.dest).Budgets[CallPrepare]) == 0 {
		return // nothing to prepare (the thread exists)
	}
	ds := r.draws(CallPrepare)
	if r.sched.estimate(prioFirst, ds...) > prepareLate {
		pr.Unprepared(r.dest)
		budgets := r.p.Limits(r.dest).Budgets
		r.mu.Lock()
		r.lim.Budgets = budgets
		r.mu.Unlock()
		r.log.Debug("preparing the first post would be late; posting without", "platform", r.p.Name())
		return
	}
	err := r.call(ctx, CallPrepare, prioFirst, func() error { return pr.Prepare(ctx, r.dest) })
	if err == nil {
		r.mu.Lock()
		r.madeReady = true
		r.mu.Unlock()
	}
	if err != nil && ctx.Err() == nil {
		// The first post tries again (Discord: it starts the thread, or
		// answers in the channel).
		r.log.Debug("prepare the first post", "platform", r.p.Name(), "err", err)
	}
}

// beginPrepare reports whether the reply's first post needs prepare (the
// platform is a Preparer and nothing is posted yet); from then on the
// first post and progress indicators wait until prepare is done.
func (r *reply) beginPrepare() bool {
	if _, ok := r.p.(Preparer); !ok {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.prepared != nil || r.parts[0].id != "" {
		return false
	}
	r.prepared = make(chan struct{})
	return true
}

// awaitPrepared waits until prepare is done, if it started. It reports
// whether prepare made its call, which shows progress of its own.
func (r *reply) awaitPrepared(ctx context.Context) (bool, error) {
	r.mu.Lock()
	ch := r.prepared
	r.mu.Unlock()
	if ch == nil {
		return false, nil
	}
	select {
	case <-ch:
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.madeReady, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// post creates part o.index's message: a native stream where the platform
// and the budgets allow it, else a post.
func (r *reply) post(ctx context.Context, o op) error {
	if _, err := r.awaitPrepared(ctx); err != nil {
		return err
	}
	// No message of the answer before its record: a restart finds every
	// message it must correct.
	r.mu.Lock()
	rec := r.recorded
	r.mu.Unlock()
	if rec != nil {
		select {
		case <-rec:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	p := r.parts[o.index]
	native := r.lim.Native != NativeNever && !r.noNative && !p.sealed && p.text != ""
	r.mu.Unlock()
	if native {
		started, err := r.startStream(ctx, o)
		if started || err != nil {
			return err
		}
	}
	ds := r.draws(CallPost)
	asked := r.sched.now()
	if err := r.wait(ctx, CallPost, grant{prio: o.prio, draws: ds}); err != nil {
		return err
	}
	granted := r.sched.now()
	r.mu.Lock()
	text := r.shownLocked(o.index)
	r.mu.Unlock()
	if text == "" {
		return nil
	}
	if err := r.allowed(ctx); err != nil {
		return err
	}
	id, err := r.p.Post(ctx, r.dest, text)
	r.observe(CallPost, ds, asked, granted, err)
	if err != nil {
		return err
	}
	r.posted1(o.index, id, text, false, nil)
	return nil
}

// startStream starts part o.index as a native stream, promising its stop.
// In NativeAuto it does so only when the budgets can pay for both now, and
// reports false otherwise: the part is posted instead.
func (r *reply) startStream(ctx context.Context, o op) (bool, error) {
	ds := r.draws(CallStart)
	stop := r.buckets(CallStop)
	g := grant{prio: o.prio, draws: ds, reserve: stop}
	asked := r.sched.now()
	if r.lim.Native == NativeAuto {
		if !r.sched.tryAcquire(g) {
			return false, nil
		}
	} else if err := r.wait(ctx, CallStart, g); err != nil {
		return false, err
	}
	granted := r.sched.now()
	r.mu.Lock()
	p := r.parts[o.index]
	// The part may now hold what a stream holds.
	p.max = r.lim.NativeMaxChars
	r.resplitLocked(o.index)
	text := r.shownLocked(o.index)
	r.mu.Unlock()
	if err := r.allowed(ctx); err != nil {
		r.sched.unreserve(stop...)
		return false, err
	}
	id, err := r.streamer.StartStream(ctx, r.dest, text)
	r.observe(CallStart, ds, asked, granted, err)
	if err != nil {
		r.sched.unreserve(stop...)
		r.mu.Lock()
		p.max = 0
		r.resplitLocked(o.index)
		if errors.Is(err, ErrNoStream) {
			r.noNative = true
		}
		r.mu.Unlock()
		if errors.Is(err, ErrNoStream) {
			r.log.Debug("native stream refused, posting", "platform", r.p.Name())
			return false, nil
		}
		return false, err
	}
	r.posted1(o.index, id, text, true, stop)
	return true, nil
}

// posted1 records that part i now exists on the platform as id, showing
// text.
func (r *reply) posted1(i int, id, text string, native bool, promised []*bucket) {
	r.mu.Lock()
	p := r.parts[i]
	first := i == 0
	p.id, p.sent, p.native, p.open, p.promised = id, text, native, native, promised
	if p.max == 0 {
		p.max = r.lim.MaxChars
	}
	if !native && p.sealed && text == p.text && !r.lim.FinalEdit {
		p.finalSent = true
	}
	r.showedLocked(p)
	count := !r.delivered && p.text != ""
	r.delivered = r.delivered || count
	r.mu.Unlock()
	if count {
		kind := "update"
		if native {
			kind = "native"
		}
		r.obs.Delivery(r.p.Name(), kind)
	}
	if r.posted != nil {
		r.posted(id, first)
	}
}

// edit brings a posted message up to its newest text. A final edit that
// its budget cannot make within continueAfter, where a new message could
// go sooner, becomes a continuation: the message keeps what it shows and
// the rest of the answer goes into a new one.
func (r *reply) edit(ctx context.Context, o op) error {
	ds := r.draws(CallEdit)
	if o.prio >= prioFirst && r.continues(ds) && r.dropPlaceholder(ctx, o.index) {
		return nil
	}
	if o.prio == prioFinal && r.continues(ds) {
		r.mu.Lock()
		sealed := r.sealAtSentLocked(o.index)
		count := sealed && !r.continued
		r.continued = r.continued || sealed
		r.mu.Unlock()
		if count {
			r.obs.Delivery(r.p.Name(), "continuation")
		}
		if sealed {
			return nil
		}
	}
	asked := r.sched.now()
	if err := r.wait(ctx, CallEdit, grant{prio: o.prio, draws: ds}); err != nil {
		return err
	}
	granted := r.sched.now()
	r.mu.Lock()
	if o.index >= len(r.parts) {
		r.mu.Unlock()
		return nil
	}
	p := r.parts[o.index]
	text := r.shownLocked(o.index)
	final, id := p.sealed, p.id
	r.mu.Unlock()
	if text == "" {
		return nil
	}
	if err := r.allowed(ctx); err != nil {
		return err
	}
	err := r.p.Edit(ctx, r.dest, id, text, final)
	r.observe(CallEdit, ds, asked, granted, err)
	if err != nil {
		return err
	}
	r.mu.Lock()
	p.sent = text
	if final && text == p.text {
		p.finalSent = true
	}
	r.showedLocked(p)
	r.mu.Unlock()
	return nil
}

// dropPlaceholder gives up part i's message when it shows only a
// placeholder, which an edit cannot replace soon: the answer is posted in a
// new message instead, and the placeholder's message is deleted (from its
// own budget; on Slack chat.delete) so that the reply's messages are again
// exactly the answer. It reports whether it did.
func (r *reply) dropPlaceholder(ctx context.Context, i int) bool {
	r.mu.Lock()
	p := r.parts[i]
	if i != 0 || p.id == "" || p.native || r.visible || p.text == "" {
		r.mu.Unlock()
		return false
	}
	id := p.id
	p.id, p.sent, p.max, p.finalSent = "", "", 0, false
	r.resplitLocked(0)
	r.mu.Unlock()
	if r.dropped != nil {
		r.dropped(id)
	}
	r.bg.Go(func() {
		for try := 0; try < 5; try++ {
			err := r.call(ctx, CallDelete, prioFinal, func() error { return r.p.Delete(ctx, r.dest, id) })
			var rl *RateLimitError
			if err == nil || errors.Is(err, ErrGone) || ctx.Err() != nil || !errors.As(err, &rl) && try > 1 {
				if err != nil && !errors.Is(err, ErrGone) && ctx.Err() == nil {
					r.log.Warn("delete a placeholder", "platform", r.p.Name(), "err", err)
				}
				return
			}
		}
	})
	r.log.Debug("placeholder given up for a new message", "platform", r.p.Name())
	return true
}

// continues reports whether a final edit drawing on edit should become a
// continuation: its budgets cannot make it within continueAfter, and a
// new message would go sooner. That only helps where posts draw on other
// budgets than edits (Slack: chat.postMessage, chat.update).
func (r *reply) continues(edit []draw) bool {
	post := r.draws(CallPost)
	for _, x := range edit {
		for _, y := range post {
			if x.b == y.b {
				return false
			}
		}
	}
	wait := r.sched.estimate(prioFinal, edit...)
	return wait > continueAfter && r.sched.estimate(prioFinal, post...) < wait
}

// stream appends to a native stream, or stops it with the rest of its
// text. The stop spends the call promised when the stream started, so it
// never waits behind other replies.
func (r *reply) stream(ctx context.Context, o op) error {
	c := CallAppend
	if o.kind == opStop {
		c = CallStop
	}
	ds := r.draws(c)
	g := grant{prio: o.prio, draws: ds}
	r.mu.Lock()
	p := r.parts[o.index]
	if c == CallStop {
		g.release = p.promised
	}
	r.mu.Unlock()
	asked := r.sched.now()
	if err := r.wait(ctx, c, g); err != nil {
		return err
	}
	granted := r.sched.now()
	r.mu.Lock()
	if c == CallStop {
		p.promised = nil
	}
	text := r.shownLocked(o.index)
	if c == CallStop {
		text = p.text
	}
	sent, id := p.sent, p.id
	r.mu.Unlock()
	if !strings.HasPrefix(text, sent) {
		// Cannot happen: a part's text only grows. End it as it is.
		text = sent
	}
	if err := r.allowed(ctx); err != nil {
		return err
	}
	var err error
	if c == CallStop {
		err = r.streamer.StopStream(ctx, r.dest, id, text[len(sent):])
	} else {
		err = r.streamer.AppendStream(ctx, r.dest, id, text[len(sent):])
	}
	r.observe(c, ds, asked, granted, err)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err == nil:
		p.sent = text
		if c == CallStop {
			p.open, p.finalSent = false, true
		}
		r.showedLocked(p)
		return nil
	case errors.Is(err, ErrStreamClosed):
		// The stream ended on its own with what it shows: the rest of the
		// answer goes into a new message.
		p.open = false
		r.releaseLocked(p)
		if !r.sealAtSentLocked(o.index) {
			// It shows all it should show so far: it is done, and what
			// comes next goes into a new message.
			wasSealed := p.sealed
			p.text, p.sealed, p.finalSent = p.sent, true, true
			if !wasSealed && o.index == len(r.parts)-1 {
				body := strings.TrimPrefix(p.sent, p.start.reopen())
				r.parts = append(r.parts, &part{offset: p.offset + len(body), start: scanFences(p.start, body)})
				r.resplitLocked(o.index + 1)
			}
		}
		return nil
	}
	// A failed stop no longer holds its promise: the next try waits for
	// the budget like any final.
	return err
}

// releaseLocked gives back the promise part p holds.
func (r *reply) releaseLocked(p *part) {
	if len(p.promised) > 0 {
		r.sched.unreserve(p.promised...)
		p.promised = nil
	}
}

// releasePromises gives back the promises of streams the flusher will not
// stop (it ended early).
func (r *reply) releasePromises() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.parts {
		r.releaseLocked(p)
	}
}

// ids returns the platform ids of the reply's messages, in order.
func (r *reply) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for _, p := range r.parts {
		if p.id != "" {
			ids = append(ids, p.id)
		}
	}
	return ids
}

// isVisible reports whether some answer text is shown.
func (r *reply) isVisible() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.visible
}

// goneErr returns the platform's ErrGone, if the reply's target vanished.
func (r *reply) goneErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gone
}
