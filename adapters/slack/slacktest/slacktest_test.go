package slacktest_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/parleyhq/parley/adapters/slack/slacktest"
)

func TestMain(m *testing.M) {
	slacktest.RefuseNonLoopback()
	os.Exit(m.Run())
}

// clock is a fake clock for Config.Now: time passes only by Advance.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newFake starts a fake Slack on a fake clock and a slack-go client for it.
func newFake(t *testing.T, cfg slacktest.Config) (*slacktest.Server, *slackapi.Client, *clock) {
	t.Helper()
	clk := newClock()
	cfg.Now = clk.Now
	srv := slacktest.New(t, cfg)
	api := slackapi.New(srv.Config().BotToken,
		slackapi.OptionAPIURL(srv.APIURL),
		slackapi.OptionHTTPClient(&http.Client{Transport: slacktest.LoopbackTransport(), Timeout: 10 * time.Second}))
	return srv, api, clk
}

func post(api *slackapi.Client, channel, text string) (string, error) {
	_, ts, err := api.PostMessage(channel, slackapi.MsgOptionText(text, false))
	return ts, err
}

// retryAfter returns the Retry-After of a 429, or fails the test.
func retryAfter(t *testing.T, err error, what string) time.Duration {
	t.Helper()
	var rle *slackapi.RateLimitedError
	if !errors.As(err, &rle) {
		t.Fatalf("%s: got %v, want a *slack.RateLimitedError", what, err)
	}
	return rle.RetryAfter
}

// apiError returns the Web API error of err ("" for none).
func apiError(err error) string {
	var se slackapi.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

func TestPostsLimitedPerChannel(t *testing.T) {
	srv, api, clk := newFake(t, slacktest.Config{})
	for i := range 3 {
		if _, err := post(api, "C1", fmt.Sprint("burst ", i)); err != nil {
			t.Fatalf("post %d: %v", i+1, err)
		}
	}
	_, err := post(api, "C1", "one too many")
	if got := retryAfter(t, err, "post 4"); got < time.Second {
		t.Errorf("got Retry-After %s, want at least 1s", got)
	}
	// Another channel has its own bucket.
	if _, err := post(api, "C2", "elsewhere"); err != nil {
		t.Fatalf("post to another channel: %v", err)
	}
	clk.Advance(time.Second)
	if _, err := post(api, "C1", "a second later"); err != nil {
		t.Fatalf("post a second later: %v", err)
	}
	if _, err := post(api, "C1", "again at once"); err == nil {
		t.Fatal("got a second post within the second, want a 429")
	}
	if got := srv.RateLimited("chat.postMessage"); got != 2 {
		t.Errorf("got %d 429s, want 2", got)
	}
	if got := len(srv.BotMessages("C1", "")); got != 4 {
		t.Errorf("got %d messages in C1, want 4", got)
	}
}

func TestPostsLimitedPerWorkspace(t *testing.T) {
	srv, api, clk := newFake(t, slacktest.Config{})
	// Concurrent posts to as many channels: the workspace's burst lets
	// exactly 100 through while the clock stands still.
	const n = 150
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = post(api, fmt.Sprintf("C%03d", i), "hello") })
	}
	wg.Wait()
	var ok, limited int
	for i, err := range errs {
		var rle *slackapi.RateLimitedError
		switch {
		case err == nil:
			ok++
		case errors.As(err, &rle):
			limited++
			if rle.RetryAfter != time.Second {
				t.Errorf("post %d: got Retry-After %s, want 1s (the next token in 100 ms)", i, rle.RetryAfter)
			}
		default:
			t.Errorf("post %d: %v", i, err)
		}
	}
	if ok != 100 || limited != n-100 {
		t.Errorf("got %d posts and %d 429s, want 100 and %d", ok, limited, n-100)
	}
	if got := srv.RateLimited("chat.postMessage"); got != n-100 {
		t.Errorf("got RateLimited %d, want %d", got, n-100)
	}
	if got := len(srv.CallLog()); got != n {
		t.Errorf("got %d calls logged, want %d", got, n)
	}

	clk.Advance(100 * time.Millisecond)
	if _, err := post(api, "C999", "one token later"); err != nil {
		t.Fatalf("post after 100 ms: %v", err)
	}
	if _, err := post(api, "C998", "and no more"); err == nil {
		t.Fatal("got a second post on one token, want a 429")
	}
}

