// Package slacktest is a fake Slack for tests: an httptest server speaking
// the Web API methods Parley calls, Socket Mode over a websocket, and
// response URLs, file uploads and downloads. It keeps every message and
// file the bot writes, enforces Slack's rate limits (429 with Retry-After)
// and length limits, and refuses what Slack refuses (chat.update on an open
// stream, appends to a closed one).
//
// The rate limits are Slack's by default (Tiers, per method, per workspace,
// and per channel for chat.postMessage); a test that relaxes them says so
// in its name. The fake logs every call (CallLog) and every visible change
// of a message (Message.Changes) for tests and benchmarks to count.
//
// It is for tests only; it serves loopback only.
package slacktest

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// Config configures a Server. Zero values are documented defaults.
type Config struct {
	BotToken  string // default "xoxb-test-token"
	AppToken  string // default "xapp-test-token"
	TeamID    string // default "T0TEAM"
	BotUserID string // default "U0BOT"
	BotID     string // default "B0BOT"
	// Limits replaces Slack's limit (Tiers, DefaultLimit) on the methods it
	// names ("chat.update"); a zero Limit lifts a method's limit. Unlimited
	// turns every rate limit off; injected faults still apply.
	//
	// By default the fake limits every method as Slack does. A test that
	// relaxes a limit (Unlimited, or a Limit looser than Slack's) says so
	// in its name, TestXxxUnlimited: New fails any other.
	Limits    map[string]Limit
	Unlimited bool
	// Now is the clock of the rate limits and of the times the fake
	// records; default time.Now.
	Now func() time.Time
	// MaxText is the most characters chat.postMessage and chat.update take;
	// default 4,000 (msg_too_long beyond).
	MaxText int
	// StreamError, when set, is the error chat.startStream answers
	// ("not_allowed", "unknown_method"): a workspace without native
	// streaming.
	StreamError string
	// StatusError, when set, is the error assistant.threads.setStatus
	// answers ("missing_scope").
	StatusError string
	// EchoBotMessages sends the events Slack sends to apps subscribed to a
	// channel for the bot's own messages: message when posted,
	// message_changed when updated, message_deleted when deleted.
	EchoBotMessages bool
	// PingEvery is how often the socket is pinged; default 2 s.
	PingEvery time.Duration
	// MaxFileSize is the largest upload files.getUploadURLExternal
	// accepts (file_upload_size_restricted beyond); default 1 GB.
	MaxFileSize int64
	// KeepBytes is the largest upload whose bytes the fake keeps (File.Data);
	// larger ones keep their SHA-256 and size. Default 8 MiB.
	KeepBytes int64
}

// Message is a message as the fake keeps it.
type Message struct {
	Channel  string
	TS       string
	ThreadTS string
	User     string
	BotID    string
	// Text is what the message shows: mrkdwn for chat.postMessage and
	// chat.update, Markdown for a native stream (at most MaxStreamText
	// characters in all).
	Text string
	// Streamed: started with chat.startStream; Streaming: not stopped yet.
	Streamed  bool
	Streaming bool
	Recipient string // recipient_user_id of a stream
	// Edits counts the chat.update, chat.appendStream and chat.stopStream
	// calls that changed its text.
	Edits int
	// Changes holds the time of each visible change: its creation with
	// something to show (text, blocks, files), then each edit; Shown[i] is
	// the text it showed from Changes[i] on.
	Changes []time.Time
	Shown   []string
	// RateLimited counts the 429s answered to calls on this message.
	RateLimited int
	Deleted     bool
	// Files are the ids of the files the message shares (see File).
	Files []string
	// Blocks is the JSON of its blocks, as last posted or updated ("" for
	// none).
	Blocks string
}

// Status is an assistant.threads.setStatus call.
type Status struct {
	Channel, ThreadTS, Status string
}

// Server is a fake Slack. Create it with New.
type Server struct {
	// URL is the server's base URL; APIURL the Web API's (URL + "/api/").
	URL    string
	APIURL string

	cfg Config
	srv *httptest.Server
	tb  testing.TB

	mu          sync.Mutex
	msgs        []*Message
	byKey       map[string]*Message // channel/ts
	seq         int64
	limits      map[string]Limit // Slack's, with Config.Limits applied
	buckets     map[string]*bucket
	faults      map[string][]Fault
	calls       map[string]int
	limited     map[string]int
	log         []Call
	gone        map[string]bool // channels that no longer exist
	statuses    []Status
	responses   []json.RawMessage
	changed     chan struct{}
	sock        socket
	envelopeSeq int
	files       fileState
	loginPage   bool // file downloads answer the sign-in page
	users       map[string]User
}

