package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/param"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/openai/openai-go/v3/shared"
)

// errClosed is returned by Recv after Close.
var errClosed = errors.New("llm: stream closed")

// Stream starts a streamed completion. It returns once the endpoint has
// answered with a streaming response (after retries), or with the error.
// Cancelling ctx ends the stream and its HTTP request.
//
// Failures before the first streamed byte (connection errors, HTTP 429,
// 502, 503, 504, and a connection cut right after the headers) are retried
// with jittered exponential backoff for at most Config.RetryBudget, honouring
// Retry-After; when the endpoint asks for a longer wait than the budget has
// left, the *RateLimitError is returned at once. A connection error while
// Health says the endpoint is unreachable is returned at once
// (ErrUnreachable). Nothing is retried once a byte of the answer has
// arrived.
//
// An empty req.Model means Config.DefaultModel.
func (c *Client) Stream(ctx context.Context, req Request) (*Stream, error) {
	if req.Model == "" {
		req.Model = c.cfg.DefaultModel
	}
	if req.Model == "" {
		return nil, errors.New("llm: request without a model; set a default model")
	}
	if !c.allowed(req.Model) {
		return nil, &ModelNotFoundError{
			Model:       req.Model,
			Suggestions: c.suggest(ctx, req.Model),
			Message:     "not among the models this bot allows",
		}
	}
	params, err := buildParams(req)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancelCause(ctx)
	s := &Stream{
		c:         c,
		parent:    ctx,
		ctx:       sctx,
		cancel:    cancel,
		params:    params,
		model:     req.Model,
		maxTokens: req.MaxTokens,
		start:     c.cfg.Now(),
	}
	s.firstTimeout, s.idleTimeout = c.timeouts(req.Model)
	if err := s.connect(); err != nil {
		s.stop(err)
		return nil, err
	}
	c.streamed.Store(c.cfg.Now().UnixNano())
	return s, nil
}

// failed counts err, the error that ended the answer, unless the caller
// stopped it.
func (s *Stream) failed(err error) {
	if s.c.cfg.OnError == nil || err == nil || err == io.EOF || errors.Is(err, errClosed) || s.parent.Err() != nil {
		return
	}
	s.c.cfg.OnError(ErrorKind(err))
}

// buildParams turns req into the OpenAI request body.
func buildParams(req Request) (openai.ChatCompletionNewParams, error) {
	p := openai.ChatCompletionNewParams{
		Model:         req.Model,
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	}
	if len(req.Messages) == 0 {
		return p, errors.New("llm: request without messages")
	}
	if req.MaxTokens > 0 {
		p.MaxTokens = openai.Int(int64(req.MaxTokens))
	}
	p.Messages = make([]openai.ChatCompletionMessageParamUnion, 0, len(req.Messages))
	for i, m := range req.Messages {
		if len(m.Images) > 0 && m.Role != RoleUser {
			return p, fmt.Errorf("llm: message %d: images are only allowed on user messages, not %q", i, m.Role)
		}
		switch m.Role {
		case RoleSystem:
			p.Messages = append(p.Messages, openai.SystemMessage(m.Content))
		case RoleAssistant:
			if len(m.ToolCalls) == 0 {
				p.Messages = append(p.Messages, openai.AssistantMessage(m.Content))
				continue
			}
			a := openai.ChatCompletionAssistantMessageParam{}
			if m.Content != "" {
				a.Content.OfString = openai.String(m.Content)
			}
			for _, tc := range m.ToolCalls {
				a.ToolCalls = append(a.ToolCalls, openai.ChatCompletionMessageToolCallUnionParam{
					OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{
						ID:       tc.ID,
						Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: tc.Name, Arguments: tc.Arguments},
					},
				})
			}
			p.Messages = append(p.Messages, openai.ChatCompletionMessageParamUnion{OfAssistant: &a})
		case RoleTool:
			if m.ToolCallID == "" {
				return p, fmt.Errorf("llm: message %d: a tool message needs the id of the call it answers", i)
			}
			p.Messages = append(p.Messages, openai.ToolMessage(m.Content, m.ToolCallID))
		case RoleUser:
			if len(m.Images) == 0 {
				p.Messages = append(p.Messages, openai.UserMessage(m.Content))
				continue
			}
			// The content-array form: the text, then one part per image.
			parts := make([]openai.ChatCompletionContentPartUnionParam, 0, 1+len(m.Images))
			if m.Content != "" {
				parts = append(parts, openai.TextContentPart(m.Content))
			}
			for _, img := range m.Images {
				if img.URL == "" {
					continue
				}
				parts = append(parts, openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: img.URL}))
			}
			p.Messages = append(p.Messages, openai.UserMessage(parts))
		default:
			return p, fmt.Errorf("llm: message %d: unknown role %q; use system, user, assistant or tool", i, m.Role)
		}
	}
	for _, t := range req.Tools {
		def := shared.FunctionDefinitionParam{Name: t.Name, Parameters: shared.FunctionParameters(t.Parameters)}
		if t.Description != "" {
			def.Description = openai.String(t.Description)
		}
		p.Tools = append(p.Tools, openai.ChatCompletionFunctionTool(def))
	}
	return p, nil
}

