package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/cmd/parley/config"
	"github.com/parleyhq/parley/llm"
)

// shutdownTimeout bounds the HTTP server's graceful shutdown.
const shutdownTimeout = 10 * time.Second

// runBot runs the bot: the engine, the HTTP server and the configured chat
// platforms, until ctx ends or one of them fails.
func (m *Main) runBot(ctx context.Context) error {
	cfg, err := m.loadConfig(ctx, config.ForBot)
	if err != nil {
		return err
	}
	log := newLogger(m.Stderr, cfg.Log)
	engine, client, err := m.newEngine(ctx, cfg, log)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})

	platforms, err := m.platforms(cfg, engine, mux, log)
	if err != nil {
		return err
	}

	// Listen before starting anything, so that a taken port is reported
	// as a configuration problem, before any platform connects.
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return engine.Run(ctx) })
	g.Go(func() error { return client.Run(ctx) }) // keeps the model catalog fresh
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	select {
	case <-engine.Started():
	case <-ctx.Done():
	}
	for _, p := range platforms {
		g.Go(func() error {
			if err := p.run(ctx); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			return nil
		})
	}
	log.Info("parley is running", "version", Version(), "http", ln.Addr().String(), "model", cfg.LLM.Model)
	err = g.Wait()
	log.Info("parley stopped")
	return err
}

// newEngine opens the store and builds the LLM client and the engine.
func (m *Main) newEngine(ctx context.Context, cfg *config.Config, log *slog.Logger) (*bots.Engine, *llm.Client, error) {
	if err := m.openStore(ctx, cfg.Store, log); err != nil {
		return nil, nil, err
	}
	client, err := llm.New(llm.Config{
		BaseURL:           cfg.LLM.BaseURL,
		APIKey:            cfg.LLM.APIKey.Reveal(),
		FirstTokenTimeout: cfg.LLM.FirstTokenTimeout,
		IdleTimeout:       cfg.LLM.IdleTimeout,
		ModelIdleTimeouts: cfg.LLM.ModelTimeoutMap(),
		Models:            cfg.LLM.Models,
		DefaultModel:      cfg.LLM.Model,
		Logger:            log,
	})
	if err != nil {
		return nil, nil, err
	}
	engine := bots.New(bots.Config{
		DefaultModel:  cfg.LLM.Model,
		SystemPrompt:  cfg.LLM.SystemPrompt,
		ContextTokens: cfg.LLM.ContextTokens,
		MaxConcurrent: cfg.Engine.MaxConcurrent,
		StopEmoji:     cfg.Engine.StopEmoji,
		Logger:        log,
	}, m.store, client)
	return engine, client, nil
}

// platform is a chat platform's adapter as runBot runs it.
type platform struct {
	name string
	run  func(ctx context.Context) error // runs until ctx ends
}

// platforms builds the adapters of the configured chat platforms. An
// adapter serving HTTP (Slack's events mode) registers on mux.
func (m *Main) platforms(cfg *config.Config, engine *bots.Engine, mux *http.ServeMux, log *slog.Logger) ([]platform, error) {
	var ps []platform
	if cfg.Slack.Enabled() {
		// Wire adapters/slack here: build it from cfg.Slack (tokens via
		// Reveal), engine and log; in HTTP events mode
		// (!cfg.Slack.SocketMode()) mount its handler on mux.
		return nil, errors.New("slack: this build of parley has no Slack adapter yet")
	}
	if cfg.Discord.Enabled() {
		// Wire adapters/discord here: build it from cfg.Discord, engine and log.
		return nil, errors.New("discord: this build of parley has no Discord adapter yet")
	}
	return ps, nil
}