func TestBudgetsPerMethod(t *testing.T) {
	srv, api, _ := newFake(t, slacktest.Config{})
	ts, err := post(api, "C1", "v0")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, _, _, err := api.UpdateMessage("C1", ts, slackapi.MsgOptionText(fmt.Sprint("v", i+1), false)); err != nil {
			t.Fatalf("update %d: %v", i+1, err)
		}
	}
	_, _, _, err = api.UpdateMessage("C1", ts, slackapi.MsgOptionText("v11", false))
	// Tier 3 refills one token each 1.2 s: Retry-After rounds up to 2.
	if got := retryAfter(t, err, "update 11"); got != 2*time.Second {
		t.Errorf("update 11: got Retry-After %s, want 2s", got)
	}
	// chat.postMessage has a budget of its own.
	if _, err := post(api, "C2", "still posting"); err != nil {
		t.Fatalf("post after chat.update ran out: %v", err)
	}
	if got, want := srv.RateLimited("chat.update"), 1; got != want {
		t.Errorf("got %d chat.update 429s, want %d", got, want)
	}
	if got := srv.RateLimited("chat.postMessage"); got != 0 {
		t.Errorf("got %d chat.postMessage 429s, want 0", got)
	}
	m, _ := srv.Message("C1", ts)
	if m.Text != "v10" || m.Edits != 10 || m.RateLimited != 1 {
		t.Errorf("got text %q, %d edits, %d 429s; want v10, 10, 1", m.Text, m.Edits, m.RateLimited)
	}
}

func TestRetryAfterPerMethod(t *testing.T) {
	_, api, clk := newFake(t, slacktest.Config{})
	var ts []string
	for i := range 5 {
		_, t1, err := api.StartStream("D1", slackapi.MsgOptionTS("1700000000.000001"), slackapi.MsgOptionMarkdownText(fmt.Sprint("stream ", i)))
		if err != nil {
			t.Fatalf("start %d: %v", i+1, err)
		}
		ts = append(ts, t1)
	}
	_, _, err := api.StartStream("D1", slackapi.MsgOptionTS("1700000000.000001"), slackapi.MsgOptionMarkdownText("sixth"))
	// Tier 2: one token each 3 s.
	if got := retryAfter(t, err, "start 6"); got != 3*time.Second {
		t.Errorf("start 6: got Retry-After %s, want 3s", got)
	}
	// The streams already open take appends (Tier 4) and stops (Tier 2,
	// a bucket apart from chat.startStream's).
	for _, t1 := range ts {
		if _, _, err := api.AppendStream("D1", t1, slackapi.MsgOptionMarkdownText(" more")); err != nil {
			t.Fatalf("append to %s: %v", t1, err)
		}
		if _, _, err := api.StopStream("D1", t1); err != nil {
			t.Fatalf("stop %s: %v", t1, err)
		}
	}
	clk.Advance(2 * time.Second)
	_, _, err = api.StartStream("D1", slackapi.MsgOptionTS("1700000000.000001"), slackapi.MsgOptionMarkdownText("sixth"))
	if got := retryAfter(t, err, "start 6, 2 s later"); got != time.Second {
		t.Errorf("start 6, 2 s later: got Retry-After %s, want 1s", got)
	}
	clk.Advance(time.Second)
	if _, _, err := api.StartStream("D1", slackapi.MsgOptionTS("1700000000.000001"), slackapi.MsgOptionMarkdownText("sixth")); err != nil {
		t.Fatalf("start 6, 3 s later: %v", err)
	}
}

