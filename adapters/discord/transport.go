package discord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/parleyhq/parley/bots"
)

// transport is the session's HTTP round tripper. discordgo computes its
// endpoints as package variables at start (https://discord.com/api/v9/...),
// so rather than reassigning them, every REST request is mapped here onto
// Options.APIURL, gateway discovery included. It also paces requests to
// Discord's rate-limit headers (see limiter) and hides those headers from
// discordgo, whose own bucket would otherwise sleep without a context.
type transport struct {
	base    http.RoundTripper
	api     *url.URL
	limiter *limiter
}

// apiPrefix matches discordgo's API root, whatever version it names.
var apiPrefix = regexp.MustCompile(`^/api/v[0-9]+/`)

// rel returns the path of a discordgo URL relative to the API root, and
// whether it is a Discord API URL at all.
func rel(u *url.URL) (string, bool) {
	if u.Host != "discord.com" {
		return "", false
	}
	loc := apiPrefix.FindStringIndex(u.Path)
	if loc == nil {
		return "", false
	}
	return u.Path[loc[1]:], true
}

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	path, ok := rel(req.URL)
	if !ok {
		return t.base.RoundTrip(req)
	}
	ctx := req.Context()
	c := callFrom(ctx)
	tk := c.take()
	if tk == nil {
		var err error
		if tk, err = t.limiter.acquire(ctx, req.Method, path); err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
	}

	out := req.Clone(ctx)
	u := *t.api
	u.Path = strings.TrimSuffix(t.api.Path, "/") + "/" + path
	u.RawPath = ""
	u.RawQuery = req.URL.RawQuery
	out.URL = &u
	out.Host = ""

	resp, err := t.base.RoundTrip(out)
	if err != nil {
		t.limiter.cancel(tk)
		return nil, err
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		lim := t.limiter.observe(tk, resp.StatusCode, resp.Header, body)
		if rerr != nil {
			body = nil
		}
		c.limitedBy(lim)
		// discordgo reads the wait from the JSON body only and fails on a
		// body that is not JSON (a proxy's HTML page): give it one.
		norm, _ := json.Marshal(map[string]any{
			"message":     "You are being rate limited.",
			"retry_after": lim.retryAfter.Seconds(),
			"global":      lim.global,
		})
		resp.Body = io.NopCloser(bytes.NewReader(norm))
		resp.ContentLength = int64(len(norm))
		resp.Header.Set("Content-Length", strconv.Itoa(len(norm)))
		resp.Header.Set("Content-Type", "application/json")
	} else {
		t.limiter.observe(tk, resp.StatusCode, resp.Header, nil)
	}
	for k := range resp.Header {
		if strings.HasPrefix(strings.ToLower(k), "x-ratelimit-") {
			resp.Header.Del(k)
		}
	}
	return resp, nil
}

// call carries one REST call's reservation and outcome between the
// adapter and the transport, through the request's context.
type call struct {
	mu     sync.Mutex
	ticket *ticket
	lim    *limited
}

type callKey struct{}

func withCall(ctx context.Context, c *call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

func callFrom(ctx context.Context) *call {
	c, _ := ctx.Value(callKey{}).(*call)
	return c
}

// take hands the reservation made before the call to its first request;
// a retried request reserves again.
func (c *call) take() *ticket {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.ticket
	c.ticket = nil
	return t
}

func (c *call) limitedBy(l *limited) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.lim = l
	c.mu.Unlock()
}

func (c *call) limited() *limited {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lim
}

// secretPath matches the token of webhook and interaction URLs.
var secretPath = regexp.MustCompile(`(/(?:webhooks|interactions)/[0-9]+/)[^/?]+`)

// redact removes interaction and webhook tokens from an error's text: a
// *url.Error names the URL, and discordgo's errors may too.
func redact(err error) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return &redacted{msg: fmt.Sprintf("%s %s: %v", ue.Op, redactURL(ue.URL), ue.Err), err: ue.Err}
	}
	if s := err.Error(); redactURL(s) != s {
		return &redacted{msg: redactURL(s), err: errors.Unwrap(err)}
	}
	return err
}

func redactURL(s string) string { return bots.Redact(secretPath.ReplaceAllString(s, "${1}***")) }

// redacted is an error whose text hides a token; it unwraps to the cause.
type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }
