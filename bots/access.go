package bots

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/parleyhq/parley/conversation"
)

// Access says whom Parley answers, and who its admins are. An empty list
// allows everyone; a person must pass every list that is set, except that
// Users and Roles are one test together (a listed user, or a member of a
// listed role, or a person named in Admins).
//
// Workspaces holds for the person's own team as well as for the place
// they write in: in a Slack Connect channel, or a DM with someone of
// another organization, a person whose team is not listed is refused.
type Access struct {
	Workspaces []string // Slack team ids, Discord guild ids
	Channels   []string
	Users      []string
	Roles      []string // Discord role ids
	// Admins are user ids (and Discord role ids) of people who may change
	// what others see, in every workspace: channel and workspace settings,
	// shared conversations (PARLEY_ADMINS). The platforms' own admins
	// (AdminLookup) may too, in their workspace.
	Admins []string
	// Refusal is where a refused person is told so: "dm" (the default: a
	// polite refusal in direct messages, silence in channels), "always"
	// or "never".
	Refusal string
}

// allowed reports whether a person may use Parley: user, of team (their
// own team, "" when it is the workspace's), writing in channel of
// workspace.
func (a Access) allowed(workspace, team, channel, user string, roles []string) bool {
	if len(a.Workspaces) > 0 && !slices.Contains(a.Workspaces, workspace) {
		return false
	}
	if len(a.Workspaces) > 0 && team != "" && !slices.Contains(a.Workspaces, team) {
		return false
	}
	if len(a.Channels) > 0 && !slices.Contains(a.Channels, channel) {
		return false
	}
	if len(a.Users) == 0 && len(a.Roles) == 0 {
		return true
	}
	if slices.Contains(a.Users, user) || a.listedAdmin(user, roles) {
		return true
	}
	for _, r := range roles {
		if slices.Contains(a.Roles, r) {
			return true
		}
	}
	return false
}

// tellRefusal reports whether a refused person is told, in a DM or not.
func (a Access) tellRefusal(dm bool) bool {
	switch a.Refusal {
	case "always":
		return true
	case "never":
		return false
	default:
		return dm
	}
}

const refusedText = "Sorry, Parley is not available to you here. Ask an administrator if you think it should be."

// userLimiter keeps each person's requests within Config.UserRate, per
// replica: one person cannot exhaust the shared key.
type userLimiter struct {
	rate    Rate
	mu      sync.Mutex
	buckets map[string]*bucket
}

// allow takes a request of key's budget, or says when one is free.
func (l *userLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	if l.rate.Every <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		b = newBucket(l.rate, false, 1)
		b.spacing = 0 // a person may send a burst
		l.buckets[key] = b
	}
	if at := b.readyAt(now, prioFinal, 1, 0); at.After(now) {
		return false, at.Sub(now)
	}
	b.take(now, 1)
	if len(l.buckets) > 10000 {
		for k, v := range l.buckets {
			if v.prune(now); len(v.times) == 0 {
				delete(l.buckets, k)
			}
		}
	}
	return true, 0
}

// admit applies access control, the per-user rate and the daily token
// budget to a message the bot would answer. It returns "" to go on, or the
// text to answer instead ("-" for silence).
func (e *Engine) admit(ctx context.Context, p Platform, in Incoming) string {
	if !e.cfg.Access.allowed(in.Workspace, in.AuthorTeam, in.Channel, in.Author, in.Roles) {
		e.log.Info("refused by access control", "platform", p.Name(), "workspace", in.Workspace, "team", in.AuthorTeam, "channel", in.Channel, "user", in.Author)
		if e.cfg.Access.tellRefusal(in.DM) {
			return refusedText
		}
		return "-"
	}
	if ok, wait := e.users.allow(p.Name()+"/"+in.Workspace+"/"+in.Author, time.Now()); !ok {
		return fmt.Sprintf("You are sending messages faster than Parley allows here. Try again in %s.", roundUp(wait))
	}
	if e.cfg.DailyTokens > 0 {
		today := time.Now().UTC().Truncate(24 * time.Hour)
		u, err := e.store.SumUsage(ctx, conversation.UsageFilter{Platform: p.Name(), Workspace: in.Workspace, User: in.Author, Since: today})
		if err != nil {
			e.log.Warn("read usage", "err", err)
		} else if u.PromptTokens+u.CompletionTokens >= e.cfg.DailyTokens {
			return fmt.Sprintf("You have used your %d tokens for today. The budget starts again at midnight UTC.", e.cfg.DailyTokens)
		}
	}
	return ""
}

func roundUp(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%d seconds", int(d.Seconds())+1)
	}
	return fmt.Sprintf("%d minutes", int(d.Minutes())+1)
}
