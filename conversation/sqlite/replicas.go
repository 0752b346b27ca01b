package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Heartbeat records that process owner is alive until ttl from now by the
// store's clock, removes the processes whose lease has lapsed, and returns
// the owners alive now, owner among them, sorted by their bytes. The
// store's clock is the database's: every process on one file runs on one
// host, as WAL's shared memory requires. It returns an error when owner is
// empty or ttl is not positive.
func (s *Store) Heartbeat(ctx context.Context, owner string, ttl time.Duration) ([]string, error) {
	if owner == "" {
		return nil, errors.New("sqlite: heartbeat: the owner is empty; name the process, as it claims conversations")
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("sqlite: heartbeat of %s: ttl %v is not positive", owner, ttl)
	}
	var live []string
	err := s.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// Read the clock once the write lock is held: time spent waiting
		// for another process must not shorten the lease.
		now := micros(s.timestamp())
		if _, err := tx.ExecContext(ctx, `INSERT INTO replicas (owner, expires_at) VALUES (?, ?)
			ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at`,
			owner, now+leaseMicros(ttl)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM replicas WHERE expires_at <= ?`, now); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT owner FROM replicas ORDER BY owner`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var o string
			if err := rows.Scan(&o); err != nil {
				return err
			}
			live = append(live, o)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: heartbeat of %s: %w", owner, err)
	}
	return live, nil
}

// Leave ends owner's lease at once; leaving without a lease is not an
// error.
func (s *Store) Leave(ctx context.Context, owner string) error {
	if _, err := s.write.ExecContext(ctx, `DELETE FROM replicas WHERE owner = ?`, owner); err != nil {
		return fmt.Errorf("sqlite: leave %s: %w", owner, err)
	}
	return nil
}

// leaseMicros returns ttl in whole microseconds, rounded up: a positive
// ttl never makes a lease that has lapsed as it is written.
func leaseMicros(ttl time.Duration) int64 {
	us := int64(ttl / time.Microsecond)
	if ttl%time.Microsecond != 0 {
		us++
	}
	return us
}
