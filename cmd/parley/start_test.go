package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/parleyhq/parley/adapters/discord/discordtest"
	"github.com/parleyhq/parley/adapters/slack/slacktest"
	"github.com/parleyhq/parley/llm/llmtest"
)

// bot is a `parley` run in the test's process.
type bot struct {
	addr string // http://host:port, once running
	logs *syncBuffer
	done chan error
}

// startBot runs the bot with env over a fake Slack (Socket Mode) and
// returns once it logs that it is running. The test ends it.
func startBot(t *testing.T, fake *slacktest.Server, env map[string]string) *bot {
	t.Helper()
	b := startBotNoWait(t, fake, env)
	running := regexp.MustCompile(`parley is running.*http=(\S+)`)
	eventually(t, "the bot to start", func() bool {
		if m := running.FindStringSubmatch(b.logs.String()); m != nil {
			b.addr = "http://" + m[1]
			return true
		}
		select {
		case err := <-b.done:
			t.Fatalf("the bot stopped before running: %v", err)
		default:
		}
		return false
	})
	return b
}

func startBotNoWait(t *testing.T, fake *slacktest.Server, env map[string]string) *bot {
	t.Helper()
	all := map[string]string{
		"SLACK_BOT_TOKEN": fake.Config().BotToken,
		"SLACK_APP_TOKEN": fake.Config().AppToken,
		"SLACK_API_URL":   fake.APIURL,
		"SLACK_STREAMING": "update",
		"LLM_API_KEY":     secretKey,
		"LLM_MODEL":       "fake-small",
		"DATABASE_URL":    "sqlite://" + filepath.Join(t.TempDir(), "parley.db"),
		"HTTP_ADDR":       "127.0.0.1:0",
	}
	for k, v := range env {
		all[k] = v
	}
	b := &bot{logs: &syncBuffer{}, done: make(chan error, 1)}
	m := &Main{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: b.logs, Dir: t.TempDir(), Environ: envconfig.MapLookuper(all)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { b.done <- m.Run(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-b.done:
		case <-time.After(30 * time.Second):
			t.Error("the bot did not stop")
		}
		m.Close()
		for _, secret := range []string{secretKey, fake.Config().BotToken, fake.Config().AppToken, all["SLACK_BOT_TOKEN"]} {
			if strings.Contains(b.logs.String(), secret) {
				t.Errorf("the logs show a secret")
			}
		}
		if t.Failed() {
			t.Logf("logs:\n%s", b.logs)
		}
	})
	return b
}

// LLM_BASE_URL without /v1: the start says so and names the URL tried,
// Parley runs all the same with /readyz reporting it, and an answer says
// the endpoint is misconfigured rather than "did you mean" the very model.
func TestStartBaseURLWithoutV1(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	model := llmtest.NewServer()
	defer model.Close()
	b := startBot(t, fake, map[string]string{"LLM_BASE_URL": model.URL})

	logs := b.logs.String()
	for _, want := range []string{"LLM_BASE_URL: llm: GET " + model.URL + "/models answered 404", "lacks /v1", "try " + model.URL + "/v1", "Parley starts anyway"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs do not say %q", want)
		}
	}
	if i, j := strings.Index(logs, "lacks /v1"), strings.Index(logs, "parley is running"); i < 0 || j < i {
		t.Errorf("the check is not logged before running")
	}
	eventually(t, "slack to be connected", func() bool {
		_, body := get(b.addr + "/readyz")
		return !strings.Contains(body, "slack not connected")
	})
	code, body := get(b.addr + "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "LLM endpoint") || !strings.Contains(body, "lacks /v1") {
		t.Errorf("/readyz: %d %q, want 503 naming the LLM endpoint", code, body)
	}

	posted := fake.UserMessage("C1", "", "U1", "<@U0BOT> hi")
	var text string
	eventually(t, "the answer", func() bool {
		ms := fake.BotMessages("C1", posted.TS)
		if len(ms) == 1 && strings.Contains(ms[0].Text, "LLM_BASE_URL") {
			text = ms[0].Text
			return true
		}
		return false
	})
	if strings.Contains(text, "Did you mean") || strings.Contains(text, "not available") {
		t.Errorf("answer %q, want no model suggestion", text)
	}
	eventually(t, "the error to be counted", func() bool {
		_, body := get(b.addr + "/metrics")
		return strings.Contains(body, `parley_llm_errors_total{kind="endpoint_not_found"} 1`)
	})
}

