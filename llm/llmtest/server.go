// Package llmtest is a fake OpenAI-compatible Chat Completions endpoint on
// loopback, for tests and load runs: it streams scripted answers in the
// OpenAI SSE format byte for byte, lists models, and records requests.
package llmtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Message is a request message as received.
type Message struct {
	Role    string `json:"role"`
	Content any    `json:"content"` // a string, or an array of parts
}

// Text returns the message's text, joining text parts.
func (m Message) Text() string {
	switch c := m.Content.(type) {
	case string:
		return c
	case []any:
		var b strings.Builder
		for _, p := range c {
			if part, ok := p.(map[string]any); ok && part["type"] == "text" {
				s, _ := part["text"].(string)
				b.WriteString(s)
			}
		}
		return b.String()
	}
	return ""
}

// Images returns the URLs of the message's image parts.
func (m Message) Images() []string {
	var urls []string
	if parts, ok := m.Content.([]any); ok {
		for _, p := range parts {
			part, _ := p.(map[string]any)
			if part["type"] != "image_url" {
				continue
			}
			if img, ok := part["image_url"].(map[string]any); ok {
				u, _ := img["url"].(string)
				urls = append(urls, u)
			}
		}
	}
	return urls
}

// Request is a chat completion request as received.
type Request struct {
	Model    string    `json:"model"`
	Messages []Message `json:"messages"`
	Stream   bool      `json:"stream"`
}

// Reply scripts one answer.
type Reply struct {
	// Chunks are the answer's text deltas, sent in order.
	Chunks []string
	// Every paces the chunks (the model's speed); 0 sends them at once.
	Every time.Duration
	// FirstDelay is the model's time to first token.
	FirstDelay time.Duration
	// Status, when set, answers with this HTTP status and Body instead.
	Status int
	Body   string
	// CutAfter, when > 0, drops the connection after that many chunks.
	CutAfter int
	// Hold, when set, is waited on after the first chunk (a stream the test
	// stops); the stream ends when the request's context ends.
	Hold <-chan struct{}
}

// Words splits text into chunks of about n words, spaces kept, so that the
// chunks join to text exactly.
func Words(text string, n int) []string {
	var chunks []string
	count, start := 0, 0
	for i := 0; i < len(text); i++ {
		if text[i] == ' ' {
			count++
			if count == n {
				chunks = append(chunks, text[start:i+1])
				start, count = i+1, 0
			}
		}
	}
	if start < len(text) {
		chunks = append(chunks, text[start:])
	}
	return chunks
}

// Server is the fake endpoint. Set Answer before use; it is called for each
// request.
type Server struct {
	*httptest.Server
	// Answer scripts the reply to a request.
	Answer func(Request) Reply
	// Models are listed by GET /models.
	Models []string

	mu       sync.Mutex
	requests []Request
	timings  map[string]Timing
}

// Timing is when the server received a request and wrote its first and
// last chunks.
type Timing struct {
	Received, First, Last time.Time
}

// Timings returns the timings of the requests so far, by the text of each
// request's last message.
func (s *Server) Timings() map[string]Timing {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Timing, len(s.timings))
	for k, v := range s.timings {
		out[k] = v
	}
	return out
}

func (s *Server) setTiming(req Request, f func(*Timing)) {
	if len(req.Messages) == 0 {
		return
	}
	key := req.Messages[len(req.Messages)-1].Text()
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.timings[key]
	f(&t)
	s.timings[key] = t
}

// NewServer starts a fake endpoint; its base URL (for LLM_BASE_URL) is URL()+"/v1".
func NewServer() *Server {
	s := &Server{Models: []string{"fake-small", "fake-large", "sora-2"}, timings: make(map[string]Timing)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.complete)
	mux.HandleFunc("GET /v1/models", s.models)
	s.Server = httptest.NewServer(mux)
	return s
}

// BaseURL is the endpoint's base URL, as LLM_BASE_URL takes it.
func (s *Server) BaseURL() string { return s.URL + "/v1" }

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		OwnedBy string `json:"owned_by"`
	}
	list := struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{Object: "list"}
	for _, m := range s.Models {
		list.Data = append(list.Data, model{ID: m, Object: "model", OwnedBy: "fake"})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(list)
}

func (s *Server) complete(w http.ResponseWriter, r *http.Request) {
	var req Request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
		return
	}
	received := time.Now()
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()
	s.setTiming(req, func(t *Timing) { t.Received = received })
	reply := Reply{Chunks: []string{"ok"}}
	if s.Answer != nil {
		reply = s.Answer(req)
	}
	if reply.Status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(reply.Status)
		fmt.Fprint(w, reply.Body)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	flush()
	wait := func(d time.Duration) bool {
		if d <= 0 {
			return true
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-r.Context().Done():
			return false
		}
	}
	if !wait(reply.FirstDelay) {
		return
	}
	for i, c := range reply.Chunks {
		if i > 0 && !wait(reply.Every) {
			return
		}
		if reply.CutAfter > 0 && i == reply.CutAfter {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
				}
			}
			return
		}
		b, _ := json.Marshal(map[string]any{
			"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": c}}},
		})
		fmt.Fprintf(w, "data: %s\n\n", b)
		flush()
		now := time.Now()
		s.setTiming(req, func(t *Timing) {
			if i == 0 {
				t.First = now
			}
			t.Last = now
		})
		if i == 0 && reply.Hold != nil {
			select {
			case <-reply.Hold:
			case <-r.Context().Done():
				return
			}
		}
	}
	fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-fake\",\"object\":\"chat.completion.chunk\",\"model\":%q,\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n", req.Model)
	fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-fake\",\"object\":\"chat.completion.chunk\",\"model\":%q,\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n", req.Model, len(reply.Chunks), 10+len(reply.Chunks))
	fmt.Fprint(w, "data: [DONE]\n\n")
	flush()
}
