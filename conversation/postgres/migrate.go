package postgres

import (
	"context"
	"embed"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleyhq/parley/conversation/schema"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrate brings the database to the newest version of ms in one
// transaction: a failure leaves it as it was. Replicas starting at once
// queue on an advisory lock, so one migrates and the others find it done.
func migrate(ctx context.Context, pool *pgxpool.Pool, ms []schema.Migration, now time.Time) error {
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
		pending, err := schema.Pending(ms, current)
		if err != nil {
			return err
		}
		for _, m := range pending {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migrate: %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.Version, m.Name, now); err != nil {
				return fmt.Errorf("migrate: %s: %w", m.Name, err)
			}
		}
		return nil
	})
}
