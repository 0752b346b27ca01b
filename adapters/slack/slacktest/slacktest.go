// Package slacktest is a fake Slack for tests: an httptest server speaking
// the Web API methods Parley calls, Socket Mode over a websocket, and
// response URLs, file uploads and downloads. It keeps every message and
// file the bot writes, enforces Slack's rate limits (429 with Retry-After)
// and length limits, and refuses what Slack refuses (chat.update on an open
// stream, appends to a closed one).
//
// It is for tests only; it serves loopback only.
package slacktest

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// Limit is a rate limit the fake enforces on one Web API method: a token
// bucket of Burst calls refilled one per Every, per channel or per
// workspace.
type Limit struct {
	Every      time.Duration
	Burst      int
	PerChannel bool
}

// Config configures a Server. Zero values are documented defaults.
type Config struct {
	BotToken  string // default "xoxb-test-token"
	AppToken  string // default "xapp-test-token"
	TeamID    string // default "T0TEAM"
	BotUserID string // default "U0BOT"
	BotID     string // default "B0BOT"
	// Limits by method name ("chat.update"); none by default.
	Limits map[string]Limit
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
	// chat.update, Markdown for a native stream.
	Text string
	// Streamed: started with chat.startStream; Streaming: not stopped yet.
	Streamed  bool
	Streaming bool
	Recipient string // recipient_user_id of a stream
	// Edits counts chat.update and chat.appendStream calls that changed it.
	Edits int
	// RateLimited counts the 429s answered to calls on this message.
	RateLimited int
	Deleted     bool
	// Files are the ids of the files the message shares (see File).
	Files []string
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
	buckets     map[string]*tokenBucket
	faults      map[string][]Fault
	calls       map[string]int
	limited     map[string]int
	gone        map[string]bool // channels that no longer exist
	statuses    []Status
	responses   []json.RawMessage
	changed     chan struct{}
	sock        socket
	envelopeSeq int
	files       fileState
	loginPage   bool // file downloads answer the sign-in page
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
	s := &Server{
		cfg:     cfg,
		tb:      tb,
		byKey:   make(map[string]*Message),
		buckets: make(map[string]*tokenBucket),
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
		if s.sock.conn != nil {
			s.sock.conn.Close()
			s.sock.conn = nil
		}
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
	s.addLocked(m)
	return m.TS
}

// Messages returns copies of every message, in creation order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.msgs))
	for i, m := range s.msgs {
		out[i] = *m
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
	return *m, true
}

// BotMessages returns the bot's messages in channel and thread threadTS
// ("" for the top level) that are not deleted, in order.
func (s *Server) BotMessages(channel, threadTS string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.msgs {
		if m.Channel == channel && m.User == s.cfg.BotUserID && !m.Deleted && m.ThreadTS == threadTS {
			out = append(out, *m)
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

func (s *Server) addLocked(m *Message) {
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
	s.calls[method]++
	defer s.changedLocked()

	token := r.PostForm.Get("token")
	if h, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		token = h
	}
	want := s.cfg.BotToken
	if method == "apps.connections.open" {
		want = s.cfg.AppToken
	}
	if token != want {
		writeJSON(w, map[string]any{"ok": false, "error": "invalid_auth"})
		return
	}
	channel := cmpStr(r.PostForm.Get("channel"), r.PostForm.Get("channel_id"))
	ts := r.PostForm.Get("ts")
	target := s.byKey[channel+"/"+ts]

	if f := s.faults[method]; len(f) > 0 {
		s.faults[method] = f[1:]
		if f[0].RetryAfter > 0 {
			s.tooMany(w, method, target, f[0].RetryAfter)
			return
		}
		writeJSON(w, map[string]any{"ok": false, "error": f[0].Error})
		return
	}
	if l, ok := s.cfg.Limits[method]; ok {
		key := method + "/" + s.cfg.TeamID
		if l.PerChannel {
			key = method + "/" + channel
		}
		b := s.buckets[key]
		if b == nil {
			b = &tokenBucket{tokens: float64(max(l.Burst, 1)), last: time.Now()}
			s.buckets[key] = b
		}
		if wait := b.take(l, time.Now()); wait > 0 {
			s.tooMany(w, method, target, int(math.Ceil(wait.Seconds())))
			return
		}
	}
	if channel != "" && s.gone[channel] {
		writeJSON(w, map[string]any{"ok": false, "error": "channel_not_found"})
		return
	}
	res, err := s.call(method, r, channel, target)
	if err != "" {
		writeJSON(w, map[string]any{"ok": false, "error": string(err)})
		return
	}
	if res == nil {
		res = map[string]any{}
	}
	res["ok"] = true
	writeJSON(w, res)
}

func (s *Server) tooMany(w http.ResponseWriter, method string, target *Message, retryAfter int) {
	s.limited[method]++
	if target != nil {
		target.RateLimited++
	}
	w.Header().Set("Retry-After", strconv.Itoa(max(retryAfter, 1)))
	w.WriteHeader(http.StatusTooManyRequests)
	writeJSON(w, map[string]any{"ok": false, "error": "ratelimited"})
}

// call answers one Web API method. s.mu is held.
func (s *Server) call(method string, r *http.Request, channel string, target *Message) (map[string]any, apiError) {
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
		m := &Message{Channel: channel, TS: s.nextTSLocked(), ThreadTS: thread, User: s.cfg.BotUserID, BotID: s.cfg.BotID, Text: text}
		s.addLocked(m)
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
		if target.Text != text {
			target.Text = text
			target.Edits++
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
		case runes(md) > 12000:
			return nil, "msg_too_long"
		}
		m := &Message{
			Channel: channel, TS: s.nextTSLocked(), ThreadTS: form.Get("thread_ts"), User: s.cfg.BotUserID, BotID: s.cfg.BotID,
			Text: md, Streamed: true, Streaming: true, Recipient: form.Get("recipient_user_id"),
		}
		s.addLocked(m)
		s.echoLocked(m)
		return map[string]any{"channel": channel, "ts": m.TS}, ""
	case "chat.appendStream", "chat.stopStream":
		md := form.Get("markdown_text")
		switch {
		case target == nil || target.Deleted:
			return nil, "message_not_found"
		case !target.Streaming:
			return nil, "message_not_in_streaming_state"
		case runes(md) > 12000:
			return nil, "msg_too_long"
		case method == "chat.appendStream" && md == "":
			return nil, "invalid_arguments"
		}
		if md != "" {
			target.Text += md
			target.Edits++
		}
		if method == "chat.stopStream" {
			target.Streaming = false
		}
		return map[string]any{"channel": channel, "ts": target.TS}, ""
	case "files.getUploadURLExternal":
		return s.getUploadURL(form)
	case "files.completeUploadExternal":
		return s.completeUpload(form, channel)
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

// tokenBucket is the fake's limiter.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

// take takes a token, or returns how long until one is there.
func (b *tokenBucket) take(l Limit, now time.Time) time.Duration {
	burst := float64(max(l.Burst, 1))
	b.tokens = math.Min(burst, b.tokens+float64(now.Sub(b.last))/float64(l.Every))
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(l.Every))
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
