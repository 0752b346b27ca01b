package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/parleyhq/parley/adapters/slack/slacktest"
	"github.com/parleyhq/parley/llm/llmtest"
)

const signingSecret = "signing-secret-for-tests"

// httpBot is a running bot in Slack's HTTP events mode, against a fake
// Slack and a fake model.
type httpBot struct {
	http, ops string // base URLs
	slack     *slacktest.Server
	logs      *syncBuffer
	events    atomic.Int64
}

// startHTTPBot runs the whole bot, as `parley` runs it, with env added to
// the settings of Slack's HTTP events mode; it stops when the test ends.
func startHTTPBot(tb testing.TB, env map[string]string) *httpBot {
	tb.Helper()
	fake := slacktest.New(tb, slacktest.Config{})
	model := llmtest.NewServer()
	tb.Cleanup(model.Close)
	vars := map[string]string{
		"SLACK_BOT_TOKEN":      fake.Config().BotToken,
		"SLACK_SIGNING_SECRET": signingSecret,
		"SLACK_API_URL":        fake.APIURL,
		"LLM_BASE_URL":         model.BaseURL(),
		"LLM_API_KEY":          secretKey,
		"LLM_MODEL":            "fake-small",
		"DATABASE_URL":         "sqlite://" + filepath.Join(tb.TempDir(), "parley.db"),
		"HTTP_ADDR":            "127.0.0.1:0",
	}
	maps.Copy(vars, env)
	b := &httpBot{slack: fake, logs: &syncBuffer{}}
	m := &Main{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: b.logs, Dir: tb.TempDir(), Environ: envconfig.MapLookuper(vars)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, nil) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("parley: %v", err)
		}
		m.Close()
		if tb.Failed() {
			tb.Logf("logs:\n%s", b.logs.String())
		}
	})
	running := regexp.MustCompile(`parley is running.*http=(\S+) ops=(\S+)`)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if match := running.FindStringSubmatch(b.logs.String()); match != nil {
			b.http, b.ops = "http://"+match[1], "http://"+match[2]
			break
		}
		select {
		case err := <-done:
			tb.Fatalf("parley stopped: %v\n%s", err, b.logs.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("parley did not start:\n%s", b.logs.String())
		}
	}
	for {
		if resp, err := noKeepAlive.Get(b.ops + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return b
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("parley not ready:\n%s", b.logs.String())
		}
		<-time.After(5 * time.Millisecond)
	}
}

// event posts a signed Events API request: a message in a channel that
// does not mention the bot (stored nowhere, answered at once).
func (b *httpBot) event(client *http.Client) (int, error) {
	n := b.events.Add(1)
	body := b.slack.EventBody(fmt.Sprintf("Ev%06d", n), map[string]any{
		"type": "message", "channel": "C1", "user": "U1", "text": "just chatting",
		"ts": fmt.Sprintf("1700000000.%06d", n), "channel_type": "channel",
	})
	req, err := http.NewRequest("POST", b.http+"/slack/events", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header = slacktest.Sign(signingSecret, time.Now(), body)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// noKeepAlive makes each request on a connection of its own, closed after.
var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

func status(t *testing.T, method, url string, header http.Header, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := noKeepAlive.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// TestOpsAddr: with OPS_ADDR set, /readyz and /metrics leave the public
// port, which keeps Slack's routes and /healthz.
func TestOpsAddr(t *testing.T) {
	b := startHTTPBot(t, map[string]string{"OPS_ADDR": "127.0.0.2:0"})
	if b.http == b.ops {
		t.Fatalf("one address %s for both servers", b.http)
	}
	tests := []struct {
		base, method, path string
		want               int
	}{
		{b.http, "GET", "/healthz", 200},
		{b.http, "GET", "/metrics", 404},
		{b.http, "GET", "/readyz", 404},
		{b.ops, "GET", "/healthz", 200},
		{b.ops, "GET", "/readyz", 200},
		{b.ops, "GET", "/metrics", 200},
		{b.ops, "POST", "/slack/events", 404},
	}
	for _, tt := range tests {
		if got := status(t, tt.method, tt.base+tt.path, nil, ""); got != tt.want {
			t.Errorf("%s %s%s: got %d, want %d", tt.method, tt.base, tt.path, got, tt.want)
		}
	}
	if code, err := b.event(http.DefaultClient); err != nil || code != 200 {
		t.Errorf("a signed event on the public port: %d, %v", code, err)
	}
}

// TestHTTPLimits: each route refuses headers and bodies beyond its limits,
// and a connection beyond HTTP_MAX_CONNS is closed at once.
func TestHTTPLimits(t *testing.T) {
	b := startHTTPBot(t, map[string]string{"HTTP_MAX_CONNS": "4"})
	big := func(n int) http.Header { return http.Header{"X-Filler": {strings.Repeat("x", n)}} }
	tests := []struct {
		name, method, path string
		header             http.Header
		body               string
		want               int
	}{
		{"healthz", "GET", "/healthz", nil, "", 200},
		{"healthz with big headers", "GET", "/healthz", big(9 << 10), "", http.StatusRequestHeaderFieldsTooLarge},
		{"metrics with a body", "GET", "/metrics", nil, "x", http.StatusRequestEntityTooLarge},
		{"events with big headers", "POST", "/slack/events", big(12 << 10), "{}", http.StatusUnauthorized}, // within 16 KiB: on to the signature check
		{"events with headers past the server's ceiling", "POST", "/slack/events", big(20 << 10), "{}", http.StatusRequestHeaderFieldsTooLarge},
		{"command body too large", "POST", "/slack/commands", nil, strings.Repeat("a", 65<<10), http.StatusRequestEntityTooLarge},
		{"unsigned event", "POST", "/slack/events", nil, "{}", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		if got := status(t, tt.method, b.http+tt.path, tt.header, tt.body); got != tt.want {
			t.Errorf("%s: got %d, want %d", tt.name, got, tt.want)
		}
	}

	// A body announced larger than the route takes is refused before a
	// byte of it is read.
	addr := strings.TrimPrefix(b.http, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "POST /slack/events HTTP/1.1\r\nHost: parley\r\nContent-Length: %d\r\n\r\n", 1<<20+1)
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("an event of 1 MiB + 1: %v, %v; want 413", resp, err)
	}
	c.Close()

	// Hold the four connections the cap allows; a fifth is closed at once,
	// and once one of the four closes, a new one is served.
	// hold dials a connection the server serves: it retries while the
	// server has yet to close the connections of the requests above.
	hold := func() net.Conn {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: parley\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err == nil && resp.StatusCode == 200 {
				resp.Body.Close()
				return c
			}
			c.Close()
			if time.Now().After(deadline) {
				t.Fatalf("no connection is served: %v", err)
			}
			<-time.After(5 * time.Millisecond)
		}
	}
	var held []net.Conn
	for range 4 {
		c := hold()
		defer c.Close()
		held = append(held, c)
	}
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	fmt.Fprintf(extra, "GET /healthz HTTP/1.1\r\nHost: parley\r\n\r\n")
	extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); err == nil || n > 0 {
		t.Errorf("a fifth connection was served (read %d, %v), want it closed", n, err)
	}
	held[0].Close()
	hold().Close()
}
