package slacktest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// Slack's limits on files, as the fake applies them by default.
const (
	// DefaultMaxFileSize is Slack's upload limit: 1 GB a file.
	DefaultMaxFileSize = 1 << 30
	// DefaultKeepBytes is how large an upload may be for the fake to keep
	// its bytes; larger ones keep their SHA-256 and size only.
	DefaultKeepBytes = 8 << 20
)

// File is a file as the fake keeps it: one a test added with AddFile, or
// one the bot uploaded (files.getUploadURLExternal, the upload URL,
// files.completeUploadExternal).
type File struct {
	ID    string
	Name  string
	Title string
	MIME  string
	// Size is the length declared to files.getUploadURLExternal (or of
	// AddFile's data); Received the bytes that reached the upload URL.
	Size     int64
	Received int64
	SHA256   [32]byte
	// Data holds the bytes when at most Config.KeepBytes; nil beyond.
	Data []byte
	// Channel, ThreadTS and MessageTS say where files.completeUploadExternal
	// shared the file; empty until then.
	Channel   string
	ThreadTS  string
	MessageTS string
	Uploaded  bool // the upload URL received all Size bytes
	Completed bool // files.completeUploadExternal shared it
	Downloads int  // downloads served with the bot token
}

// fileState is the fake's file side. Guarded by Server.mu.
type fileState struct {
	byID  map[string]*File
	order []*File
}

// AddFile registers a file a person shared and returns the file object
// a message event carries (id, name, mimetype, size, url_private,
// url_private_download, …); pass it to UserFiles. The file is served at
// its url_private to the bot token.
func (s *Server) AddFile(name, mimeType string, data []byte) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := &File{
		ID: s.nextFileIDLocked(), Name: name, Title: name, MIME: mimeType, Size: int64(len(data)),
		Received: int64(len(data)), SHA256: sha256.Sum256(data), Data: bytes.Clone(data), Uploaded: true,
	}
	s.addFileLocked(f)
	return s.fileObjectLocked(f)
}

// File returns a copy of file id.
func (s *Server) File(id string) (File, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.files.byID[id]
	if f == nil {
		return File{}, false
	}
	return *f, true
}

// Uploads returns the files the bot shared in channel and thread threadTS
// ("" for the top level), in order.
func (s *Server) Uploads(channel, threadTS string) []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []File
	for _, f := range s.files.order {
		if f.Completed && f.Channel == channel && f.ThreadTS == threadTS {
			out = append(out, *f)
		}
	}
	return out
}

// SetLoginPage makes file downloads answer as Slack does when the token
// lacks files:read: a redirect to the workspace's sign-in page, an HTML
// page with status 200.
func (s *Server) SetLoginPage(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loginPage = on
}

func (s *Server) nextFileIDLocked() string {
	s.seq++
	return fmt.Sprintf("F%08d", s.seq)
}

func (s *Server) addFileLocked(f *File) {
	if s.files.byID == nil {
		s.files.byID = make(map[string]*File)
	}
	s.files.byID[f.ID] = f
	s.files.order = append(s.files.order, f)
	s.changedLocked()
}

// privatePath is the path of a file's url_private, as Slack builds it.
func (s *Server) privatePath(f *File) string {
	return "/files-pri/" + s.cfg.TeamID + "-" + f.ID + "/" + url.PathEscape(f.Name)
}

// fileObjectLocked returns the JSON object Slack puts in a message's files.
func (s *Server) fileObjectLocked(f *File) map[string]any {
	p := s.privatePath(f)
	ext := strings.TrimPrefix(path.Ext(f.Name), ".")
	return map[string]any{
		"id": f.ID, "created": 1700000000, "timestamp": 1700000000,
		"name": f.Name, "title": f.Title, "mimetype": f.MIME, "filetype": ext, "pretty_type": strings.ToUpper(ext),
		"user": "U0UPLOADER", "mode": "hosted", "editable": false, "is_external": false, "size": f.Size,
		"url_private":          s.URL + p,
		"url_private_download": s.URL + path.Dir(p) + "/download/" + path.Base(p),
		"permalink":            s.URL + "/files/U0UPLOADER/" + f.ID + "/" + url.PathEscape(f.Name),
	}
}

