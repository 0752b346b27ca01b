package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleyhq/parley/conversation"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one file of migrations/: NNNN_name.sql brings the schema to
// version NNNN.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads migrations/*.sql from fsys. Versions must run 1, 2,
// 3, ... without gaps, so that the database's version says what it holds.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration // fs.Glob returns names sorted
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || len(num) != 4 {
			return nil, fmt.Errorf("postgres: migration %s: name is not NNNN_name.sql", base)
		}
		if v != len(ms)+1 {
			return nil, fmt.Errorf("postgres: migration %s: version %d, want %d", base, v, len(ms)+1)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("postgres: no migrations")
	}
	return ms, nil
}

// migrate brings the database to the newest version of ms in one
// transaction: a failure leaves it as it was. Replicas starting at once
// queue on an advisory lock, so one migrates and the others find it done.
func migrate(ctx context.Context, pool *pgxpool.Pool, ms []migration, now time.Time) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// The lock is per schema, so databases and schemas migrate
		// independently; it is released at commit or rollback.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('parley.migrate.' || COALESCE(current_schema(), ''), 0))`); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL
		)`); err != nil {
			if pgCode(err) == codeInvalidSchemaName {
				return fmt.Errorf("migrate: no schema to create tables in; check the search_path of the database url: %w", err)
			}
			return fmt.Errorf("migrate: %w", err)
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&current); err != nil {
			return fmt.Errorf("migrate: read schema version: %w", err)
		}
		latest := ms[len(ms)-1].version
		if current > latest {
			return fmt.Errorf("database schema version %d, this build knows versions up to %d; run a newer parley, or restore a backup taken before the upgrade: %w",
				current, latest, conversation.ErrNewerSchema)
		}
		for _, m := range ms[current:] {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migrate: %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.version, m.name, now); err != nil {
				return fmt.Errorf("migrate: %s: %w", m.name, err)
			}
		}
		return nil
	})
}
