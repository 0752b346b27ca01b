package bots

import (
	"context"
	"fmt"
	"time"

	"github.com/parleyhq/parley/conversation"
)

// correct replaces the text of an interrupted answer's message with its
// known text and the notice. It reports whether the message was gone.
func (e *Engine) correct(ctx context.Context, p Platform, dest Destination, m conversation.Message) (gone bool) {
	r := newReply(e, p, dest)
	r.parts[0].id = m.PlatformID
	return e.show(ctx, r, withNotice(m.Text, interruptedNotice))
}

// recoverEvery is how often Run looks for answers a dead replica left.
const recoverEvery = 2 * time.Minute

// interruptedNotice ends a reply that a restart cut.
const interruptedNotice = "⚠️ _Interrupted: Parley restarted before this answer was finished. Ask again to get the whole answer._"

// Recover finds p's answers left streaming by a crash or a kill, marks them
// partial and corrects their messages to say so: the message is edited
// where its text is known, else a notice is posted in its thread.
// Call it once per platform at start; Run then repeats it every few
// minutes, for the answers of replicas that died. Answers of conversations
// under a live claim (a replica answering them now) are left alone.
func (e *Engine) Recover(ctx context.Context, p Platform) error {
	e.mu.Lock()
	e.recovered[p.Name()] = p
	e.mu.Unlock()
	stranded, err := e.store.Stranded(ctx, p.Name())
	if err != nil {
		return fmt.Errorf("bots: find interrupted answers: %w", err)
	}
	for _, s := range stranded {
		m := s.Message
		m.Status = conversation.StatusPartial
		if err := e.store.UpdateMessage(ctx, m); err != nil {
			return fmt.Errorf("bots: mark answer %d interrupted: %w", m.ID, err)
		}
		// The correction goes through a reply, so it is paced and retried
		// like any other: the known text and the notice replace the
		// message, or the notice alone is posted in the thread.
		dest := Destination{Workspace: s.Key.Workspace, Channel: s.Key.Channel, Thread: s.Key.Thread}
		if m.PlatformID == "" || m.Text == "" || e.correct(ctx, p, dest, m) {
			// Nothing known was shown, or the message is gone (deleted,
			// or replaced by the adapter): say it in the thread instead.
			e.say(ctx, p, dest, interruptedNotice)
		}
		e.log.Info("interrupted answer corrected", "platform", p.Name(), "conversation", m.ConversationID)
	}
	return nil
}
