// Package discordtest is a fake Discord for tests: an httptest server that
// speaks the REST API (messages, file uploads, threads, typing,
// interactions, commands), a CDN serving users' attachments, and the
// gateway (HELLO, IDENTIFY, READY, heartbeats, RESUME with replay,
// INVALID_SESSION) over a real websocket, so that the real discordgo client
// runs against it.
//
// It limits calls as Discord does: per-route buckets with the figures
// Discord announces (Limits), the bot's global limit, the rate-limit
// headers and 429s, timed by a clock a test may replace.
//
// It keeps every message with its final content, edit count and the times
// it changed, and counts calls and 429s per route, so a test asserts what
// a user would see. It speaks JSON only and imports no Discord library.
package discordtest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configures a Server. Zero values are documented defaults.
type Options struct {
	// Token is the bot token the server accepts (without "Bot "); default
	// "test-token".
	Token string
	// Limits is the table of per-route limits; default Limits(), the
	// figures Discord announces. An empty table leaves only the global
	// limit. The options below that change limits relax Discord's (or
	// tighten them): a test that sets one says so in its name.
	Limits []Limit
	// Window, when set, scales every window of the table so that the
	// message buckets' 5 s becomes Window, as if time ran faster for the
	// per-route limits; the global limit keeps GlobalWindow.
	Window time.Duration
	// ChannelLimit, when set, is the size of every per-route bucket.
	ChannelLimit int
	// GlobalLimit is the calls allowed per GlobalWindow across the bot
	// (interaction endpoints excepted); default 50 per second, Discord's.
	GlobalLimit  int
	GlobalWindow time.Duration
	// Now is the server's clock; default time.Now. It times the rate-limit
	// windows and stamps messages and their changes, so that a test can
	// advance time instead of waiting.
	Now func() time.Time
	// HeartbeatInterval is sent in HELLO; default 41.25 s.
	HeartbeatInterval time.Duration
	// UploadLimit is the largest file a message may carry; a larger one
	// is refused with HTTP 413 and code 40005, as Discord does. Default
	// 10 MiB, Discord's limit in a server without boosts.
	UploadLimit int64
}

// relaxes says how opts (with rows, the per-route table it makes) allows
// more than Discord does, or "" when it does not.
func relaxes(opts Options, rows []Limit) string {
	if float64(opts.GlobalLimit)/opts.GlobalWindow.Seconds() > 50 {
		return "a global limit above 50 a second"
	}
	if opts.UploadLimit > 10<<20 {
		return "uploads above 10 MiB"
	}
	std := Limits()
	if len(rows) < len(std) {
		return "routes without a limit"
	}
	for i, r := range rows {
		if i < len(std) && float64(r.Limit)/r.Window.Seconds() > float64(std[i].Limit)/std[i].Window.Seconds() {
			return "a route's bucket above Discord's"
		}
	}
	return ""
}

// Channel types.
const (
	ChannelText   = 0
	ChannelDM     = 1
	ChannelVoice  = 2
	ChannelThread = 11
)

// User is a Discord user.
type User struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Bot      bool   `json:"bot,omitempty"`
}

// Channel is a guild channel, a thread or a DM.
type Channel struct {
	ID       string `json:"id"`
	Type     int    `json:"type"`
	GuildID  string `json:"guild_id,omitempty"`
	ParentID string `json:"parent_id,omitempty"`
	Name     string `json:"name,omitempty"`
}

// Message is a message as the server keeps it.
type Message struct {
	ID        string
	ChannelID string
	GuildID   string
	Author    User
	Content   string
	Type      int
	WebhookID string
	// ReplyTo is the id of the message this one replies to.
	ReplyTo string
	// Edits counts successful edits; Deleted is set once deleted.
	Edits   int
	Deleted bool
	// Changes are the times the message changed in sight of users: its
	// creation, then each edit (Discord marks every edit, even one that
	// leaves the text as it was).
	Changes []time.Time
	// AllowedMentions is the allowed_mentions the client sent, as sent
	// ("" when absent).
	AllowedMentions string
	// Components is the JSON of its components (buttons), as last sent.
	Components  string
	Flags       int
	Time        time.Time
	Attachments []Attachment
}

