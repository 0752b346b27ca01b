// Package postgres is the conversation.Store on PostgreSQL, for running
// several Parley replicas on one database
// (DATABASE_URL=postgres://user:password@host:5432/parley).
//
// Every write is one statement or one short transaction whose uniqueness
// is kept by the database (unique constraints with ON CONFLICT), so
// replicas need no other coordination.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/conversation/schema"
)

// Options configures a Store. The zero value is ready to use.
type Options struct {
	// Now is the clock for the times the store records; default time.Now.
	// Replica leases (Heartbeat) are timed by the database's clock
	// instead, so that the replicas' clocks need not agree.
	Now func() time.Time
}

// Store is a conversation.Store on PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

var _ conversation.Store = (*Store)(nil)

// Open connects to the PostgreSQL database at url and brings its schema up
// to date; replicas starting together take turns (an advisory lock). The
// url is a postgres:// URL or a key=value string as libpq takes them, with
// pgxpool's settings such as pool_max_conns; search_path picks the schema.
//
// A database written by a newer Parley is refused with an error wrapping
// conversation.ErrNewerSchema.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	return open(ctx, url, opts, migrationFiles)
}

// open is Open with the migrations read from fsys.
func open(ctx context.Context, url string, opts Options, fsys fs.FS) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error may quote the url, password and all: leave it out.
		return nil, errors.New("postgres: the database url is malformed; want postgres://user:password@host:5432/dbname")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	s := &Store{pool: pool, now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: cannot connect; check the database url and that the server is up: %w", err)
	}
	ms, err := schema.Load(fsys)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := migrate(ctx, pool, ms, s.timestamp()); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	return s, nil
}

// Close releases the store's connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// timestamp returns the store's clock, at the precision PostgreSQL keeps.
func (s *Store) timestamp() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// pgCode returns the SQLSTATE of err, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// SQLSTATEs the store recognizes.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
	codeInvalidSchemaName   = "3F000"
)
