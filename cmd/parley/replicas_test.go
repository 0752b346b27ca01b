package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/adapters/slack/slacktest"
	"github.com/parleyhq/parley/conversation/postgres/pgtest"
	"github.com/parleyhq/parley/llm/llmtest"
)

// replica is one parley process of TestTwoReplicas.
type replica struct {
	name string
	cmd  *exec.Cmd
	addr string
	mu   sync.Mutex
	logs bytes.Buffer
}

func (r *replica) log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logs.String()
}

// startReplica runs parley (this test binary as main) with env, and waits
// until it serves HTTP.
func startReplica(t *testing.T, name string, env []string) *replica {
	t.Helper()
	r := &replica{name: name}
	r.cmd = exec.Command(os.Args[0], "-test.run=^$")
	r.cmd.Dir = t.TempDir()
	r.cmd.Env = append([]string{"PARLEY_TEST_MAIN=1", "PARLEY_TEST_ARGS=", "PATH=" + os.Getenv("PATH")}, env...)
	r.cmd.Env = append(r.cmd.Env, coverEnv(t)...)
	stderr, err := r.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	running := regexp.MustCompile(`parley is running.*http=(\S+)`)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			r.mu.Lock()
			r.logs.WriteString(sc.Text() + "\n")
			r.mu.Unlock()
			if m := running.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	select {
	case a := <-addr:
		r.addr = "http://" + a
	case <-time.After(20 * time.Second):
		r.cmd.Process.Kill()
		t.Fatalf("%s did not start:\n%s", name, r.log())
	}
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			r.cmd.Process.Kill()
			r.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("%s logs:\n%s", name, r.log())
		}
	})
	return r
}

// deliver posts a signed Slack event to r, as Slack does, and reports
// whether r acknowledged it.
func (r *replica) deliver(body []byte, secret string) bool {
	req, _ := http.NewRequest(http.MethodPost, r.addr+"/slack/events", bytes.NewReader(body))
	for k, v := range slacktest.Sign(secret, time.Now(), body) {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// TestTwoReplicas runs two parley processes on one PostgreSQL database,
// behind one fake Slack that delivers events over HTTP to either of them,
// retrying each on the other as Slack retries. One process is killed
// midway; every question must be answered exactly once, in order per
// conversation.
func TestTwoReplicas(t *testing.T) {
	dbURL := pgtest.Schema(t, "replicas")

	fake := slacktest.New(t, slacktest.Config{})
	model := llmtest.NewServer()
	defer model.Close()
	model.Answer = func(r llmtest.Request) llmtest.Reply {
		q := r.Messages[len(r.Messages)-1].Text()
		return llmtest.Reply{Chunks: llmtest.Words("answer to "+q, 1), Every: 30 * time.Millisecond}
	}
	const secret = "signing-secret-for-replicas"
	env := []string{
		"SLACK_BOT_TOKEN=" + fake.Config().BotToken,
		"SLACK_SIGNING_SECRET=" + secret,
		"SLACK_API_URL=" + fake.APIURL,
		"SLACK_STREAMING=update",
		"LLM_BASE_URL=" + model.BaseURL(),
		"LLM_API_KEY=" + secretKey,
		"LLM_MODEL=fake-small",
		"DATABASE_URL=" + dbURL,
		"HTTP_ADDR=127.0.0.1:0",
	}
	a := startReplica(t, "replica-a", env)
	b := startReplica(t, "replica-b", env)

	const convs, rounds = 3, 4
	roots := make([]string, convs)
	sent := 0
	for round := range rounds {
		if round == 2 {
			// Kill A midway, once it is not writing an answer.
			waitAnswers(t, fake, roots, round)
			a.cmd.Process.Kill()
			a.cmd.Wait()
		}
		for c := range convs {
			text := fmt.Sprintf("c%d-r%d", c, round)
			event := map[string]any{"type": "message", "channel": "C1", "user": "U1", "team": "T0TEAM", "channel_type": "channel"}
			if round == 0 {
				event["type"] = "app_mention"
				delete(event, "channel_type")
				text = "<@U0BOT> " + text
				roots[c] = fake.AddMessage("C1", "", "U1", text)
				event["ts"] = roots[c]
			} else {
				event["ts"] = fake.AddMessage("C1", roots[c], "U1", text)
				event["thread_ts"] = roots[c]
			}
			event["text"] = text
			event["event_ts"] = event["ts"]
			sent++
			body := fake.EventBody(fmt.Sprintf("Ev%03d", sent), event)
			first, second := a, b
			if (round+c)%2 == 1 || round >= 2 {
				first, second = b, a
			}
			// Slack delivers to one connection, and retries on another
			// when it gets no acknowledgement; here every event is also
			// retried once on the other replica, as a retry after a lost
			// acknowledgement would be.
			ok1 := first.deliver(body, secret)
			ok2 := second.deliver(body, secret)
			if !ok1 && !ok2 {
				t.Fatalf("no replica acknowledged %s", text)
			}
		}
	}
	// waitAnswers holds only when every thread shows its answers in
	// order, each once: a duplicate or a swap never matches.
	waitAnswers(t, fake, roots, rounds)
	t.Logf("sent %d questions (each delivered twice), answered %d, one replica killed after round 2", sent, sent)

	b.cmd.Process.Signal(os.Interrupt)
	if err := b.cmd.Wait(); err != nil {
		t.Errorf("replica-b stopped with %v", err)
	}
	for _, r := range []*replica{a, b} {
		if strings.Contains(r.log(), secretKey) || strings.Contains(r.log(), secret) {
			t.Errorf("%s logged a secret", r.name)
		}
	}
}

// waitAnswers waits until each conversation's thread shows the answers
// to its first n questions, in order, each once, and returns the
// thread's bot messages joined. An answer may span several messages (the
// end of one goes into a new message when the edit budget is spent).
func waitAnswers(t *testing.T, fake *slacktest.Server, roots []string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		var all []string
		done := true
		for c, root := range roots {
			var b strings.Builder
			for _, m := range fake.BotMessages("C1", root) {
				b.WriteString(m.Text)
			}
			all = append(all, b.String())
			if b.String() != expected(c, n) {
				done = false
			}
		}
		if done {
			return all
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d answers per conversation; have %q", n, all)
		}
		select {
		case <-fake.Changed():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// expected is conversation c's first n answers, joined.
func expected(c, n int) string {
	var b strings.Builder
	for round := range n {
		fmt.Fprintf(&b, "answer to c%d-r%d", c, round)
	}
	return b.String()
}
