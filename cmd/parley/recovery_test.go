package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parleyhq/parley/adapters/slack/slacktest"
	"github.com/parleyhq/parley/conversation/postgres/pgtest"
	"github.com/parleyhq/parley/llm/llmtest"
)

// The recovery tests run parley processes (this test binary as main) on
// one store behind one fake Slack that delivers events over HTTP, kill,
// pause or stop them mid-answer, and check what a user sees: each question
// answered once, its reply's final text exact. The times they log are the
// issue's figures; the tests assert none of them.

// resumedMrkdwn ends a reply written again after a takeover, as Slack
// shows it.
const resumedMrkdwn = "\n\n🔁 _Resumed: Parley restarted while writing this answer, and wrote it again._"

// resumingMrkdwn is what a reply shows while it is written again.
const resumingMrkdwn = "Parley restarted while writing this answer: writing it again"

const recoverySecret = "signing-secret-for-recovery"

// recoveryWorld is a fake Slack and a fake model for parley processes.
type recoveryWorld struct {
	fake  *slacktest.Server
	model *llmtest.Server
	env   []string
	mu    sync.Mutex
	n     int // events sent
}

// answerWords is how long each answer is: long enough to be cut midway.
const answerWords = 30

// answerTo is the model's whole answer to question q.
func answerTo(q string) string {
	var b strings.Builder
	b.WriteString("answer to " + q)
	for i := range answerWords {
		fmt.Fprintf(&b, " w%d", i)
	}
	return b.String()
}

func newRecoveryWorld(t *testing.T, dbURL string, every time.Duration, extra ...string) *recoveryWorld {
	t.Helper()
	w := &recoveryWorld{fake: slacktest.New(t, slacktest.Config{}), model: llmtest.NewServer()}
	t.Cleanup(w.model.Close)
	w.model.Answer = func(r llmtest.Request) llmtest.Reply {
		q := r.Messages[len(r.Messages)-1].Text()
		return llmtest.Reply{Chunks: llmtest.Words(answerTo(q), 1), Every: every}
	}
	w.env = append([]string{
		"SLACK_BOT_TOKEN=" + w.fake.Config().BotToken,
		"SLACK_SIGNING_SECRET=" + recoverySecret,
		"SLACK_API_URL=" + w.fake.APIURL,
		"SLACK_STREAMING=update",
		"LLM_BASE_URL=" + w.model.BaseURL(),
		"LLM_API_KEY=" + secretKey,
		"LLM_MODEL=fake-small",
		"DATABASE_URL=" + dbURL,
		"HTTP_ADDR=127.0.0.1:0",
	}, extra...)
	return w
}

// ask posts question text in channel (a new thread with a mention, or a
// follow-up in thread root) and delivers its event to the first of rs
// that acknowledges it, as Slack retries on another connection. It returns
// the thread's root.
func (w *recoveryWorld) ask(t *testing.T, channel, root, text string, rs ...*replica) string {
	t.Helper()
	event := map[string]any{"type": "message", "channel": channel, "user": "U1", "team": "T0TEAM", "channel_type": "channel"}
	if root == "" {
		event["type"] = "app_mention"
		delete(event, "channel_type")
		text = "<@U0BOT> " + text
		root = w.fake.AddMessage(channel, "", "U1", text)
		event["ts"] = root
	} else {
		event["ts"] = w.fake.AddMessage(channel, root, "U1", text)
		event["thread_ts"] = root
	}
	event["text"] = text
	event["event_ts"] = event["ts"]
	w.mu.Lock()
	w.n++
	id := fmt.Sprintf("Ev%05d", w.n)
	w.mu.Unlock()
	body := w.fake.EventBody(id, event)
	for _, r := range rs {
		if r.deliver(body, recoverySecret) {
			return root
		}
	}
	t.Errorf("no replica acknowledged %q", text)
	return root
}

// thread returns the bot's messages in a thread, joined.
func (w *recoveryWorld) thread(channel, root string) string {
	var b strings.Builder
	for _, m := range w.fake.BotMessages(channel, root) {
		b.WriteString(m.Text)
	}
	return b.String()
}

// await waits until cond holds of the fake, or fails after d.
func (w *recoveryWorld) await(t *testing.T, d time.Duration, what string, cond func() bool, state ...func() string) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-w.fake.Changed():
		case <-time.After(20 * time.Millisecond):
		case <-deadline.C:
			var got string
			for _, f := range state {
				got += "\n" + f()
			}
			t.Fatalf("timed out after %v waiting for %s%s", d, what, got)
		}
	}
	return time.Since(start)
}

