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
	id        string // platform id, "" until posted
	text      string // what it should show
	sent      string // what it shows
	sealed    bool   // its text will not change any more
	finalSent bool   // the platform was told it is final
	offset    int    // byte offset of its body in the answer
	start     fence  // fence state at its start
}

// reply shows one answer on a platform. It owns the answer's messages,
// splits the text across them, and sends each change through the
// scheduler: only the newest text is sent once a budget token is held, so
// edits coalesce and never queue up stale text.
type reply struct {
	p      Platform
	lim    Limits
	dest   Destination
	sched  *scheduler
	log    *slog.Logger
	obs    Observer
	posted func(id string, first bool) // called for each new message
	onGone func()                      // called when the platform says the reply is gone

	postBuckets []*bucket
	editBuckets []*bucket
	globalOnly  []*bucket

	mu          sync.Mutex
	maxChars    int
	text        string // the whole reply: answer, then any notice
	done        bool
	placeholder string // shown while there is no text yet
	parts       []*part
	visible     bool // some text of the answer is visible
	changed     chan struct{}
	gone        error // ErrGone from the platform: nothing more can be shown
	flushing    bool
	finished    chan struct{} // closed when the flusher has sent everything final
	doneCtx     context.Context
	markDone    context.CancelFunc // ends doneCtx once the text is final
}

