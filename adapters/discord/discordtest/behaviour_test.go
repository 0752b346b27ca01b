package discordtest_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/adapters/discord/discordtest"
)

// The fake's own behaviour, driven by the real discordgo client: what
// Discord refuses, message lists, guilds and members, attachments, and the
// gateway's resume and invalid sessions.

// restCode returns the Discord JSON error code and HTTP status of err.
func restCode(t *testing.T, err error) (int, int) {
	t.Helper()
	var re *discordgo.RESTError
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want a *discordgo.RESTError", err)
	}
	c := 0
	if re.Message != nil {
		c = re.Message.Code
	}
	return c, re.Response.StatusCode
}

func TestRefusalsAsDiscords(t *testing.T) {
	t.Parallel()
	e := newEnv(t, discordtest.Options{})
	ann := e.fake.AddUser("ann")
	no := false
	// Each case has a channel of its own: the buckets are per channel.
	tests := []struct {
		name         string
		call         func(ch string) error
		code, status int
	}{
		{"message in an unknown channel", func(string) error {
			_, err := e.s.ChannelMessageSend("404", "x")
			return err
		}, 10003, 404},
		{"empty message", func(ch string) error { _, err := e.s.ChannelMessageSend(ch, ""); return err }, 50006, 400},
		{"2,001 characters", func(ch string) error {
			_, err := e.s.ChannelMessageSend(ch, strings.Repeat("x", 2001))
			return err
		}, 50035, 400},
		{"reply to an unknown message", func(ch string) error {
			_, err := e.s.ChannelMessageSendReply(ch, "x", &discordgo.MessageReference{MessageID: "1", ChannelID: ch})
			return err
		}, 50035, 400},
		{"edit of a person's message", func(ch string) error {
			m := e.fake.Post(ch, ann, "mine", "")
			_, err := e.s.ChannelMessageEdit(ch, m.ID, "yours")
			return err
		}, 50005, 403},
		{"edit of an unknown message", func(ch string) error { _, err := e.s.ChannelMessageEdit(ch, "1", "x"); return err }, 10008, 404},
		{"edit to 2,001 characters", func(ch string) error {
			_, err := e.s.ChannelMessageEdit(ch, e.botMessage(ch), strings.Repeat("x", 2001))
			return err
		}, 50035, 400},
		{"delete twice", func(ch string) error {
			id := e.botMessage(ch)
			must(t, e.s.ChannelMessageDelete(ch, id))
			return e.s.ChannelMessageDelete(ch, id)
		}, 10008, 404},
		{"thread in a voice channel", func(string) error {
			vc := e.fake.AddVoiceChannel("voice")
			m := e.fake.Post(vc, ann, "q", "")
			_, err := e.s.MessageThreadStartComplex(vc, m.ID, &discordgo.ThreadStart{Name: "q"})
			return err
		}, 50024, 400},
		{"thread from a deleted message", func(ch string) error {
			m := e.fake.Post(ch, ann, "q", "")
			e.fake.Delete(m.ID)
			_, err := e.s.MessageThreadStartComplex(ch, m.ID, &discordgo.ThreadStart{Name: "q"})
			return err
		}, 10008, 404},
		{"second thread from a message", func(ch string) error {
			m := e.fake.Post(ch, ann, "q", "")
			must(t, func() error {
				_, err := e.s.MessageThreadStartComplex(ch, m.ID, &discordgo.ThreadStart{Name: "q"})
				return err
			}())
			_, err := e.s.MessageThreadStartComplex(ch, m.ID, &discordgo.ThreadStart{Name: "q"})
			return err
		}, 160004, 400},
		{"thread name of 101 characters", func(ch string) error {
			m := e.fake.Post(ch, ann, "q", "")
			_, err := e.s.MessageThreadStartComplex(ch, m.ID, &discordgo.ThreadStart{Name: strings.Repeat("n", 101)})
			return err
		}, 50035, 400},
		{"unknown channel", func(string) error { _, err := e.s.Channel("404"); return err }, 10003, 404},
		{"typing in an unknown channel", func(string) error { return e.s.ChannelTyping("404") }, 10003, 404},
		{"messages of an unknown channel", func(string) error {
			_, err := e.s.ChannelMessages("404", 10, "", "", "")
			return err
		}, 10003, 404},
		{"unknown guild", func(string) error { _, err := e.s.Guild("404"); return err }, 10004, 404},
		{"unknown member", func(string) error { _, err := e.s.GuildMember(e.fake.GuildID, "404"); return err }, 10007, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.clock.Advance(time.Second) // past the global limit's window
			ch := e.fake.AddChannel(tc.name)
			c, status := restCode(t, tc.call(ch))
			if c != tc.code || status != tc.status {
				t.Errorf("got code %d (HTTP %d), want %d (HTTP %d)", c, status, tc.code, tc.status)
			}
		})
	}
	// A reply that may lose its reference is sent without it.
	ch := e.fake.AddChannel("lenient")
	m, err := e.s.ChannelMessageSendComplex(ch, &discordgo.MessageSend{Content: "x",
		Reference: &discordgo.MessageReference{MessageID: "1", FailIfNotExists: &no}})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := e.fake.Message(m.ID); got.ReplyTo != "" || got.Content != "x" {
		t.Errorf("got %+v, want a plain message", got)
	}
	// A wrong token is refused.
	bad, err := discordgo.New("Bot wrong")
	if err != nil {
		t.Fatal(err)
	}
	bad.Client = e.s.Client
	if _, err := bad.ChannelMessageSend(ch, "x"); err == nil {
		t.Error("a wrong token: got no error")
	} else if _, status := restCode(t, err); status != 401 {
		t.Errorf("a wrong token: got HTTP %d, want 401", status)
	}
	if got := e.fake.BotMessages(ch); len(got) != 1 {
		t.Errorf("channel shows %d of the bot's messages, want 1", len(got))
	}
}

func TestMessagesListedNewestFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t, discordtest.Options{})
	ann := e.fake.AddUser("ann")
	ch := e.fake.AddChannel("general")
	var ids []string
	for i := range 5 {
		ids = append(ids, e.fake.Post(ch, ann, string(rune('a'+i)), "").ID)
	}
	e.fake.Delete(ids[4])
	page := func(limit int, after string) []string {
		t.Helper()
		e.clock.Advance(5 * time.Second)
		ms, err := e.s.ChannelMessages(ch, limit, "", after, "")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return out
	}
	rev := func(s []string) []string { s = slices.Clone(s); slices.Reverse(s); return s }
	if got, want := page(100, ""), rev(ids[:4]); !slices.Equal(got, want) {
		t.Errorf("all messages: got %v, want %v (newest first, the deleted one left out)", got, want)
	}
	if got, want := page(2, ""), rev(ids[2:4]); !slices.Equal(got, want) {
		t.Errorf("the newest 2: got %v, want %v", got, want)
	}
	// After a cursor, a page holds the oldest after it.
	if got, want := page(2, ids[0]), rev(ids[1:3]); !slices.Equal(got, want) {
		t.Errorf("2 after %s: got %v, want %v", ids[0], got, want)
	}
	if got := page(2, ids[3]); len(got) != 0 {
		t.Errorf("after the newest: got %v, want none", got)
	}
	all := e.fake.AllMessages()
	if len(all) != 5 || !all[4].Deleted {
		t.Errorf("all messages %+v, want 5, the last deleted", all)
	}
}