// Attachment is a file on a message. The server keeps the bytes of the
// files users attach (AddAttachment), and only the size and hash of the
// files the bot uploads.
type Attachment struct {
	ID          string
	Filename    string
	ContentType string
	Size        int64
	SHA256      string // hex
	// URL is where the server's CDN serves the file: a signed URL like
	// Discord's, which needs no token.
	URL string
}

// JSON returns the attachment as Discord's attachment object, for a
// MESSAGE_CREATE built by hand (Dispatch).
func (a Attachment) JSON() map[string]any {
	d := map[string]any{"id": a.ID, "filename": a.Filename, "size": a.Size, "url": a.URL, "proxy_url": a.URL}
	if a.ContentType != "" {
		d["content_type"] = a.ContentType
	}
	return d
}

// Stats counts what clients did.
type Stats struct {
	Requests    int // REST requests
	RateLimited int // 429s answered
	GlobalLimit int // of which global
	// Routes counts, per route, the authorized calls (429s included) and
	// the 429s apart by cause. Calls the server does not serve count under
	// RouteOther.
	Routes      map[Route]RouteStats
	Identifies  int
	Resumes     int // successful resumes
	Invalidated int // INVALID_SESSION sent
	Typing      int // typing indicators sent
	Threads     int // threads started from messages
	Connections int // gateway connections accepted
	Heartbeats  int // heartbeats acknowledged
	Uploads     int // files received with messages
	TooLarge    int // 413s answered
	// CDNRequests counts downloads from the CDN; CDNWithToken those that
	// carried an Authorization header (a leak: the CDN needs none).
	CDNRequests  int
	CDNWithToken int
}

// RouteStats counts the calls of one route.
type RouteStats struct {
	Calls         int
	Limited       int // 429s of the route's own bucket
	GlobalLimited int // 429s of the global limit
}

// Interaction is a slash command or autocomplete request sent by Interact.
type Interaction struct {
	Type int // 2 command (default), 3 a component (button) clicked, 4 autocomplete
	// CustomID and MessageID, for a component: the button's custom id and
	// the message it is on.
	CustomID, MessageID string
	GuildID             string
	ChannelID           string
	User                User
	Name                string
	Options             []Option
}

// Option is a command option.
type Option struct {
	Name    string `json:"name"`
	Type    int    `json:"type"` // default 3, a string
	Value   any    `json:"value"`
	Focused bool   `json:"focused,omitempty"`
}

// Response is what the bot answered an interaction.
type Response struct {
	Type int // callback type: 4 message, 5 deferred, 8 autocomplete result
	// Content is the original response's content after its edits.
	Content   string
	Ephemeral bool
	Edits     int
	// Choices are the autocomplete choices' values.
	Choices []string
	// MessageID is the original response's message id (non-ephemeral).
	MessageID string
	Followups []string
}

type interaction struct {
	id, token string
	spec      Interaction
	responded bool
	resp      Response
	original  *Message
}

// Server is a fake Discord. Create it with New.
type Server struct {
	URL     string
	BotID   string
	AppID   string
	GuildID string // a guild created at start

	opts   Options
	now    func() time.Time
	limits limitTable
	srv    *httptest.Server

	mu           sync.Mutex
	nextID       uint64
	users        map[string]User
	channels     map[string]*Channel
	messages     map[string]*Message
	order        []string // message ids in creation order
	interactions map[string]*interaction
	commands     map[string]json.RawMessage // scope ("global" or guild id) -> commands
	buckets      map[string]*rateBucket
	global       rateBucket
	stats        Stats
	routes       map[Route]*RouteStats // Stats.Routes
	typing       map[string]int
	identify     json.RawMessage
	session      *session
	conns        map[*gwConn]struct{}
	invalidate   bool
	changed      chan struct{}
	files        map[string][]byte   // attachment id -> bytes (users' files)
	roles        map[string][]string // user id -> role ids in the guild
	guild        guild               // the guild's owner and roles
	closed       bool
	wg           sync.WaitGroup
}

