// Package llmtest is a fake OpenAI-compatible Chat Completions endpoint on
// loopback, for tests and load runs: it streams scripted answers in the
// OpenAI SSE format (text, reasoning, tool calls, a finish reason, usage),
// fails the way real endpoints and gateways fail (an HTTP status with
// Retry-After, an error event mid-answer, a dropped connection), lists
// models, and records requests.
//
// It imports nothing of Parley, so that the llm package's own tests can use
// it, and its token counts do not borrow llm's estimate.
package llmtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Message is a request message as received.
type Message struct {
	Role    string `json:"role"`
	Content any    `json:"content"` // a string, or an array of parts
	// ToolCalls are an assistant message's calls; ToolCallID is the call
	// a tool message answers.
	ToolCalls  []MessageToolCall `json:"tool_calls,omitempty"`
	ToolCallID string            `json:"tool_call_id,omitempty"`
}

// MessageToolCall is a call of an assistant message, as sent back.
type MessageToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// RequestTool is one entry of a request's tools.
type RequestTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string         `json:"name"`
		Description string         `json:"description"`
		Parameters  map[string]any `json:"parameters"`
	} `json:"function"`
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
	Model         string        `json:"model"`
	Messages      []Message     `json:"messages"`
	Stream        bool          `json:"stream"`
	StreamOptions StreamOptions `json:"stream_options"`
	// MaxTokens and MaxCompletionTokens bound the answer (0: unbounded);
	// see Reply.FinishReason.
	MaxTokens           int `json:"max_tokens"`
	MaxCompletionTokens int `json:"max_completion_tokens"`
	// Tools are the functions offered to the model.
	Tools []RequestTool `json:"tools,omitempty"`
}

// ToolResults returns the tool messages that end the request, by call id:
// what a model reads back right after its calls (empty when the request
// ends with anything else, such as a new question).
func (r Request) ToolResults() map[string]string {
	out := make(map[string]string)
	for i := len(r.Messages) - 1; i >= 0 && r.Messages[i].Role == "tool"; i-- {
		out[r.Messages[i].ToolCallID] = r.Messages[i].Text()
	}
	return out
}

// StreamOptions are the request's stream_options.
type StreamOptions struct {
	// IncludeUsage asks for the usage chunk at the end of the stream.
	IncludeUsage bool `json:"include_usage"`
}

// Prompt token estimate, OpenAI's recipe for chat messages with a rule of
// thumb for the tokenizer: 3 tokens of framing per message, 3 for the
// reply priming, the text at 1 token per 4 bytes (rounded up), 85 per image
// (the low-detail cost).
const (
	promptPerMessage = 3
	promptPerReply   = 3
	promptPerImage   = 85
	bytesPerToken    = 4
)

// PromptTokens is the prompt token count the fake reports for r: per
// message 3 tokens plus its text at 4 bytes a token (rounded up) plus 85 per
// image, and 3 more for the reply.
func (r Request) PromptTokens() int {
	if len(r.Messages) == 0 {
		return 0
	}
	n := promptPerReply
	for _, m := range r.Messages {
		n += promptPerMessage + (len(m.Text())+bytesPerToken-1)/bytesPerToken + promptPerImage*len(m.Images())
	}
	return n
}

// maxTokens is the answer's token limit, 0 when the request sets none.
func (r Request) maxTokens() int {
	if r.MaxCompletionTokens > 0 {
		return r.MaxCompletionTokens
	}
	return r.MaxTokens
}

// Reply scripts one answer. The streamed answer is, in order: the
// Reasoning deltas, the Chunks of text, the ToolCalls, then the finish
// reason, the usage and [DONE]. Each delta is one chunk (one SSE event), and
// counts as one completion token; Every, CutAfter, StreamError and the
// request's max tokens count these chunks.
type Reply struct {
	// Chunks are the answer's text deltas, sent in order.
	Chunks []string
	// Every paces the chunks (the model's speed); 0 sends them at once.
	Every time.Duration
	// FirstDelay is the model's time to first token.
	FirstDelay time.Duration

	// Status, when set, answers with this HTTP status and Body instead of a
	// stream. An empty Body is an OpenAI error object for the status.
	Status int
	Body   string
	// RetryAfter, with Status, is sent as Retry-After (whole seconds,
	// rounded up) and retry-after-ms, as OpenAI does with a 429 or a 503.
	RetryAfter time.Duration

	// CutAfter, when > 0, drops the connection after that many chunks,
	// without ending the body; at or beyond the last chunk it drops it
	// before the finish reason.
	CutAfter int
	// Hold, when set, is waited on after the first chunk (a stream the test
	// stops); the stream ends when the request's context ends.
	Hold <-chan struct{}

	// Reasoning are reasoning deltas, sent before the text in the field
	// ReasoningField names.
	Reasoning []string
	// ReasoningField is "reasoning_content" (DeepSeek and most gateways;
	// the default) or "reasoning" (OpenRouter, vLLM).
	ReasoningField string

	// ToolCalls are function calls the model makes, streamed after the text
	// as OpenAI does: a call's first delta carries its index, id, type and
	// name, and its arguments follow in pieces over several chunks; the
	// calls come one after the other, indexed 0, 1, ...
	ToolCalls []ToolCall
	// SplitIDs sends each call's id and name in two pieces, and
	// Interleave alternates the pieces of the calls (call 0's first piece,
	// call 1's first piece, call 0's second...): what some gateways and
	// local servers do, unlike OpenAI.
	SplitIDs, Interleave bool

	// FinishReason ends the answer: default "stop", or "tool_calls" when
	// there are ToolCalls. When the request sets max_tokens (or
	// max_completion_tokens) and the answer has more chunks, the answer
	// stops after that many with "length", whatever FinishReason says.
	FinishReason string
	// Usage, when set, is reported instead of the computed usage (the
	// request's PromptTokens, one completion token per chunk sent). Usage
	// is only reported when the request asks for it with
	// stream_options.include_usage.
	Usage *Usage

	// StreamError, when set, is sent as an in-stream error event after
	// ErrorAfter chunks (at or beyond the last chunk: before the finish
	// reason), and the stream ends there without a finish reason, usage or
	// [DONE]: what gateways send when the upstream fails mid-answer.
	StreamError *ErrorEvent
	ErrorAfter  int
}