func TestGuildRolesAndOwner(t *testing.T) {
	t.Parallel()
	e := newEnv(t, discordtest.Options{})
	ann, bob := e.fake.AddUser("ann"), e.fake.AddUser("bob")
	admin := e.fake.AddRole("admins", discordtest.PermManageGuild)
	e.fake.SetRoles(ann, admin)
	e.fake.SetOwner(bob)
	g, err := e.s.Guild(e.fake.GuildID)
	if err != nil {
		t.Fatal(err)
	}
	if g.OwnerID != bob.ID || len(g.Roles) != 2 || g.Roles[1].ID != admin || g.Roles[1].Permissions != discordtest.PermManageGuild {
		t.Errorf("guild %+v, want owner %s and the admins role", g, bob.ID)
	}
	mem, err := e.s.GuildMember(e.fake.GuildID, ann.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(mem.Roles, []string{admin}) || mem.User.ID != ann.ID {
		t.Errorf("member %+v, want ann with the admins role", mem)
	}
	if mem, err := e.s.GuildMember(e.fake.GuildID, bob.ID); err != nil || len(mem.Roles) != 0 {
		t.Errorf("bob: %+v, %v; want no roles", mem, err)
	}
}

func TestAttachmentsServedAtSignedURLs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, discordtest.Options{})
	ch := e.fake.AddChannel("general")
	a := e.fake.AddAttachment(ch, "chart.png", "image/png", []byte("PNG bytes"))
	m := e.fake.PostFiles(ch, e.fake.AddUser("ann"), "look", a)
	if got, _ := e.fake.Message(m.ID); len(got.Attachments) != 1 || got.Attachments[0].URL != a.URL {
		t.Fatalf("message %+v, want the attachment", got)
	}
	client := &http.Client{Transport: &http.Transport{DialContext: loopbackDial}, Timeout: 10 * time.Second}
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := get(a.URL); status != 200 || body != "PNG bytes" {
		t.Errorf("signed URL: got %d %q, want the bytes", status, body)
	}
	// A link whose signature was cut off (or forged) is refused.
	unsigned, _, _ := strings.Cut(a.URL, "?")
	if status, _ := get(unsigned); status != 404 {
		t.Errorf("unsigned URL: got %d, want 404", status)
	}
	if status, _ := get(strings.Replace(a.URL, "hm=", "hm=0", 1)); status != 404 {
		t.Errorf("forged URL: got %d, want 404", status)
	}
	if st := e.fake.Stats(); st.CDNRequests != 3 || st.CDNWithToken != 0 {
		t.Errorf("got %d CDN requests (%d with a token), want 3 (0)", st.CDNRequests, st.CDNWithToken)
	}
}

// gatewayEvents opens e's session with handlers that record what the bot
// would see.
type gatewayEvents struct {
	mu      sync.Mutex
	s       seen
	changed chan struct{} // closed at the next event
}

// seen is what the bot has seen.
type seen struct {
	created []*discordgo.Message
	deleted []string
	reacted []string
	ready   int
	resumed int
}

func (g *gatewayEvents) snapshot() seen {
	g.mu.Lock()
	defer g.mu.Unlock()
	return seen{created: slices.Clone(g.s.created), deleted: slices.Clone(g.s.deleted),
		reacted: slices.Clone(g.s.reacted), ready: g.s.ready, resumed: g.s.resumed}
}

// record runs f under g's lock and wakes those waiting.
func (g *gatewayEvents) record(f func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f()
	close(g.changed)
	g.changed = make(chan struct{})
}

func openGateway(t *testing.T, e *env) *gatewayEvents {
	t.Helper()
	g := &gatewayEvents{changed: make(chan struct{})}
	e.s.AddHandler(func(_ *discordgo.Session, m *discordgo.MessageCreate) {
		g.record(func() { g.s.created = append(g.s.created, m.Message) })
	})
	e.s.AddHandler(func(_ *discordgo.Session, m *discordgo.MessageDelete) {
		g.record(func() { g.s.deleted = append(g.s.deleted, m.ID) })
	})
	e.s.AddHandler(func(_ *discordgo.Session, r *discordgo.MessageReactionAdd) {
		g.record(func() { g.s.reacted = append(g.s.reacted, r.UserID+"/"+r.Emoji.Name) })
	})
	e.s.AddHandler(func(_ *discordgo.Session, _ *discordgo.Ready) {
		g.record(func() { g.s.ready++ })
	})
	e.s.AddHandler(func(_ *discordgo.Session, _ *discordgo.Resumed) {
		g.record(func() { g.s.resumed++ })
	})
	e.s.SyncEvents = true
	if err := e.s.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.s.Close() })
	return g
}