// New starts a Server; it stops at the end of the test.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Token == "" {
		opts.Token = "test-token"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	rows := opts.Limits
	if rows == nil {
		rows = Limits()
	} else {
		rows = slices.Clone(rows)
	}
	for i := range rows {
		if opts.Window > 0 {
			rows[i].Window = time.Duration(float64(rows[i].Window) * float64(opts.Window) / float64(5*time.Second))
		}
		if opts.ChannelLimit > 0 && rows[i].Limit > 0 {
			rows[i].Limit = opts.ChannelLimit
		}
	}
	if opts.GlobalLimit <= 0 {
		opts.GlobalLimit = 50
	}
	if opts.GlobalWindow <= 0 {
		opts.GlobalWindow = time.Second
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 41250 * time.Millisecond
	}
	if opts.UploadLimit <= 0 {
		opts.UploadLimit = 10 << 20
	}
	if why := relaxes(opts, rows); why != "" && !strings.Contains(t.Name(), "Unlimited") && !strings.Contains(t.Name(), "Scaled") {
		t.Fatalf("discordtest: %s relaxes Discord's limits (%s): say so in its name (Unlimited, or Scaled for faster windows)", t.Name(), why)
	}
	s := &Server{
		opts:         opts,
		now:          opts.Now,
		limits:       newLimitTable(rows),
		global:       rateBucket{limit: opts.GlobalLimit, window: opts.GlobalWindow},
		nextID:       1_100_000_000_000_000_000,
		users:        make(map[string]User),
		channels:     make(map[string]*Channel),
		messages:     make(map[string]*Message),
		interactions: make(map[string]*interaction),
		commands:     make(map[string]json.RawMessage),
		buckets:      make(map[string]*rateBucket),
		routes:       make(map[Route]*RouteStats),
		typing:       make(map[string]int),
		conns:        make(map[*gwConn]struct{}),
		changed:      make(chan struct{}),
		files:        make(map[string][]byte),
		roles:        make(map[string][]string),
	}
	s.BotID = s.newID()
	s.AppID = s.BotID
	s.users[s.BotID] = User{ID: s.BotID, Username: "parley", Bot: true}
	s.GuildID = s.newID()

	mux := http.NewServeMux()
	mux.HandleFunc("/api/v10/", s.serveREST)
	mux.HandleFunc("/gateway", s.serveGateway)
	mux.HandleFunc("/gateway/", s.serveGateway)
	mux.HandleFunc("/resume", s.serveGateway)
	mux.HandleFunc("/resume/", s.serveGateway)
	mux.HandleFunc("GET /attachments/{channel}/{id}/{name}", s.serveCDN)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	t.Cleanup(s.Close)
	return s
}

// APIURL is the REST root to give the client.
func (s *Server) APIURL() string { return s.URL + "/api/v10" }

// Token is the bot token the server accepts.
func (s *Server) Token() string { return s.opts.Token }

// Close drops every connection and stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	conns := make([]*gwConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	s.srv.CloseClientConnections()
	s.srv.Close()
	s.wg.Wait()
}

func (s *Server) newID() string {
	s.nextID++
	return strconv.FormatUint(s.nextID, 10)
}

// notifyLocked wakes the waiters of Changed.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Changed returns a channel closed at the server's next change.
func (s *Server) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Await waits until cond holds, re-checking at each change of the server,
// and fails the test after timeout.
func (s *Server) Await(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		ch := s.Changed()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

// AddUser creates a user.
func (s *Server) AddUser(name string) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := User{ID: s.newID(), Username: name}
	s.users[u.ID] = u
	return u
}

// SetRoles gives a user roles in the guild: messages and interactions
// carry them in their member object.
func (s *Server) SetRoles(user User, roles ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles[user.ID] = slices.Clone(roles)
}

