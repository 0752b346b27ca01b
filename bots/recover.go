package bots

import (
	"context"
	"fmt"
	"time"

	"github.com/parleyhq/parley/conversation"
)

// Recovery: every instance heartbeats in the store (Run), and a claim or
// an accepted question belongs to the instance that made it. When an
// instance's lease lapses (it was killed, or paused for longer than a
// lease) or it leaves (a clean shutdown handing its answers over), the next
// heartbeat of another instance takes its work over in one atomic change of
// owner (Store.Takeover) and queues a recovery job per conversation: under
// the claim, it finishes each answer left streaming (answered again in the
// same reply, or only marked, per Config.Recovery), then answers the
// questions accepted and never answered, in order. An instance alone on its
// store (SQLite) takes over everything at start.

// unknownText stands for what a message taken over shows: it is no text
// an answer holds.
const unknownText = "\x00"

// takeoverBatch is the most conversations one heartbeat takes over from
// instances gone: the survivors share a dead instance's work (and the
// platform budgets it needs), and a survivor killed in turn cuts only a
// part of it again.
const takeoverBatch = 8

// recoverEvery is how often Run looks for answers left streaming outside
// any claim.
const recoverEvery = 2 * time.Minute

// Notices of a reply that a restart cut.
const (
	interruptedNotice = "⚠️ _Interrupted: Parley restarted before this answer was finished. Ask again to get the whole answer._"
	resumingNotice    = "⏳ _Parley restarted while writing this answer: writing it again…_"
	couldNotNotice    = "⚠️ _Parley could not answer this: it restarted twice while writing the answer. Please ask again._"
)

// RecoveryObserver is an Observer that also counts recovery; the
// engine's Observer is asked for it.
type RecoveryObserver interface {
	// Takeover counts conversations taken over from an instance gone.
	Takeover(platform string, conversations int)
	// Resumed counts an unfinished answer by what became of it:
	// "answered" (written again), "marked" (said to be interrupted) or
	// "failed" (a second failure: could not answer).
	Resumed(platform, outcome string)
	// CaughtUp counts messages an adapter found missed and handed over.
	CaughtUp(platform string, n int)
}

func (e *Engine) recoveryObserver() RecoveryObserver {
	ro, _ := e.obs.(RecoveryObserver)
	return ro
}

// CaughtUp lets an adapter count messages it caught up with after a gap.
func (e *Engine) CaughtUp(p Platform, n int) {
	if ro := e.recoveryObserver(); ro != nil && n > 0 {
		ro.CaughtUp(p.Name(), n)
	}
}

// Recover takes over p's unfinished work: that of instances gone (with
// Config.Alone, of every other instance: the store is this process's), and
// answers left streaming outside any claim. Call it once per platform at
// start, after Run has started; Run's heartbeats repeat it for instances
// that die later.
func (e *Engine) Recover(ctx context.Context, p Platform) error {
	e.mu.Lock()
	e.recovered[p.Name()] = p
	e.mu.Unlock()
	if err := e.takeoverOf(ctx, p, e.cfg.Alone); err != nil {
		return err
	}
	return e.recoverStranded(ctx, p)
}

// takeover takes over the work of the instances gone, on every platform
// Recover ran for.
func (e *Engine) takeover(ctx context.Context, everyone bool) {
	e.mu.Lock()
	ps := make([]Platform, 0, len(e.recovered))
	for _, p := range e.recovered {
		ps = append(ps, p)
	}
	e.mu.Unlock()
	for _, p := range ps {
		if err := e.takeoverOf(ctx, p, everyone); err != nil && ctx.Err() == nil {
			e.log.Warn("take over the work of instances gone", "platform", p.Name(), "err", err)
		}
	}
}

func (e *Engine) takeoverOf(ctx context.Context, p Platform, everyone bool) error {
	limit := takeoverBatch
	if everyone {
		limit = 0
	}
	convs, err := e.store.Takeover(ctx, e.cfg.Owner, p.Name(), claimTTL, everyone, limit)
	if err != nil {
		return fmt.Errorf("bots: take over: %w", err)
	}
	if len(convs) == 0 {
		return nil
	}
	e.log.Warn("took over the work of an instance gone", "platform", p.Name(), "conversations", len(convs))
	if ro := e.recoveryObserver(); ro != nil {
		ro.Takeover(p.Name(), len(convs))
	}
	for _, c := range convs {
		e.recoverConversation(p, c)
	}
	return nil
}

