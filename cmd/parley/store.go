package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/parleyhq/parley/cmd/parley/config"
	"github.com/parleyhq/parley/conversation/postgres"
	"github.com/parleyhq/parley/conversation/sqlite"
)

// openStore opens the database cfg names, applying its migrations, and
// keeps it for Close.
func (m *Main) openStore(ctx context.Context, cfg config.Store, log *slog.Logger) error {
	switch cfg.Driver {
	case config.SQLite:
		s, err := sqlite.Open(ctx, cfg.Path, sqlite.Options{})
		if err != nil {
			return err
		}
		m.store = s
	case config.Postgres:
		s, err := postgres.Open(ctx, cfg.URL.Reveal(), postgres.Options{})
		if err != nil {
			return err
		}
		m.store = s
	default:
		return fmt.Errorf("DATABASE_URL: unknown driver %q", cfg.Driver)
	}
	log.Debug("store open", "driver", cfg.Driver, "database", cfg.Redacted())
	return nil
}
