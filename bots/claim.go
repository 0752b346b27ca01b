package bots

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/parleyhq/parley/conversation"
)

// Replicas on one database answer each conversation one at a time and in
// order. Before answering, a replica claims the conversation in the store
// (the claim lapses after claimTTL unless renewed, and is taken over at
// once when its instance's heartbeat lapses); holding it, it looks at the
// conversation's questions still without an answer. An older one accepted
// by another live instance is about to be answered there: the claim is let
// go and taken again later. An older one of a dead instance (or of none)
// is answered here first. After orderWait a live instance that still has
// not answered is taken for stuck, and its older questions are answered
// here too. orderWait is Config.OrderWait.
const (
	claimTTL   = 15 * time.Second
	claimRetry = 100 * time.Millisecond
)

// Causes of a job's end that say nothing on the platform: the work
// belongs to another instance now.
var (
	// errClaimLost: this instance was taken for dead and its claim taken
	// over; the new owner writes the reply.
	errClaimLost = conversation.ErrClaimLost
	// errTaken: the question is answered already, or another instance
	// took it over.
	errTaken = errors.New("the question was taken over by another instance")
	// errHandoff: shutting down, the answer is left for another instance
	// (or the next start) to resume.
	errHandoff = errors.New("parley is shutting down: handed over")
)

// silent reports whether a job ended by cause must leave the platform
// alone.
func silent(cause error) bool {
	return errors.Is(cause, errClaimLost) || errors.Is(cause, errTaken) || errors.Is(cause, errHandoff)
}

// hold is a job's claim on its conversation, shared with the questions it
// adopts: the fencing token its writes are checked with, and whether it
// was lost.
type hold struct {
	token    atomic.Int64 // 0 until claimed
	verified atomic.Int64 // the lease epoch the claim was last confirmed in
	lost     atomic.Bool
}

// claim waits until this replica may answer j, and returns the older
// questions it must answer first (adopted from a dead instance). On
// success the caller holds the claim and must release it.
func (e *Engine) claim(j *job) ([]conversation.Question, error) {
	var since time.Time
	for try := 0; ; try++ {
		if try == 1 && j.reply != nil {
			// Another replica is answering in this conversation: show
			// that this question waits, and hold its place in the thread
			// (a later question's notice must not come before it).
			j.reply.setPlaceholder("⏳ _Queued: answering the earlier message first…_")
			e.startFlush(j)
		}
		token, ok, err := e.store.ClaimConversation(j.ctx, j.conv.ID, e.cfg.Owner, claimTTL)
		if err != nil {
			return nil, err
		}
		if ok {
			j.hold.token.Store(token)
			j.hold.verified.Store(e.epoch())
			if j.recovery {
				return nil, nil
			}
			// With the claim held, nothing is added to the conversation
			// before this question's answer: its history is read beside
			// the inbox, and used unless older questions come first.
			var hist *historyRead
			if j.pre != nil {
				hist = e.readHistory(j)
			}
			qs, err := e.store.Inbox(j.ctx, j.conv.ID)
			if err != nil {
				e.release(j)
				return nil, err
			}
			var older, others []conversation.Question
			mine := false
			for _, q := range qs {
				if q.ID == j.user.ID {
					mine = e.ours(q)
					break
				}
				if e.ours(q) {
					older = append(older, q)
				} else {
					others = append(others, q)
				}
			}
			if !mine {
				// Answered already, or taken over by an instance that
				// took this one for dead: not ours to answer.
				e.release(j)
				return nil, errTaken
			}
			if len(others) == 0 {
				if len(older) == 0 && j.pre != nil {
					j.pre.hist = hist
				}
				return older, nil
			}
			if since.IsZero() {
				since = time.Now()
			} else if time.Since(since) >= e.cfg.OrderWait {
				e.log.Warn("answering questions another replica left", "conversation", j.conv.ID, "count", len(others))
				all := append(older, others...)
				sortByID(all)
				return all, nil
			}
			e.release(j)
		}
		t := time.NewTimer(claimRetry)
		select {
		case <-t.C:
		case <-j.ctx.Done():
			t.Stop()
			return nil, context.Cause(j.ctx)
		}
	}
}

// ours reports whether a waiting question is this instance's to answer:
// accepted here, by an instance that is gone, or by none (stored by an
// older build).
func (e *Engine) ours(q conversation.Question) bool {
	return q.Owner == e.cfg.Owner || q.Owner == "" || !q.OwnerAlive
}

func sortByID(ms []conversation.Question) {
	for i := 1; i < len(ms); i++ {
		for k := i; k > 0 && ms[k].ID < ms[k-1].ID; k-- {
			ms[k], ms[k-1] = ms[k-1], ms[k]
		}
	}
}