// recoverStranded queues the recovery of p's answers left streaming in
// conversations no live claim holds.
func (e *Engine) recoverStranded(ctx context.Context, p Platform) error {
	stranded, err := e.store.Stranded(ctx, p.Name())
	if err != nil {
		return fmt.Errorf("bots: find interrupted answers: %w", err)
	}
	for _, s := range stranded {
		e.recoverConversation(p, conversation.Conversation{ID: s.Message.ConversationID, Key: s.Key})
	}
	return nil
}

// recoverConversation queues a recovery job in conv's queue, unless one
// is queued already: it runs in turn with the conversation's questions.
func (e *Engine) recoverConversation(p Platform, conv conversation.Conversation) {
	e.mu.Lock()
	if e.recovering[conv.ID] || e.closing {
		e.mu.Unlock()
		return
	}
	e.recovering[conv.ID] = true
	e.mu.Unlock()
	in := Incoming{Workspace: conv.Key.Workspace, Channel: conv.Key.Channel, Thread: conv.Key.Thread}
	ctx, cancel := context.WithCancelCause(e.runCtx)
	j := &job{p: p, in: in, conv: conv, ctx: ctx, cancel: cancel, queued: time.Now(), started: make(chan struct{}), hold: &hold{}, recovery: true}
	if !e.enqueue(j) {
		cancel(errShutdown)
		e.mu.Lock()
		delete(e.recovering, conv.ID)
		e.mu.Unlock()
	}
}

// recoverWork runs a recovery job, holding the conversation's claim: the
// answers left streaming first, then the questions waiting, in order.
func (e *Engine) recoverWork(j *job) {
	log := e.log.With("platform", j.p.Name(), "conversation", j.conv.ID)
	hist, err := e.store.History(j.ctx, j.conv.ID, conversation.HistoryQuery{Limit: e.cfg.HistoryLimit})
	if err != nil {
		log.Warn("recover: load history", "err", err)
		return
	}
	for _, m := range hist {
		if j.ctx.Err() != nil {
			return
		}
		if m.Role == conversation.RoleAssistant && m.Status == conversation.StatusStreaming {
			e.resume(j, hist, m)
		}
	}
	qs, err := e.store.Inbox(j.ctx, j.conv.ID)
	if err != nil {
		log.Warn("recover: load waiting questions", "err", err)
		return
	}
	for _, q := range qs {
		if j.ctx.Err() != nil {
			return
		}
		if !e.ours(q) || e.queuedHere(j.p, j.conv, q.Message) {
			continue // another live instance's, or queued here on its own
		}
		log.Info("answering a question an instance gone accepted")
		a := e.adopt(j, q.Message, q.ReplyID)
		e.answer(a)
		a.cancel(nil)
		e.forget(a)
	}
}

// queuedHere reports whether question m has a job of its own here.
func (e *Engine) queuedHere(p Platform, conv conversation.Conversation, m conversation.Message) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.active[activeKey(p.Name(), conv.Key.Workspace, m.PlatformID)]
	return a != nil && a.user.ID == m.ID
}

