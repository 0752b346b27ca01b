package slacktest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// socket is the fake's Socket Mode side. Guarded by Server.mu, except the
// goroutines' WaitGroup. Slack lets an app hold up to MaxConnections
// sockets at once (one per replica, say) and spreads the envelopes between
// them; what a connection did not acknowledge before it closed goes to
// another.
type socket struct {
	conns       []*websocket.Conn // open, oldest first
	next        int               // round robin over conns
	connections int
	pending     []*envelope // sent or waiting to be sent, not acknowledged
	acks        map[string]json.RawMessage
	closed      bool
	done        chan struct{}
	wg          sync.WaitGroup
}

// MaxConnections is how many Socket Mode connections Slack keeps open for
// one app; opening one more closes the oldest.
const MaxConnections = 10

type envelope struct {
	id    string
	body  map[string]any
	tries int
	conn  *websocket.Conn // where it went last; nil: not delivered
}

func (k *socket) init() {
	k.acks = make(map[string]json.RawMessage)
	k.done = make(chan struct{})
}

func (k *socket) wait() { k.wg.Wait() }

func (s *Server) serveSocket(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("ticket") == "" {
		http.Error(w, "no ticket", http.StatusUnauthorized)
		return
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sock.closed {
		conn.Close()
		return
	}
	if len(s.sock.conns) == MaxConnections {
		s.sock.conns[0].Close()
		s.sock.conns = s.sock.conns[1:]
	}
	s.sock.conns = append(s.sock.conns, conn)
	s.sock.connections++
	s.writeToLocked(conn, map[string]any{
		"type": "hello", "num_connections": len(s.sock.conns),
		"connection_info": map[string]any{"app_id": "A0APP"},
		"debug_info":      map[string]any{"host": "fake", "approximate_connection_time": 3600},
	})
	// Slack delivers again what was not acknowledged.
	s.redeliverLocked()
	s.changedLocked()
	s.sock.wg.Add(2)
	go s.readAcks(conn)
	go s.ping(conn)
}

// redeliverLocked delivers the envelopes not acknowledged whose connection
// is gone (or that found none).
func (s *Server) redeliverLocked() {
	for _, e := range s.sock.pending {
		if e.conn == nil || !slices.Contains(s.sock.conns, e.conn) {
			s.deliverLocked(e)
		}
	}
}

// dropLocked forgets conn and hands what it did not acknowledge to the
// connections left.
func (s *Server) dropLocked(conn *websocket.Conn) {
	i := slices.Index(s.sock.conns, conn)
	if i < 0 {
		return
	}
	conn.Close()
	s.sock.conns = slices.Delete(s.sock.conns, i, i+1)
	s.redeliverLocked()
	s.changedLocked()
}

// readAcks records the acknowledgements read from conn.
func (s *Server) readAcks(conn *websocket.Conn) {
	defer s.sock.wg.Done()
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			s.mu.Lock()
			s.dropLocked(conn)
			s.mu.Unlock()
			return
		}
		var ack struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if json.Unmarshal(data, &ack) != nil || ack.EnvelopeID == "" {
			continue
		}
		s.mu.Lock()
		if ack.Payload == nil {
			ack.Payload = json.RawMessage("null")
		}
		s.sock.acks[ack.EnvelopeID] = ack.Payload
		for i, e := range s.sock.pending {
			if e.id == ack.EnvelopeID {
				s.sock.pending = append(s.sock.pending[:i], s.sock.pending[i+1:]...)
				break
			}
		}
		s.changedLocked()
		s.mu.Unlock()
	}
}

// ping pings conn as Slack does; a client that hears no ping reconnects.
func (s *Server) ping(conn *websocket.Conn) {
	defer s.sock.wg.Done()
	t := time.NewTicker(s.cfg.PingEvery)
	defer t.Stop()
	for {
		if err := conn.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(5*time.Second)); err != nil {
			return
		}
		select {
		case <-s.sock.done:
			return
		case <-t.C:
		}
	}
}

// writeToLocked writes v to conn; a connection that fails is dropped.
func (s *Server) writeToLocked(conn *websocket.Conn, v any) {
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := conn.WriteJSON(v); err != nil {
		s.dropLocked(conn)
	}
}

// deliverLocked sends e to the next open connection, if any.
func (s *Server) deliverLocked(e *envelope) {
	if len(s.sock.conns) == 0 {
		e.conn = nil
		return
	}
	if e.tries > 0 {
		e.body["retry_attempt"] = e.tries
		e.body["retry_reason"] = "timeout"
	}
	e.tries++
	s.sock.next = (s.sock.next + 1) % len(s.sock.conns)
	e.conn = s.sock.conns[s.sock.next]
	s.writeToLocked(e.conn, e.body)
}

// sendLocked queues an envelope and delivers it when a socket is open.
func (s *Server) sendLocked(body map[string]any) string {
	s.envelopeSeq++
	id := fmt.Sprintf("env-%d", s.envelopeSeq)
	body["envelope_id"] = id
	e := &envelope{id: id, body: body}
	s.sock.pending = append(s.sock.pending, e)
	s.deliverLocked(e)
	s.changedLocked()
	return id
}

func (s *Server) newEventIDLocked() string {
	s.seq++
	return fmt.Sprintf("Ev%06d", s.seq)
}

func (s *Server) eventsEnvelopeLocked(eventID string, event map[string]any) map[string]any {
	return map[string]any{
		"type":                     "events_api",
		"accepts_response_payload": false,
		"retry_attempt":            0,
		"payload":                  s.callbackLocked(eventID, event),
	}
}