// An endpoint nobody listens on is named unreachable at start, without
// the key; Parley runs, /readyz and the metrics report it.
func TestStartEndpointUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/v1"
	ln.Close()
	fake := slacktest.New(t, slacktest.Config{})
	b := startBot(t, fake, map[string]string{"LLM_BASE_URL": url})

	if logs := b.logs.String(); !strings.Contains(logs, "LLM_BASE_URL: llm: GET "+url+"/models") || !strings.Contains(logs, "cannot reach the endpoint") {
		t.Errorf("logs do not name the unreachable endpoint")
	}
	// Down is not misconfigured: the pod stays ready (it tells people the
	// model cannot be reached), and says it is degraded.
	var code int
	var body string
	eventually(t, "slack to be connected", func() bool {
		code, body = get(b.addr + "/readyz")
		return code == http.StatusOK
	})
	if !strings.HasPrefix(body, "degraded: LLM endpoint: ") || !strings.Contains(body, "cannot reach") {
		t.Errorf("/readyz: %d %q, want 200 degraded, saying the endpoint cannot be reached", code, body)
	}
	_, metrics := get(b.addr + "/metrics")
	if !strings.Contains(metrics, "parley_llm_endpoint_up 0") {
		t.Errorf("/metrics lacks parley_llm_endpoint_up 0")
	}
}

// A token Slack refuses stops Parley with an error naming the variable,
// and "running" is never logged.
func TestStartBadSlackToken(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	model := llmtest.NewServer()
	defer model.Close()
	b := startBotNoWait(t, fake, map[string]string{"LLM_BASE_URL": model.BaseURL(), "SLACK_BOT_TOKEN": "xoxb-REVOKED-0123456789"})
	var err error
	select {
	case err = <-b.done:
		b.done <- err // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("the bot did not stop")
	}
	if err == nil || !strings.Contains(err.Error(), "SLACK_BOT_TOKEN") || !strings.Contains(err.Error(), "invalid_auth") {
		t.Errorf("got %v, want an error naming SLACK_BOT_TOKEN", err)
	}
	if strings.Contains(err.Error(), "REVOKED") {
		t.Errorf("the error shows the token: %v", err)
	}
	if strings.Contains(b.logs.String(), "parley is running") {
		t.Errorf("\"running\" was logged before the token was refused")
	}
}

// Every series exists from the start, at zero: per platform, per default
// model, per LLM error and retry kind; the build and the connection are
// shown. An answer then splits its time into model and delivery.
func TestMetricsAtStart(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	model := llmtest.NewServer()
	defer model.Close()
	b := startBot(t, fake, map[string]string{"LLM_BASE_URL": model.BaseURL()})

	_, body := get(b.addr + "/metrics")
	for _, want := range []string{
		`parley_events_total{kind="message",platform="slack"} 0`,
		`parley_replies_total{outcome="failed",platform="slack"} 0`,
		`parley_replies_delivered_total{kind="native",platform="slack"} 0`,
		`parley_platform_calls_total{op="post",platform="slack"} 0`,
		`parley_platform_rate_limited_total{op="stop",platform="slack"} 0`,
		`parley_platform_budget_wait_seconds_count{op="edit",platform="slack"} 0`,
		`parley_queue_wait_seconds_count{platform="slack"} 0`,
		`parley_llm_first_token_seconds_count{model="fake-small"} 0`,
		`parley_llm_answer_seconds_count{model="fake-small"} 0`,
		`parley_reply_delivery_seconds_count{platform="slack"} 0`,
		`parley_llm_tokens_total{direction="out",model="fake-small"} 0`,
		`parley_llm_errors_total{kind="unauthorized"} 0`,
		`parley_llm_errors_total{kind="unreachable"} 0`,
		`parley_llm_retries_total{kind="rate_limited"} 0`,
		`parley_llm_retries_total{kind="server"} 0`,
		`parley_active_streams 0`,
		`parley_llm_endpoint_up 1`,
		`parley_build_info{goversion="go`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics at start lacks %s", want)
		}
	}
	eventually(t, "slack to be connected", func() bool {
		_, body := get(b.addr + "/metrics")
		return strings.Contains(body, `parley_platform_connected{platform="slack"} 1`)
	})

	posted := fake.UserMessage("C1", "", "U1", "<@U0BOT> hi")
	eventually(t, "the answer", func() bool { return len(fake.BotMessages("C1", posted.TS)) == 1 })
	eventually(t, "the answer's times", func() bool {
		_, body := get(b.addr + "/metrics")
		return strings.Contains(body, `parley_llm_answer_seconds_count{model="fake-small"} 1`) &&
			strings.Contains(body, `parley_reply_delivery_seconds_count{platform="slack"} 1`)
	})
}