// AddBot creates another bot user.
func (s *Server) AddBot(name string) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := User{ID: s.newID(), Username: name, Bot: true}
	s.users[u.ID] = u
	return u
}

// AddChannel creates a text channel in the server's guild.
func (s *Server) AddChannel(name string) string {
	return s.addChannel(Channel{Type: ChannelText, GuildID: s.GuildID, Name: name})
}

// AddVoiceChannel creates a voice channel (no threads) in the guild.
func (s *Server) AddVoiceChannel(name string) string {
	return s.addChannel(Channel{Type: ChannelVoice, GuildID: s.GuildID, Name: name})
}

// AddDM creates a DM channel between the bot and a user.
func (s *Server) AddDM() string { return s.addChannel(Channel{Type: ChannelDM}) }

func (s *Server) addChannel(c Channel) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.ID = s.newID()
	s.channels[c.ID] = &c
	return c.ID
}

// Channel returns a channel or thread.
func (s *Server) Channel(id string) (Channel, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.channels[id]
	if !ok {
		return Channel{}, false
	}
	return *c, true
}

// Threads returns the threads started from messages of channel parent.
func (s *Server) Threads(parent string) []Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Channel
	for _, c := range s.channels {
		if c.ParentID == parent {
			out = append(out, *c)
		}
	}
	slices.SortFunc(out, func(a, b Channel) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Messages returns the messages of a channel (deleted ones included), oldest
// first.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, id := range s.order {
		if m := s.messages[id]; m.ChannelID == channel {
			out = append(out, m.clone())
		}
	}
	return out
}

// AllMessages returns every message, oldest first.
func (s *Server) AllMessages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.messages[id].clone())
	}
	return out
}

// BotMessages returns the bot's live messages in a channel, oldest first.
func (s *Server) BotMessages(channel string) []Message {
	var out []Message
	for _, m := range s.Messages(channel) {
		if m.Author.ID == s.BotID && !m.Deleted && m.Flags&64 == 0 {
			out = append(out, m)
		}
	}
	return out
}

// Message returns one message.
func (s *Server) Message(id string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.messages[id]
	if !ok {
		return Message{}, false
	}
	return m.clone(), true
}

// clone copies a message with its slices, which the server appends to.
func (m *Message) clone() Message {
	c := *m
	c.Changes = slices.Clone(m.Changes)
	c.Attachments = slices.Clone(m.Attachments)
	return c
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Routes = make(map[Route]RouteStats, len(s.routes))
	for r, rs := range s.routes {
		st.Routes[r] = *rs
	}
	return st
}

// TypingIn counts the typing indicators sent to a channel.
func (s *Server) TypingIn(channel string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.typing[channel]
}

// Identify returns the last IDENTIFY payload's d.
func (s *Server) Identify() json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.identify
}

// Commands returns the commands registered in scope: "global" or a guild
// id.
func (s *Server) Commands(scope string) json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commands[scope]
}

// Response returns the bot's answer to an interaction; ok is false until
// the bot responded.
func (s *Server) Response(id string) (Response, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.interactions[id]
	if !ok || !in.responded {
		return Response{}, false
	}
	r := in.resp
	if in.original != nil {
		r.Content, r.Edits = in.original.Content, in.original.Edits
		if in.original.Flags&64 == 0 && r.Type == 4 || r.Type == 5 && !r.Ephemeral {
			r.MessageID = in.original.ID
		}
	}
	r.Choices = slices.Clone(r.Choices)
	r.Followups = slices.Clone(r.Followups)
	return r, true
}

var mentionRE = regexp.MustCompile(`<@!?([0-9]+)>`)

// Post sends a user's message: the server keeps it and dispatches
// MESSAGE_CREATE. A non-empty replyTo makes it a reply, which pings the
// replied message's author as Discord does by default. It returns the
// message.
func (s *Server) Post(channel string, author User, content string, replyTo string) Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := &Message{ID: s.newID(), ChannelID: channel, Author: author, Content: content, Time: s.now().UTC()}
	if c, ok := s.channels[channel]; ok {
		m.GuildID = c.GuildID
	}
	if replyTo != "" {
		m.Type, m.ReplyTo = 19, replyTo
	}
	s.addMessageLocked(m)
	return *m
}

