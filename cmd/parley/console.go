package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"

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
	engine, _, err := m.newEngine(ctx, cfg, log, false, "; answers fail until it works")
	if err != nil {
		return err
	}
	ccfg := console.Config{
		In:          m.Stdin,
		Out:         m.Stdout,
		User:        m.User,
		Interactive: m.Interactive,
		Greeting:    "**Parley console** (model `" + cfg.LLM.Model + "`): `/help` lists the commands, `/exit` or Ctrl-D leaves, Ctrl-C stops an answer.",
	}
	if len(cfg.Engine.StopEmoji) > 0 {
		ccfg.StopEmoji = cfg.Engine.StopEmoji[0]
	}
	if m.Interactive {
		// On a terminal Ctrl-C belongs to the chat: it stops the answer
		// being written, and quits only when none is. It no longer ends
		// main's context (signal.Reset undoes main's Notify for it);
		// SIGTERM still does.
		intr := make(chan os.Signal, 1)
		signal.Reset(os.Interrupt)
		signal.Notify(intr, os.Interrupt)
		defer signal.Stop(intr)
		ccfg.Interrupt = intr
	}
	term := console.New(ccfg)

	runCtx, stop := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(runCtx)
	g.Go(func() error { return engine.Run(gctx) })
	g.Go(func() error { return m.runServers(gctx) })
	g.Go(func() error {
		// The chat ends the engine when input ends.
		defer stop()
		select {
		case <-engine.Started():
		case <-gctx.Done():
			return nil
		}
		m.awaitServers(gctx, log)
		return term.Run(gctx, engine)
	})
	return g.Wait()
}