// New starts a fake Slack; it stops when the test ends.
func New(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&cfg.BotToken, "xoxb-test-token")
	def(&cfg.AppToken, "xapp-test-token")
	def(&cfg.TeamID, "T0TEAM")
	def(&cfg.BotUserID, "U0BOT")
	def(&cfg.BotID, "B0BOT")
	if cfg.MaxText == 0 {
		cfg.MaxText = 4000
	}
	if cfg.PingEvery == 0 {
		cfg.PingEvery = 2 * time.Second
	}
	if cfg.MaxFileSize == 0 {
		cfg.MaxFileSize = DefaultMaxFileSize
	}
	if cfg.KeepBytes == 0 {
		cfg.KeepBytes = DefaultKeepBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	checkRelaxed(tb, cfg)
	limits := make(map[string]Limit, len(Tiers)+len(cfg.Limits))
	for method, l := range Tiers {
		limits[method] = l
	}
	for method, l := range cfg.Limits {
		for _, r := range []Rate{l.Workspace, l.Channel} {
			if r != (Rate{}) && (r.Every <= 0 || r.Burst <= 0) {
				tb.Fatalf("slacktest: Config.Limits[%q]: %+v needs a positive Every and Burst", method, r)
			}
		}
		limits[method] = l
	}
	s := &Server{
		cfg:     cfg,
		tb:      tb,
		byKey:   make(map[string]*Message),
		limits:  limits,
		buckets: make(map[string]*bucket),
		faults:  make(map[string][]Fault),
		calls:   make(map[string]int),
		limited: make(map[string]int),
		gone:    make(map[string]bool),
		changed: make(chan struct{}),
	}
	s.sock.init()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/{method}", s.serveAPI)
	mux.HandleFunc("GET /socket", s.serveSocket)
	mux.HandleFunc("POST /response/{id}", s.serveResponse)
	mux.HandleFunc("POST /upload/v1/{id}", s.serveUpload)
	mux.HandleFunc("GET /files-pri/{key}/{name}", s.serveFile)
	mux.HandleFunc("GET /files-pri/{key}/download/{name}", s.serveFile)
	mux.HandleFunc("GET /signin", s.serveSignIn)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	s.APIURL = s.srv.URL + "/api/"
	tb.Cleanup(s.Close)
	return s
}

// Close stops the server and its socket.
func (s *Server) Close() {
	s.mu.Lock()
	if !s.sock.closed {
		s.sock.closed = true
		close(s.sock.done)
		for _, conn := range s.sock.conns {
			conn.Close()
		}
		s.sock.conns = nil
	}
	s.mu.Unlock()
	s.srv.CloseClientConnections()
	s.srv.Close()
	s.sock.wait()
}

// Config returns the server's configuration with defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// Changed returns a channel closed at the server's next change (a message,
// an ack, a call): wait on it, then check again.
func (s *Server) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// changedLocked wakes the waiters of Changed.
func (s *Server) changedLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Fault is an answer injected for a method's next calls.
type Fault struct {
	// RetryAfter answers 429 with this Retry-After, in seconds (at least 1).
	RetryAfter int
	// Error answers {"ok":false,"error":Error}.
	Error string
}

// Inject queues faults for method's next calls, one per call.
func (s *Server) Inject(method string, faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[method] = append(s.faults[method], faults...)
}

// RemoveChannel makes channel unknown: calls on it answer channel_not_found.
func (s *Server) RemoveChannel(channel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gone[channel] = true
}

// ExpireStream closes an open stream as Slack does after a while:
// appends then answer message_not_in_streaming_state.
func (s *Server) ExpireStream(channel, ts string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.byKey[channel+"/"+ts]; m != nil {
		m.Streaming = false
		s.changedLocked()
	}
}

