package discordtest

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// frame is one gateway payload.
type frame struct {
	Op int             `json:"op"`
	D  json.RawMessage `json:"d"`
	S  *int64          `json:"s,omitempty"`
	T  string          `json:"t,omitempty"`
}

// session is a gateway session: its id, sequence and the events sent in
// it, kept for replay on RESUME.
type session struct {
	id   string
	seq  int64
	log  []frame
	conn *gwConn // nil while no connection carries it
}

// gwConn is one websocket connection with its writer.
type gwConn struct {
	ws   *websocket.Conn
	out  chan []byte
	done chan struct{}
	once sync.Once
}

func (c *gwConn) close() {
	c.once.Do(func() {
		close(c.done)
		c.ws.Close()
	})
}

// send queues a payload; a client that does not keep up is dropped.
func (c *gwConn) send(b []byte) {
	select {
	case c.out <- b:
	case <-c.done:
	default:
		c.close()
	}
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (s *Server) serveGateway(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &gwConn{ws: ws, out: make(chan []byte, 1024), done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ws.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.stats.Connections++
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		for {
			select {
			case <-c.done:
				return
			case b := <-c.out:
				ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if ws.WriteMessage(websocket.TextMessage, b) != nil {
					c.close()
					return
				}
			}
		}
	}()
	defer func() {
		c.close()
		s.mu.Lock()
		delete(s.conns, c)
		if s.session != nil && s.session.conn == c {
			s.session.conn = nil
		}
		s.notifyLocked()
		s.mu.Unlock()
	}()

	hello, _ := json.Marshal(map[string]any{"heartbeat_interval": s.opts.HeartbeatInterval.Milliseconds()})
	c.send(mustJSON(frame{Op: 10, D: hello}))
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		var f frame
		if json.Unmarshal(data, &f) != nil {
			continue
		}
		s.mu.Lock()
		switch f.Op {
		case 1: // heartbeat
			s.stats.Heartbeats++
			c.send(mustJSON(frame{Op: 11}))
			s.notifyLocked()
		case 2: // identify
			s.identifyLocked(c, f.D)
		case 6: // resume
			s.resumeLocked(c, f.D)
		}
		s.mu.Unlock()
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only values built here
	}
	return b
}

func (s *Server) identifyLocked(c *gwConn, d json.RawMessage) {
	var id struct {
		Token string `json:"token"`
	}
	if json.Unmarshal(d, &id) != nil || id.Token != "Bot "+s.opts.Token {
		c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4004, "Authentication failed."), time.Now().Add(time.Second))
		c.close()
		return
	}
	s.identify = append(json.RawMessage(nil), d...)
	s.stats.Identifies++
	if s.session != nil && s.session.conn != nil && s.session.conn != c {
		s.session.conn.close()
	}
	s.session = &session{id: "sess-" + s.newID(), conn: c}
	s.dispatchLocked("READY", map[string]any{
		"v":                  10,
		"session_id":         s.session.id,
		"resume_gateway_url": s.wsURL("/resume"),
		"user":               s.users[s.BotID],
		"application":        map[string]any{"id": s.AppID, "flags": 0},
		"guilds":             []any{map[string]any{"id": s.GuildID, "unavailable": true}},
		"private_channels":   []any{},
	})
	s.notifyLocked()
}

func (s *Server) resumeLocked(c *gwConn, d json.RawMessage) {
	var v struct {
		Token     string `json:"token"`
		SessionID string `json:"session_id"`
		Seq       int64  `json:"seq"`
	}
	ok := json.Unmarshal(d, &v) == nil && v.Token == "Bot "+s.opts.Token
	sess := s.session
	if !ok || sess == nil || sess.id != v.SessionID || s.invalidate {
		s.invalidate = false
		s.session = nil
		s.stats.Invalidated++
		c.send(mustJSON(frame{Op: 9, D: json.RawMessage("false")}))
		s.notifyLocked()
		return
	}
	if sess.conn != nil && sess.conn != c {
		sess.conn.close()
	}
	sess.conn = c
	for _, f := range sess.log {
		if f.S != nil && *f.S > v.Seq {
			c.send(mustJSON(f))
		}
	}
	s.stats.Resumes++
	sess.seq++
	seq := sess.seq
	c.send(mustJSON(frame{Op: 0, T: "RESUMED", S: &seq, D: json.RawMessage("{}")}))
	s.notifyLocked()
}

// dispatchLocked sends an event in the current session, or keeps it for
// replay when no connection carries the session.
func (s *Server) dispatchLocked(event string, d any) {
	sess := s.session
	if sess == nil {
		return // no session: the event is lost, as on Discord
	}
	raw, ok := d.(json.RawMessage)
	if !ok {
		raw = mustJSON(d)
	}
	sess.seq++
	seq := sess.seq
	f := frame{Op: 0, D: raw, S: &seq, T: event}
	sess.log = append(sess.log, f)
	if sess.conn != nil {
		sess.conn.send(mustJSON(f))
	}
}

// Drop cuts the gateway connection without a close frame, as a network
// failure would; the session stays resumable and events sent meanwhile are
// kept for replay.
func (s *Server) Drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.session != nil && s.session.conn != nil {
		s.session.conn.close()
		s.session.conn = nil
	}
	s.notifyLocked()
}

// InvalidateSession makes the next RESUME fail with INVALID_SESSION: the
// client must identify again, and the events of the gap are lost.
func (s *Server) InvalidateSession() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.invalidate = true
}

// Connected reports whether a connection carries the session.
func (s *Server) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.session != nil && s.session.conn != nil
}
