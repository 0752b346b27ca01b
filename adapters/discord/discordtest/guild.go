package discordtest

import (
	"strconv"
	"time"
)

// Permissions Discord grants through roles (the bits of the permissions
// field), as far as Parley reads them.
const (
	PermAdministrator = 1 << 3
	PermManageGuild   = 1 << 5 // "Manage Server"
	PermSendMessages  = 1 << 11
)

// guild is what the server keeps of its guild beyond channels: the owner
// and the roles with their permissions.
type guild struct {
	owner string
	roles []role
}

type role struct {
	id, name string
	perms    int64
}

// SetOwner makes user the owner of the server's guild.
func (s *Server) SetOwner(user User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.guild.owner = user.ID
}

// AddRole creates a role with perms in the server's guild and returns its
// id; give it to members with SetRoles. The @everyone role (the guild's
// id) may send messages and has no other permission.
func (s *Server) AddRole(name string, perms int64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := role{id: s.newID(), name: name, perms: perms}
	s.guild.roles = append(s.guild.roles, r)
	return r.id
}

// guildLocked answers GET /guilds/{id}.
func (s *Server) guildLocked(id string) (int, any) {
	if id != s.GuildID {
		return 0, &apiError{status: 404, Code: 10004, Msg: "Unknown Guild"}
	}
	owner := s.guild.owner
	if owner == "" {
		owner = s.BotID // nobody the tests write as
	}
	roles := []map[string]any{{"id": s.GuildID, "name": "@everyone", "permissions": strconv.Itoa(PermSendMessages), "position": 0}}
	for i, r := range s.guild.roles {
		roles = append(roles, map[string]any{"id": r.id, "name": r.name, "permissions": strconv.FormatInt(r.perms, 10), "position": i + 1})
	}
	return 200, map[string]any{"id": s.GuildID, "name": "Fake", "owner_id": owner, "roles": roles}
}

// memberLocked answers GET /guilds/{id}/members/{user}.
func (s *Server) memberLocked(guildID, user string) (int, any) {
	if guildID != s.GuildID {
		return 0, &apiError{status: 404, Code: 10004, Msg: "Unknown Guild"}
	}
	u, ok := s.users[user]
	if !ok {
		return 0, &apiError{status: 404, Code: 10007, Msg: "Unknown Member"}
	}
	return 200, map[string]any{"user": u, "roles": s.rolesLocked(user), "joined_at": time.Unix(1700000000, 0).UTC().Format(time.RFC3339), "deaf": false, "mute": false}
}
