package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/parleyhq/parley/adapters/discord"
	"github.com/parleyhq/parley/adapters/slack"
	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/bots/media"
	"github.com/parleyhq/parley/cmd/parley/config"
	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/llm"
)

// readyz answers 200 when the store answers and every platform is
// connected, else 503 naming what is not. The LLM endpoint counts in two
// ways: one that refuses the key or is not found where LLM_BASE_URL says
// (a setting to fix, which a rollout should not spread) makes it 503; one
// that is down or failing is named in a 200 "degraded" answer, since
// Parley still tells people so and a pod that waits for it would hold back
// the Discord shards after it (OrderedReady) for nothing.
func (m *Main) readyz(platforms []platform, client *llm.Client) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		var problems []string
		_, err := m.store.FindConversation(ctx, conversation.Key{Platform: "readyz"})
		if err != nil && !errors.Is(err, conversation.ErrNotFound) {
			problems = append(problems, "store unreachable")
		}
		var degraded string
		if err := client.Health(); errors.Is(err, llm.ErrEndpointNotFound) || errors.Is(err, llm.ErrUnauthorized) {
			problems = append(problems, "LLM endpoint: "+err.Error())
		} else if err != nil {
			degraded = "LLM endpoint: " + err.Error()
		}
		for _, p := range platforms {
			if !p.ready() {
				problems = append(problems, p.name+" not connected")
			}
		}
		if degraded != "" && len(problems) > 0 {
			problems = append(problems, degraded)
		}
		if len(problems) > 0 {
			http.Error(w, strings.Join(problems, "; "), http.StatusServiceUnavailable)
			return
		}
		if degraded != "" {
			w.Write([]byte("degraded: " + degraded + "\n"))
			return
		}
		w.Write([]byte("ok\n"))
	}
}

// runBot runs the bot: the engine, the HTTP servers and the configured
// chat platforms, until ctx ends or one of them fails.
func (m *Main) runBot(ctx context.Context) error {
	cfg, err := m.loadConfig(ctx, config.ForBot)
	if err != nil {
		return err
	}
	log := newLogger(m.Stderr, cfg.Log)
	m.metrics = newMetrics()
	engine, client, err := m.newEngine(ctx, cfg, log, true, "; Parley starts anyway, keeps trying, and /readyz names it")
	if err != nil {
		return err
	}

	healthz := route{pattern: "GET /healthz", maxHeader: opsMaxHeader, handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})}
	// The public routes: Slack's (HTTP events mode) and /healthz, for a
	// load balancer's checks.
	public := []route{healthz}
	platforms, err := m.platforms(cfg, engine, &public, log)
	if err != nil {
		return err
	}
	var names []string
	native, prepares := map[string]bool{}, map[string]bool{}
	for _, p := range platforms {
		names = append(names, p.name)
		_, native[p.name] = p.adapter.(bots.Streamer)
		_, prepares[p.name] = p.adapter.(bots.Preparer)
		m.metrics.watchPlatform(p.name, p.ready)
	}
	m.metrics.preset(names, native, prepares, cfg.LLM.Model)
	m.metrics.watchLLM(client.Health)
	ops := []route{
		healthz,
		{pattern: "GET /readyz", maxHeader: opsMaxHeader, handler: m.readyz(platforms, client)},
		{pattern: "GET /metrics", maxHeader: opsMaxHeader, handler: m.metrics.handler()},
	}
	servers, err := listenHTTP(cfg.HTTP, public, ops, log)
	if err != nil {
		return err
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return engine.Run(ctx) })
	g.Go(func() error { return client.Run(ctx) }) // keeps the model catalog fresh
	for _, s := range servers {
		s.run(ctx, g)
	}
	g.Go(func() error { return m.runServers(ctx) })
	select {
	case <-engine.Started():
	case <-ctx.Done():
	}
	m.awaitServers(ctx, log)
	for _, p := range platforms {
		g.Go(func() error {
			// Correct the answers a previous run left streaming, then
			// take events.
			if err := engine.Recover(ctx, p.adapter); err != nil {
				log.Warn("recover interrupted answers", "platform", p.name, "err", err)
			}
			if err := p.run(ctx); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			return nil
		})
	}
	// "running" means the platforms took the credentials: a refused token
	// ends Run with the error, and this line never shows.
	for _, p := range platforms {
		select {
		case <-p.authenticated:
		case <-ctx.Done():
			return g.Wait()
		}
	}
	log.Info("parley is running", "version", Version(), "http", servers[0].ln.Addr().String(), "ops", servers[len(servers)-1].ln.Addr().String(), "model", cfg.LLM.Model)
	err = g.Wait()
	log.Info("parley stopped")
	return err
}