// On Discord, "running" comes once the gateway took the token: a good
// token gets there, a refused one stops Parley naming DISCORD_BOT_TOKEN.
func TestStartDiscordToken(t *testing.T) {
	model := llmtest.NewServer()
	defer model.Close()
	for _, tt := range []struct {
		name  string
		token func(*discordtest.Server) string
		ok    bool
	}{
		{"accepted", (*discordtest.Server).Token, true},
		{"refused", func(*discordtest.Server) string { return "REFUSED.token.0123456789" }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fake := discordtest.New(t, discordtest.Options{})
			env := map[string]string{
				"DISCORD_BOT_TOKEN": tt.token(fake),
				"DISCORD_API_URL":   fake.APIURL(),
				"LLM_BASE_URL":      model.BaseURL(),
				"LLM_API_KEY":       secretKey,
				"LLM_MODEL":         "fake-small",
				"DATABASE_URL":      "sqlite://" + filepath.Join(t.TempDir(), "parley.db"),
				"HTTP_ADDR":         "127.0.0.1:0",
			}
			logs := &syncBuffer{}
			m := &Main{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: logs, Dir: t.TempDir(), Environ: envconfig.MapLookuper(env)}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- m.Run(ctx, nil) }()
			defer func() {
				cancel()
				<-done
				m.Close()
				if t.Failed() {
					t.Logf("logs:\n%s", logs)
				}
			}()
			if tt.ok {
				eventually(t, "running", func() bool { return strings.Contains(logs.String(), "parley is running") })
				if n := fake.Stats().Identifies; n != 1 {
					t.Errorf("running after %d IDENTIFYs, want 1", n)
				}
				return
			}
			var err error
			select {
			case err = <-done:
				done <- err
			case <-time.After(30 * time.Second):
				t.Fatal("the bot did not stop")
			}
			if err == nil || !strings.Contains(err.Error(), "DISCORD_BOT_TOKEN") || strings.Contains(err.Error(), "REFUSED") {
				t.Errorf("got %v, want an error naming DISCORD_BOT_TOKEN without the token", err)
			}
			if strings.Contains(logs.String(), "parley is running") || strings.Contains(logs.String(), "REFUSED") {
				t.Errorf("the logs say running, or show the token")
			}
		})
	}
}

// In Socket Mode the app token is checked too before "running": a refused
// one stops Parley naming SLACK_APP_TOKEN.
func TestStartBadSlackAppToken(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	model := llmtest.NewServer()
	defer model.Close()
	b := startBotNoWait(t, fake, map[string]string{"LLM_BASE_URL": model.BaseURL(), "SLACK_APP_TOKEN": "xapp-REVOKED-0123456789"})
	var err error
	select {
	case err = <-b.done:
		b.done <- err // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("the bot did not stop")
	}
	if err == nil || !strings.Contains(err.Error(), "SLACK_APP_TOKEN") || strings.Contains(err.Error(), "REVOKED") {
		t.Errorf("got %v, want an error naming SLACK_APP_TOKEN without the token", err)
	}
	if strings.Contains(b.logs.String(), "parley is running") || strings.Contains(b.logs.String(), "REVOKED") {
		t.Errorf("the logs say running, or show the token")
	}
}
