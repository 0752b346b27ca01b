package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// MarkEvent records that a platform event id was seen and reports whether
// this is the first time within ttl. A record lasts ttl from when it was
// first seen; expired records are removed.
func (s *Store) MarkEvent(ctx context.Context, platform, workspace, eventID string, ttl time.Duration) (bool, error) {
	now := s.timestamp()
	var first bool
	err := s.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM events WHERE expires_at <= ?`, micros(now)); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO events (platform, workspace, event_id, expires_at)
			VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, platform, workspace, eventID, micros(now.Add(ttl)))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		first = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: mark event %s in %s/%s: %w", eventID, platform, workspace, err)
	}
	return first, nil
}