// AddAttachment keeps a file a user attaches to a message of channel and
// returns it, with the URL the CDN serves it at, for PostFiles.
func (s *Server) AddAttachment(channel, name, contentType string, data []byte) Attachment {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.attachmentLocked(channel, name, contentType, int64(len(data)), sha256.Sum256(data))
	s.files[a.ID] = slices.Clone(data)
	return a
}

func (s *Server) attachmentLocked(channel, name, contentType string, size int64, sum [32]byte) Attachment {
	a := Attachment{ID: s.newID(), Filename: name, ContentType: contentType, Size: size, SHA256: hex.EncodeToString(sum[:])}
	p := "/attachments/" + channel + "/" + a.ID + "/" + url.PathEscape(name)
	a.URL = s.URL + p + "?" + signature(p)
	return a
}

// signature is the query of a CDN URL: an expiry, an issue time and a
// hash of both with the path, as Discord signs its links.
func signature(p string) string {
	ex, is := "7fffffff", "65000000"
	sum := sha256.Sum256([]byte(p + ex + is))
	return "ex=" + ex + "&is=" + is + "&hm=" + hex.EncodeToString(sum[:8])
}

// PostFiles sends a user's message carrying attachments (from
// AddAttachment) and dispatches MESSAGE_CREATE.
func (s *Server) PostFiles(channel string, author User, content string, files ...Attachment) Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := &Message{ID: s.newID(), ChannelID: channel, Author: author, Content: content, Time: s.now().UTC(),
		Attachments: slices.Clone(files)}
	if c, ok := s.channels[channel]; ok {
		m.GuildID = c.GuildID
	}
	s.addMessageLocked(m)
	return *m
}

// serveCDN serves the bytes of users' attachments at their signed URLs.
func (s *Server) serveCDN(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.CDNRequests++
	if r.Header.Get("Authorization") != "" {
		s.stats.CDNWithToken++
	}
	data, ok := s.files[r.PathValue("id")]
	s.notifyLocked()
	s.mu.Unlock()
	if !ok || r.URL.RawQuery != signature(r.URL.EscapedPath()) {
		http.Error(w, "This content is no longer available.", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data)
}

// PostWebhook sends a message from a webhook.
func (s *Server) PostWebhook(channel, content string) Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := &Message{ID: s.newID(), ChannelID: channel, Author: User{ID: s.newID(), Username: "hook", Bot: true},
		Content: content, WebhookID: s.newID(), Time: s.now().UTC()}
	if c, ok := s.channels[channel]; ok {
		m.GuildID = c.GuildID
	}
	s.addMessageLocked(m)
	return *m
}

func (s *Server) addMessageLocked(m *Message) {
	m.Changes = append(m.Changes, m.Time)
	s.messages[m.ID] = m
	s.order = append(s.order, m.ID)
	if m.Flags&64 == 0 {
		s.dispatchLocked("MESSAGE_CREATE", s.messageJSONLocked(m))
	}
	s.notifyLocked()
}

// React adds a user's reaction and dispatches MESSAGE_REACTION_ADD.
func (s *Server) React(channel, message string, user User, emoji string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := map[string]any{"user_id": user.ID, "channel_id": channel, "message_id": message,
		"emoji": map[string]any{"id": nil, "name": emoji}}
	if c, ok := s.channels[channel]; ok && c.GuildID != "" {
		d["guild_id"] = c.GuildID
	}
	s.dispatchLocked("MESSAGE_REACTION_ADD", d)
}

// Delete deletes a message as a user would and dispatches MESSAGE_DELETE.
func (s *Server) Delete(message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.messages[message]; ok && !m.Deleted {
		s.deleteLocked(m)
	}
}

