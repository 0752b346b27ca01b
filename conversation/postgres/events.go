package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// MarkEvent records that a platform event id was seen and reports whether
// this is the first time within ttl. A record lasts ttl from when it was
// first seen; expired records are removed. Of replicas marking one event
// at once, exactly one is told it is the first.
func (s *Store) MarkEvent(ctx context.Context, platform, workspace, eventID string, ttl time.Duration) (bool, error) {
	now := s.timestamp()
	if _, err := s.pool.Exec(ctx, `DELETE FROM events WHERE expires_at <= $1`, now); err != nil {
		return false, fmt.Errorf("postgres: mark event %s in %s/%s: %w", eventID, platform, workspace, err)
	}
	// An expired record that another replica has not removed yet counts as
	// unseen: the upsert takes it over.
	var first bool
	err := s.pool.QueryRow(ctx, `INSERT INTO events (platform, workspace, event_id, expires_at)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (platform, workspace, event_id) DO UPDATE SET expires_at = EXCLUDED.expires_at
			WHERE events.expires_at <= $5
		RETURNING true`, platform, workspace, eventID, now.Add(ttl), now).Scan(&first)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("postgres: mark event %s in %s/%s: %w", eventID, platform, workspace, err)
	}
	return first, nil
}
