package botstest

import (
	"context"
	"sync"

	"github.com/parleyhq/parley/bots"
)

var _ bots.AdminLookup = (*Admins)(nil)

// Admins is a fake platform that knows its workspaces' admins: a Platform
// that also implements bots.AdminLookup. Nobody is an admin until SetAdmin
// says so.
type Admins struct {
	*Platform
	mu      sync.Mutex
	admins  map[string]bool // workspace/user
	lookups int
	err     error
}

// NewAdmins returns a fake platform like New that answers admin lookups.
func NewAdmins(name string, e Enforced) *Admins {
	return &Admins{Platform: New(name, e), admins: make(map[string]bool)}
}

// SetAdmin makes user an admin of workspace, or not.
func (a *Admins) SetAdmin(workspace, user string, admin bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.admins[workspace+"/"+user] = admin
}

// FailLookups makes IsAdmin fail with err (nil: answer again).
func (a *Admins) FailLookups(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.err = err
}

// Lookups counts the IsAdmin calls.
func (a *Admins) Lookups() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lookups
}

// IsAdmin implements bots.AdminLookup.
func (a *Admins) IsAdmin(ctx context.Context, workspace, user string) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lookups++
	if a.err != nil {
		return false, a.err
	}
	return a.admins[workspace+"/"+user], nil
}

// AdminTitle implements bots.AdminLookup.
func (a *Admins) AdminTitle() string { return "the fake workspace's admins" }