// ToolCall is a function call in a Reply.
type ToolCall struct {
	ID        string // default "call_<index>"
	Name      string
	Arguments string // JSON text, streamed in pieces of ArgumentsPiece bytes
}

// ArgumentsPiece is the most bytes of a tool call's arguments one chunk
// carries (a few tokens, as OpenAI streams them); a piece never splits a
// UTF-8 character.
const ArgumentsPiece = 8

// Usage is the token count a Reply reports.
type Usage struct {
	PromptTokens     int
	CompletionTokens int
}

// ErrorEvent is an error object as endpoints send it in the stream:
// `data: {"error":{"message":...,"type":...,"code":...}}`.
type ErrorEvent struct {
	Message string `json:"message"`
	Type    string `json:"type"` // e.g. "server_error"
	Code    any    `json:"code"` // a string, a number, or nil (null)
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

// Sequence returns an Answer that answers the first request with
// replies[0], the second with replies[1], and every request after the last
// reply with the last one: Sequence(busy, busy, ok) fails twice, then
// answers. It is safe for concurrent requests.
func Sequence(replies ...Reply) func(Request) Reply {
	var mu sync.Mutex
	next := 0
	return func(Request) Reply {
		if len(replies) == 0 {
			return defaultReply
		}
		mu.Lock()
		defer mu.Unlock()
		r := replies[min(next, len(replies)-1)]
		next++
		return r
	}
}

// defaultReply is the answer when Answer is not set.
var defaultReply = Reply{Chunks: []string{"ok"}}

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
	reply := defaultReply
	if s.Answer != nil {
		reply = s.Answer(req)
	}
	if reply.Status != 0 {
		writeStatus(w, reply)
		return
	}
	s.stream(w, r, req, reply)
}

// writeStatus answers with reply's status instead of a stream.
func writeStatus(w http.ResponseWriter, reply Reply) {
	if d := reply.RetryAfter; d > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10))
		w.Header().Set("Retry-After-Ms", strconv.FormatInt(d.Milliseconds(), 10))
	}
	body := reply.Body
	if body == "" {
		body = errorBody(reply.Status)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(reply.Status)
	fmt.Fprint(w, body)
}

// errorBody is the error object OpenAI sends with status.
func errorBody(status int) string {
	e := ErrorEvent{Message: http.StatusText(status), Type: "invalid_request_error"}
	switch {
	case status == http.StatusTooManyRequests:
		e = ErrorEvent{Message: "Rate limit reached for requests. Please try again later.", Type: "requests", Code: "rate_limit_exceeded"}
	case status == http.StatusServiceUnavailable:
		e = ErrorEvent{Message: "The engine is currently overloaded, please try again later.", Type: "server_error"}
	case status >= 500:
		e.Type = "server_error"
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	return string(b)
}

// chunk is a chat.completion.chunk as OpenAI sends it.
type chunk struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	SystemFingerprint string          `json:"system_fingerprint"`
	Choices           []choice        `json:"choices"`
	Usage             json.RawMessage `json:"usage,omitempty"` // null on every chunk but the last, when asked for
}

type choice struct {
	Index        int            `json:"index"`
	Delta        map[string]any `json:"delta"`
	Logprobs     *struct{}      `json:"logprobs"`
	FinishReason *string        `json:"finish_reason"`
}

