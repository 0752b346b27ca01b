package postgres

import (
	"slices"
	"testing"
	"time"
)

// TestHeartbeatIgnoresReplicaClock runs two replicas whose clocks are two
// hours apart on one database: leases are timed by the database's clock,
// so each sees the other alive.
func TestHeartbeatIgnoresReplicaClock(t *testing.T) {
	u := freshURL(t)
	behind := openWith(t, u, Options{Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	ahead := openWith(t, u, Options{Now: func() time.Time { return time.Now().Add(time.Hour) }})
	if _, err := behind.Heartbeat(t.Context(), "replica-behind", time.Minute); err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	live, err := ahead.Heartbeat(t.Context(), "replica-ahead", time.Minute)
	if err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	if want := []string{"replica-ahead", "replica-behind"}; !slices.Equal(live, want) {
		t.Errorf("alive, seen by the replica an hour ahead: got %q, want %q", live, want)
	}
	live, err = behind.Heartbeat(t.Context(), "replica-behind", time.Minute)
	if err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	if want := []string{"replica-ahead", "replica-behind"}; !slices.Equal(live, want) {
		t.Errorf("alive, seen by the replica an hour behind: got %q, want %q", live, want)
	}
	// The lease runs a minute from the database's now, whatever the
	// replica's clock says.
	var left time.Duration
	if err := behind.pool.QueryRow(t.Context(), `SELECT expires_at - now() FROM replicas WHERE owner = 'replica-behind'`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left <= 0 || left > time.Minute {
		t.Errorf("lease of a minute by the database's clock: %v left, want within a minute", left)
	}
}
