package bots

import (
	"context"

	"github.com/parleyhq/parley/conversation"
)

// prefetch holds the reads a question's request needs (its settings and
// its conversation's history), made while its claim is settled instead of
// one after another after it: under a burst each read waits its turn for
// a connection, and a question's first token waits for the sum of those
// turns.
type prefetch struct {
	settled       chan struct{} // closed once model and system are read
	model, system string

	// hist is the history read once the claim was won, or nil: a read is
	// only of use when nothing can be added to the conversation between
	// it and the request (see claim).
	hist *historyRead
}

// historyRead is one read of a conversation's stored history.
type historyRead struct {
	done   chan struct{} // closed once stored and err are set
	stored []conversation.Message
	err    error
}

// prefetchSettings starts reading j's settings. Settings need no claim:
// they are read while it is taken.
func (e *Engine) prefetchSettings(j *job) {
	pre := &prefetch{settled: make(chan struct{})}
	j.pre = pre
	e.wg.Go(func() {
		defer close(pre.settled)
		pre.model, pre.system = e.settings(j.ctx, j)
	})
}

// readHistory starts reading j's stored history.
func (e *Engine) readHistory(j *job) *historyRead {
	h := &historyRead{done: make(chan struct{})}
	e.wg.Go(func() {
		defer close(h.done)
		h.stored, h.err = e.store.History(j.ctx, j.conv.ID, conversation.HistoryQuery{Limit: e.cfg.HistoryLimit})
	})
	return h
}

// settingsOf returns j's model and system prompt: prefetched, or read now.
func (e *Engine) settingsOf(ctx context.Context, j *job) (model, system string) {
	if j.pre == nil {
		return e.settings(ctx, j)
	}
	select {
	case <-j.pre.settled:
		return j.pre.model, j.pre.system
	case <-ctx.Done():
		return e.cfg.DefaultModel, e.cfg.SystemPrompt
	}
}

// storedHistory returns j's stored history: the prefetched read the first
// time there is one, else a read now.
func (e *Engine) storedHistory(ctx context.Context, j *job) ([]conversation.Message, error) {
	if j.pre != nil && j.pre.hist != nil {
		h := j.pre.hist
		j.pre.hist = nil // a retry reads again
		select {
		case <-h.done:
			return h.stored, h.err
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	return e.store.History(ctx, j.conv.ID, conversation.HistoryQuery{Limit: e.cfg.HistoryLimit})
}