func newReply(e *Engine, p Platform, dest Destination) *reply {
	lim := p.Limits()
	r := &reply{
		p: p, lim: lim, dest: dest, sched: e.sched, log: e.log, obs: e.obs,
		maxChars: lim.MaxChars,
		parts:    []*part{{}},
		changed:  make(chan struct{}, 1),
		finished: make(chan struct{}),
	}
	r.doneCtx, r.markDone = context.WithCancel(context.Background())
	if r.maxChars <= 0 {
		r.maxChars = 4000
	}
	name := p.Name()
	channel := name + "/" + dest.Workspace + "/" + dest.Channel
	if lim.ThreadBuckets && dest.Thread != "" {
		channel += "/" + dest.Thread
	}
	global := e.sched.bucket("global/"+name, lim.Global, true)
	chEdit := e.sched.bucket("edit/"+channel, lim.ChannelEdit, false)
	chPost := e.sched.bucket("post/"+channel, lim.ChannelPost, false)
	ws := e.sched.bucket("ws/"+name+"/"+dest.Workspace, lim.WorkspaceEdit, true)
	r.globalOnly = []*bucket{global}
	r.editBuckets = []*bucket{chEdit, ws, global}
	if lim.SharedChannel {
		r.postBuckets = []*bucket{chEdit, global}
	} else {
		r.postBuckets = []*bucket{chPost, global}
	}
	return r
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
		pt, more, next := splitOne(st, rest, r.maxChars)
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

// shown is what part i should show now: its text, or the placeholder.
// While a part is still growing it shows whole words only: no half word
// flickers, and the shown text always ends where a message may be cut.
func (r *reply) shownLocked(i int) string {
	p := r.parts[i]
	if p.text == "" && i == 0 && !r.done {
		return r.placeholder
	}
	if !p.sealed && !r.done {
		if k := strings.LastIndexAny(p.text, " \n"); k >= len(p.start.reopen()) && k > 0 {
			return p.text[:k+1]
		}
	}
	return p.text
}

// continueAfter is how long a final edit may wait for the edit budget
// before the rest of the answer goes into a new message instead.
const continueAfter = 1500 * time.Millisecond

// canContinueLocked reports whether the last part's final edit may be
// replaced by a new message: where posts draw on another budget than edits
// (Slack: chat.postMessage per channel, chat.update per workspace) and no
// final call is needed to close a message.
func (r *reply) canContinueLocked(i int) bool {
	return i == len(r.parts)-1 && !r.lim.SharedChannel && !r.lim.FinalEdit && r.lim.WorkspaceEdit.Every > 0
}

// sealAtSentLocked ends part i with the text it already shows and lays the
// rest of the answer out in new parts. It refuses when the shown text is
// not a clean prefix of the answer (a placeholder, or inside a code block).
func (r *reply) sealAtSentLocked(i int) bool {
	p := r.parts[i]
	prefix := p.start.reopen()
	if p.id == "" || !strings.HasPrefix(p.sent, prefix) || p.sent == p.text {
		return false
	}
	body := p.sent[len(prefix):]
	end := p.offset + len(body)
	if body == "" || end > len(r.text) || r.text[p.offset:end] != body || scanFences(p.start, body).open {
		return false
	}
	p.text, p.sealed, p.finalSent = p.sent, true, true
	r.parts = append(r.parts, &part{offset: end})
	r.resplitLocked(i + 1)
	return true
}

// flush runs until every part shows its final text, ctx ends or the
// platform says the target is gone. It is the only goroutine that talks to
// the platform for this reply.
func (r *reply) flush(ctx context.Context) {
	defer close(r.finished)
	failures := 0
	for {
		op, ok := r.nextOp()
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
		buckets := r.editBuckets
		if op.post {
			buckets = r.postBuckets
		}
		if !op.post && op.prio == prioFinal {
			// Under a spent edit budget, a new message shows the rest of
			// the answer sooner than the final edit would.
			r.mu.Lock()
			can := r.canContinueLocked(op.index)
			r.mu.Unlock()
			if can && r.sched.estimate(prioFinal, r.editBuckets...) > continueAfter &&
				r.sched.estimate(prioFirst, r.postBuckets...) == 0 {
				r.mu.Lock()
				sealed := r.sealAtSentLocked(op.index)
				r.mu.Unlock()
				if sealed {
					continue
				}
			}
		}
		// A wait for an interim call ends when the answer is done, so that
		// its final text is sent with a final's priority.
		actx, cancel := context.WithCancel(ctx)
		stop := func() bool { return false }
		if op.prio < prioFinal {
			stop = context.AfterFunc(r.doneCtx, cancel)
		}
		err := r.sched.acquire(actx, op.prio, buckets...)
		stop()
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			continue
		}
		// Coalesce: send the newest text, read after the wait.
		r.mu.Lock()
		if op.index >= len(r.parts) {
			r.mu.Unlock()
			continue
		}
		p := r.parts[op.index]
		text := r.shownLocked(op.index)
		final := p.sealed
		id := p.id
		r.mu.Unlock()
		if text == "" {
			continue
		}
		posting := id == ""
		if posting {
			id, err = r.p.Post(ctx, r.dest, text)
		} else {
			err = r.p.Edit(ctx, r.dest, id, text, final)
		}
		var rl *RateLimitError
		opName := "edit"
		if posting {
			opName = "post"
		}
		r.obs.Call(r.p.Name(), opName, errors.As(err, &rl))
		if err == nil {
			failures = 0
			r.mu.Lock()
			first := p.id == "" && op.index == 0
			newID := p.id == ""
			p.id, p.sent = id, text
			// A message posted with its final text is final, except where
			// the platform must be told so in an edit (a native stream).
			if final && text == p.text && !(newID && r.lim.FinalEdit) {
				p.finalSent = true
			}
			if text == p.text && p.text != "" {
				r.visible = true
			}
			r.mu.Unlock()
			if newID && r.posted != nil {
				r.posted(id, first)
			}
			continue
		}
		switch {
		case errors.As(err, &rl):
			if rl.Global {
				r.sched.penalize(rl.RetryAfter, r.globalOnly...)
			} else {
				r.sched.penalize(rl.RetryAfter, buckets...)
			}
			r.log.Debug("rate limited", "platform", r.p.Name(), "retry_after", rl.RetryAfter)
		case errors.Is(err, ErrTooLong):
			r.mu.Lock()
			n := utf8.RuneCountInString(text) * 4 / 5
			if n < r.maxChars {
				r.maxChars = max(n, 200)
			} else {
				r.maxChars = max(r.maxChars*4/5, 200)
			}
			r.resplitLocked(op.index)
			r.mu.Unlock()
			r.log.Debug("message too long, splitting smaller", "platform", r.p.Name(), "max_chars", r.maxChars)
		case errors.Is(err, ErrGone):
			r.mu.Lock()
			r.gone = err
			r.mu.Unlock()
			if r.onGone != nil {
				r.onGone()
			}
			return
		case ctx.Err() != nil:
			return
		default:
			failures++
			r.log.Warn("platform call failed", "platform", r.p.Name(), "post", op.post, "attempt", failures, "err", err)
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

type op struct {
	index int
	post  bool
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
			if p.sealed {
				prio = prioFinal
			}
			return op{index: i, post: true, prio: prio}, true
		case p.id != "" && shown != p.sent && shown != "":
			prio := prioInterim
			switch {
			case p.sealed:
				prio = prioFinal
			case !r.visible:
				prio = prioFirst
			}
			return op{index: i, prio: prio}, true
		case p.id != "" && p.sealed && !p.finalSent && r.lim.FinalEdit:
			return op{index: i, prio: prioFinal}, true
		case p.id != "" && p.sealed && !p.finalSent:
			p.finalSent = true // the text is final and shown; nothing to tell
		}
	}
	return op{}, false
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