// resume finishes answer m, left streaming by an instance gone: the
// question is answered again in the same reply (its text replaced, with a
// note that it was resumed), once; a second failure ends it with a note
// that Parley could not answer. With RecoverMark, or without its
// question, it is only marked interrupted.
func (e *Engine) resume(j *job, hist []conversation.Message, m conversation.Message) {
	var q *conversation.Message
	attempts := 0
	for i := range hist {
		if hist[i].ID == m.ReplyTo && hist[i].Role == conversation.RoleUser {
			q = &hist[i]
		}
		if hist[i].Role == conversation.RoleAssistant && hist[i].ReplyTo != 0 && hist[i].ReplyTo == m.ReplyTo {
			attempts++
		}
	}
	ro := e.recoveryObserver()
	count := func(outcome string) {
		if ro != nil {
			ro.Resumed(j.p.Name(), outcome)
		}
	}
	dest := Destination{Workspace: j.conv.Key.Workspace, Channel: j.conv.Key.Channel, Thread: j.conv.Key.Thread}
	if q != nil {
		dest.ReplyTo, dest.User = q.PlatformID, q.Author
	}
	switch {
	case e.cfg.Recovery == RecoverMark || q == nil:
		e.mark(j, dest, m, interruptedNotice)
		count("marked")
		return
	case attempts >= 2:
		e.mark(j, dest, m, couldNotNotice)
		count("failed")
		return
	}
	// One failed attempt is recorded before the second begins: should this
	// one fail too, the next recovery knows it is the second.
	if _, _, err := e.store.Append(j.ctx, j.conv.ID, conversation.Message{
		Role: conversation.RoleAssistant, Status: conversation.StatusFailed, ReplyTo: q.ID,
	}); err != nil {
		e.log.Warn("recover: record the failed attempt", "conversation", j.conv.ID, "err", err)
		return
	}
	a := e.adopt(j, *q, "")
	a.asst, a.resumed = m, true
	a.answerID, a.firstID = m.ID, m.PlatformID
	if m.PlatformID != "" {
		// The same message shows the new answer: what it showed is
		// replaced, first by a note that it is being written again. What
		// it shows now is not known (the stored text may be ahead of
		// it), so it is never taken for a prefix of the new answer: a
		// continuation must not keep it.
		a.reply.parts[0].id, a.reply.parts[0].sent = m.PlatformID, unknownText
		a.reply.setPlaceholder(resumingNotice)
	}
	e.log.Info("resuming an interrupted answer", "platform", j.p.Name(), "conversation", j.conv.ID)
	e.answer(a)
	a.cancel(nil)
	e.forget(a)
	count("answered")
}

// mark ends answer m as partial, its message showing its known text and
// notice (or, where no message is known or it is gone, the notice posted
// in the thread).
//
// The reply is corrected before the record: should this instance die
// between the two, the next one finds the answer still unfinished and
// corrects it again.
func (e *Engine) mark(j *job, dest Destination, m conversation.Message, notice string) {
	r := newReply(e, j.p, dest)
	r.guard = func(ctx context.Context) error { return e.mayWrite(ctx, j) }
	gone := true
	if m.PlatformID != "" {
		// Its text as last saved, or, where none was saved (it showed
		// less than a checkpoint), the notice alone, in its message.
		r.parts[0].id, r.parts[0].sent = m.PlatformID, unknownText
		gone = e.show(j.ctx, r, withNotice(m.Text, notice))
	}
	if gone {
		e.say(j.ctx, j.p, dest, notice)
	}
	if j.ctx.Err() != nil {
		return // cut (lost, or shutting down): the next owner marks it
	}
	m.Status = conversation.StatusPartial
	if err := e.writeAnswer(j.ctx, j, m); err != nil {
		e.log.Warn("recover: mark answer interrupted", "conversation", j.conv.ID, "err", err)
		return
	}
	e.log.Info("interrupted answer corrected", "platform", j.p.Name(), "conversation", m.ConversationID)
}

// Place is a recently active conversation, where an adapter back from a
// disconnection looks for the messages it missed: after LastID, the
// platform id of the newest message stored there.
type Place struct {
	Workspace, Channel, Thread string
	LastID                     string
}

// maxPlaces bounds the conversations Recent returns.
const maxPlaces = 500

// Recent returns p's conversations active within window, the most recent
// first.
func (e *Engine) Recent(ctx context.Context, p Platform, window time.Duration) ([]Place, error) {
	rs, err := e.store.Recent(ctx, p.Name(), e.cfg.Now().Add(-window), maxPlaces)
	if err != nil {
		return nil, fmt.Errorf("bots: recent conversations: %w", err)
	}
	out := make([]Place, 0, len(rs))
	for _, r := range rs {
		out = append(out, Place{Workspace: r.Key.Workspace, Channel: r.Key.Channel, Thread: r.Key.Thread, LastID: r.LastID})
	}
	return out, nil
}