// renew extends this replica's claim on j's conversation; a claim that
// changed hands ends the job at once, silently.
func (e *Engine) renew(j *job) {
	token, ok, err := e.store.ClaimConversation(j.ctx, j.conv.ID, e.cfg.Owner, claimTTL)
	if err != nil {
		if j.ctx.Err() == nil {
			e.log.Warn("renew conversation claim", "conversation", j.conv.ID, "err", err)
		}
		return
	}
	if !ok || token != j.hold.token.Load() {
		e.lose(j)
		return
	}
	j.hold.verified.Store(e.epoch())
}

// lose ends j because its claim was taken over: another instance took
// this one for dead and answers in its place.
func (e *Engine) lose(j *job) {
	if j.hold.lost.Swap(true) {
		return
	}
	e.log.Warn("conversation claim lost: another instance took over", "conversation", j.conv.ID)
	j.cancel(errClaimLost)
}

// mayWrite is checked before each platform call of j's reply: once this
// instance's lease may have lapsed (no heartbeat landed within its ttl,
// say after the process was paused), nothing is written until the store
// confirms that the claim is still ours. A claim lost ends the job.
func (e *Engine) mayWrite(ctx context.Context, j *job) error {
	if j.hold.lost.Load() {
		return errClaimLost
	}
	token := j.hold.token.Load()
	if token == 0 || e.leaseFresh(j.hold.verified.Load()) {
		return nil // nothing claimed yet (a queued notice), or the lease holds
	}
	got, ok, err := e.store.ClaimConversation(ctx, j.conv.ID, e.cfg.Owner, claimTTL)
	if err != nil {
		return err
	}
	if !ok || got != token {
		e.lose(j)
		return errClaimLost
	}
	j.hold.verified.Store(e.epoch())
	return nil
}

// release lets go of j's conversation. A job handed over at shutdown keeps
// its claim: the instance that takes this one's work over finds the
// conversation by it.
func (e *Engine) release(j *job) {
	if errors.Is(context.Cause(j.ctx), errHandoff) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(j.ctx), 5*time.Second)
	defer cancel()
	if err := e.store.ReleaseConversation(ctx, j.conv.ID, e.cfg.Owner); err != nil {
		e.log.Warn("release conversation claim", "conversation", j.conv.ID, "err", err)
	}
}

// adopt makes a job of a stored question that j's instance (or another)
// accepted and did not answer; it shares j's claim. replyID is the message
// that showed it waiting, if one did: the answer is written there.
func (e *Engine) adopt(j *job, m conversation.Message, replyID string) *job {
	in := Incoming{
		Workspace: j.conv.Key.Workspace, Channel: j.conv.Key.Channel, Thread: j.conv.Key.Thread,
		MessageID: m.PlatformID, Author: m.Author, DM: j.in.DM, Text: m.Text, Attachments: m.Attachments,
	}
	dest := Destination{Workspace: in.Workspace, Channel: in.Channel, Thread: in.Thread, ReplyTo: in.MessageID, User: in.Author, DM: in.DM}
	ctx, cancel := context.WithCancelCause(j.ctx)
	a := &job{p: j.p, in: in, conv: j.conv, user: m, dest: dest, ctx: ctx, cancel: cancel, queued: m.CreatedAt, started: make(chan struct{}), hold: j.hold}
	a.reply = newReply(e, j.p, dest)
	a.reply.expectFirst()
	a.reply.onGone = func() { cancel(errReplyGone) }
	a.reply.guard = func(ctx context.Context) error { return e.mayWrite(ctx, a) }
	if replyID != "" {
		// What it shows is not known: never a prefix of the answer.
		a.reply.parts[0].id, a.reply.parts[0].sent = replyID, unknownText
		a.firstID = replyID
	}
	a.reply.posted = func(id string, first bool) {
		e.mu.Lock()
		e.active[activeKey(a.p.Name(), in.Workspace, id)] = a
		var answerID int64
		if first {
			a.firstID = id
			answerID = a.answerID
		}
		e.mu.Unlock()
		if answerID != 0 {
			e.checkpoint(a, answerID, id, "")
		}
	}
	return a
}

// markUnanswered records that a question will get no answer (it was
// stopped or cut before one began), so that it does not hold up the
// conversation's later questions on any replica.
func (e *Engine) markUnanswered(j *job) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(j.ctx), 5*time.Second)
	defer cancel()
	_, _, err := e.store.Append(ctx, j.conv.ID, conversation.Message{
		Role: conversation.RoleAssistant, Status: conversation.StatusFailed, ReplyTo: j.user.ID,
	})
	if err != nil {
		e.log.Warn("mark question unanswered", "conversation", j.conv.ID, "err", err)
	}
}
