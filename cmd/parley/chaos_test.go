package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// couldNotMrkdwn ends a reply cut twice, as Slack shows it: after what it
// showed and a blank line, or alone.
const couldNotMrkdwn = "⚠️ _Parley could not answer this: it restarted twice while writing the answer. Please ask again._"

// TestChaos runs replicas on one PostgreSQL database and kills one
// (SIGKILL) every few seconds, starting it again at once, while
// conversations ask one question after another. Every question must be
// answered once, its reply's text exact (the answer, the answer written
// again with the resumed note, or, cut twice, what it showed and the
// could-not-answer note). It logs the time from a kill to the resumed
// answers of the replica killed (p50, p95).
//
// The short form runs in CI. PARLEY_CHAOS=1 runs the figure: 50
// conversations on three replicas, 20 kills:
//
//	PARLEY_CHAOS=1 PARLEY_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//		go test ./cmd/parley -run TestChaos -v
func TestChaos(t *testing.T) {
	replicas, convs, kills, every := 2, 8, 4, 5*time.Second
	if os.Getenv("PARLEY_CHAOS") != "" {
		replicas, convs, kills = 3, 50, 20
	}
	dbURL := pgDatabase(t)
	w := newRecoveryWorld(t, dbURL, 60*time.Millisecond)
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	rs := make([]*replica, replicas)
	for i := range rs {
		rs[i] = startReplica(t, fmt.Sprintf("replica-%d", i), w.env)
	}
	live := func() []*replica {
		out := slices.Clone(rs)
		rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		return out
	}

	type conv struct {
		channel, root string
		asked         []string // questions, in order
	}
	cs := make([]*conv, convs)
	for i := range cs {
		c := &conv{channel: fmt.Sprintf("C%d", i)}
		q := fmt.Sprintf("c%d-r0", i)
		c.root = w.ask(t, c.channel, "", q, live()...)
		c.asked = append(c.asked, q)
		cs[i] = c
	}
	// check reads a conversation's thread against its questions: how many
	// answers are whole, resumed, could not be answered, and whether the
	// text is exactly that (nothing lost, nothing twice).
	check := func(c *conv) (plain, resumed, failed int, exact bool) {
		rest := w.thread(c.channel, c.root)
		for _, q := range c.asked {
			a := answerTo(q)
			switch {
			case strings.HasPrefix(rest, a+resumedMrkdwn):
				resumed++
				rest = rest[len(a+resumedMrkdwn):]
			case strings.HasPrefix(rest, a):
				plain++
				rest = rest[len(a):]
			default:
				i := strings.Index(rest, couldNotMrkdwn)
				if i < 0 || !strings.HasPrefix(a, strings.TrimSuffix(rest[:i], "\n\n")) {
					return plain, resumed, failed, false
				}
				failed++
				rest = rest[i+len(couldNotMrkdwn):]
			}
		}
		return plain, resumed, failed, rest == ""
	}

	var latencies []time.Duration
	pending := make(map[*conv]time.Time) // cut by a kill, not resumed yet
	resumedSeen := func(c *conv) bool {
		text := w.thread(c.channel, c.root)
		return strings.Contains(text, resumingMrkdwn) || strings.Count(text, "Resumed") > 0 || strings.Contains(text, "could not answer")
	}
	poll := func() {
		for c, at := range pending {
			if resumedSeen(c) {
				latencies = append(latencies, time.Since(at))
				delete(pending, c)
			}
		}
		// A conversation whose last answer is whole asks its next
		// question.
		for i, c := range cs {
			if _, _, _, exact := check(c); exact {
				q := fmt.Sprintf("c%d-r%d", i, len(c.asked))
				w.ask(t, c.channel, c.root, q, live()...)
				c.asked = append(c.asked, q)
			}
		}
	}
	next := time.Now().Add(every)
	for k := 0; k < kills; {
		poll()
		if time.Now().Before(next) {
			<-time.After(50 * time.Millisecond)
			continue
		}
		// Kill a replica, noting the answers it was writing.
		i := rand.IntN(len(rs))
		victim := rs[i]
		rows, err := conn.Query(context.Background(), `SELECT c.channel, c.thread FROM claims k JOIN conversations c ON c.id = k.conversation_id
			JOIN messages m ON m.conversation_id = c.id AND m.status = 'streaming' AND m.role = 'assistant'
			WHERE k.owner LIKE $1`, fmt.Sprintf("%%/%d/%%", victim.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		cut := make(map[string]bool)
		for rows.Next() {
			var ch, th string
			rows.Scan(&ch, &th)
			cut[ch+"/"+th] = true
		}
		rows.Close()
		victim.kill(t)
		at := time.Now()
		for _, c := range cs {
			if cut[c.channel+"/"+c.root] && !resumedSeen(c) {
				pending[c] = at
			}
		}
		rs[i] = startReplica(t, fmt.Sprintf("replica-%d-%d", i, k+1), w.env)
		k++
		next = time.Now().Add(every)
	}
	// Let every conversation finish what it asked.
	w.await(t, 4*time.Minute, "every question answered", func() bool {
		for c, at := range pending {
			if resumedSeen(c) {
				latencies = append(latencies, time.Since(at))
				delete(pending, c)
			}
		}
		for _, c := range cs {
			if _, _, _, exact := check(c); !exact {
				return false
			}
		}
		return true
	}, func() string {
		var out []string
		for _, c := range cs {
			if _, _, _, exact := check(c); !exact {
				out = append(out, fmt.Sprintf("%s asked %q, shows %q", c.channel, c.asked, w.thread(c.channel, c.root)))
				out = append(out, dumpConversation(conn, c.channel, c.root)...)
			}
		}
		return strings.Join(out, "\n")
	})
	var questions, plain, resumed, failed int
	for _, c := range cs {
		p, r, f, _ := check(c)
		questions += len(c.asked)
		plain, resumed, failed = plain+p, resumed+r, failed+f
	}
	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))].Round(time.Millisecond)
	}
	t.Logf("figure: chaos, %d conversations on %d replicas (PostgreSQL), %d kills (SIGKILL, restarted at once) every %v: %d questions, %d answered whole, %d resumed after a kill, %d could not be answered (cut twice), 0 lost, 0 answered twice; kill to resumed answer: p50 %v, p95 %v over %d cut answers",
		convs, replicas, kills, every, questions, plain, resumed, failed, pct(0.5), pct(0.95), len(latencies))
	if len(pending) > 0 {
		t.Errorf("%d answers cut by a kill were never resumed", len(pending))
	}
	for _, r := range rs {
		r.cmd.Process.Signal(os.Interrupt)
		r.cmd.Wait()
	}
}