func TestStreamTextCapped(t *testing.T) {
	srv, api, _ := newFake(t, slacktest.Config{})
	thread := slackapi.MsgOptionTS("1700000000.000001")
	if _, _, err := api.StartStream("D1", thread, slackapi.MsgOptionMarkdownText(strings.Repeat("x", slacktest.MaxStreamText+1))); apiError(err) != "msg_too_long" {
		t.Errorf("start with 12,001 characters: got %v, want msg_too_long", err)
	}
	_, ts, err := api.StartStream("D1", thread, slackapi.MsgOptionMarkdownText(strings.Repeat("a", 8000)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		call func(md string) error
	}{
		{"append", func(md string) error {
			_, _, err := api.AppendStream("D1", ts, slackapi.MsgOptionMarkdownText(md))
			return err
		}},
		{"stop", func(md string) error {
			_, _, err := api.StopStream("D1", ts, slackapi.MsgOptionMarkdownText(md))
			return err
		}},
	} {
		if err := tc.call(strings.Repeat("b", 4001)); apiError(err) != "msg_too_long" {
			t.Errorf("%s beyond 12,000 in all: got %v, want msg_too_long", tc.name, err)
		}
	}
	m, _ := srv.Message("D1", ts)
	if len(m.Text) != 8000 || !m.Streaming || m.Edits != 0 {
		t.Errorf("after refused calls: got %d characters, streaming %v, %d edits; want 8000, true, 0", len(m.Text), m.Streaming, m.Edits)
	}
	if _, _, err := api.AppendStream("D1", ts, slackapi.MsgOptionMarkdownText(strings.Repeat("b", 4000))); err != nil {
		t.Fatalf("append up to 12,000: %v", err)
	}
	if _, _, err := api.StopStream("D1", ts, slackapi.MsgOptionMarkdownText("!")); apiError(err) != "msg_too_long" {
		t.Errorf("stop with one more character: got %v, want msg_too_long", err)
	}
	if _, _, err := api.StopStream("D1", ts); err != nil {
		t.Fatalf("stop: %v", err)
	}
	m, _ = srv.Message("D1", ts)
	if len(m.Text) != slacktest.MaxStreamText || m.Streaming || m.Edits != 1 {
		t.Errorf("got %d characters, streaming %v, %d edits; want 12000, false, 1", len(m.Text), m.Streaming, m.Edits)
	}
}

func TestChangesRecorded(t *testing.T) {
	srv, api, clk := newFake(t, slacktest.Config{})
	t0 := clk.Now()
	ts, err := post(api, "C1", "draft")
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	api.UpdateMessage("C1", ts, slackapi.MsgOptionText("draft", false)) // no change
	api.UpdateMessage("C1", ts, slackapi.MsgOptionText("final", false))

	thread := slackapi.MsgOptionTS(ts)
	_, sts, err := api.StartStream("D1", thread) // nothing to show yet
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	api.AppendStream("D1", sts, slackapi.MsgOptionMarkdownText("Hel"))
	clk.Advance(time.Second)
	api.StopStream("D1", sts, slackapi.MsgOptionMarkdownText("lo"))

	m, _ := srv.Message("C1", ts)
	if want := []time.Time{t0, t0.Add(time.Second)}; m.Edits != 1 || !equalTimes(m.Changes, want) {
		t.Errorf("posted message: got %d edits, changes %v; want 1, %v", m.Edits, m.Changes, want)
	}
	s, _ := srv.Message("D1", sts)
	if want := []time.Time{t0.Add(2 * time.Second), t0.Add(3 * time.Second)}; s.Text != "Hello" || s.Edits != 2 || !equalTimes(s.Changes, want) {
		t.Errorf("streamed message: got %q, %d edits, changes %v; want Hello, 2, %v", s.Text, s.Edits, s.Changes, want)
	}

	var got []string
	for _, c := range srv.CallLog() {
		got = append(got, fmt.Sprintf("%s %s %s %s %q", c.Time.Sub(t0), c.Method, c.Channel, c.TS, c.Error))
	}
	want := []string{
		fmt.Sprintf("0s chat.postMessage C1 %s \"\"", ts),
		fmt.Sprintf("1s chat.update C1 %s \"\"", ts),
		fmt.Sprintf("1s chat.update C1 %s \"\"", ts),
		fmt.Sprintf("1s chat.startStream D1 %s \"\"", sts),
		fmt.Sprintf("2s chat.appendStream D1 %s \"\"", sts),
		fmt.Sprintf("3s chat.stopStream D1 %s \"\"", sts),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got calls\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func equalTimes(a, b []time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

func TestLimitsOffUnlimited(t *testing.T) {
	srv, api, _ := newFake(t, slacktest.Config{Unlimited: true})
	for i := range 50 {
		if _, err := post(api, "C1", fmt.Sprint("post ", i)); err != nil {
			t.Fatalf("post %d: %v", i+1, err)
		}
	}
	if got := srv.RateLimited("chat.postMessage"); got != 0 {
		t.Errorf("got %d 429s, want none", got)
	}
	// Injected faults still apply.
	srv.Inject("chat.postMessage", slacktest.Fault{RetryAfter: 4})
	_, err := post(api, "C1", "faulted")
	if got := retryAfter(t, err, "injected 429"); got != 4*time.Second {
		t.Errorf("got Retry-After %s, want 4s", got)
	}
}

func TestOneMethodUnlimited(t *testing.T) {
	srv, api, _ := newFake(t, slacktest.Config{Limits: map[string]slacktest.Limit{"chat.postMessage": {}}})
	for i := range 20 {
		if _, err := post(api, "C1", fmt.Sprint("post ", i)); err != nil {
			t.Fatalf("post %d: %v", i+1, err)
		}
	}
	ts, _ := post(api, "C1", "to edit")
	for i := range 10 {
		if _, _, _, err := api.UpdateMessage("C1", ts, slackapi.MsgOptionText(fmt.Sprint("edit ", i), false)); err != nil {
			t.Fatalf("update %d: %v", i+1, err)
		}
	}
	if _, _, _, err := api.UpdateMessage("C1", ts, slackapi.MsgOptionText("eleventh", false)); err == nil {
		t.Error("got chat.update's 11th through, want Slack's limit still on it")
	}
	if got := srv.RateLimited("chat.postMessage"); got != 0 {
		t.Errorf("got %d chat.postMessage 429s, want none", got)
	}
}

func TestTighterLimit(t *testing.T) {
	// Tightening a limit needs no word in the test's name.
	_, api, clk := newFake(t, slacktest.Config{Limits: map[string]slacktest.Limit{
		"chat.postMessage": {Workspace: slacktest.PostPerWorkspace, Channel: slacktest.Rate{Every: 5 * time.Second, Burst: 1}},
	}})
	if _, err := post(api, "C1", "one"); err != nil {
		t.Fatal(err)
	}
	_, err := post(api, "C1", "two")
	if got := retryAfter(t, err, "post 2"); got != 5*time.Second {
		t.Errorf("got Retry-After %s, want 5s", got)
	}
	clk.Advance(4500 * time.Millisecond)
	_, err = post(api, "C1", "two")
	if got := retryAfter(t, err, "post 2, 4.5 s later"); got != time.Second {
		t.Errorf("got Retry-After %s, want 1s (0.5 s rounded up)", got)
	}
}

// nameTB is a testing.TB with another name that records Fatalf.
type nameTB struct {
	testing.TB
	name  string
	fatal string
}

func (tb *nameTB) Name() string { return tb.name }
func (tb *nameTB) Fatalf(format string, args ...any) {
	if tb.fatal == "" {
		tb.fatal = fmt.Sprintf(format, args...)
	}
}

func TestRelaxingNeedsName(t *testing.T) {
	for _, tc := range []struct {
		name     string
		testName string
		cfg      slacktest.Config
		fails    bool
	}{
		{"default", "TestX", slacktest.Config{}, false},
		{"unlimited", "TestX", slacktest.Config{Unlimited: true}, true},
		{"unlimited named", "TestXUnlimited", slacktest.Config{Unlimited: true}, false},
		{"named subtest", "TestXUnlimited/case", slacktest.Config{Unlimited: true}, false},
		{"method lifted", "TestX", slacktest.Config{Limits: map[string]slacktest.Limit{"chat.update": {}}}, true},
		{"bigger burst", "TestX", slacktest.Config{Limits: map[string]slacktest.Limit{"chat.update": {Workspace: slacktest.Rate{Every: slacktest.Tier3.Every, Burst: 50}}}}, true},
		{"channel scope dropped", "TestX", slacktest.Config{Limits: map[string]slacktest.Limit{"chat.postMessage": {Workspace: slacktest.PostPerWorkspace}}}, true},
		{"tighter", "TestX", slacktest.Config{Limits: map[string]slacktest.Limit{"chat.update": {Workspace: slacktest.Tier1}}}, false},
		{"unknown method faster", "TestX", slacktest.Config{Limits: map[string]slacktest.Limit{"pins.add": {Workspace: slacktest.Tier4}}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := &nameTB{TB: t, name: tc.testName}
			slacktest.New(tb, tc.cfg)
			if got := tb.fatal != ""; got != tc.fails {
				t.Errorf("got failed %v (%q), want %v", got, tb.fatal, tc.fails)
			}
		})
	}
}

func TestInjectedFaults(t *testing.T) {
	srv, api, _ := newFake(t, slacktest.Config{})
	srv.Inject("chat.postMessage", slacktest.Fault{RetryAfter: 7}, slacktest.Fault{Error: "channel_not_found"})
	_, err := post(api, "C1", "first")
	if got := retryAfter(t, err, "first post"); got != 7*time.Second {
		t.Errorf("got Retry-After %s, want 7s", got)
	}
	if _, err := post(api, "C1", "second"); apiError(err) != "channel_not_found" {
		t.Errorf("second post: got %v, want channel_not_found", err)
	}
	// Faults take no tokens: the channel's burst of 3 is whole.
	for i := range 3 {
		if _, err := post(api, "C1", fmt.Sprint("after ", i)); err != nil {
			t.Fatalf("post %d after the faults: %v", i+1, err)
		}
	}
	log := srv.CallLog()
	if len(log) != 5 || log[0].Error != "ratelimited" || log[0].RetryAfter != 7*time.Second || log[1].Error != "channel_not_found" || log[2].Error != "" {
		t.Errorf("got call log %+v", log)
	}
	if got := srv.Calls("chat.postMessage"); got != 5 {
		t.Errorf("got %d calls, want 5", got)
	}
}

func TestPostedTextCapped(t *testing.T) {
	srv, api, _ := newFake(t, slacktest.Config{})
	if _, err := post(api, "C1", strings.Repeat("x", 4001)); apiError(err) != "msg_too_long" {
		t.Errorf("post of 4,001 characters: got %v, want msg_too_long", err)
	}
	ts, err := post(api, "C1", strings.Repeat("x", 4000))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := api.UpdateMessage("C1", ts, slackapi.MsgOptionText(strings.Repeat("y", 4001), false)); apiError(err) != "msg_too_long" {
		t.Errorf("update to 4,001 characters: got %v, want msg_too_long", err)
	}
	if m, _ := srv.Message("C1", ts); m.Edits != 0 || len(m.Changes) != 1 {
		t.Errorf("got %d edits and %d changes, want 0 and 1", m.Edits, len(m.Changes))
	}
}