// partial reports whether a thread shows some of answer a, not all.
func partial(text, a string) bool {
	return len(strings.Fields(text)) >= 3 && strings.HasPrefix(a, strings.TrimSpace(text)) && strings.TrimSpace(text) != a
}

// kill ends r at once, as SIGKILL does.
func (r *replica) kill(t *testing.T) {
	t.Helper()
	r.cmd.Process.Kill()
	r.cmd.Wait()
}

// pgDatabase returns a URL of a fresh schema on PARLEY_TEST_POSTGRES_URL,
// or skips the test.
func pgDatabase(t *testing.T) string {
	t.Helper()
	return pgtest.Schema(t, "recovery")
}

// One process on SQLite, killed mid-answer and started again at once: the
// new process takes the file's work over at start, corrects the reply and
// writes the whole answer again into it. A second process on the file
// meanwhile is refused.
func TestRecoverySQLiteKillRestart(t *testing.T) {
	db := filepath.Join(t.TempDir(), "parley.db")
	w := newRecoveryWorld(t, "sqlite://"+db, 150*time.Millisecond)
	a := startReplica(t, "first", w.env)

	// A fresh answer, for the time one takes.
	began := time.Now()
	fresh := w.ask(t, "C1", "", "fresh", a)
	w.await(t, 30*time.Second, "the fresh answer", func() bool { return w.thread("C1", fresh) == answerTo("fresh") })
	freshTook := time.Since(began)

	root := w.ask(t, "C1", "", "q1", a)
	want := answerTo("q1")
	w.await(t, 30*time.Second, "a partial answer", func() bool { return partial(w.thread("C1", root), want) })

	// While it runs, a second process on the file is refused.
	_, stderr, code := runProcess(t, "", w.env...)
	if code == 0 || !strings.Contains(stderr, "in use by another parley process; stop it") {
		t.Errorf("a second process on the file: exit %d, %q; want it refused", code, stderr)
	}

	a.kill(t)
	restarted := time.Now()
	b := startReplica(t, "second", w.env)
	up := time.Since(restarted)
	w.await(t, 30*time.Second, "the reply corrected", func() bool {
		text := w.thread("C1", root)
		return strings.Contains(text, resumingMrkdwn) || strings.Contains(text, "Resumed")
	})
	corrected := time.Since(restarted)
	w.await(t, 30*time.Second, "the whole answer, resumed", func() bool { return w.thread("C1", root) == want+resumedMrkdwn })
	done := time.Since(restarted)
	if n := len(w.fake.BotMessages("C1", root)); n != 1 {
		t.Errorf("the resumed answer spans %d messages, want the cut one alone", n)
	}
	t.Logf("figure: SQLite, SIGKILL mid-answer, restarted at once: the new process served in %v, the reply was corrected %v after the restart, whole and exact %v after it (a fresh answer takes %v)",
		up.Round(time.Millisecond), corrected.Round(time.Millisecond), done.Round(time.Millisecond), freshTook.Round(time.Millisecond))
	b.cmd.Process.Signal(os.Interrupt)
	b.cmd.Wait()
}

