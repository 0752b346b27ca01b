package tools_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/llm"
	"github.com/parleyhq/parley/llm/llmtest"
	"github.com/parleyhq/parley/tools"
	"github.com/parleyhq/parley/tools/mcptest"
)

func TestMain(m *testing.M) {
	mcptest.Main() // the stdio server, when this binary is started as one
	os.Exit(m.Run())
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// stdioConfig starts this test binary as the stdio server.
func stdioConfig(name string, env map[string]string) tools.ServerConfig {
	e := map[string]string{mcptest.StdioEnv: "1"}
	for k, v := range env {
		e[k] = v
	}
	return tools.ServerConfig{Name: name, Command: os.Args[0], Env: e}
}

// startServers runs servers for cfgs until the test ends and waits until
// each is connected.
func startServers(t testing.TB, mod func(*tools.ServersConfig), cfgs ...tools.ServerConfig) *tools.Servers {
	t.Helper()
	cfg := tools.ServersConfig{Servers: cfgs, Logger: quiet(), Backoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	s := tools.NewServers(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s
}

// waitState waits until server name is in state want.
func waitState(t testing.TB, s *tools.Servers, name, want string) tools.ServerStatus {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last tools.ServerStatus
	for time.Now().Before(deadline) {
		for _, st := range s.Status() {
			if st.Name == name {
				last = st
				if st.State == want {
					return st
				}
			}
		}
		<-time.After(5 * time.Millisecond)
	}
	t.Fatalf("server %s: timed out waiting for %s; last %+v", name, want, last)
	return last
}

// recorder is an Output that keeps what it was shown.
type recorder struct {
	mu     sync.Mutex
	texts  []string
	status []string
}

func (r *recorder) Text(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.texts = append(r.texts, s)
}

func (r *recorder) Status(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = append(r.status, s)
}

func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.status...)
}

// fakeModel is a fake LLM endpoint and a client of it.
func fakeModel(t testing.TB, answer func(llmtest.Request) llmtest.Reply) (*llm.Client, *llmtest.Server) {
	t.Helper()
	fake := llmtest.NewServer()
	t.Cleanup(fake.Close)
	fake.Answer = answer
	c, err := llm.New(llm.Config{BaseURL: fake.BaseURL(), APIKey: "test-key", DefaultModel: "fake-small", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return c, fake
}

func question(text string) llm.Request {
	return llm.Request{Model: "fake-small", Messages: []llm.Message{{Role: llm.RoleUser, Content: text}}}
}

var _ io.Writer = io.Discard
