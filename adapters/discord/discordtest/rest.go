package discordtest

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// apiError is Discord's JSON error body.
type apiError struct {
	status int
	Code   int            `json:"code"`
	Msg    string         `json:"message"`
	Errors map[string]any `json:"errors,omitempty"`
}

func errUnknownChannel() *apiError {
	return &apiError{status: 404, Code: 10003, Msg: "Unknown Channel"}
}
func errUnknownMessage() *apiError {
	return &apiError{status: 404, Code: 10008, Msg: "Unknown Message"}
}
func errTooLong(field string, max int) *apiError {
	return &apiError{status: 400, Code: 50035, Msg: "Invalid Form Body", Errors: map[string]any{
		field: map[string]any{"_errors": []any{map[string]any{
			"code": "BASE_TYPE_MAX_LENGTH", "message": fmt.Sprintf("Must be %d or fewer in length.", max)}}}}}
}

// upload is a file received in a multipart message create.
type upload struct {
	name, contentType string
	size              int64
	sum               [32]byte
}

// readMultipart reads a multipart message create: payload_json, and the
// files[n] parts, of which it keeps the size and the hash. tooLarge is
// set when a file exceeds limit; the body is read to its end regardless,
// so that the client reads the answer rather than a reset connection.
func readMultipart(r io.Reader, boundary string, limit int64) (payload []byte, files []upload, tooLarge bool, err error) {
	if boundary == "" {
		return nil, nil, false, errors.New("no boundary")
	}
	mr := multipart.NewReader(r, boundary)
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return payload, files, tooLarge, nil
		}
		if err != nil {
			return nil, nil, false, err
		}
		name := p.FormName()
		switch {
		case name == "payload_json":
			payload, err = io.ReadAll(io.LimitReader(p, 1<<20))
		case strings.HasPrefix(name, "files["):
			h := sha256.New()
			var n int64
			n, err = io.Copy(h, p)
			f := upload{name: p.FileName(), contentType: p.Header.Get("Content-Type"), size: n}
			h.Sum(f.sum[:0])
			files = append(files, f)
			tooLarge = tooLarge || n > limit
		default:
			_, err = io.Copy(io.Discard, p)
		}
		if err != nil {
			return nil, nil, false, err
		}
	}
}