// Stream is one streamed answer. Recv is not safe for concurrent use; Close
// may be called from any goroutine.
//
// Stream reads the response body only inside Recv (no goroutine, no
// buffer in between): a slow consumer holds back the socket, never a reader
// that could wedge, and the idle timer only runs while Recv waits for bytes,
// so a consumer busy elsewhere does not trip it.
//
// How a stream ends: `data: [DONE]`, or the end of the body without a
// transport error, is the normal end (io.EOF) with or without a finish
// reason — some endpoints send neither. A transport error (connection
// reset, truncated chunked body) before the finish reason is ErrStreamCut,
// never a silent truncation; after the finish reason the answer is complete
// and the loss of the usage chunk is not an error. An error event from the
// endpoint (`data: {"error":{...}}`) ends the stream with a *MidAnswerError,
// never with io.EOF.
type Stream struct {
	c      *Client
	parent context.Context
	ctx    context.Context
	cancel context.CancelCauseFunc

	params    openai.ChatCompletionNewParams
	model     string
	maxTokens int
	start     time.Time // for the retry budget
	attempts  int
	swapped   bool // max_tokens resent as max_completion_tokens

	firstTimeout, idleTimeout time.Duration

	mu    sync.Mutex // guards sse and timer against Close
	sse   *ssestream.Stream[openai.ChatCompletionChunk]
	timer *time.Timer
	body  *watchedBody

	finish string // the finish reason, once seen
	err    error  // sticky: returned by every Recv once set
	once   sync.Once
}

// connect opens the stream, retrying failures before the first byte.
func (s *Stream) connect() error {
	for {
		err := s.attempt()
		if err == nil {
			return nil
		}
		if s.maxTokens > 0 && !s.swapped && maxTokensUnsupported(err) {
			// Reasoning models refuse max_tokens and ask for
			// max_completion_tokens; older gateways know only max_tokens.
			s.swapped = true
			s.params.MaxTokens = param.Opt[int64]{}
			s.params.MaxCompletionTokens = openai.Int(int64(s.maxTokens))
			continue
		}
		if err := s.retryWait(err, retryKind(err)); err != nil {
			return err
		}
	}
}

// attempt makes one request and returns once the response headers are in.
func (s *Stream) attempt() error {
	first, idle := s.firstTimeout, s.idleTimeout
	body := &watchedBody{idle: idle}
	body.timer = time.AfterFunc(first, func() {
		if body.started.Load() {
			s.cancel(&timeoutError{what: "idle", d: idle})
		} else {
			s.cancel(&timeoutError{what: "first byte", d: first})
		}
	})
	watch := func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		resp, err := next(req)
		if err == nil && resp != nil && resp.Body != nil {
			body.rc = resp.Body
			resp.Body = body
		}
		return resp, err
	}
	sse := s.c.oa.Chat.Completions.NewStreaming(s.ctx, s.params, option.WithMiddleware(watch))
	if err := sse.Err(); err != nil {
		body.timer.Stop()
		_ = sse.Close()
		return err
	}
	s.mu.Lock()
	s.sse, s.timer, s.body = sse, body.timer, body
	s.mu.Unlock()
	if s.ctx.Err() != nil { // Close raced with the request
		s.closeAttempt()
		return s.stopErr()
	}
	return nil
}

// closeAttempt releases the current response.
func (s *Stream) closeAttempt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.sse != nil {
		_ = s.sse.Close()
	}
}

// retryWait decides whether err, a failure before the first byte, is
// retried. It waits out the backoff and returns nil to try again, or
// returns the error to report.
func (s *Stream) retryWait(err error, kind string) error {
	if stop := s.stopErr(); stop != nil {
		return stop
	}
	if !retryable(err) {
		return s.public(err)
	}
	if isTransport(err) && errors.Is(s.c.Health(), ErrUnreachable) {
		// The model list could not be reached either: the endpoint is
		// down, and the catalog's retries will notice when it is back.
		// Say so now rather than after the whole retry budget.
		return s.public(err)
	}
	d := backoffBase << min(s.attempts, 10)
	if d > backoffMax {
		d = backoffMax
	}
	d = d/2 + time.Duration(s.c.jitter()*float64(d/2))
	var ae *apiError
	if errors.As(err, &ae) && ae.retryAfter > 0 {
		d = ae.retryAfter
	}
	remaining := s.c.cfg.RetryBudget - s.c.cfg.Now().Sub(s.start)
	if d > remaining {
		return s.public(err)
	}
	s.attempts++
	if s.c.cfg.OnRetry != nil {
		s.c.cfg.OnRetry(kind)
	}
	s.c.log.Debug("llm: retrying", "model", s.model, "attempt", s.attempts, "wait", d, "err", s.c.describe(err))
	if werr := s.c.sleep(s.ctx, d); werr != nil {
		if stop := s.stopErr(); stop != nil {
			return stop
		}
		return fmt.Errorf("llm: wait before retry: %w", werr)
	}
	return nil
}

