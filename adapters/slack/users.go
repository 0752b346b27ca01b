package slack

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/parleyhq/parley/bots"
)

var _ bots.AdminLookup = (*Adapter)(nil)

// personTTL bounds how long what users.info said of a person is believed:
// someone who stops being an admin loses the rights within this time.
const personTTL = 5 * time.Minute

// maxPeople bounds the people remembered; past it the expired ones go,
// and if none has expired, all.
const maxPeople = 10000

// person is what Parley needs to know of someone: their own team and
// whether they administer it.
type person struct {
	team  string   // their home team
	teams []string // Enterprise Grid: the workspaces of their organization they belong to
	admin bool     // a workspace admin, owner or primary owner, and not deactivated
	until time.Time
}

// people remembers users.info's answers for personTTL.
type people struct {
	mu sync.Mutex
	m  map[string]person
}

// person returns what users.info says of user, from the cache while it is
// fresh.
func (a *Adapter) person(ctx context.Context, user string) (person, error) {
	now := time.Now()
	a.people.mu.Lock()
	p, ok := a.people.m[user]
	a.people.mu.Unlock()
	if ok && now.Before(p.until) {
		return p, nil
	}
	u, err := a.api.GetUserInfoContext(ctx, user)
	if err != nil {
		return person{}, wrap("users.info", err)
	}
	p = person{
		team:  u.TeamID,
		teams: slices.Clone(u.Enterprise.Teams),
		admin: !u.Deleted && (u.IsAdmin || u.IsOwner || u.IsPrimaryOwner),
		until: now.Add(personTTL),
	}
	a.people.mu.Lock()
	defer a.people.mu.Unlock()
	if a.people.m == nil {
		a.people.m = make(map[string]person)
	}
	if len(a.people.m) >= maxPeople {
		for k, v := range a.people.m {
			if !now.Before(v.until) {
				delete(a.people.m, k)
			}
		}
		if len(a.people.m) >= maxPeople {
			clear(a.people.m)
		}
	}
	a.people.m[user] = p
	return p, nil
}

// IsAdmin implements bots.AdminLookup: user is an admin or owner of
// workspace by users.info (needs the users:read scope). A guest from
// another organization is an admin of theirs, not of this one.
func (a *Adapter) IsAdmin(ctx context.Context, workspace, user string) (bool, error) {
	p, err := a.person(ctx, user)
	if err != nil {
		return false, fmt.Errorf("slack: is %s an admin: %w", user, err)
	}
	return p.admin && (p.team == workspace || slices.Contains(p.teams, workspace)), nil
}

// AdminTitle implements bots.AdminLookup.
func (a *Adapter) AdminTitle() string { return "the workspace's admins and owners" }

// userTeam returns the team user belongs to, for a slash command (whose
// payload names only the workspace it was typed in): bots.UnknownTeam when
// users.info cannot say.
func (a *Adapter) userTeam(ctx context.Context, workspace, user string) string {
	p, err := a.person(ctx, user)
	if err != nil {
		a.log.Warn("slack: cannot learn the caller's team (does the app have users:read?)", "user", user, "err", err)
		return bots.UnknownTeam
	}
	if p.team == workspace || slices.Contains(p.teams, workspace) {
		return ""
	}
	return p.team
}