type usageJSON struct {
	PromptTokens            int `json:"prompt_tokens"`
	CompletionTokens        int `json:"completion_tokens"`
	TotalTokens             int `json:"total_tokens"`
	CompletionTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

// deltas returns the answer's chunks as delta objects, and how many of
// them are reasoning.
func (reply Reply) deltas() (ds []map[string]any, reasoning int) {
	field := reply.ReasoningField
	if field == "" {
		field = "reasoning_content"
	}
	for _, r := range reply.Reasoning {
		ds = append(ds, map[string]any{"content": nil, field: r})
	}
	for _, c := range reply.Chunks {
		ds = append(ds, map[string]any{"content": c})
	}
	perCall := make([][]map[string]any, len(reply.ToolCalls))
	for i, tc := range reply.ToolCalls {
		id := tc.ID
		if id == "" {
			id = fmt.Sprintf("call_%d", i)
		}
		if reply.SplitIDs && len(id) > 1 && len(tc.Name) > 1 {
			perCall[i] = append(perCall[i], map[string]any{
				"index": i, "id": id[:len(id)/2], "type": "function",
				"function": map[string]any{"name": tc.Name[:len(tc.Name)/2], "arguments": ""},
			}, map[string]any{
				"index": i, "id": id[len(id)/2:],
				"function": map[string]any{"name": tc.Name[len(tc.Name)/2:]},
			})
		} else {
			perCall[i] = append(perCall[i], map[string]any{
				"index": i, "id": id, "type": "function",
				"function": map[string]any{"name": tc.Name, "arguments": ""},
			})
		}
		for _, p := range pieces(tc.Arguments, ArgumentsPiece) {
			perCall[i] = append(perCall[i], map[string]any{
				"index": i, "function": map[string]any{"arguments": p},
			})
		}
	}
	if reply.Interleave {
		for k := 0; ; k++ {
			more := false
			for _, ps := range perCall {
				if k < len(ps) {
					ds = append(ds, map[string]any{"tool_calls": []any{ps[k]}})
					more = true
				}
			}
			if !more {
				break
			}
		}
	} else {
		for _, ps := range perCall {
			for _, p := range ps {
				ds = append(ds, map[string]any{"tool_calls": []any{p}})
			}
		}
	}
	return ds, len(reply.Reasoning)
}

// pieces splits s into pieces of at most n bytes, never inside a UTF-8
// character (a longer character is a piece of its own).
func pieces(s string, n int) []string {
	var out []string
	for s != "" {
		end := 0
		for end < len(s) {
			_, size := utf8.DecodeRuneInString(s[end:])
			if end > 0 && end+size > n {
				break
			}
			end += size
		}
		out = append(out, s[:end])
		s = s[end:]
	}
	return out
}

// stream writes reply as an SSE stream.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, req Request, reply Reply) {
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
	created := time.Now().Unix()
	write := func(ch chunk) {
		ch.ID, ch.Object, ch.Created, ch.Model = "chatcmpl-fake", "chat.completion.chunk", created, req.Model
		ch.SystemFingerprint = "fp_fake"
		if ch.Usage == nil && req.StreamOptions.IncludeUsage {
			ch.Usage = json.RawMessage("null")
		}
		b, _ := json.Marshal(ch)
		fmt.Fprintf(w, "data: %s\n\n", b)
		flush()
	}
	send := func(delta map[string]any, finish *string) {
		write(chunk{Choices: []choice{{Delta: delta, FinishReason: finish}}})
	}

	ds, reasoning := reply.deltas()
	finish := reply.FinishReason
	if finish == "" {
		finish = "stop"
		if len(reply.ToolCalls) > 0 {
			finish = "tool_calls"
		}
	}
	if limit := req.maxTokens(); limit > 0 && len(ds) > limit {
		ds, finish = ds[:limit], "length"
	}
	reasoning = min(reasoning, len(ds))

	if !wait(reply.FirstDelay) {
		return
	}
	send(map[string]any{"role": "assistant", "content": "", "refusal": nil}, nil)
	for i := 0; ; i++ {
		if i > 0 && i < len(ds) && !wait(reply.Every) {
			return
		}
		if reply.StreamError != nil && i == min(reply.ErrorAfter, len(ds)) {
			b, _ := json.Marshal(map[string]any{"error": reply.StreamError})
			fmt.Fprintf(w, "data: %s\n\n", b)
			flush()
			return
		}
		if reply.CutAfter > 0 && i == min(reply.CutAfter, len(ds)) {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
				}
			}
			return
		}
		if i == len(ds) {
			break
		}
		send(ds[i], nil)
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
	send(map[string]any{}, &finish)
	if req.StreamOptions.IncludeUsage {
		u := usageJSON{PromptTokens: req.PromptTokens(), CompletionTokens: len(ds)}
		u.CompletionTokensDetails.ReasoningTokens = reasoning
		if reply.Usage != nil {
			u.PromptTokens, u.CompletionTokens = reply.Usage.PromptTokens, reply.Usage.CompletionTokens
		}
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
		b, _ := json.Marshal(u)
		write(chunk{Choices: []choice{}, Usage: b})
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	flush()
}