// serveREST answers /api/v10/...
func (s *Server) serveREST(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/api/v10/")
	seg := strings.Split(strings.Trim(path, "/"), "/")
	var (
		body     []byte
		files    []upload
		tooLarge bool
	)
	if mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == "multipart/form-data" {
		// Read outside the lock: a file takes a while.
		var err error
		body, files, tooLarge, err = readMultipart(r.Body, params["boundary"], s.opts.UploadLimit)
		if err != nil {
			writeJSON(w, 400, &apiError{status: 400, Code: 50109, Msg: "The request body contains invalid JSON."})
			return
		}
	} else {
		body, _ = io.ReadAll(io.LimitReader(r.Body, 1<<20))
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Requests++
	if tooLarge {
		// Refused at Discord's edge, before the token or the buckets.
		s.stats.TooLarge++
		s.notifyLocked()
		writeJSON(w, http.StatusRequestEntityTooLarge, &apiError{Code: 40005, Msg: "Request entity too large"})
		return
	}
	// The interaction endpoints take the interaction's token in the path
	// instead of the bot's, and escape the global limit.
	interactive := outsideGlobal(seg)
	if !interactive && r.Header.Get("Authorization") != "Bot "+s.opts.Token {
		writeJSON(w, 401, map[string]any{"message": "401: Unauthorized", "code": 0})
		return
	}
	route := routeOf(r.Method, seg)
	rs := s.routes[route]
	if rs == nil {
		rs = &RouteStats{}
		s.routes[route] = rs
	}
	rs.Calls++
	now := s.now()
	if !interactive && !s.takeGlobalLocked(w, now, rs) {
		return
	}
	if b := s.bucketLocked(route, seg, now); b != nil && !s.takeLocked(w, b, now, rs) {
		return
	}
	status, v := s.routeLocked(r, seg, body, files)
	if e, ok := v.(*apiError); ok {
		writeJSON(w, e.status, e)
		return
	}
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// routeLocked runs one REST call and returns its status and JSON value.
func (s *Server) routeLocked(r *http.Request, seg []string, body []byte, files []upload) (int, any) {
	m, n := r.Method, len(seg)
	switch {
	case seg[0] == "gateway" && n == 1 && m == "GET":
		return 200, map[string]any{"url": s.wsURL("/gateway")}
	case seg[0] == "gateway" && n == 2 && seg[1] == "bot" && m == "GET":
		return 200, map[string]any{"url": s.wsURL("/gateway"), "shards": 1, "session_start_limit": map[string]any{
			"total": 1000, "remaining": 999, "reset_after": 86400000, "max_concurrency": 1}}
	case seg[0] == "users" && n == 2 && seg[1] == "@me" && m == "GET":
		return 200, s.users[s.BotID]
	case seg[0] == "guilds" && n == 2 && m == "GET":
		return s.guildLocked(seg[1])
	case seg[0] == "guilds" && n == 4 && seg[2] == "members" && m == "GET":
		return s.memberLocked(seg[1], seg[3])
	case seg[0] == "channels" && n == 2 && m == "GET":
		c, ok := s.channels[seg[1]]
		if !ok {
			return 0, errUnknownChannel()
		}
		return 200, c
	case seg[0] == "channels" && n == 3 && seg[2] == "messages" && m == "POST":
		return s.createMessageLocked(seg[1], body, files)
	case seg[0] == "channels" && n == 3 && seg[2] == "messages" && m == "GET":
		return s.listMessagesLocked(seg[1], r)
	case seg[0] == "channels" && n == 4 && seg[2] == "messages" && m == "PATCH":
		return s.editMessageLocked(seg[1], seg[3], body)
	case seg[0] == "channels" && n == 4 && seg[2] == "messages" && m == "DELETE":
		msg, ok := s.messages[seg[3]]
		if !ok || msg.Deleted || msg.ChannelID != seg[1] {
			return 0, errUnknownMessage()
		}
		s.deleteLocked(msg)
		return 204, nil
	case seg[0] == "channels" && n == 5 && seg[2] == "messages" && seg[4] == "threads" && m == "POST":
		return s.startThreadLocked(seg[1], seg[3], body)
	case seg[0] == "channels" && n == 3 && seg[2] == "typing" && m == "POST":
		if _, ok := s.channels[seg[1]]; !ok {
			return 0, errUnknownChannel()
		}
		s.stats.Typing++
		s.typing[seg[1]]++
		s.notifyLocked()
		return 204, nil
	case seg[0] == "interactions" && n == 4 && seg[3] == "callback" && m == "POST":
		return s.callbackLocked(seg[1], seg[2], body)
	case seg[0] == "webhooks" && n == 5 && seg[3] == "messages" && seg[4] == "@original":
		return s.originalLocked(m, seg[2], body)
	case seg[0] == "webhooks" && n == 3 && m == "POST":
		return s.followupLocked(seg[2], body)
	case seg[0] == "applications" && (n == 3 && seg[2] == "commands" || n == 5 && seg[2] == "guilds" && seg[4] == "commands") && m == "PUT":
		scope := "global"
		if n == 5 {
			scope = seg[3]
		}
		var cmds []map[string]any
		if err := json.Unmarshal(body, &cmds); err != nil {
			return 0, &apiError{status: 400, Code: 50109, Msg: "The request body contains invalid JSON."}
		}
		for _, c := range cmds {
			c["id"] = s.newID()
			c["application_id"] = s.AppID
		}
		raw, _ := json.Marshal(cmds)
		s.commands[scope] = raw
		s.notifyLocked()
		return 200, cmds
	}
	return 0, &apiError{status: 404, Code: 0, Msg: "404: Not Found"}
}

func (s *Server) wsURL(path string) string {
	return "ws" + strings.TrimPrefix(s.URL, "http") + path
}

// sent is the body of a message create or edit.
type sent struct {
	Content         *string          `json:"content"`
	AllowedMentions *json.RawMessage `json:"allowed_mentions"`
	Components      *json.RawMessage `json:"components"`
	Flags           int              `json:"flags"`
	Reference       *struct {
		MessageID       string `json:"message_id"`
		FailIfNotExists *bool  `json:"fail_if_not_exists"`
	} `json:"message_reference"`
}

func parseSent(body []byte) (sent, *apiError) {
	var v sent
	if err := json.Unmarshal(body, &v); err != nil {
		return v, &apiError{status: 400, Code: 50109, Msg: "The request body contains invalid JSON."}
	}
	if v.Content != nil && utf8.RuneCountInString(*v.Content) > 2000 {
		return v, errTooLong("content", 2000)
	}
	return v, nil
}

func (s *Server) createMessageLocked(channel string, body []byte, files []upload) (int, any) {
	if _, ok := s.channels[channel]; !ok {
		return 0, errUnknownChannel()
	}
	v, e := parseSent(body)
	if e != nil {
		return 0, e
	}
	if (v.Content == nil || *v.Content == "") && len(files) == 0 {
		return 0, &apiError{status: 400, Code: 50006, Msg: "Cannot send an empty message"}
	}
	msg := &Message{ID: s.newID(), ChannelID: channel, GuildID: s.channels[channel].GuildID,
		Author: s.users[s.BotID], Time: s.now().UTC()}
	if v.Content != nil {
		msg.Content = *v.Content
	}
	for _, f := range files {
		msg.Attachments = append(msg.Attachments, s.attachmentLocked(channel, f.name, f.contentType, f.size, f.sum))
		s.stats.Uploads++
	}
	if v.AllowedMentions != nil {
		msg.AllowedMentions = string(*v.AllowedMentions)
	}
	if v.Components != nil {
		msg.Components = string(*v.Components)
	}
	if ref := v.Reference; ref != nil {
		if target, ok := s.messages[ref.MessageID]; ok && !target.Deleted && target.ChannelID == channel {
			msg.Type, msg.ReplyTo = 19, ref.MessageID
		} else if ref.FailIfNotExists == nil || *ref.FailIfNotExists {
			return 0, &apiError{status: 400, Code: 50035, Msg: "Invalid Form Body", Errors: map[string]any{
				"message_reference": map[string]any{"_errors": []any{map[string]any{"code": "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "message": "Unknown message"}}}}}
		}
	}
	s.addMessageLocked(msg)
	return 200, s.messageJSONLocked(msg)
}

func (s *Server) editMessageLocked(channel, id string, body []byte) (int, any) {
	msg, ok := s.messages[id]
	if !ok || msg.Deleted || msg.ChannelID != channel {
		return 0, errUnknownMessage()
	}
	if msg.Author.ID != s.BotID {
		return 0, &apiError{status: 403, Code: 50005, Msg: "Cannot edit a message authored by another user"}
	}
	v, e := parseSent(body)
	if e != nil {
		return 0, e
	}
	if v.Content != nil {
		if *v.Content == "" {
			return 0, &apiError{status: 400, Code: 50006, Msg: "Cannot send an empty message"}
		}
		msg.Content = *v.Content
	}
	if v.AllowedMentions != nil {
		msg.AllowedMentions = string(*v.AllowedMentions)
	}
	if v.Components != nil {
		msg.Components = string(*v.Components)
	}
	msg.Edits++
	msg.Changes = append(msg.Changes, s.now().UTC())
	s.notifyLocked()
	return 200, s.messageJSONLocked(msg)
}

func (s *Server) listMessagesLocked(channel string, r *http.Request) (int, any) {
	if _, ok := s.channels[channel]; !ok {
		return 0, errUnknownChannel()
	}
	after := r.URL.Query().Get("after")
	limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || limit <= 0 || limit > 100 {
		limit = 50
	}
	var out []map[string]any
	for _, id := range s.order {
		m := s.messages[id]
		if m.ChannelID != channel || m.Deleted || m.Flags&64 != 0 {
			continue
		}
		if after != "" && !newerID(m.ID, after) {
			continue
		}
		out = append(out, s.messageJSONLocked(m))
	}
	if after != "" && len(out) > limit {
		out = out[:limit] // the oldest after the cursor
	} else if len(out) > limit {
		out = out[len(out)-limit:]
	}
	slices.Reverse(out) // Discord lists newest first
	if out == nil {
		out = []map[string]any{}
	}
	return 200, out
}

func newerID(a, b string) bool {
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a > b
}

func (s *Server) startThreadLocked(channel, message string, body []byte) (int, any) {
	c, ok := s.channels[channel]
	if !ok {
		return 0, errUnknownChannel()
	}
	if c.Type != ChannelText {
		return 0, &apiError{status: 400, Code: 50024, Msg: "Cannot execute action on this channel type"}
	}
	msg, ok := s.messages[message]
	if !ok || msg.Deleted || msg.ChannelID != channel {
		return 0, errUnknownMessage()
	}
	if _, exists := s.channels[message]; exists {
		return 0, &apiError{status: 400, Code: 160004, Msg: "A thread has already been created for this message"}
	}
	var v struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return 0, &apiError{status: 400, Code: 50109, Msg: "The request body contains invalid JSON."}
	}
	if n := utf8.RuneCountInString(v.Name); n == 0 || n > 100 {
		return 0, errTooLong("name", 100)
	}
	th := &Channel{ID: message, Type: ChannelThread, GuildID: c.GuildID, ParentID: channel, Name: v.Name}
	s.channels[th.ID] = th
	s.stats.Threads++
	s.dispatchLocked("THREAD_CREATE", map[string]any{"id": th.ID, "type": th.Type, "guild_id": th.GuildID,
		"parent_id": th.ParentID, "name": th.Name, "newly_created": true})
	s.notifyLocked()
	return 201, th
}

func (s *Server) interactionLocked(token string) *interaction {
	for _, in := range s.interactions {
		if in.token == token {
			return in
		}
	}
	return nil
}

func (s *Server) callbackLocked(id, token string, body []byte) (int, any) {
	in, ok := s.interactions[id]
	if !ok || in.token != token {
		return 0, &apiError{status: 404, Code: 10062, Msg: "Unknown interaction"}
	}
	if in.responded {
		return 0, &apiError{status: 400, Code: 40060, Msg: "Interaction has already been acknowledged."}
	}
	var v struct {
		Type int `json:"type"`
		Data struct {
			sent
			Choices []struct {
				Value any `json:"value"`
			} `json:"choices"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return 0, &apiError{status: 400, Code: 50109, Msg: "The request body contains invalid JSON."}
	}
	in.responded = true
	in.resp.Type = v.Type
	switch v.Type {
	case 4, 5:
		content := ""
		if v.Data.Content != nil {
			content = *v.Data.Content
		}
		if utf8.RuneCountInString(content) > 2000 {
			return 0, errTooLong("content", 2000)
		}
		in.resp.Ephemeral = v.Data.Flags&64 != 0
		msg := &Message{ID: s.newID(), ChannelID: in.spec.ChannelID, GuildID: in.spec.GuildID,
			Author: s.users[s.BotID], Content: content, Type: 20, Flags: v.Data.Flags & 64, Time: s.now().UTC()}
		if v.Data.AllowedMentions != nil {
			msg.AllowedMentions = string(*v.Data.AllowedMentions)
		}
		in.original = msg
		s.addMessageLocked(msg)
	case 8:
		for _, c := range v.Data.Choices {
			in.resp.Choices = append(in.resp.Choices, fmt.Sprint(c.Value))
		}
	}
	s.notifyLocked()
	return 204, nil
}

func (s *Server) originalLocked(method, token string, body []byte) (int, any) {
	in := s.interactionLocked(token)
	if in == nil || in.original == nil {
		return 0, &apiError{status: 404, Code: 10008, Msg: "Unknown Message"}
	}
	switch method {
	case "GET":
		return 200, s.messageJSONLocked(in.original)
	case "PATCH":
		v, e := parseSent(body)
		if e != nil {
			return 0, e
		}
		if v.Content != nil {
			in.original.Content = *v.Content
		}
		if v.AllowedMentions != nil {
			in.original.AllowedMentions = string(*v.AllowedMentions)
		}
		in.original.Edits++
		in.original.Changes = append(in.original.Changes, s.now().UTC())
		s.notifyLocked()
		return 200, s.messageJSONLocked(in.original)
	}
	return 0, &apiError{status: 405, Code: 0, Msg: "405: Method Not Allowed"}
}

func (s *Server) followupLocked(token string, body []byte) (int, any) {
	in := s.interactionLocked(token)
	if in == nil || !in.responded {
		return 0, &apiError{status: 404, Code: 10015, Msg: "Unknown Webhook"}
	}
	v, e := parseSent(body)
	if e != nil {
		return 0, e
	}
	if v.Content == nil || *v.Content == "" {
		return 0, &apiError{status: 400, Code: 50006, Msg: "Cannot send an empty message"}
	}
	msg := &Message{ID: s.newID(), ChannelID: in.spec.ChannelID, GuildID: in.spec.GuildID,
		Author: s.users[s.BotID], Content: *v.Content, Flags: v.Flags & 64, Time: s.now().UTC()}
	in.resp.Followups = append(in.resp.Followups, msg.Content)
	s.addMessageLocked(msg)
	return 200, s.messageJSONLocked(msg)
}
