package discord

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/parleyhq/parley/bots"
)

var _ bots.AdminLookup = (*Adapter)(nil)

// adminTTL bounds how long a guild's roles and a member's roles, as read
// from Discord, are believed: someone who loses Manage Server loses the
// rights within this time.
const adminTTL = 5 * time.Minute

// maxAdminEntries bounds the guilds and members remembered; past it the
// expired ones go, and if none has expired, all.
const maxAdminEntries = 10000

// adminPerms are the permissions that make a member a Parley admin:
// Manage Server, or Administrator, which implies every permission.
const adminPerms = discordgo.PermissionManageGuild | discordgo.PermissionAdministrator

// guildRoles is what a guild says of its roles: its owner and each role's
// permissions (the @everyone role has the guild's id).
type guildRoles struct {
	owner string
	perms map[string]int64
	until time.Time
}

type heldRoles struct {
	roles []string
	until time.Time
}

// admins remembers guilds' and members' roles for adminTTL.
type admins struct {
	mu      sync.Mutex
	guilds  map[string]guildRoles
	members map[string]heldRoles // guild/user
}

// prune makes room in m for one more entry at now.
func prune[V any](m map[string]V, until func(V) time.Time, now time.Time) {
	if len(m) < maxAdminEntries {
		return
	}
	for k, v := range m {
		if !now.Before(until(v)) {
			delete(m, k)
		}
	}
	if len(m) >= maxAdminEntries {
		clear(m)
	}
}

// IsAdmin implements bots.AdminLookup: user owns guild, or holds a role
// with Manage Server or Administrator there (the guild's roles by GET
// /guilds/{id}, the member's by GET /guilds/{id}/members/{user}; each
// cached for adminTTL).
func (a *Adapter) IsAdmin(ctx context.Context, guild, user string) (bool, error) {
	if guild == "" || user == "" {
		return false, nil
	}
	g, err := a.guildRoles(ctx, guild)
	if err != nil {
		return false, fmt.Errorf("discord: roles of guild %s: %w", guild, err)
	}
	if user == g.owner {
		return true, nil
	}
	roles, err := a.rolesOf(ctx, guild, user)
	if err != nil {
		return false, fmt.Errorf("discord: roles of member %s: %w", user, err)
	}
	perms := g.perms[guild] // @everyone
	for _, r := range roles {
		perms |= g.perms[r]
	}
	return perms&adminPerms != 0, nil
}

// AdminTitle implements bots.AdminLookup.
func (a *Adapter) AdminTitle() string {
	return "the server's owner and the members with Manage Server"
}

func (a *Adapter) guildRoles(ctx context.Context, guild string) (guildRoles, error) {
	now := a.now()
	a.admins.mu.Lock()
	g, ok := a.admins.guilds[guild]
	a.admins.mu.Unlock()
	if ok && now.Before(g.until) {
		return g, nil
	}
	var dg *discordgo.Guild
	err := a.do(ctx, "GET", discordgo.EndpointGuild(guild), 1, func(o []discordgo.RequestOption) error {
		var err error
		dg, err = a.s.Guild(guild, o...)
		return err
	})
	if err != nil {
		return guildRoles{}, err
	}
	if dg == nil {
		return guildRoles{}, fmt.Errorf("discord: no guild %s in the answer", guild)
	}
	g = guildRoles{owner: dg.OwnerID, perms: make(map[string]int64, len(dg.Roles)), until: now.Add(adminTTL)}
	for _, r := range dg.Roles {
		if r != nil {
			g.perms[r.ID] = r.Permissions
		}
	}
	a.admins.mu.Lock()
	defer a.admins.mu.Unlock()
	if a.admins.guilds == nil {
		a.admins.guilds = make(map[string]guildRoles)
	}
	prune(a.admins.guilds, func(v guildRoles) time.Time { return v.until }, now)
	a.admins.guilds[guild] = g
	return g, nil
}

func (a *Adapter) rolesOf(ctx context.Context, guild, user string) ([]string, error) {
	now := a.now()
	key := guild + "/" + user
	a.admins.mu.Lock()
	m, ok := a.admins.members[key]
	a.admins.mu.Unlock()
	if ok && now.Before(m.until) {
		return m.roles, nil
	}
	var dm *discordgo.Member
	err := a.do(ctx, "GET", discordgo.EndpointGuildMember(guild, user), 1, func(o []discordgo.RequestOption) error {
		var err error
		dm, err = a.s.GuildMember(guild, user, o...)
		return err
	})
	if err != nil {
		return nil, err
	}
	if dm == nil {
		return nil, fmt.Errorf("discord: no member %s in the answer", user)
	}
	m = heldRoles{roles: slices.Clone(dm.Roles), until: now.Add(adminTTL)}
	a.admins.mu.Lock()
	defer a.admins.mu.Unlock()
	if a.admins.members == nil {
		a.admins.members = make(map[string]heldRoles)
	}
	prune(a.admins.members, func(v heldRoles) time.Time { return v.until }, now)
	a.admins.members[key] = m
	return m.roles, nil
}