// dumpConversation describes what the store holds of a conversation, for
// a failure's message.
func dumpConversation(conn *pgx.Conn, channel, root string) []string {
	ctx := context.Background()
	var out []string
	var id int64
	if err := conn.QueryRow(ctx, `SELECT id FROM conversations WHERE channel = $1 AND thread = $2`, channel, root).Scan(&id); err != nil {
		return []string{"  no conversation: " + err.Error()}
	}
	rows, err := conn.Query(ctx, `SELECT id, role, status, COALESCE(platform_id, ''), reply_to, left(text, 30) FROM messages WHERE conversation_id = $1 ORDER BY id`, id)
	if err == nil {
		for rows.Next() {
			var mid, reply int64
			var role, status, pid, text string
			rows.Scan(&mid, &role, &status, &pid, &reply, &text)
			out = append(out, fmt.Sprintf("  message %d %s %s platform_id=%s reply_to=%d %q", mid, role, status, pid, reply, text))
		}
		rows.Close()
	}
	var owner string
	var token int64
	var live bool
	if err := conn.QueryRow(ctx, `SELECT owner, token, expires_at > now() FROM claims WHERE conversation_id = $1`, id).Scan(&owner, &token, &live); err == nil {
		out = append(out, fmt.Sprintf("  claim %s token %d live %v", owner, token, live))
	} else {
		out = append(out, "  no claim")
	}
	rows, err = conn.Query(ctx, `SELECT message_id, owner FROM inbox WHERE conversation_id = $1`, id)
	if err == nil {
		for rows.Next() {
			var mid int64
			var o string
			rows.Scan(&mid, &o)
			out = append(out, fmt.Sprintf("  inbox %d %s", mid, o))
		}
		rows.Close()
	}
	rows, err = conn.Query(ctx, `SELECT owner, expires_at > now() FROM replicas`)
	if err == nil {
		for rows.Next() {
			var o string
			var l bool
			rows.Scan(&o, &l)
			out = append(out, fmt.Sprintf("  replica %s live %v", o, l))
		}
		rows.Close()
	}
	return out
}
