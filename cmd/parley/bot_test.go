package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/parleyhq/parley/adapters/slack/slacktest"
	"github.com/parleyhq/parley/llm/llmtest"
)

// syncBuffer is a log buffer safe for the bot's goroutines and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// eventually waits for cond, checking it every few milliseconds, up to a
// deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-time.After(5 * time.Millisecond)
	}
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBotOnSlack runs the whole bot, as `parley` runs it, against a fake
// Slack over Socket Mode and a fake LLM endpoint: a mention is answered in
// its thread, the HTTP server reports health, readiness and metrics, and
// a shutdown is clean.
func TestBotOnSlack(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	model := llmtest.NewServer()
	defer model.Close()
	model.Answer = func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Chunks: llmtest.Words("Hello from **Parley**, streamed word by word.", 1)}
	}
	var logs syncBuffer
	m := &Main{
		Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &logs, Dir: t.TempDir(),
		Environ: envconfig.MapLookuper(map[string]string{
			"SLACK_BOT_TOKEN": fake.Config().BotToken,
			"SLACK_APP_TOKEN": fake.Config().AppToken,
			"SLACK_API_URL":   fake.APIURL,
			"SLACK_STREAMING": "update",
			"LLM_BASE_URL":    model.BaseURL(),
			"LLM_API_KEY":     secretKey,
			"LLM_MODEL":       "fake-small",
			"DATABASE_URL":    "sqlite://" + filepath.Join(t.TempDir(), "parley.db"),
			"HTTP_ADDR":       "127.0.0.1:0",
		}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, nil) }()
	defer func() {
		cancel()
		<-done
		m.Close()
	}()

	running := regexp.MustCompile(`parley is running.*http=(\S+)`)
	var addr string
	defer func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	}()
	eventually(t, "the bot to start", func() bool {
		if match := running.FindStringSubmatch(logs.String()); match != nil {
			addr = "http://" + match[1]
			return true
		}
		return false
	})
	if code, _ := get(addr + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz answered %d", code)
	}
	eventually(t, "readiness", func() bool { code, _ := get(addr + "/readyz"); return code == http.StatusOK })

	posted := fake.UserMessage("C1", "", "U1", "<@U0BOT> hi")
	want := "Hello from *Parley*, streamed word by word."
	eventually(t, "the answer in the thread", func() bool {
		ms := fake.BotMessages("C1", posted.TS)
		return len(ms) == 1 && ms[0].Text == want
	})
	eventually(t, "the reply to be counted", func() bool {
		_, body := get(addr + "/metrics")
		return strings.Contains(body, `parley_replies_total{outcome="complete",platform="slack"} 1`)
	})
	_, body := get(addr + "/metrics")
	for _, metric := range []string{`parley_events_total{kind="message",platform="slack"}`, "parley_llm_first_token_seconds", `parley_llm_tokens_total{direction="out",model="fake-small"}`, `parley_platform_calls_total{op="post",platform="slack"}`} {
		if !strings.Contains(body, metric) {
			t.Errorf("/metrics lacks %s", metric)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the bot stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the bot did not stop")
	}
	done <- nil
	for _, secret := range []string{secretKey, fake.Config().BotToken, fake.Config().AppToken} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the logs show a secret")
		}
	}
}
