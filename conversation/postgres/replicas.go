package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Heartbeat records that replica owner is alive until ttl from now,
// removes the replicas whose lease has lapsed, and returns the owners
// alive now, owner among them, sorted by their bytes. Now is the
// database's now(), never the replica's clock (nor Options.Now), so that
// replicas whose clocks disagree still agree on who is alive. It returns
// an error when owner is empty or ttl is not positive.
//
// Of replicas beating at once none waits for another but to renew its own
// row: each writes its own lease first, then removes only the lapsed rows
// no other transaction holds (SKIP LOCKED). A held lapsed row is being
// renewed by its owner or removed by another replica, and either way is
// not this heartbeat's to remove; waiting for it instead could deadlock
// two replicas each holding its own row and wanting the other's.
func (s *Store) Heartbeat(ctx context.Context, owner string, ttl time.Duration) ([]string, error) {
	if owner == "" {
		return nil, errors.New("postgres: heartbeat: the owner is empty; name the replica, as it claims conversations")
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("postgres: heartbeat of %s: ttl %v is not positive", owner, ttl)
	}
	var live []string
	// now() is the start of the transaction: its three statements judge
	// by one instant of the database's clock.
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO replicas (owner, expires_at) VALUES ($1, now() + $2::interval)
			ON CONFLICT (owner) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
			owner, leaseTTL(ttl)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM replicas WHERE owner IN (
			SELECT owner FROM replicas WHERE expires_at <= now() FOR UPDATE SKIP LOCKED)`); err != nil {
			return err
		}
		// A lapsed row skipped above is left out here all the same. COLLATE
		// "C" sorts by bytes, whatever the database's collation.
		rows, err := tx.Query(ctx, `SELECT owner FROM replicas WHERE expires_at > now() ORDER BY owner COLLATE "C"`)
		if err != nil {
			return err
		}
		live, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: heartbeat of %s: %w", owner, err)
	}
	return live, nil
}

// Leave ends owner's lease at once; leaving without a lease is not an
// error.
func (s *Store) Leave(ctx context.Context, owner string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM replicas WHERE owner = $1`, owner); err != nil {
		return fmt.Errorf("postgres: leave %s: %w", owner, err)
	}
	return nil
}

// leaseTTL returns ttl rounded up to the microsecond, PostgreSQL's
// precision: a positive ttl never makes a lease that has lapsed as it is
// written.
func leaseTTL(ttl time.Duration) time.Duration {
	if r := ttl % time.Microsecond; r != 0 {
		ttl += time.Microsecond - r
	}
	return ttl
}