// AddMessage records a message a person wrote (so that it exists for the
// fake) and returns its ts.
func (s *Server) AddMessage(channel, threadTS, user, text string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := &Message{Channel: channel, TS: s.nextTSLocked(), ThreadTS: threadTS, User: user, Text: text}
	s.addLocked(m, s.cfg.Now())
	return m.TS
}

// Messages returns copies of every message, in creation order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.msgs))
	for i, m := range s.msgs {
		out[i] = m.clone()
	}
	return out
}

// Message returns a copy of message (channel, ts).
func (s *Server) Message(channel, ts string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.byKey[channel+"/"+ts]
	if m == nil {
		return Message{}, false
	}
	return m.clone(), true
}

// BotMessages returns the bot's messages in channel and thread threadTS
// ("" for the top level) that are not deleted, in order.
func (s *Server) BotMessages(channel, threadTS string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.msgs {
		if m.Channel == channel && m.User == s.cfg.BotUserID && !m.Deleted && m.ThreadTS == threadTS {
			out = append(out, m.clone())
		}
	}
	return out
}

// Calls returns how many times method was called, answered or not.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// RateLimited returns how many 429s method answered.
func (s *Server) RateLimited(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limited[method]
}

// Call is one Web API call as the fake answered it.
type Call struct {
	Time    time.Time // by Config.Now
	Method  string
	Channel string
	// TS is the message the call is about: the ts it names, or the one it
	// created.
	TS string
	// Error is the error answered ("ratelimited" for a 429); "" when ok.
	Error string
	// RetryAfter is a 429's Retry-After.
	RetryAfter time.Duration
}

// CallLog returns every Web API call, answered or not, in order.
func (s *Server) CallLog() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// Statuses returns the assistant.threads.setStatus calls that succeeded.
func (s *Server) Statuses() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Status(nil), s.statuses...)
}

// Responses returns the bodies posted to response URLs, in order.
func (s *Server) Responses() []json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]json.RawMessage(nil), s.responses...)
}

// ResponseURL returns a new response URL served by the fake.
func (s *Server) ResponseURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("%s/response/%d", s.URL, s.seq)
}

func (s *Server) nextTSLocked() string {
	s.seq++
	return fmt.Sprintf("%d.%06d", 1700000000+s.seq/1000000, s.seq%1000000)
}

// changedAt records that m shows its text from now on.
func (m *Message) changedAt(now time.Time) {
	m.Changes = append(m.Changes, now)
	m.Shown = append(m.Shown, m.Text)
}

// addLocked records m, created at now.
func (s *Server) addLocked(m *Message, now time.Time) {
	if m.Text != "" || len(m.Files) > 0 {
		m.changedAt(now)
	}
	s.msgs = append(s.msgs, m)
	s.byKey[m.Channel+"/"+m.TS] = m
	s.changedLocked()
}