// newEngine opens the store and builds the LLM client, which it checks,
// and the engine. bot says that it is the bot's (see openStoreFor), not
// the console's; starting ends the message of a failed check: what
// happens next.
func (m *Main) newEngine(ctx context.Context, cfg *config.Config, log *slog.Logger, bot bool, starting string) (*bots.Engine, *llm.Client, error) {
	if err := m.openStoreFor(ctx, cfg.Store, log, bot); err != nil {
		return nil, nil, err
	}
	var onError, onRetry func(string)
	if m.metrics != nil {
		onError, onRetry = m.metrics.LLMError, m.metrics.LLMRetry
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
		OnError:           onError,
		OnRetry:           onRetry,
	})
	if err != nil {
		return nil, nil, err
	}
	checkLLM(ctx, client, cfg.LLM, log, starting)
	servers, loop, err := m.newTools(cfg.Tools, log)
	if err != nil {
		return nil, nil, err
	}
	m.servers = servers
	var obs bots.Observer
	if m.metrics != nil {
		obs = m.metrics
	}
	engine := bots.New(bots.Config{
		DefaultModel:  cfg.LLM.Model,
		SystemPrompt:  cfg.LLM.SystemPrompt,
		ContextTokens: cfg.LLM.ContextTokens,
		MaxConcurrent: cfg.Engine.MaxConcurrent,
		StopEmoji:     cfg.Engine.StopEmoji,
		ShutdownGrace: cfg.Engine.ShutdownGrace,
		Recovery:      bots.RecoveryMode(cfg.Engine.RecoveryMode),
		// The bot holds an SQLite file for itself (openStore), so every
		// other instance's work on it is a dead one's.
		Alone:        bot && cfg.Store.Driver == config.SQLite,
		Observer:     obs,
		Media:        media.New(media.Config{MaxBytes: cfg.Engine.MediaMaxBytes, AllowPrivate: cfg.Engine.MediaAllowPrivate}),
		VisionModels: cfg.LLM.VisionModels,
		Access: bots.Access{
			Workspaces: cfg.Engine.AllowWorkspaces, Channels: cfg.Engine.AllowChannels,
			Users: cfg.Engine.AllowUsers, Roles: cfg.Engine.AllowRoles, Refusal: cfg.Engine.Refusal,
			Admins: cfg.Engine.Admins,
		},
		UserRate:        userRate(cfg.Engine.UserRateN, cfg.Engine.UserRatePer),
		DailyTokens:     cfg.Engine.DailyTokens,
		Tools:           loop,
		ApprovalTimeout: cfg.Tools.ApprovalTimeout,
		Logger:          log,
	}, m.store, client)
	return engine, client, nil
}

// userRate is PARLEY_USER_RATE as the engine takes it: n requests in any
// window of per.
func userRate(n int, per time.Duration) bots.Rate {
	if n <= 0 || per <= 0 {
		return bots.Rate{}
	}
	return bots.Rate{Every: per / time.Duration(n), Burst: n}
}

// platform is a chat platform's adapter as runBot runs it.
type platform struct {
	name    string
	adapter bots.Platform
	run     func(ctx context.Context) error // runs until ctx ends
	ready   func() bool                     // connected, for /readyz
	// authenticated is closed once the platform accepted the
	// credentials (Slack's auth.test and Socket Mode connection,
	// Discord's IDENTIFY).
	authenticated <-chan struct{}
}

// platforms builds the adapters of the configured chat platforms. An
// adapter serving HTTP (Slack's events mode) adds its routes to public.
func (m *Main) platforms(cfg *config.Config, engine *bots.Engine, public *[]route, log *slog.Logger) ([]platform, error) {
	var ps []platform
	if cfg.Slack.Enabled() {
		opts := slack.Options{
			BotToken:      cfg.Slack.BotToken.Reveal(),
			APIURL:        cfg.Slack.APIURL,
			Streaming:     cfg.Slack.Streaming,
			CommandPrefix: cfg.Slack.CommandPrefix,
		}
		if cfg.Slack.SocketMode() {
			opts.AppToken = cfg.Slack.AppToken.Reveal()
		} else {
			opts.SigningSecret = cfg.Slack.SigningSecret.Reveal()
		}
		a, err := slack.New(opts, engine, log)
		if err != nil {
			return nil, err
		}
		if !cfg.Slack.SocketMode() {
			h := a.Handler()
			*public = append(*public,
				route{pattern: "POST /slack/events", handler: h, maxHeader: slackMaxHeader, maxBody: 1 << 20},
				route{pattern: "POST /slack/commands", handler: h, maxHeader: slackMaxHeader, maxBody: 64 << 10},
				route{pattern: "POST /slack/interactions", handler: h, maxHeader: slackMaxHeader, maxBody: 1 << 20},
			)
		}
		ps = append(ps, platform{name: "slack", adapter: a, run: a.Run, ready: a.Ready, authenticated: a.Authenticated()})
	}
	if cfg.Discord.Enabled() {
		a, err := discord.New(discord.Options{
			Token:          cfg.Discord.BotToken.Reveal(),
			APIURL:         cfg.Discord.APIURL,
			GuildID:        cfg.Discord.GuildID,
			ReplyMode:      cfg.Discord.ReplyMode,
			ShardID:        cfg.Discord.ShardID,
			ShardCount:     cfg.Discord.ShardCount,
			MaxUploadBytes: cfg.Discord.MaxUpload,
			CatchUp:        cfg.Discord.CatchUp,
		}, engine, log)
		if err != nil {
			return nil, err
		}
		ps = append(ps, platform{name: "discord", adapter: a, run: a.Run, ready: a.Ready, authenticated: a.Authenticated()})
	}
	return ps, nil
}
