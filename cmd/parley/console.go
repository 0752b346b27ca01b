package main

import (
	"context"
	"log/slog"

	"golang.org/x/sync/errgroup"

	"github.com/parleyhq/parley/adapters/console"
	"github.com/parleyhq/parley/cmd/parley/config"
)

// runConsole chats in the terminal through the engine, with the bot's store
// and LLM settings, until the end of input or ctx ends.
func (m *Main) runConsole(ctx context.Context) error {
	cfg, err := m.loadConfig(ctx, config.ForConsole)
	if err != nil {
		return err
	}
	// The terminal is the chat: logs below warnings would clutter it.
	logCfg := cfg.Log
	if logCfg.Level > slog.LevelDebug {
		logCfg.Level = max(logCfg.Level, slog.LevelWarn)
	}
	log := newLogger(m.Stderr, logCfg)
	engine, _, err := m.newEngine(ctx, cfg, log, false)
	if err != nil {
		return err
	}
	term := console.New(console.Config{
		In:          m.Stdin,
		Out:         m.Stdout,
		User:        m.User,
		Interactive: m.Interactive,
	})

	runCtx, stop := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(runCtx)
	g.Go(func() error { return engine.Run(gctx) })
	g.Go(func() error {
		// The chat ends the engine when input ends.
		defer stop()
		select {
		case <-engine.Started():
		case <-gctx.Done():
			return nil
		}
		return term.Run(gctx, engine)
	})
	return g.Wait()
}
