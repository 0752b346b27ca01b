package slacktest

// User is a person as users.info describes them.
type User struct {
	ID     string
	TeamID string // their own team; default Config.TeamID (another one: a Slack Connect guest)
	// Admin, Owner and PrimaryOwner are Slack's workspace roles.
	Admin, Owner, PrimaryOwner bool
	Deleted                    bool
}

// AddUser makes users.info describe u. A user id never added is a plain
// member of Config.TeamID, so that tests need not list everyone who
// writes.
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.TeamID == "" {
		u.TeamID = s.cfg.TeamID
	}
	if s.users == nil {
		s.users = make(map[string]User)
	}
	s.users[u.ID] = u
}

// userInfoLocked answers users.info. s.mu is held.
func (s *Server) userInfoLocked(id string) (map[string]any, apiError) {
	if id == "" {
		return nil, "user_not_found"
	}
	u, ok := s.users[id]
	if !ok {
		u = User{ID: id, TeamID: s.cfg.TeamID}
	}
	return map[string]any{"user": map[string]any{
		"id": u.ID, "team_id": u.TeamID, "name": u.ID, "deleted": u.Deleted,
		"is_admin": u.Admin, "is_owner": u.Owner, "is_primary_owner": u.PrimaryOwner,
		"is_bot": false, "profile": map[string]any{"team": u.TeamID},
	}}, ""
}