// apiError is a Web API refusal.
type apiError string

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	method := r.PathValue("method")
	if err := r.ParseForm(); err != nil {
		writeJSON(w, map[string]any{"ok": false, "error": "invalid_form_data"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.changedLocked()
	now := s.cfg.Now()
	s.calls[method]++
	c := &Call{Time: now, Method: method}
	defer func() { s.log = append(s.log, *c) }()
	fail := func(e string) {
		c.Error = e
		writeJSON(w, map[string]any{"ok": false, "error": e})
	}

	token := r.PostForm.Get("token")
	if h, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		token = h
	}
	want := s.cfg.BotToken
	if method == "apps.connections.open" {
		want = s.cfg.AppToken
	}
	if token != want {
		fail("invalid_auth")
		return
	}
	channel := cmpStr(r.PostForm.Get("channel"), r.PostForm.Get("channel_id"))
	ts := r.PostForm.Get("ts")
	target := s.byKey[channel+"/"+ts]
	c.Channel, c.TS = channel, ts

	if f := s.faults[method]; len(f) > 0 {
		s.faults[method] = f[1:]
		if f[0].RetryAfter > 0 {
			s.tooMany(w, c, target, f[0].RetryAfter)
			return
		}
		fail(f[0].Error)
		return
	}
	if !s.cfg.Unlimited {
		l, ok := s.limits[method]
		if !ok {
			l = DefaultLimit
		}
		if wait := s.takeLocked(method, channel, l, now); wait > 0 {
			// Retry-After is whole seconds: a wait of 100 ms says 1.
			s.tooMany(w, c, target, int(math.Ceil(wait.Seconds())))
			return
		}
	}
	if channel != "" && s.gone[channel] {
		fail("channel_not_found")
		return
	}
	res, err := s.call(method, r, channel, target, now)
	if err != "" {
		fail(string(err))
		return
	}
	if res == nil {
		res = map[string]any{}
	}
	if created, ok := res["ts"].(string); ok && c.TS == "" {
		c.TS = created
	}
	res["ok"] = true
	writeJSON(w, res)
}

// tooMany answers call c with a 429. s.mu is held.
func (s *Server) tooMany(w http.ResponseWriter, c *Call, target *Message, retryAfter int) {
	retryAfter = max(retryAfter, 1)
	s.limited[c.Method]++
	if target != nil {
		target.RateLimited++
	}
	c.Error, c.RetryAfter = "ratelimited", time.Duration(retryAfter)*time.Second
	w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	w.WriteHeader(http.StatusTooManyRequests)
	writeJSON(w, map[string]any{"ok": false, "error": "ratelimited"})
}

// call answers one Web API method at now. s.mu is held.
func (s *Server) call(method string, r *http.Request, channel string, target *Message, now time.Time) (map[string]any, apiError) {
	form := r.PostForm
	runes := utf8.RuneCountInString
	switch method {
	case "auth.test":
		return map[string]any{
			"url": "https://fake.slack.test/", "team": "Fake", "user": "parley",
			"team_id": s.cfg.TeamID, "user_id": s.cfg.BotUserID, "bot_id": s.cfg.BotID,
		}, ""
	case "apps.connections.open":
		return map[string]any{"url": "ws" + strings.TrimPrefix(s.URL, "http") + "/socket?ticket=secret-ticket"}, ""
	case "chat.postMessage":
		text := form.Get("text")
		switch {
		case channel == "":
			return nil, "channel_not_found"
		case text == "" && form.Get("blocks") == "":
			return nil, "no_text"
		case runes(text) > s.cfg.MaxText:
			return nil, "msg_too_long"
		}
		thread := form.Get("thread_ts")
		m := &Message{Channel: channel, TS: s.nextTSLocked(), ThreadTS: thread, User: s.cfg.BotUserID, BotID: s.cfg.BotID, Text: text, Blocks: form.Get("blocks")}
		if text == "" {
			m.changedAt(now) // blocks only
		}
		s.addLocked(m, now)
		s.echoLocked(m)
		return map[string]any{"channel": channel, "ts": m.TS, "message": map[string]any{"text": text, "ts": m.TS}}, ""
	case "chat.update":
		text := form.Get("text")
		switch {
		case target == nil || target.Deleted:
			return nil, "message_not_found"
		case target.User != s.cfg.BotUserID:
			return nil, "cant_update_message"
		case target.Streaming:
			return nil, "streaming_state_conflict"
		case text == "":
			return nil, "no_text"
		case runes(text) > s.cfg.MaxText:
			return nil, "msg_too_long"
		}
		if form.Has("blocks") {
			target.Blocks = form.Get("blocks")
		}
		if target.Text != text {
			target.Text = text
			target.Edits++
			target.changedAt(now)
			s.echoChangeLocked(target, "message_changed")
		}
		return map[string]any{"channel": channel, "ts": target.TS, "text": text}, ""
	case "chat.delete":
		if target == nil || target.Deleted {
			return nil, "message_not_found"
		}
		target.Deleted, target.Streaming = true, false
		s.echoChangeLocked(target, "message_deleted")
		return map[string]any{"channel": channel, "ts": target.TS}, ""
	case "chat.startStream":
		md := form.Get("markdown_text")
		switch {
		case s.cfg.StreamError != "":
			return nil, apiError(s.cfg.StreamError)
		case channel == "":
			return nil, "channel_not_found"
		case !strings.HasPrefix(channel, "D") && (form.Get("recipient_user_id") == "" || form.Get("recipient_team_id") == ""):
			return nil, "invalid_arguments"
		case form.Get("thread_ts") == "":
			return nil, "invalid_arguments"
		case runes(md) > MaxStreamText:
			return nil, "msg_too_long"
		}
		m := &Message{
			Channel: channel, TS: s.nextTSLocked(), ThreadTS: form.Get("thread_ts"), User: s.cfg.BotUserID, BotID: s.cfg.BotID,
			Text: md, Streamed: true, Streaming: true, Recipient: form.Get("recipient_user_id"),
		}
		s.addLocked(m, now)
		s.echoLocked(m)
		return map[string]any{"channel": channel, "ts": m.TS}, ""
	case "chat.appendStream", "chat.stopStream":
		md := form.Get("markdown_text")
		switch {
		case target == nil || target.Deleted:
			return nil, "message_not_found"
		case !target.Streaming:
			return nil, "message_not_in_streaming_state"
		case runes(md) > MaxStreamText:
			return nil, "msg_too_long"
		case runes(target.Text)+runes(md) > MaxStreamText:
			// The whole message is capped too; the call changes nothing,
			// and the stream stays open.
			return nil, "msg_too_long"
		case method == "chat.appendStream" && md == "":
			return nil, "invalid_arguments"
		}
		if md != "" {
			target.Text += md
			target.Edits++
			target.changedAt(now)
		}
		if method == "chat.stopStream" {
			target.Streaming = false
		}
		return map[string]any{"channel": channel, "ts": target.TS}, ""
	case "files.getUploadURLExternal":
		return s.getUploadURL(form)
	case "files.completeUploadExternal":
		return s.completeUpload(form, channel, now)
	case "users.info":
		return s.userInfoLocked(form.Get("user"))
	case "assistant.threads.setStatus":
		if s.cfg.StatusError != "" {
			return nil, apiError(s.cfg.StatusError)
		}
		if form.Get("thread_ts") == "" {
			return nil, "invalid_arguments"
		}
		s.statuses = append(s.statuses, Status{Channel: channel, ThreadTS: form.Get("thread_ts"), Status: form.Get("status")})
		return nil, ""
	}
	return nil, "unknown_method"
}

// echoLocked sends the message event Slack sends for the bot's own post.
func (s *Server) echoLocked(m *Message) {
	if !s.cfg.EchoBotMessages {
		return
	}
	ev := map[string]any{
		"type": "message", "channel": m.Channel, "user": m.User, "bot_id": m.BotID,
		"text": m.Text, "ts": m.TS, "event_ts": m.TS, "channel_type": channelType(m.Channel),
	}
	if m.ThreadTS != "" {
		ev["thread_ts"] = m.ThreadTS
	}
	s.sendLocked(s.eventsEnvelopeLocked(s.newEventIDLocked(), ev))
}

// echoChangeLocked sends the message_changed or message_deleted event
// Slack sends for a change to one of the bot's messages.
func (s *Server) echoChangeLocked(m *Message, subtype string) {
	if !s.cfg.EchoBotMessages {
		return
	}
	prev := map[string]any{"type": "message", "user": m.User, "bot_id": m.BotID, "text": m.Text, "ts": m.TS}
	ev := map[string]any{
		"type": "message", "subtype": subtype, "hidden": true, "channel": m.Channel,
		"ts": s.nextTSLocked(), "channel_type": channelType(m.Channel), "previous_message": prev,
	}
	if subtype == "message_deleted" {
		ev["deleted_ts"] = m.TS
	} else {
		ev["message"] = prev
	}
	ev["event_ts"] = ev["ts"]
	s.sendLocked(s.eventsEnvelopeLocked(s.newEventIDLocked(), ev))
}

func (s *Server) serveResponse(w http.ResponseWriter, r *http.Request) {
	var body json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.responses = append(s.responses, body)
	s.changedLocked()
	s.mu.Unlock()
	_, _ = w.Write([]byte("ok"))
}

// clone returns a copy of m that shares nothing with it.
func (m *Message) clone() Message {
	c := *m
	c.Changes = slices.Clone(m.Changes)
	c.Shown = slices.Clone(m.Shown)
	c.Files = slices.Clone(m.Files)
	return c
}

func channelType(channel string) string {
	switch {
	case strings.HasPrefix(channel, "D"):
		return "im"
	case strings.HasPrefix(channel, "G"):
		return "group"
	default:
		return "channel"
	}
}

func cmpStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func writeJSON(w http.ResponseWriter, v any) {
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	_ = json.NewEncoder(w).Encode(v)
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