// Two replicas on PostgreSQL, one killed mid-answer with a follow-up
// queued behind it: the survivor notices the missed heartbeats, takes the
// conversation over, answers the cut question again in its reply, then the
// queued one.
func TestRecoveryPostgresKill(t *testing.T) {
	w := newRecoveryWorld(t, pgDatabase(t), 150*time.Millisecond)
	a := startReplica(t, "replica-a", w.env)
	b := startReplica(t, "replica-b", w.env)

	root := w.ask(t, "C1", "", "q1", a)
	w.await(t, 30*time.Second, "a partial answer", func() bool { return partial(w.thread("C1", root), answerTo("q1")) })
	w.ask(t, "C1", root, "q2", a) // queued on a, behind q1
	a.kill(t)
	killed := time.Now()
	resumed := w.await(t, 30*time.Second, "the survivor resuming", func() bool {
		return strings.Contains(w.thread("C1", root), resumingMrkdwn) || strings.Contains(w.thread("C1", root), "Resumed")
	})
	want := answerTo("q1") + resumedMrkdwn + answerTo("q2")
	w.await(t, 60*time.Second, "both answers", func() bool { return w.thread("C1", root) == want })
	t.Logf("figure: two replicas on PostgreSQL, one SIGKILLed mid-answer: the survivor resumed %v after the kill; both answers exact %v after it",
		resumed.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	b.cmd.Process.Signal(os.Interrupt)
	b.cmd.Wait()
}

// A replica paused (SIGSTOP) for longer than its lease is taken for dead;
// once it runs again (SIGCONT) it finds its claim lost and writes nothing
// more to the reply the survivor took over.
func TestRecoveryPausedReplica(t *testing.T) {
	w := newRecoveryWorld(t, pgDatabase(t), 150*time.Millisecond)
	a := startReplica(t, "replica-a", w.env)
	b := startReplica(t, "replica-b", w.env)

	root := w.ask(t, "C1", "", "q1", a)
	w.await(t, 30*time.Second, "a partial answer", func() bool { return partial(w.thread("C1", root), answerTo("q1")) })
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	want := answerTo("q1") + resumedMrkdwn
	w.await(t, 60*time.Second, "the survivor's whole answer", func() bool { return w.thread("C1", root) == want })
	msgs := w.fake.BotMessages("C1", root)
	edits := msgs[0].Edits
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	w.await(t, 30*time.Second, "the paused replica to find its claim lost", func() bool {
		return strings.Contains(a.log(), "conversation claim lost")
	})
	w.await(t, 30*time.Second, "the paused replica to let the answer go", func() bool {
		return strings.Contains(a.log(), "answer left to the instance that took it over")
	})
	msgs = w.fake.BotMessages("C1", root)
	if len(msgs) != 1 || msgs[0].Text != want || msgs[0].Edits != edits {
		t.Errorf("after the paused replica ran again: %d messages, edits %d (was %d), text %q; want the survivor's answer untouched", len(msgs), msgs[0].Edits, edits, msgs[0].Text)
	}
	for _, r := range []*replica{a, b} {
		r.cmd.Process.Signal(os.Interrupt)
		r.cmd.Wait()
	}
}

// SIGTERM during 10 running answers: each finishes within the grace
// period or is handed over, and the next process answers the rest again:
// none is lost, none answered twice.
func TestRecoverySIGTERM(t *testing.T) {
	db := filepath.Join(t.TempDir(), "parley.db")
	w := newRecoveryWorld(t, "sqlite://"+db, 200*time.Millisecond, "SHUTDOWN_GRACE=1s")
	a := startReplica(t, "first", w.env)
	var roots []string
	for i := range 10 {
		roots = append(roots, w.ask(t, fmt.Sprintf("C%d", i), "", fmt.Sprintf("q%d", i), a))
	}
	w.await(t, 30*time.Second, "ten answers running", func() bool {
		for i, r := range roots {
			text := w.thread(fmt.Sprintf("C%d", i), r)
			if text == "" || text == answerTo(fmt.Sprintf("q%d", i)) {
				return false
			}
		}
		return true
	})
	stopped := time.Now()
	a.cmd.Process.Signal(syscall.SIGTERM)
	if err := a.cmd.Wait(); err != nil {
		t.Errorf("first process stopped with %v", err)
	}
	stopTook := time.Since(stopped)
	b := startReplica(t, "second", w.env)
	finished, resumed := 0, 0
	w.await(t, 60*time.Second, "every answer whole", func() bool {
		finished, resumed = 0, 0
		for i, r := range roots {
			text, want := w.thread(fmt.Sprintf("C%d", i), r), answerTo(fmt.Sprintf("q%d", i))
			switch text {
			case want:
				finished++
			case want + resumedMrkdwn:
				resumed++
			}
		}
		return finished+resumed == len(roots)
	}, func() string {
		var out []string
		for i, r := range roots {
			out = append(out, fmt.Sprintf("%q", w.thread(fmt.Sprintf("C%d", i), r)))
		}
		return strings.Join(out, "\n")
	})
	t.Logf("figure: SIGTERM during 10 running answers (SHUTDOWN_GRACE=1s): the process stopped in %v; %d finished, %d resumed by the next process, 0 lost",
		stopTook.Round(time.Millisecond), finished, resumed)
	b.cmd.Process.Signal(os.Interrupt)
	b.cmd.Wait()
}