// public turns a failure into the error the caller sees.
func (s *Stream) public(err error) error {
	if stop := s.stopErr(); stop != nil {
		return stop
	}
	var ae *apiError
	if errors.As(err, &ae) {
		return s.c.publicError(s.parent, s.model, ae)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %s; try again later", ErrTimeout, transportError(err))
	}
	if isTransport(err) {
		return fmt.Errorf("%w: %w: cannot reach the endpoint: %s; check the base URL and the network", ErrUnreachable, ErrServer, s.c.redact(transportError(err)))
	}
	return fmt.Errorf("llm: %s", s.c.redact(transportError(err)))
}

// stopErr returns why the stream context ended (a timeout, the caller's
// cancellation, Close), or nil while it is live.
func (s *Stream) stopErr() error {
	if s.ctx.Err() == nil {
		return nil
	}
	var te *timeoutError
	if errors.As(context.Cause(s.ctx), &te) {
		return te
	}
	if err := s.parent.Err(); err != nil {
		return fmt.Errorf("llm: stream stopped: %w", err)
	}
	return errClosed
}

// Recv returns the next delta, io.EOF at the normal end of the answer, or an
// error: ErrStreamCut, ErrTimeout, or a *MidAnswerError (ErrMidAnswer) when
// the endpoint reports an error in the stream. Chunks that carry nothing (a
// role, an empty choice list) are skipped. The end is io.EOF whatever the
// finish reason: a caller that must tell a complete answer from one cut at
// the token limit looks at Delta.FinishReason (FinishLength).
func (s *Stream) Recv() (Delta, error) {
	for s.err == nil {
		if s.sse.Next() {
			if d, ok := s.delta(s.sse.Current()); ok {
				return d, nil
			}
			continue
		}
		err := s.sse.Err()
		if err == nil {
			// openai-go reports no error after Close either; only a live
			// context makes this a clean end.
			if stop := s.stopErr(); stop != nil && s.finish == "" {
				s.stop(stop)
				break
			}
			s.stop(io.EOF)
			break
		}
		if s.body != nil && !s.body.started.Load() && s.ctx.Err() == nil && isTransport(err) {
			// Cut right after the headers, before any byte: as good as a
			// failed connect, so retry within the budget.
			s.closeAttempt()
			if werr := s.retryWait(err, "stream_cut"); werr != nil {
				if errors.Is(werr, ErrServer) {
					werr = fmt.Errorf("%w: the connection closed before any data: %s", ErrStreamCut, s.c.redact(transportError(err)))
				}
				s.stop(werr)
				break
			}
			if cerr := s.connect(); cerr != nil {
				s.stop(cerr)
			}
			continue
		}
		s.stop(s.classify(err))
	}
	return Delta{}, s.err
}

// classify maps the error that ended the SSE stream.
func (s *Stream) classify(err error) error {
	if stop := s.stopErr(); stop != nil {
		var te *timeoutError
		if s.finish != "" && errors.As(stop, &te) {
			return io.EOF // only the usage chunk was missing
		}
		return stop
	}
	var se *ssestream.StreamError
	if errors.As(err, &se) {
		// openai-go ends the stream at any event with a top-level "error"
		// key and keeps the event: its message is the raw JSON, so the
		// object is parsed here as an HTTP error body would be.
		e := parseErrorBody(se.Event.Data)
		e.message = s.c.redact(e.message)
		if e.message == "" {
			e.message = "no message"
		}
		return &MidAnswerError{
			Code:    e.code,
			Type:    e.typ,
			Message: e.message,
			Err:     s.c.publicError(s.parent, s.model, e),
		}
	}
	if s.body != nil && s.body.readErr != nil {
		if s.finish != "" {
			return io.EOF
		}
		return fmt.Errorf("%w: %s; the answer is incomplete", ErrStreamCut, s.c.redact(transportError(s.body.readErr)))
	}
	if s.finish != "" {
		return io.EOF
	}
	return fmt.Errorf("%w: malformed chunk from the endpoint: %s", ErrServer, s.c.redact(err.Error()))
}

