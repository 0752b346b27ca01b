package bots

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/parleyhq/parley/conversation"
)

// AdminLookup is implemented by a platform that knows who administers a
// workspace: Slack's workspace admins and owners, Discord's members with
// Manage Server. The engine asks it before a command changes what other
// people see (a channel's or the workspace's settings, a shared
// conversation); the people named in Access.Admins need no lookup. An
// adapter caches the answers for a bounded time, so that a person who
// loses the role loses the rights within that time.
type AdminLookup interface {
	// IsAdmin reports whether user administers workspace. A person from
	// another organization (a Slack Connect guest) is never an admin
	// here. An error means the platform could not say.
	IsAdmin(ctx context.Context, workspace, user string) (bool, error)
	// AdminTitle names the platform's admins for a refusal, as a person
	// reads it: "the workspace's admins and owners".
	AdminTitle() string
}

// historyForOthers is how many of a conversation's newest messages are
// read to learn whether people other than the caller are in it.
const historyForOthers = 1000

// listedAdmin reports whether Access.Admins names user or one of roles.
func (a Access) listedAdmin(user string, roles []string) bool {
	if slices.Contains(a.Admins, user) {
		return true
	}
	for _, r := range roles {
		if slices.Contains(a.Admins, r) {
			return true
		}
	}
	return false
}

// isAdmin reports whether cmd's caller is an admin of its workspace:
// listed in Access.Admins, or an admin by the platform's own roles. A
// caller from another team than the workspace (Slack Connect) is an admin
// only when listed.
func (e *Engine) isAdmin(ctx context.Context, p Platform, cmd Command) (bool, error) {
	if e.cfg.Access.listedAdmin(cmd.User, cmd.Roles) {
		return true, nil
	}
	l, ok := p.(AdminLookup)
	if !ok || cmd.Workspace == "" || (cmd.UserTeam != "" && cmd.UserTeam != cmd.Workspace) {
		return false, nil
	}
	return l.IsAdmin(ctx, cmd.Workspace, cmd.User)
}

// othersIn reports whether people other than user wrote in the
// conversation at key (false when there is none).
func (e *Engine) othersIn(ctx context.Context, key conversation.Key, user string) (bool, error) {
	conv, err := e.store.FindConversation(ctx, key)
	if errors.Is(err, conversation.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	ms, err := e.store.History(ctx, conv.ID, conversation.HistoryQuery{Limit: historyForOthers})
	if err != nil {
		return false, err
	}
	for _, m := range ms {
		if m.Role == conversation.RoleUser && m.Author != "" && m.Author != user {
			return true, nil
		}
	}
	return false, nil
}

// adminOnly reports whether a write at scope by cmd's caller is for admins:
// a setting for the channel or the workspace, or for a thread other
// people are in. A person's own settings (the user scope) and their DM
// with Parley are theirs.
func (e *Engine) adminOnly(ctx context.Context, p Platform, cmd Command, scope conversation.Scope) (bool, error) {
	switch scope.Kind {
	case conversation.ScopeUser:
		return false, nil
	case conversation.ScopeWorkspace:
		return true, nil
	}
	if cmd.DM {
		return false, nil
	}
	if scope.Kind == conversation.ScopeThread {
		return e.othersIn(ctx, conversation.Key{Platform: p.Name(), Workspace: cmd.Workspace, Channel: cmd.Channel, Thread: cmd.Thread}, cmd.User)
	}
	return true, nil
}

// refuseWrite returns the refusal of a write only admins may make, or nil
// when cmd's caller may make it. what says what was refused ("change the
// model for this channel"), instead what the caller may do.
func (e *Engine) refuseWrite(ctx context.Context, p Platform, cmd Command, needed bool, what, instead string) *CommandReply {
	if !needed {
		return nil
	}
	admin, err := e.isAdmin(ctx, p, cmd)
	if err != nil {
		e.log.Warn("admin lookup failed", "platform", p.Name(), "workspace", cmd.Workspace, "user", cmd.User, "err", err)
		return &CommandReply{Text: "⚠️ Parley could not check just now whether you are an admin here, which " + what + " needs. Try again in a moment.", Ephemeral: true}
	}
	if admin {
		return nil
	}
	e.log.Info("command refused: admins only", "platform", p.Name(), "workspace", cmd.Workspace, "channel", cmd.Channel, "user", cmd.User, "command", cmd.Name)
	return &CommandReply{Text: refusalText(p, what, instead), Ephemeral: true}
}

// refusalText says that only admins may do what, who they are, and what
// the caller may do instead.
func refusalText(p Platform, what, instead string) string {
	who := "the people Parley's operator named (PARLEY_ADMINS)"
	if l, ok := p.(AdminLookup); ok {
		who = l.AdminTitle() + ", and " + who
	}
	text := fmt.Sprintf("Only admins can %s. Admins here are %s.", what, who)
	if instead != "" {
		text += " " + instead
	}
	return text
}

// scopeWord is a word that names where a setting applies.
type scopeWord int

const (
	scopeHere      scopeWord = iota // the thread, or the channel, or the DM
	scopeMe                         // "me": the caller, everywhere
	scopeWorkspace                  // "workspace": everyone in the workspace
)

func parseScopeWord(w string) (scopeWord, bool) {
	switch strings.ToLower(w) {
	case "me":
		return scopeMe, true
	case "workspace":
		return scopeWorkspace, true
	}
	return scopeHere, false
}
