package console

import (
	"context"
	"strings"

	"github.com/parleyhq/parley/bots"
)

var _ bots.Approver = (*Terminal)(nil)

// decider is the engine's side of approvals.
type decider interface {
	Decide(ctx context.Context, p bots.Platform, id, user string, roles []string, approve bool) (string, error)
}

// AskApproval prints prompt and asks for y or n: the next line typed
// answers it (see answerApproval).
func (t *Terminal) AskApproval(ctx context.Context, dest bots.Destination, id, prompt string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clearStatusLocked()
	if !t.col0 {
		t.writeLocked("\n")
	}
	t.approval = id
	t.writeLocked(strings.TrimRight(render(prompt, t.cfg.Interactive), "\n") + "\nApprove? [y/N] ")
	t.col0 = true // the user's Enter ends the line
	select {
	case t.asking <- struct{}{}:
	default:
	}
	return id, nil
}

// SettleApproval prints the outcome on a line of its own.
func (t *Terminal) SettleApproval(ctx context.Context, dest bots.Destination, id, text string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.approval == id {
		t.approval = ""
	}
	if !t.col0 {
		t.writeLocked("\n")
	}
	return t.writeLocked(strings.TrimRight(render(text, t.cfg.Interactive), "\n") + "\n")
}

// pendingApproval returns the approval waiting for a line, if any.
func (t *Terminal) pendingApproval() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.approval
}

// answerApproval takes line as the answer to approval id: y or yes
// approves, anything else denies.
func (t *Terminal) answerApproval(ctx context.Context, e Engine, id, line string) {
	t.mu.Lock()
	if t.approval == id {
		t.approval = "" // one line answers it
	}
	t.mu.Unlock()
	d, ok := e.(decider)
	if !ok {
		return
	}
	a := strings.ToLower(strings.TrimSpace(line))
	d.Decide(ctx, t, id, t.cfg.User, nil, a == "y" || a == "yes")
}