func (s *Server) deleteLocked(m *Message) {
	m.Deleted = true
	d := map[string]any{"id": m.ID, "channel_id": m.ChannelID}
	if m.GuildID != "" {
		d["guild_id"] = m.GuildID
	}
	s.dispatchLocked("MESSAGE_DELETE", d)
	s.notifyLocked()
}

// Interact sends an INTERACTION_CREATE and returns the interaction's id.
func (s *Server) Interact(in Interaction) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in.Type == 0 {
		in.Type = 2
	}
	it := &interaction{id: s.newID(), token: "itok-" + s.newID(), spec: in}
	s.interactions[it.id] = it
	opts := make([]Option, len(in.Options))
	for i, o := range in.Options {
		if o.Type == 0 {
			o.Type = 3
		}
		opts[i] = o
	}
	d := map[string]any{
		"id": it.id, "application_id": s.AppID, "type": in.Type, "token": it.token, "version": 1,
		"channel_id": in.ChannelID,
		"data":       map[string]any{"id": s.newID(), "name": in.Name, "type": 1, "options": opts},
	}
	if in.Type == 3 {
		d["data"] = map[string]any{"custom_id": in.CustomID, "component_type": 2}
		if m, ok := s.messages[in.MessageID]; ok {
			d["message"] = s.messageJSONLocked(m)
		}
	}
	if c, ok := s.channels[in.ChannelID]; ok {
		d["channel"] = c
	}
	if in.GuildID != "" {
		d["guild_id"] = in.GuildID
		d["member"] = map[string]any{"user": in.User, "roles": s.rolesLocked(in.User.ID)}
	} else {
		d["user"] = in.User
	}
	s.dispatchLocked("INTERACTION_CREATE", d)
	return it.id
}

// Dispatch sends any event (op 0) with data d, raw JSON included.
func (s *Server) Dispatch(event string, d any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dispatchLocked(event, d)
}

func (s *Server) messageJSONLocked(m *Message) map[string]any {
	mentions := []User{}
	for _, sm := range mentionRE.FindAllStringSubmatch(m.Content, -1) {
		if u, ok := s.users[sm[1]]; ok && !slices.Contains(mentions, u) {
			mentions = append(mentions, u)
		}
	}
	// A reply pings the author of the message it replies to (Discord's
	// default): that author is listed among the mentions.
	if r, ok := s.messages[m.ReplyTo]; ok && m.ReplyTo != "" && !slices.Contains(mentions, r.Author) && m.Author.ID != s.BotID {
		mentions = append(mentions, r.Author)
	}
	atts := []any{}
	for _, a := range m.Attachments {
		atts = append(atts, a.JSON())
	}
	d := map[string]any{
		"id": m.ID, "channel_id": m.ChannelID, "author": m.Author, "content": m.Content,
		"timestamp": m.Time.Format(time.RFC3339Nano), "edited_timestamp": nil, "type": m.Type,
		"mentions": mentions, "mention_roles": []string{}, "attachments": atts, "embeds": []any{},
		"tts": false, "pinned": false, "mention_everyone": false, "flags": m.Flags,
	}
	if m.GuildID != "" {
		d["guild_id"] = m.GuildID
		if m.WebhookID == "" {
			d["member"] = map[string]any{"roles": s.rolesLocked(m.Author.ID)}
		}
	}
	if m.WebhookID != "" {
		d["webhook_id"] = m.WebhookID
	}
	if m.ReplyTo != "" {
		d["message_reference"] = map[string]any{"type": 0, "message_id": m.ReplyTo, "channel_id": m.ChannelID}
		if r, ok := s.messages[m.ReplyTo]; ok {
			d["referenced_message"] = map[string]any{"id": r.ID, "channel_id": r.ChannelID, "author": r.Author, "content": r.Content, "type": r.Type}
		}
	}
	return d
}

func (s *Server) rolesLocked(user string) []string {
	if r := s.roles[user]; r != nil {
		return r
	}
	return []string{}
}

func (s *Server) String() string { return fmt.Sprintf("discordtest.Server(%s)", s.URL) }
