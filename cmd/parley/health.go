package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/parleyhq/parley/cmd/parley/config"
	"github.com/parleyhq/parley/llm"
)

// healthTimeout bounds `parley health`: a Docker HEALTHCHECK gives it 5 s.
const healthTimeout = 4 * time.Second

// runHealth is `parley health`: it asks the /healthz of the instance
// listening on HTTP_ADDR on this host and succeeds when it answers 200. It
// is the container's HEALTHCHECK (distroless has no curl).
func (m *Main) runHealth(ctx context.Context) error {
	cfg, err := m.loadConfig(ctx, config.ForInspect)
	if err != nil {
		return err
	}
	u, err := healthURL(cfg.HTTP.Addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: no answer from %s: %w", u, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s answered %s", u, resp.Status)
	}
	_, err = fmt.Fprintln(m.Stdout, "ok")
	return err
}

// healthURL is the /healthz URL of a server listening on addr (HTTP_ADDR)
// on this host: an address for all interfaces is asked on loopback.
func healthURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("HTTP_ADDR: %w", err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}

// checkLLM checks the LLM endpoint once, at start, and logs what it found,
// naming the variable to fix. Parley starts all the same: the endpoint may
// come back, the client keeps trying it, and /readyz reports it meanwhile.
// starting ends the message: what happens next.
func checkLLM(ctx context.Context, client *llm.Client, cfg config.LLM, log *slog.Logger, starting string) {
	err := client.Check(ctx)
	if ctx.Err() != nil {
		return
	}
	if err == nil {
		models, _ := client.Models(ctx)
		log.Info("LLM endpoint answers", "url", redactedURL(cfg.BaseURL), "models", len(models))
		return
	}
	switch {
	case errors.Is(err, llm.ErrEndpointNotFound):
		log.Error("LLM_BASE_URL: "+err.Error()+starting, "variable", "LLM_BASE_URL")
	case errors.Is(err, llm.ErrUnauthorized):
		log.Error("LLM_API_KEY: "+err.Error()+starting, "variable", "LLM_API_KEY")
	case errors.Is(err, llm.ErrUnreachable):
		log.Warn("LLM_BASE_URL: "+err.Error()+starting, "variable", "LLM_BASE_URL")
	default:
		log.Warn("LLM endpoint check: "+err.Error()+starting, "variable", "LLM_BASE_URL")
	}
}

// redactedURL is raw without userinfo or query (either may hold a key),
// for logs.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}
