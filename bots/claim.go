package bots

import (
	"context"
	"time"

	"github.com/parleyhq/parley/conversation"
)

// Replicas on one database answer each conversation one at a time and in
// order. Before answering, a replica claims the conversation in the store
// (the claim lapses after claimTTL unless renewed, so a dead replica's
// claims pass on); holding it, it looks at the conversation's questions
// still without an answer. An older one belongs to another replica, which
// is about to answer it: the claim is let go and taken again later. After
// orderWait that replica is taken for dead, and the older questions are
// answered here first, from what the store holds of them. orderWait is
// Config.OrderWait.
const (
	claimTTL   = 15 * time.Second
	claimRetry = 100 * time.Millisecond
)

// claim waits until this replica may answer j, and returns the older
// questions it must answer first (adopted from a replica taken for dead).
// On success the caller holds the claim and must release it.
func (e *Engine) claim(j *job) ([]conversation.Message, error) {
	var since time.Time
	for try := 0; ; try++ {
		if try == 1 {
			// Another replica is answering in this conversation: show
			// that this question waits, and hold its place in the thread
			// (a later question's notice must not come before it).
			j.reply.setPlaceholder("⏳ _Queued: answering the earlier message first…_")
			e.startFlush(j)
		}
		ok, err := e.store.ClaimConversation(j.ctx, j.conv.ID, e.cfg.Owner, claimTTL)
		if err != nil {
			return nil, err
		}
		if ok {
			pending, err := e.store.Pending(j.ctx, j.conv.ID, 0)
			if err != nil {
				e.release(j)
				return nil, err
			}
			var older []conversation.Message
			for _, m := range pending {
				if m.ID < j.user.ID {
					older = append(older, m)
				}
			}
			if len(older) == 0 {
				return nil, nil
			}
			if since.IsZero() {
				since = time.Now()
			} else if time.Since(since) >= e.cfg.OrderWait {
				e.log.Warn("answering questions another replica left", "conversation", j.conv.ID, "count", len(older))
				return older, nil
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

// renew extends this replica's claim on j's conversation.
func (e *Engine) renew(j *job) {
	if _, err := e.store.ClaimConversation(j.ctx, j.conv.ID, e.cfg.Owner, claimTTL); err != nil && j.ctx.Err() == nil {
		e.log.Warn("renew conversation claim", "conversation", j.conv.ID, "err", err)
	}
}

// release lets go of j's conversation.
func (e *Engine) release(j *job) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(j.ctx), 5*time.Second)
	defer cancel()
	if err := e.store.ReleaseConversation(ctx, j.conv.ID, e.cfg.Owner); err != nil {
		e.log.Warn("release conversation claim", "conversation", j.conv.ID, "err", err)
	}
}

// adopt makes a job of a stored question that another replica received
// and never answered.
func (e *Engine) adopt(j *job, m conversation.Message) *job {
	in := Incoming{
		Workspace: j.conv.Key.Workspace, Channel: j.conv.Key.Channel, Thread: j.conv.Key.Thread,
		MessageID: m.PlatformID, Author: m.Author, DM: j.in.DM, Text: m.Text, Attachments: m.Attachments,
	}
	dest := Destination{Workspace: in.Workspace, Channel: in.Channel, Thread: in.Thread, ReplyTo: in.MessageID, User: in.Author, DM: in.DM}
	ctx, cancel := context.WithCancelCause(j.ctx)
	a := &job{p: j.p, in: in, conv: j.conv, user: m, dest: dest, ctx: ctx, cancel: cancel, queued: m.CreatedAt, started: make(chan struct{})}
	a.reply = newReply(e, j.p, dest)
	a.reply.expectFirst()
	a.reply.onGone = func() { cancel(errReplyGone) }
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