// awaitEvents waits until cond holds of what the bot has seen.
func awaitEvents(t *testing.T, e *env, g *gatewayEvents, what string, cond func(seen) bool) seen {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		ch := g.changed
		g.mu.Unlock()
		if got := g.snapshot(); cond(got) {
			return got
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestGatewayEventsAsDiscordSendsThem(t *testing.T) {
	t.Parallel()
	e := newEnv(t, discordtest.Options{})
	g := openGateway(t, e)
	ann := e.fake.AddUser("ann")
	other := e.fake.AddBot("other")
	ch := e.fake.AddChannel("general")
	role := e.fake.AddRole("helpers", 0)
	e.fake.SetRoles(ann, role)

	q := e.fake.Post(ch, ann, "<@"+e.fake.BotID+"> hi", "")
	answer := e.botMessage(ch)
	r := e.fake.Post(ch, ann, "thanks", answer)
	e.fake.PostWebhook(ch, "from a hook")
	e.fake.Post(ch, other, "beep", "")
	e.fake.React(ch, answer, ann, "🛑")
	e.fake.Delete(q.ID)
	got := awaitEvents(t, e, g, "every event", func(s seen) bool {
		return len(s.created) == 5 && len(s.deleted) == 1 && len(s.reacted) == 1
	})
	byID := map[string]*discordgo.Message{}
	for _, m := range got.created {
		byID[m.ID] = m
	}
	if m := byID[q.ID]; m == nil || len(m.Mentions) != 1 || m.Mentions[0].ID != e.fake.BotID || m.GuildID != e.fake.GuildID ||
		m.Member == nil || !slices.Equal(m.Member.Roles, []string{role}) {
		t.Errorf("mention %+v, want the bot mentioned, in the guild, with ann's role", m)
	}
	// A reply pings the author it replies to, and carries the reference.
	if m := byID[r.ID]; m == nil || m.Type != discordgo.MessageTypeReply || m.MessageReference == nil ||
		m.MessageReference.MessageID != answer || len(m.Mentions) != 1 || m.Mentions[0].ID != e.fake.BotID ||
		m.ReferencedMessage == nil || m.ReferencedMessage.ID != answer {
		t.Errorf("reply %+v, want a reply to %s pinging the bot", m, answer)
	}
	hooks, bots := 0, 0
	for _, m := range got.created {
		if m.WebhookID != "" {
			hooks++
		}
		if m.Author.Bot {
			bots++
		}
	}
	if hooks != 1 || bots != 3 { // the hook, the other bot, and the bot's own answer
		t.Errorf("got %d webhook and %d bot messages, want 1 and 3", hooks, bots)
	}
	if got.deleted[0] != q.ID || got.reacted[0] != ann.ID+"/🛑" {
		t.Errorf("deleted %v, reacted %v", got.deleted, got.reacted)
	}
	if len(e.fake.Identify()) == 0 || got.ready != 1 {
		t.Errorf("IDENTIFY %s, %d READY; want one of each", e.fake.Identify(), got.ready)
	}
}

// The gateway's resume and invalid sessions are driven by a plain
// websocket client speaking the protocol, step by step: discordgo's own
// reconnection races its listener against its heartbeat (each may close
// the connection the other opened), which Parley's adapter works around
// and its tests cover.

// gw is a raw gateway connection.
type gw struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialGateway(t *testing.T, e *env) *gw {
	t.Helper()
	d := websocket.Dialer{NetDialContext: loopbackDial, HandshakeTimeout: 10 * time.Second}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(e.fake.URL, "http")+"/gateway", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	g := &gw{t: t, ws: ws}
	if f := g.next(); f.Op != 10 {
		t.Fatalf("got op %d, want HELLO", f.Op)
	}
	return g
}

type gwFrame struct {
	Op int             `json:"op"`
	T  string          `json:"t"`
	S  int64           `json:"s"`
	D  json.RawMessage `json:"d"`
}

// next reads the next frame other than a heartbeat ACK.
func (g *gw) next() gwFrame {
	g.t.Helper()
	for {
		g.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		var f gwFrame
		if err := g.ws.ReadJSON(&f); err != nil {
			g.t.Fatalf("read the gateway: %v", err)
		}
		if f.Op != 11 {
			return f
		}
	}
}

func (g *gw) send(op int, d any) {
	g.t.Helper()
	must(g.t, g.ws.WriteJSON(map[string]any{"op": op, "d": d}))
}

func TestGatewayResumeReplaysAndInvalidSessionLoses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, discordtest.Options{})
	ann := e.fake.AddUser("ann")
	ch := e.fake.AddChannel("general")
	token := "Bot " + e.fake.Token()

	c := dialGateway(t, e)
	c.send(2, map[string]any{"token": token, "intents": 0})
	ready := c.next()
	var r struct {
		SessionID string `json:"session_id"`
		ResumeURL string `json:"resume_gateway_url"`
	}
	if err := json.Unmarshal(ready.D, &r); err != nil || ready.T != "READY" || r.SessionID == "" || r.ResumeURL == "" {
		t.Fatalf("got %s %s (%v), want READY with a session and a resume URL", ready.T, ready.D, err)
	}
	seen := e.fake.Post(ch, ann, "seen", "")
	if f := c.next(); f.T != "MESSAGE_CREATE" || !strings.Contains(string(f.D), seen.ID) {
		t.Fatalf("got %s, want the MESSAGE_CREATE of %s", f.T, seen.ID)
	}
	seq := ready.S + 1

	// A dropped connection: a RESUME with the last sequence seen gets what
	// was sent meanwhile, then RESUMED.
	e.fake.Drop()
	e.fake.Await(t, 10*time.Second, "the drop", func() bool { return !e.fake.Connected() })
	during := e.fake.Post(ch, ann, "sent during the drop", "")
	c = dialGateway(t, e)
	c.send(6, map[string]any{"token": token, "session_id": r.SessionID, "seq": seq})
	if f := c.next(); f.T != "MESSAGE_CREATE" || !strings.Contains(string(f.D), during.ID) {
		t.Fatalf("got %s %s, want the replayed MESSAGE_CREATE of %s", f.T, f.D, during.ID)
	}
	if f := c.next(); f.T != "RESUMED" {
		t.Fatalf("got %s, want RESUMED", f.T)
	}
	if st := e.fake.Stats(); st.Resumes != 1 || st.Identifies != 1 {
		t.Errorf("got %d resumes and %d identifies, want 1 and 1", st.Resumes, st.Identifies)
	}

	// A session Discord will not resume: INVALID_SESSION, and after a new
	// IDENTIFY the event of the gap is gone.
	e.fake.InvalidateSession()
	e.fake.Drop()
	e.fake.Await(t, 10*time.Second, "the second drop", func() bool { return !e.fake.Connected() })
	lost := e.fake.Post(ch, ann, "lost", "")
	c = dialGateway(t, e)
	c.send(6, map[string]any{"token": token, "session_id": r.SessionID, "seq": seq + 2})
	if f := c.next(); f.Op != 9 || string(f.D) != "false" {
		t.Fatalf("got op %d %s, want INVALID_SESSION (not resumable)", f.Op, f.D)
	}
	c.send(2, map[string]any{"token": token, "intents": 0})
	if f := c.next(); f.T != "READY" || strings.Contains(string(f.D), r.SessionID) {
		t.Fatalf("got %s %s, want READY of a new session", f.T, f.D)
	}
	after := e.fake.Post(ch, ann, "after", "")
	if f := c.next(); f.T != "MESSAGE_CREATE" || !strings.Contains(string(f.D), after.ID) {
		t.Errorf("got %s %s, want the MESSAGE_CREATE of %s, not of the lost %s", f.T, f.D, after.ID, lost.ID)
	}
	// An old session id is refused for good.
	e.fake.Drop()
	c = dialGateway(t, e)
	c.send(6, map[string]any{"token": token, "session_id": r.SessionID, "seq": 1})
	if f := c.next(); f.Op != 9 {
		t.Errorf("a resume of the old session: got op %d, want INVALID_SESSION", f.Op)
	}
	if st := e.fake.Stats(); st.Invalidated != 2 || st.Identifies != 2 || st.Resumes != 1 {
		t.Errorf("got %d invalid sessions, %d identifies, %d resumes; want 2, 2, 1", st.Invalidated, st.Identifies, st.Resumes)
	}
}
