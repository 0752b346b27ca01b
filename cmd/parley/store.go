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
	return m.openStoreFor(ctx, cfg, log, false)
}

// openStoreFor is openStore; with bot, an SQLite file is held for this
// process alone: a second bot on it is refused, and whatever an earlier
// process left on it is this one's to take over at once.
func (m *Main) openStoreFor(ctx context.Context, cfg config.Store, log *slog.Logger, bot bool) error {
	switch cfg.Driver {
	case config.SQLite:
		s, err := sqlite.Open(ctx, cfg.Path, sqlite.Options{Exclusive: bot})
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
