package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"time"

	"github.com/parleyhq/parley/conversation/schema"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrate brings the database to the newest version of ms in one
// transaction: a failure leaves it as it was.
func migrate(ctx context.Context, db *sql.DB, ms []schema.Migration, now time.Time) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	pending, err := schema.Pending(ms, current)
	if err != nil {
		return err
	}
	if len(pending) == 0 {
		// Write something all the same, so that a database the process
		// cannot write fails here, at Open, rather than at the first message.
		if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET applied_at = applied_at WHERE version = ?`, current); err != nil {
			return err
		}
		return tx.Commit()
	}
	for _, m := range pending {
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("migrate: %s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, micros(now)); err != nil {
			return fmt.Errorf("migrate: %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}