func (s *Server) callbackLocked(eventID string, event map[string]any) map[string]any {
	return map[string]any{
		"token": "verification-token", "team_id": s.cfg.TeamID, "api_app_id": "A0APP",
		"type": "event_callback", "event_id": eventID, "event_time": time.Now().Unix(),
		"event": event,
	}
}

// SendEvent delivers an Events API event over the socket under a new
// event id and returns the envelope id.
func (s *Server) SendEvent(event map[string]any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sendLocked(s.eventsEnvelopeLocked(s.newEventIDLocked(), event))
}

// SendEventID delivers event under eventID: the same id twice is Slack
// retrying one event.
func (s *Server) SendEventID(eventID string, event map[string]any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sendLocked(s.eventsEnvelopeLocked(eventID, event))
}

// SendRaw delivers v as an envelope as is (envelope_id added): for
// malformed payloads.
func (s *Server) SendRaw(v map[string]any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sendLocked(v)
}

// Posted is a message a person wrote, as delivered to the bot.
type Posted struct {
	TS        string
	Envelopes []string // one per event (a mention in a channel is two)
}

// UserMessage records a message by user in channel (threadTS "" for the
// top level) and delivers its events as Slack does: message (message.im or
// message.channels), plus app_mention when it mentions the bot outside a DM.
func (s *Server) UserMessage(channel, threadTS, user, text string) Posted {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := &Message{Channel: channel, TS: s.nextTSLocked(), ThreadTS: threadTS, User: user, Text: text}
	s.addLocked(m, s.cfg.Now())
	// The author's own team, as Slack names it in a Slack Connect channel
	// (the callback's team_id stays the receiving workspace).
	team := s.cfg.TeamID
	if u, ok := s.users[user]; ok {
		team = u.TeamID
	}
	ev := func(typ string) map[string]any {
		e := map[string]any{"type": typ, "channel": m.Channel, "user": user, "text": text, "ts": m.TS, "event_ts": m.TS, "team": team, "user_team": team, "source_team": team}
		if typ == "message" {
			e["channel_type"] = channelType(channel)
		}
		if threadTS != "" {
			e["thread_ts"] = threadTS
		}
		return e
	}
	p := Posted{TS: m.TS}
	if !strings.HasPrefix(channel, "D") && strings.Contains(text, "<@"+s.cfg.BotUserID+">") {
		p.Envelopes = append(p.Envelopes, s.sendLocked(s.eventsEnvelopeLocked(s.newEventIDLocked(), ev("app_mention"))))
	}
	p.Envelopes = append(p.Envelopes, s.sendLocked(s.eventsEnvelopeLocked(s.newEventIDLocked(), ev("message"))))
	return p
}

// SlashCommand delivers a slash command over the socket; it returns the
// envelope id and the command's response URL.
func (s *Server) SlashCommand(channel, user, command, text string) (envelopeID, responseURL string) {
	responseURL = s.ResponseURL()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sendLocked(map[string]any{
		"type": "slash_commands", "accepts_response_payload": true,
		"payload": map[string]any{
			"token": "verification-token", "team_id": s.cfg.TeamID, "team_domain": "fake",
			"channel_id": channel, "channel_name": "general", "user_id": user, "user_name": "someone",
			"command": command, "text": text, "api_app_id": "A0APP", "response_url": responseURL,
			"trigger_id": "trigger",
		},
	}), responseURL
}

// Interaction delivers an interactive payload (block_suggestion,
// block_actions) over the socket and returns the envelope id.
func (s *Server) Interaction(payload map[string]any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sendLocked(map[string]any{"type": "interactive", "accepts_response_payload": true, "payload": payload})
}

// Ack returns the payload acknowledging envelope id ("null" for an empty
// acknowledgement), if it was acknowledged.
func (s *Server) Ack(id string) (json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.sock.acks[id]
	return p, ok
}

// Unacked returns how many envelopes wait for an acknowledgement.
func (s *Server) Unacked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sock.pending)
}

// Connections returns how many socket connections were opened so far.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sock.connections
}

// Connected reports whether a socket is open now.
func (s *Server) Connected() bool { return s.Open() > 0 }

// Open returns how many sockets are open now.
func (s *Server) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sock.conns)
}

// Disconnect asks the client to reconnect, as Slack does before it
// recycles a connection.
func (s *Server) Disconnect() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, conn := range slices.Clone(s.sock.conns) {
		s.writeToLocked(conn, map[string]any{"type": "disconnect", "reason": "refresh_requested", "debug_info": map[string]any{"host": "fake"}})
	}
}

// DropSocket closes the socket without a word, as a network failure does.
func (s *Server) DropSocket() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sock.conns) > 0 {
		for _, conn := range s.sock.conns {
			conn.NetConn().Close()
		}
		s.sock.conns = nil
		s.changedLocked()
	}
}

// EventBody returns an Events API request body, as Slack posts it in HTTP
// mode.
func (s *Server) EventBody(eventID string, event map[string]any) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, _ := json.Marshal(s.callbackLocked(eventID, event))
	return b
}

// Sign returns the headers Slack signs a request body with.
func Sign(secret string, at time.Time, body []byte) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%s:%s", ts, body)
	h := http.Header{}
	h.Set("X-Slack-Request-Timestamp", ts)
	h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	return h
}