// delta extracts what the caller needs from a chunk; ok is false when the
// chunk carries nothing (a role-only first chunk, a keep-alive object).
func (s *Stream) delta(ch openai.ChatCompletionChunk) (d Delta, ok bool) {
	for i := range ch.Choices {
		c := &ch.Choices[i]
		if c.Index != 0 { // we never ask for n > 1
			continue
		}
		d.Text += c.Delta.Content + c.Delta.Refusal
		d.Reasoning += reasoning(&c.Delta)
		for j := range c.Delta.ToolCalls {
			tc := &c.Delta.ToolCalls[j]
			if tc.ID == "" && tc.Function.Name == "" && tc.Function.Arguments == "" {
				continue
			}
			d.ToolCalls = append(d.ToolCalls, ToolCallDelta{
				Index:     int(tc.Index),
				ID:        tc.ID,
				Name:      tc.Function.Name,
				Arguments: tc.Function.Arguments,
			})
		}
		if c.FinishReason != "" && s.finish == "" {
			s.finish = c.FinishReason
			d.FinishReason = c.FinishReason
		}
	}
	if ch.JSON.Usage.Valid() {
		d.Usage = &Usage{
			PromptTokens:     int(ch.Usage.PromptTokens),
			CompletionTokens: int(ch.Usage.CompletionTokens),
		}
	}
	return d, d.Text != "" || d.Reasoning != "" || len(d.ToolCalls) > 0 || d.FinishReason != "" || d.Usage != nil
}

// reasoning returns the reasoning text of a delta: `reasoning_content`
// (DeepSeek, most gateways) or `reasoning` (OpenRouter, vLLM). openai-go
// keeps unknown fields as raw JSON in ExtraFields.
func reasoning(d *openai.ChatCompletionChunkChoiceDelta) string {
	for _, key := range [...]string{"reasoning_content", "reasoning"} {
		// Extra fields are never Valid (not in the schema); Raw holds them.
		raw := d.JSON.ExtraFields[key].Raw()
		if raw == "" || raw == "null" {
			continue
		}
		var s string
		if json.Unmarshal([]byte(raw), &s) == nil && s != "" {
			return s
		}
	}
	return ""
}

// stop records the final error and releases the request.
func (s *Stream) stop(err error) {
	if s.err == nil {
		s.err = err
		s.failed(err)
	}
	s.closeAttempt()
	s.cancel(errClosed)
}

// Close ends the stream and releases its connection. It may be called from
// any goroutine, and more than once; a Recv in progress returns an error.
func (s *Stream) Close() error {
	s.once.Do(func() {
		s.cancel(errClosed)
		s.closeAttempt()
	})
	return nil
}

// maxTokensUnsupported recognises "use max_completion_tokens instead".
func maxTokensUnsupported(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.status == http.StatusBadRequest &&
		strings.Contains(ae.message, "max_completion_tokens")
}

// watchedBody is the response body as the SSE decoder reads it. It keeps the
// stream timers honest: every byte counts, SSE comments (`: PING`) included,
// which openai-go's decoder drops before we could see them. Until the first
// byte the first-token timer runs; after it, the idle timer runs only while
// a Read waits.
//
// At a clean end of body it also completes an unterminated last event with
// "\n\n": the decoder (as the SSE spec says) drops an event that is not
// followed by a blank line, which would silently lose the last words of a
// server that closes without one.
type watchedBody struct {
	rc      io.ReadCloser
	timer   *time.Timer
	idle    time.Duration
	started atomic.Bool // a byte has arrived; read by the timer
	readErr error       // the transport error that ended the body, if any
	last    [2]byte     // the last two bytes read
	eof     bool        // the body ended; only the terminator is left
}

func (b *watchedBody) Read(p []byte) (int, error) {
	if b.eof {
		return b.terminate(p)
	}
	started := b.started.Load()
	if started {
		b.timer.Reset(b.idle)
	}
	n, err := b.rc.Read(p)
	if started {
		b.timer.Stop()
	} else if n > 0 {
		b.started.Store(true)
		b.timer.Stop()
	}
	switch {
	case n >= 2:
		b.last = [2]byte{p[n-2], p[n-1]}
	case n == 1:
		b.last = [2]byte{b.last[1], p[0]}
	}
	if err == io.EOF {
		b.eof = true
		if n > 0 {
			return n, nil
		}
		return b.terminate(p)
	}
	if err != nil {
		b.readErr = err
	}
	return n, err
}

// terminate returns the "\n" bytes that end the last event, then io.EOF.
func (b *watchedBody) terminate(p []byte) (int, error) {
	if !b.started.Load() || b.last == [2]byte{'\n', '\n'} || len(p) == 0 {
		return 0, io.EOF
	}
	p[0] = '\n'
	b.last = [2]byte{b.last[1], '\n'}
	return 1, nil
}

func (b *watchedBody) Close() error { return b.rc.Close() }
