package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/adapters/slack/slacktest"
	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/conversation/sqlite"
	"github.com/parleyhq/parley/llm"
)

// The end-to-end tests run Parley as deployed: the real engine, llm client
// and SQLite store, this adapter over Socket Mode (or HTTP) and the Web
// API, against a fake Slack and a fake OpenAI-compatible endpoint.

const (
	e2eTimeout = 15 * time.Second
	bot        = "<@U0BOT>"
)

// fakeLLM is an OpenAI-compatible endpoint: it lists models, streams
// scripted answers as SSE and records the requests.
type fakeLLM struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []llmRequest
	replies  []llmReply // answered in order; then the default
	lastByte time.Time  // when the newest stream ended
}

type llmRequest struct {
	Model    string
	Messages []llmMessage
	Images   []string // the URLs of the image parts, in order
}

type llmMessage struct{ Role, Content string }

type llmReply struct {
	Chunks []string
	First  time.Duration // before the first chunk
	Every  time.Duration // between chunks
	Status int           // an HTTP error instead
	Pings  bool          // an SSE comment (": PING") before each chunk, as slow models send
}

func newFakeLLM(t *testing.T) *fakeLLM {
	f := &fakeLLM{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"object":"list","data":[{"id":"gpt-test","object":"model","owned_by":"test"},{"id":"gpt-other","object":"model","owned_by":"test"}]}`)
	})
	mux.HandleFunc("POST /v1/chat/completions", f.serveCompletion)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeLLM) serveCompletion(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model    string `json:"model"`
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rec := llmRequest{Model: req.Model}
	for _, m := range req.Messages {
		var text string
		if json.Unmarshal(m.Content, &text) != nil {
			var parts []struct {
				Type, Text string
				ImageURL   struct{ URL string } `json:"image_url"`
			}
			_ = json.Unmarshal(m.Content, &parts)
			for _, p := range parts {
				text += p.Text
				if p.Type == "image_url" {
					rec.Images = append(rec.Images, p.ImageURL.URL)
				}
			}
		}
		rec.Messages = append(rec.Messages, llmMessage{Role: m.Role, Content: text})
	}
	f.mu.Lock()
	f.requests = append(f.requests, rec)
	reply := llmReply{Chunks: []string{"Hello ", "from ", "the model."}}
	if len(f.replies) > 0 {
		reply, f.replies = f.replies[0], f.replies[1:]
	}
	f.mu.Unlock()

	if reply.Status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(reply.Status)
		fmt.Fprint(w, `{"error":{"message":"invalid api key","type":"invalid_request_error","code":"invalid_api_key"}}`)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	flusher, _ := w.(http.Flusher)
	send := func(delta map[string]any, finish any) {
		b, _ := json.Marshal(map[string]any{
			"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}},
		})
		fmt.Fprintf(w, "data: %s\n\n", b)
		if flusher != nil {
			flusher.Flush()
		}
	}
	for i, c := range reply.Chunks {
		wait := reply.Every
		if i == 0 {
			wait = reply.First
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if reply.Pings {
			fmt.Fprint(w, ": PING\n\n")
		}
		send(map[string]any{"content": c}, nil)
	}
	send(map[string]any{}, "stop")
	fmt.Fprint(w, "data: [DONE]\n\n")
	if flusher != nil {
		flusher.Flush()
	}
	f.mu.Lock()
	f.lastByte = time.Now()
	f.mu.Unlock()
}

func (f *fakeLLM) script(replies ...llmReply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replies = append(f.replies, replies...)
}

func (f *fakeLLM) requestsMade() []llmRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]llmRequest(nil), f.requests...)
}

// e2e is one Parley process on the fakes.
type e2e struct {
	t         *testing.T
	slack     *slacktest.Server
	llm       *fakeLLM
	dbPath    string
	streaming string
	secret    string // HTTP mode when set
	logs      *logBuffer
	// configure, when set, changes the engine's configuration.
	configure func(*bots.Config)

	adapter *Adapter
	stop    func()
}

func newE2E(t *testing.T, streaming string, cfg slacktest.Config) *e2e {
	cfg.EchoBotMessages = true
	h := &e2e{
		t: t, slack: slacktest.New(t, cfg), llm: newFakeLLM(t),
		dbPath: filepath.Join(t.TempDir(), "parley.db"), streaming: streaming, logs: &logBuffer{},
	}
	t.Cleanup(func() {
		if h.stop != nil {
			h.stop()
		}
		if t.Failed() {
			t.Logf("logs:\n%s", h.logs.String())
		}
		checkNoSecrets(t, h.logs.String(), h.slack.Config().BotToken, h.slack.Config().AppToken, "sk-test-key", "signing-secret-123")
	})
	return h
}

// start runs a Parley process: store, llm client, engine and adapter.
func (h *e2e) start() {
	t := h.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	store, err := sqlite.Open(ctx, h.dbPath, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := h.logs.logger()
	client, err := llm.New(llm.Config{
		BaseURL: h.llm.srv.URL + "/v1", APIKey: "sk-test-key",
		HTTPClient:   &http.Client{Transport: slacktest.LoopbackTransport()},
		DefaultModel: "gpt-test", Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ecfg := bots.Config{DefaultModel: "gpt-test", Logger: log}
	if h.configure != nil {
		h.configure(&ecfg)
	}
	engine := bots.New(ecfg, store, client)
	cfg := h.slack.Config()
	opts := Options{
		BotToken: cfg.BotToken, APIURL: h.slack.APIURL, Streaming: h.streaming,
		HTTPClient: loopbackClient(),
	}
	if h.secret != "" {
		opts.SigningSecret = h.secret
	} else {
		opts.AppToken = cfg.AppToken
	}
	a, err := New(opts, engine, log)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := engine.Run(ctx); err != nil {
			t.Errorf("engine: %v", err)
		}
	})
	<-engine.Started()
	wg.Go(func() {
		if err := a.Run(ctx); err != nil {
			t.Errorf("adapter: %v", err)
		}
	})
	h.adapter = a
	h.stop = func() {
		cancel()
		wg.Wait()
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
		h.stop = nil
	}
	waitFor(t, h.slack, e2eTimeout, "auth.test", func() bool {
		select {
		case <-a.ready:
			return true
		default:
			return false
		}
	})
	if h.secret == "" {
		waitFor(t, h.slack, e2eTimeout, "the socket", h.slack.Connected)
	}
}

func (h *e2e) restart() {
	h.t.Helper()
	h.stop()
	h.start()
}

// replyIn waits until the bot's messages in (channel, thread) are n and the
// last one shows want, with its stream (if any) stopped; it returns them.
func (h *e2e) replyIn(channel, thread string, n int, want string) []slacktest.Message {
	h.t.Helper()
	var msgs []slacktest.Message
	waitFor(h.t, h.slack, e2eTimeout, fmt.Sprintf("reply %d in %s/%s to read %q", n, channel, thread, want), func() bool {
		msgs = h.slack.BotMessages(channel, thread)
		return len(msgs) == n && msgs[n-1].Text == want && !msgs[n-1].Streaming
	})
	return msgs
}

// acked waits until envelopes envs are acknowledged and the adapter has
// handed every event it queued to the engine (or skipped it).
func (h *e2e) acked(envs ...string) {
	h.t.Helper()
	waitFor(h.t, h.slack, e2eTimeout, "acks", func() bool {
		return allAcked(h.slack, envs...)() && settled(h.adapter)()
	})
}

func TestE2EMentionThreadedReplyUpdateMode(t *testing.T) {
	h := newE2E(t, StreamingUpdate, slacktest.Config{})
	h.llm.script(llmReply{Chunks: []string{"Hello ", "**world**", "! See ", "[docs](https://x.io)."}, Every: 20 * time.Millisecond})
	h.start()

	q := h.slack.UserMessage("C1", "", "U1", bot+" hi there")
	msgs := h.replyIn("C1", q.TS, 1, "Hello *world*! See <https://x.io|docs>.")
	if msgs[0].Streamed {
		t.Error("update mode streamed natively")
	}
	reqs := h.llm.requestsMade()
	if len(reqs) != 1 {
		t.Fatalf("%d LLM requests for one mention (delivered twice), want 1", len(reqs))
	}
	if last := reqs[0].Messages[len(reqs[0].Messages)-1]; last.Role != "user" || last.Content != "hi there" || reqs[0].Model != "gpt-test" {
		t.Errorf("LLM request %+v, want the question without the mention", reqs[0])
	}
	if st := h.slack.Statuses(); len(st) == 0 || st[0].ThreadTS != q.TS || st[0].Status != "is thinking…" {
		t.Errorf("statuses %+v, want \"is thinking…\" in the thread", st)
	}

	// A follow-up in the thread, without a mention, carries the history.
	h.llm.script(llmReply{Chunks: []string{"Sure: more."}})
	h.slack.UserMessage("C1", q.TS, "U1", "and more?")
	h.replyIn("C1", q.TS, 2, "Sure: more.")
	reqs = h.llm.requestsMade()
	want := []llmMessage{{"user", "hi there"}, {"assistant", "Hello **world**! See [docs](https://x.io)."}, {"user", "and more?"}}
	if got := reqs[len(reqs)-1].Messages; !equalMessages(got, want) {
		t.Errorf("follow-up request %+v, want %+v", got, want)
	}

	// A message at the top level of the channel, without a mention, is not
	// answered.
	p := h.slack.UserMessage("C1", "", "U2", "just chatting")
	h.acked(p.Envelopes...)
	if n := len(h.llm.requestsMade()); n != 2 {
		t.Errorf("%d LLM requests after an unmentioned message, want 2", n)
	}
}

func TestE2EMentionNativeStream(t *testing.T) {
	h := newE2E(t, StreamingNative, slacktest.Config{})
	h.llm.script(llmReply{Chunks: []string{"Hello ", "**world**", "! See ", "[docs](https://x.io)."}, Every: 20 * time.Millisecond})
	h.start()

	q := h.slack.UserMessage("C1", "", "U1", bot+" hi there")
	msgs := h.replyIn("C1", q.TS, 1, "Hello **world**! See [docs](https://x.io).")
	if !msgs[0].Streamed || msgs[0].Recipient != "U1" {
		t.Errorf("reply %+v, want a native stream to U1", msgs[0])
	}
	if n := h.slack.Calls("chat.update"); n != 0 {
		t.Errorf("%d chat.update calls in native mode, want 0", n)
	}
}

func TestE2EPlaceholderBecomesTheAnswer(t *testing.T) {
	// Without assistant status, the engine shows a placeholder message
	// until the answer comes; a stream cannot replace its text, so the
	// placeholder is posted and then edited into the answer: one message.
	h := newE2E(t, StreamingNative, slacktest.Config{StatusError: "missing_scope"})
	h.llm.script(llmReply{Chunks: []string{"The ", "answer."}, First: 300 * time.Millisecond, Every: 20 * time.Millisecond})
	h.start()
	q := h.slack.UserMessage("C1", "", "U1", bot+" think")
	msgs := h.replyIn("C1", q.TS, 1, "The answer.")
	if msgs[0].Streamed || msgs[0].Edits == 0 {
		t.Errorf("reply %+v, want the placeholder's message edited", msgs[0])
	}
	for _, m := range h.slack.Messages() {
		if m.Deleted {
			t.Errorf("message %+v deleted, want none", m)
		}
	}
}

func TestE2EDirectMessages(t *testing.T) {
	h := newE2E(t, StreamingAuto, slacktest.Config{})
	h.start()
	h.llm.script(llmReply{Chunks: []string{"One."}}, llmReply{Chunks: []string{"Two."}})

	h.slack.UserMessage("D1", "", "U1", "first")
	h.replyIn("D1", "", 1, "One.")
	h.slack.UserMessage("D1", "", "U1", "second")
	h.replyIn("D1", "", 2, "Two.")
	reqs := h.llm.requestsMade()
	want := []llmMessage{{"user", "first"}, {"assistant", "One."}, {"user", "second"}}
	if len(reqs) != 2 || !equalMessages(reqs[1].Messages, want) {
		t.Errorf("requests %+v, want the second with %+v", reqs, want)
	}
}

func TestE2EModelCommandThenMention(t *testing.T) {
	h := newE2E(t, StreamingAuto, slacktest.Config{})
	h.slack.AddUser(slacktest.User{ID: "U1", Admin: true}) // a channel's model is for admins
	h.start()

	env, _ := h.slack.SlashCommand("C1", "U1", "/model", "gpt-other")
	var ack struct {
		ResponseType string            `json:"response_type"`
		Text         string            `json:"text"`
		Blocks       []json.RawMessage `json:"blocks"`
	}
	waitAck(t, h.slack, env, &ack)
	if !strings.Contains(ack.Text, "gpt-other") || ack.ResponseType != "ephemeral" {
		t.Errorf("/model ack %+v", ack)
	}
	q := h.slack.UserMessage("C1", "", "U1", bot+" which model?")
	h.replyIn("C1", q.TS, 1, "Hello from the model.")
	if reqs := h.llm.requestsMade(); len(reqs) != 1 || reqs[0].Model != "gpt-other" {
		t.Errorf("requests %+v, want one with gpt-other", reqs)
	}

	// /model alone offers the picker; its options come from the catalog.
	env, _ = h.slack.SlashCommand("C2", "U1", "/model", "")
	waitAck(t, h.slack, env, &ack)
	if len(ack.Blocks) != 2 {
		t.Fatalf("/model ack %+v, want the picker", ack)
	}
	env = h.slack.Interaction(map[string]any{
		"type": "block_suggestion", "action_id": modelActionID, "value": "gpt",
		"team": map[string]any{"id": "T0TEAM"}, "user": map[string]any{"id": "U1"},
	})
	var opts struct{ Options []struct{ Value string } }
	waitAck(t, h.slack, env, &opts)
	if len(opts.Options) != 2 || opts.Options[0].Value != "gpt-other" || opts.Options[1].Value != "gpt-test" {
		t.Errorf("options %+v", opts)
	}
	env = h.slack.Interaction(map[string]any{
		"type": "block_actions", "response_url": h.slack.ResponseURL(),
		"team": map[string]any{"id": "T0TEAM"}, "user": map[string]any{"id": "U1"},
		"channel": map[string]any{"id": "C2"}, "container": map[string]any{"type": "message", "channel_id": "C2", "is_ephemeral": true},
		"actions": []any{map[string]any{"type": "external_select", "action_id": modelActionID, "block_id": modelBlockID, "selected_option": map[string]any{"value": "gpt-other"}}},
	})
	waitAck(t, h.slack, env, nil)
	waitFor(t, h.slack, e2eTimeout, "the choice confirmed", func() bool { return len(h.slack.Responses()) == 1 })
	q = h.slack.UserMessage("C2", "", "U1", bot+" and here?")
	h.replyIn("C2", q.TS, 1, "Hello from the model.")
	if reqs := h.llm.requestsMade(); reqs[len(reqs)-1].Model != "gpt-other" {
		t.Errorf("model after choosing: %s", reqs[len(reqs)-1].Model)
	}
}

func TestE2ERetriedEventAnsweredOnce(t *testing.T) {
	h := newE2E(t, StreamingAuto, slacktest.Config{})
	h.start()
	ev := map[string]any{"type": "message", "channel": "D1", "channel_type": "im", "user": "U1", "text": "once please", "ts": "1690000000.000100", "event_ts": "1690000000.000100"}
	h.slack.SendEventID("Ev0RETRY", ev)
	h.replyIn("D1", "", 1, "Hello from the model.")
	env := h.slack.SendEventID("Ev0RETRY", ev)
	h.acked(env)
	if n := len(h.llm.requestsMade()); n != 1 {
		t.Errorf("%d LLM requests for one event delivered twice, want 1", n)
	}
	if n := len(h.slack.BotMessages("D1", "")); n != 1 {
		t.Errorf("%d replies, want 1", n)
	}
}

func TestE2EBotMessagesIgnored(t *testing.T) {
	h := newE2E(t, StreamingAuto, slacktest.Config{})
	h.start()
	env := h.slack.SendEvent(map[string]any{"type": "message", "subtype": "bot_message", "bot_id": "B7", "channel": "C1", "channel_type": "channel", "text": bot + " hello bot", "ts": "1690000000.000200"})
	env2 := h.slack.SendEvent(map[string]any{"type": "app_mention", "bot_id": "B7", "user": "U7", "channel": "C1", "text": bot + " hello bot", "ts": "1690000000.000200"})
	h.acked(env, env2)
	// The bot's own replies come back as events too (EchoBotMessages):
	// answering a DM must not start a conversation with itself.
	h.slack.UserMessage("D1", "", "U1", "hi")
	h.replyIn("D1", "", 1, "Hello from the model.")
	waitFor(t, h.slack, e2eTimeout, "the echo acknowledged", func() bool { return h.slack.Unacked() == 0 && settled(h.adapter)() })
	if n := len(h.llm.requestsMade()); n != 1 {
		t.Errorf("%d LLM requests, want 1: bots are not answered", n)
	}
}

func TestE2ELLMFailureShows(t *testing.T) {
	h := newE2E(t, StreamingAuto, slacktest.Config{})
	h.start()
	h.llm.script(llmReply{Status: http.StatusUnauthorized})
	q := h.slack.UserMessage("C1", "", "U1", bot+" hi")
	h.replyIn("C1", q.TS, 1, "⚠️ The model's service refused Parley's credentials. An operator should check LLM_API_KEY.")
}

func TestE2ERestartKeepsHistory(t *testing.T) {
	h := newE2E(t, StreamingAuto, slacktest.Config{})
	h.start()
	h.llm.script(llmReply{Chunks: []string{"Noted: 7."}})
	h.slack.UserMessage("D1", "", "U1", "remember 7")
	h.replyIn("D1", "", 1, "Noted: 7.")

	h.restart()
	h.llm.script(llmReply{Chunks: []string{"It was 7."}})
	h.slack.UserMessage("D1", "", "U1", "which number?")
	h.replyIn("D1", "", 2, "It was 7.")
	reqs := h.llm.requestsMade()
	want := []llmMessage{{"user", "remember 7"}, {"assistant", "Noted: 7."}, {"user", "which number?"}}
	if !equalMessages(reqs[len(reqs)-1].Messages, want) {
		t.Errorf("after restart the request holds %+v, want %+v", reqs[len(reqs)-1].Messages, want)
	}
}

func TestE2EHTTPMode(t *testing.T) {
	const secret = "signing-secret-123"
	h := newE2E(t, StreamingAuto, slacktest.Config{})
	h.secret = secret
	h.start()
	srv := httptest.NewServer(h.adapter.Handler())
	t.Cleanup(srv.Close)
	post := func(path string, body []byte, header http.Header) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = header
		res, err := loopbackClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(res.Body)
		return res.StatusCode, b.String()
	}

	challenge := []byte(`{"type":"url_verification","token":"x","challenge":"c-123"}`)
	if code, body := post("/slack/events", challenge, slacktest.Sign(secret, time.Now(), challenge)); code != 200 || body != "c-123" {
		t.Errorf("url_verification: %d %q", code, body)
	}

	body := h.slack.EventBody("Ev0HTTP", map[string]any{"type": "app_mention", "user": "U1", "channel": "C1", "text": bot + " over http", "ts": "1690000000.000300"})
	if code, _ := post("/slack/events", body, slacktest.Sign("wrong-secret", time.Now(), body)); code != http.StatusUnauthorized {
		t.Errorf("bad signature: %d, want 401", code)
	}
	if code, _ := post("/slack/events", body, slacktest.Sign(secret, time.Now().Add(-10*time.Minute), body)); code != http.StatusUnauthorized {
		t.Errorf("stale timestamp: %d, want 401", code)
	}
	if code, _ := post("/slack/events", body, http.Header{}); code != http.StatusUnauthorized {
		t.Errorf("unsigned: %d, want 401", code)
	}
	if n := len(h.llm.requestsMade()); n != 0 {
		t.Fatalf("a refused request reached the model (%d requests)", n)
	}
	if code, _ := post("/slack/events", body, slacktest.Sign(secret, time.Now(), body)); code != 200 {
		t.Errorf("good request: %d, want 200", code)
	}
	h.replyIn("C1", "1690000000.000300", 1, "Hello from the model.")

	form := []byte("team_id=T0TEAM&channel_id=C1&user_id=U1&command=%2Fhelp&text=&response_url=" + h.slack.URL + "/response/9")
	code, resp := post("/slack/commands", form, slacktest.Sign(secret, time.Now(), form))
	var ans answer
	if err := json.Unmarshal([]byte(resp), &ans); code != 200 || err != nil || ans.ResponseType != "ephemeral" || !strings.Contains(ans.Text, "/model") {
		t.Errorf("/help over http: %d %s", code, resp)
	}
}

func TestE2ERateLimitsWaitedOut(t *testing.T) {
	h := newE2E(t, StreamingUpdate, slacktest.Config{})
	h.start()
	h.slack.Inject("chat.postMessage", slacktest.Fault{RetryAfter: 1})
	h.slack.Inject("chat.update", slacktest.Fault{RetryAfter: 1}, slacktest.Fault{RetryAfter: 1})
	chunks := []string{"# Plan\n", "1. **first**\n", "2. second\n", "3. third & last\n", "```go\nx := a < b\n```"}
	// Slow enough that the reply is edited after the first 429.
	h.llm.script(llmReply{Chunks: chunks, Every: 400 * time.Millisecond})
	q := h.slack.UserMessage("C1", "", "U1", bot+" plan it")
	msgs := h.replyIn("C1", q.TS, 1, toMrkdwn(strings.Join(chunks, "")))
	if want := "*Plan*\n1. *first*\n2. second\n3. third &amp; last\n```\nx := a &lt; b\n```"; msgs[0].Text != want {
		t.Errorf("final text %q, want %q", msgs[0].Text, want)
	}
	if a, b := h.slack.RateLimited("chat.postMessage"), h.slack.RateLimited("chat.update"); a != 1 || b != 2 {
		t.Errorf("429s: postMessage %d, update %d; want 1 and 2 (all injected ones met)", a, b)
	}
}

func equalMessages(got, want []llmMessage) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

func TestE2EStricterLimitsWaitedOut(t *testing.T) {
	// The fake limits chat.update harder than Parley paces it (one every
	// 2 s per workspace): the 429s are waited out and the text is exact.
	h := newE2E(t, StreamingUpdate, slacktest.Config{Limits: map[string]slacktest.Limit{
		"chat.update":      {Workspace: slacktest.Rate{Every: 2 * time.Second, Burst: 1}},
		"chat.postMessage": {Workspace: slacktest.PostPerWorkspace, Channel: slacktest.Rate{Every: time.Second, Burst: 1}},
	}})
	h.start()
	chunks := strings.Fields(strings.Repeat("word ", 24))
	for i := range chunks {
		chunks[i] += " "
	}
	chunks[len(chunks)-1] = "end."
	h.llm.script(llmReply{Chunks: chunks, Every: 100 * time.Millisecond})
	q := h.slack.UserMessage("C1", "", "U1", bot+" talk")
	// The end may come as a continuation rather than wait for an edit:
	// the messages, read in order, are the answer.
	waitFor(t, h.slack, e2eTimeout, "the whole answer", func() bool {
		var b strings.Builder
		for _, m := range h.slack.BotMessages("C1", q.TS) {
			b.WriteString(m.Text)
		}
		return b.String() == strings.Join(chunks, "")
	})
	if n := h.slack.RateLimited("chat.update"); n == 0 {
		t.Errorf("no 429 from chat.update: the test did not test the limit")
	}
}