// UserFiles records a message by user with files (file objects from
// AddFile) and delivers its events as Slack does: a message of subtype
// file_share, plus app_mention when it mentions the bot outside a DM.
func (s *Server) UserFiles(channel, threadTS, user, text string, files ...map[string]any) Posted {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := &Message{Channel: channel, TS: s.nextTSLocked(), ThreadTS: threadTS, User: user, Text: text}
	for _, f := range files {
		if id, ok := f["id"].(string); ok {
			m.Files = append(m.Files, id)
		}
	}
	s.addLocked(m, s.cfg.Now())
	ev := func(typ string) map[string]any {
		e := map[string]any{
			"type": typ, "channel": m.Channel, "user": user, "text": text, "ts": m.TS, "event_ts": m.TS,
			"team": s.cfg.TeamID, "files": files, "upload": false,
		}
		if typ == "message" {
			e["subtype"] = "file_share"
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

// getUploadURL answers files.getUploadURLExternal. s.mu is held.
func (s *Server) getUploadURL(form url.Values) (map[string]any, apiError) {
	name := form.Get("filename")
	length, err := strconv.ParseInt(form.Get("length"), 10, 64)
	switch {
	case name == "" || err != nil || length <= 0:
		return nil, "invalid_arguments"
	case length > s.cfg.MaxFileSize:
		return nil, "file_upload_size_restricted"
	}
	f := &File{ID: s.nextFileIDLocked(), Name: name, Title: name, MIME: mimeByName(name), Size: length}
	s.addFileLocked(f)
	return map[string]any{"upload_url": s.URL + "/upload/v1/" + f.ID, "file_id": f.ID}, ""
}

// completeUpload answers files.completeUploadExternal: it shares the
// uploaded files in channel (and thread) as one message of the bot.
// s.mu is held.
func (s *Server) completeUpload(form url.Values, channel string, now time.Time) (map[string]any, apiError) {
	var summaries []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	if err := json.Unmarshal([]byte(form.Get("files")), &summaries); err != nil || len(summaries) == 0 {
		return nil, "invalid_arguments"
	}
	var files []*File
	for _, sm := range summaries {
		f := s.files.byID[sm.ID]
		if f == nil || f.Completed {
			return nil, "file_not_found"
		}
		if !f.Uploaded {
			// Slack would wait for the upload; the fake's client has
			// finished it before calling, or never will.
			return nil, "upload_not_complete"
		}
		if sm.Title != "" {
			f.Title = sm.Title
		}
		files = append(files, f)
	}
	out := make([]map[string]any, 0, len(files))
	if channel == "" {
		// Not shared: the file stays private to the bot.
		for _, f := range files {
			f.Completed = true
			out = append(out, map[string]any{"id": f.ID, "title": f.Title})
		}
		return map[string]any{"files": out}, ""
	}
	thread := form.Get("thread_ts")
	m := &Message{Channel: channel, TS: s.nextTSLocked(), ThreadTS: thread, User: s.cfg.BotUserID, BotID: s.cfg.BotID, Text: form.Get("initial_comment")}
	for _, f := range files {
		f.Completed, f.Channel, f.ThreadTS, f.MessageTS = true, channel, thread, m.TS
		m.Files = append(m.Files, f.ID)
		out = append(out, map[string]any{"id": f.ID, "title": f.Title})
	}
	s.addLocked(m, now)
	return map[string]any{"files": out}, ""
}

// serveUpload is the upload URL files.getUploadURLExternal hands out: it
// takes the bytes raw or as a multipart form's file, as Slack does, and
// checks their length against the declared one.
func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	f := s.files.byID[id]
	var declared int64
	if f != nil {
		declared = f.Size
	}
	keep := s.cfg.KeepBytes
	s.mu.Unlock()
	if f == nil {
		http.Error(w, "unknown upload", http.StatusNotFound)
		return
	}

	body := io.Reader(r.Body)
	if mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		mr := multipart.NewReader(r.Body, params["boundary"])
		body = nil
		for {
			part, err := mr.NextPart()
			if err != nil {
				http.Error(w, "no file in the form: "+err.Error(), http.StatusBadRequest)
				return
			}
			if part.FileName() != "" {
				body = part
				break
			}
		}
	}
	h := sha256.New()
	var kept bytes.Buffer
	w2 := io.Writer(h)
	if declared <= keep {
		w2 = io.MultiWriter(h, &limitedBuffer{buf: &kept, max: keep})
	}
	n, err := io.Copy(w2, body)
	if err != nil {
		http.Error(w, "upload broken: "+err.Error(), http.StatusBadRequest)
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.changedLocked()
	f.Received = n
	if n != declared {
		http.Error(w, fmt.Sprintf("received %d bytes, declared %d", n, declared), http.StatusBadRequest)
		return
	}
	f.Uploaded = true
	copy(f.SHA256[:], h.Sum(nil))
	if n <= keep {
		f.Data = kept.Bytes()
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "OK - %d", n)
}

// serveFile serves a file's url_private (and url_private_download) to the
// bot token; without it, or with SetLoginPage, it redirects to the sign-in
// page as Slack does.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	f := s.files.byID[strings.TrimPrefix(r.PathValue("key"), s.cfg.TeamID+"-")]
	auth := r.Header.Get("Authorization") == "Bearer "+s.cfg.BotToken
	login := s.loginPage
	var data []byte
	var mimeType string
	if f != nil && auth && !login {
		if f.Data == nil {
			s.mu.Unlock()
			http.Error(w, "the fake kept no bytes of this file", http.StatusGone)
			return
		}
		f.Downloads++
		data, mimeType = f.Data, f.MIME
		s.changedLocked()
	}
	s.mu.Unlock()
	switch {
	case f == nil:
		http.NotFound(w, r)
	case !auth || login:
		http.Redirect(w, r, s.URL+"/signin?redir="+url.QueryEscape(r.URL.Path), http.StatusFound)
	default:
		w.Header().Set("Content-Type", mimeType)
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		_, _ = w.Write(data)
	}
}

// serveSignIn is the workspace's sign-in page.
func (s *Server) serveSignIn(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, "<!DOCTYPE html><html><head><title>Sign in | Slack</title></head><body>Sign in to your workspace</body></html>")
}

// limitedBuffer keeps the first max bytes written to it and discards the
// rest, so that big uploads cost the fake no memory.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int64
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - int64(b.buf.Len()); room > 0 {
		b.buf.Write(p[:min(int64(len(p)), room)])
	}
	return len(p), nil
}

// mimeByName guesses a content type from a file name, as Slack does.
func mimeByName(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}
