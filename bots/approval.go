package bots

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/parleyhq/parley/tools"
)

// Approver is a Platform that can ask people to approve a tool call: a
// message with Approve and Deny buttons (Slack block actions, Discord
// message components). The adapter reports a click with Engine.Decide,
// giving the id it was asked with; the engine checks who clicked.
type Approver interface {
	// AskApproval posts prompt (Markdown) in dest with the two buttons,
	// which carry id, and returns the message's id.
	AskApproval(ctx context.Context, dest Destination, id, prompt string) (messageID string, err error)
	// SettleApproval replaces the buttons of the message with text.
	SettleApproval(ctx context.Context, dest Destination, messageID, text string) error
}

// toolAdmin reports whether user may act as an admin of tools in
// workspace on p: approve anyone's calls, turn servers on and off. Admins
// are those of every other setting (see isAdmin); the console's user is
// the operator at the terminal.
func (e *Engine) toolAdmin(ctx context.Context, p Platform, workspace, user string, roles []string) bool {
	if p.Name() == "console" {
		return true
	}
	ok, err := e.isAdmin(ctx, p, Command{Workspace: workspace, User: user, Roles: roles})
	if err != nil {
		e.log.Warn("look up an admin", "platform", p.Name(), "err", err)
	}
	return ok
}

// defaultApprovalTimeout is how long a person has to approve a call; no
// answer denies it.
const defaultApprovalTimeout = 2 * time.Minute

// approvals are the questions waiting for a click, by id.
type approvals struct {
	mu      sync.Mutex
	pending map[string]*approval
}

type approval struct {
	platform, workspace, asker string
	decided                    chan bool // buffered: the first decision
	once                       sync.Once
}

// Approve asks j's asker (or an admin) to approve a call of t, in j's
// thread; it implements tools.Approver for the tool loop.
func (o *toolOutput) Approve(ctx context.Context, t tools.Tool, arguments string) (bool, error) {
	e, j := o.e, o.j
	ap, ok := j.p.(Approver)
	if !ok {
		return false, fmt.Errorf("%s: %w", j.p.Name(), tools.ErrNoApprover)
	}
	var b [8]byte
	rand.Read(b[:])
	id := "ap_" + hex.EncodeToString(b[:])
	a := &approval{platform: j.p.Name(), workspace: j.in.Workspace, asker: j.in.Author, decided: make(chan bool, 1)}
	e.approvals.mu.Lock()
	if e.approvals.pending == nil {
		e.approvals.pending = make(map[string]*approval)
	}
	e.approvals.pending[id] = a
	e.approvals.mu.Unlock()
	defer func() {
		e.approvals.mu.Lock()
		delete(e.approvals.pending, id)
		e.approvals.mu.Unlock()
	}()
	// The model's arguments are untrusted: no backtick may close the
	// code block they are shown in, and a long text is cut.
	args := strings.ReplaceAll(strings.ToValidUTF8(arguments, "\uFFFD"), "`", "'")
	if r := []rune(args); len(r) > 300 {
		args = string(r[:300]) + "…"
	}
	prompt := fmt.Sprintf("🔐 The model wants to call `%s` with:\n```\n%s\n```\nApprove or deny (the asker or an admin).", t.Display(), args)
	dest := j.dest
	var msgID string
	// Paced like any post: the question is a first text's priority.
	err := j.reply.call(ctx, CallPost, prioFirst, func() error {
		var err error
		msgID, err = ap.AskApproval(ctx, dest, id, prompt)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("ask for approval: %w", err)
	}
	timeout := e.cfg.ApprovalTimeout
	if timeout <= 0 {
		timeout = defaultApprovalTimeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var approved bool
	var outcome string
	select {
	case approved = <-a.decided:
		outcome = "❌ Denied."
		if approved {
			outcome = "✅ Approved."
		}
	case <-timer.C:
		outcome = "⌛ No answer in time: denied."
	case <-ctx.Done():
		outcome = "⏹️ The answer stopped."
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err = j.reply.call(sctx, CallEdit, prioFinal, func() error {
		return ap.SettleApproval(sctx, dest, msgID, fmt.Sprintf("`%s`: %s", t.Display(), outcome))
	})
	if err != nil {
		e.log.Warn("settle approval", "platform", j.p.Name(), "err", err)
	}
	return approved, ctx.Err()
}

// ErrNoApproval means the approval asked about is no longer waiting.
var ErrNoApproval = errors.New("bots: this approval is no longer waiting")

// Decide records a click on an approval's buttons: user (with roles, on
// Discord) approves or denies the call the approval id asks about. Only the
// person whose question led to the call, or an admin, decides; the text
// returned is for the clicker alone.
func (e *Engine) Decide(ctx context.Context, p Platform, id, user string, roles []string, approve bool) (string, error) {
	e.approvals.mu.Lock()
	a := e.approvals.pending[id]
	e.approvals.mu.Unlock()
	if a == nil || a.platform != p.Name() {
		return "This request is no longer waiting for an answer.", ErrNoApproval
	}
	if user != a.asker && !e.toolAdmin(ctx, p, a.workspace, user, roles) {
		return "Only the person who asked, or an admin, can answer this.", nil
	}
	decided := false
	a.once.Do(func() {
		a.decided <- approve
		decided = true
	})
	if !decided {
		return "This request was already answered.", nil
	}
	if approve {
		return "Approved.", nil
	}
	return "Denied.", nil
}
