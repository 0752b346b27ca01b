package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// apiError is an error reported by the endpoint, either as an HTTP status
// with a body or as a `data: {"error":{...}}` event inside the stream. It
// stays inside the package: publicError turns it into the exported errors.
type apiError struct {
	status     int // 0 for an in-stream error
	code       string
	typ        string
	message    string // redacted
	retryAfter time.Duration
}

func (e *apiError) Error() string {
	return fmt.Sprintf("llm: endpoint error (HTTP %d, code %q): %s", e.status, e.code, e.message)
}

// maxErrorBody bounds how much of an error body is read and kept.
const maxErrorBody = 64 << 10

// errorMiddleware turns HTTP error responses into *apiError before openai-go
// sees them: openai-go only understands {"error":{...}} bodies (a plain text
// body loses the status), and reading Retry-After ourselves keeps the retry
// policy in one place.
func (c *Client) errorMiddleware(req *http.Request, next func(*http.Request) (*http.Response, error)) (*http.Response, error) {
	resp, err := next(req)
	if err != nil || resp.StatusCode < 400 {
		return resp, err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
	e := parseErrorBody(body)
	e.status = resp.StatusCode
	e.message = c.redact(e.message)
	e.retryAfter = parseRetryAfter(resp.Header, c.cfg.Now())
	return nil, e
}

// parseErrorBody reads the shapes endpoints use for errors:
// {"error":{"message","type","code"}} (OpenAI; code may be a number),
// {"error":"text"}, {"message":"text"}, or plain text.
func parseErrorBody(body []byte) *apiError {
	e := &apiError{}
	var top struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Code    json.RawMessage `json:"code"`
	}
	if err := json.Unmarshal(body, &top); err != nil {
		e.message = plainMessage(body)
		return e
	}
	e.message = top.Message
	e.code = rawString(top.Code)
	var obj struct {
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Code    json.RawMessage `json:"code"`
	}
	switch {
	case len(top.Error) == 0 || string(top.Error) == "null":
	case json.Unmarshal(top.Error, &obj) == nil:
		if obj.Message != "" {
			e.message = obj.Message
		}
		e.typ = obj.Type
		if c := rawString(obj.Code); c != "" {
			e.code = c
		}
	default:
		if s := rawString(top.Error); s != "" {
			e.message = s
		}
	}
	if e.message == "" {
		e.message = plainMessage(body)
	}
	return e
}

// rawString returns a JSON string or number as text, "" for anything else.
func rawString(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// plainMessage shortens a non-JSON body (an HTML error page from a proxy,
// say) to something that fits in a chat message.
func plainMessage(body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	const limit = 300
	if len(s) > limit {
		s = strings.ToValidUTF8(s[:limit], "") + "…"
	}
	return s
}

// parseRetryAfter reads retry-after-ms (milliseconds) or Retry-After
// (seconds or an HTTP date); 0 when absent or unreadable.
func parseRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After-Ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 && ms < 1e9 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s > 0 && s < 1e6 {
			return time.Duration(s * float64(time.Second))
		}
		return 0
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// retryable reports whether a failure before the first byte is worth another
// attempt: connection errors and the statuses that say "come back later".
func retryable(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		switch ae.status {
		case http.StatusTooManyRequests:
			// An exhausted quota does not come back in seconds.
			return ae.code != "insufficient_quota"
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			// Gateways answer 503 for a model they have no channel for.
			return ae.code != "model_not_found"
		}
		return false
	}
	return isTransport(err)
}

// isTransport reports whether err is a network failure (not a cancellation
// or a timeout we caused).
func isTransport(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	var ue *url.Error
	var oe *net.OpError
	return errors.As(err, &ue) || errors.As(err, &oe) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, net.ErrClosed)
}

// publicError turns an endpoint error into the exported errors; model is the
// requested model, for *ModelNotFoundError.
func (c *Client) publicError(ctx context.Context, model string, e *apiError) error {
	msg := e.message
	if msg == "" {
		msg = http.StatusText(e.status)
	}
	where := "in the stream"
	if e.status != 0 {
		where = fmt.Sprintf("HTTP %d", e.status)
	}
	code := strings.ToLower(e.code)
	switch {
	case e.status == http.StatusUnauthorized || e.status == http.StatusForbidden ||
		code == "invalid_api_key":
		return fmt.Errorf("%w (%s): %s; check the API key and that it may use model %q", ErrUnauthorized, where, msg, model)
	case e.status == http.StatusNotFound && code != "model_not_found" && errors.Is(c.Health(), ErrEndpointNotFound):
		// The model list is missing too: the URL is wrong, not the model.
		hint := "the base URL does not point at an OpenAI-compatible API"
		if h := v1Hint(c.modelsURL()); h != "" {
			hint = "the base URL probably lacks /v1 (try " + h + ")"
		}
		return fmt.Errorf("%w (HTTP 404 from %s): %s; %s", ErrEndpointNotFound, redactURL(c.cfg.BaseURL), msg, hint)
	case code == "model_not_found" || e.status == http.StatusNotFound:
		return &ModelNotFoundError{Model: model, Suggestions: c.suggest(ctx, model), Message: msg}
	case code == "context_length_exceeded" || isContextLengthMessage(msg):
		return fmt.Errorf("%w (%s): %s", ErrContextLength, where, msg)
	case e.status == http.StatusTooManyRequests || code == "429" || code == "rate_limit_exceeded" ||
		code == "insufficient_quota" || e.typ == "rate_limit_error":
		return &RateLimitError{RetryAfter: e.retryAfter, Message: msg}
	case e.status >= 500 || e.status == 0:
		return fmt.Errorf("%w (%s): %s; try again later", ErrServer, where, msg)
	default:
		return fmt.Errorf("%w (%s): %s", ErrBadRequest, where, msg)
	}
}

// isContextLengthMessage recognises the wordings providers use when no
// code says it.
func isContextLengthMessage(msg string) bool {
	m := strings.ToLower(msg)
	for _, s := range []string{
		"context_length_exceeded", "context length", "context window",
		"maximum context", "prompt is too long", "too many tokens",
		"input is too long", "reduce the length",
	} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// timeoutError is the cause recorded when a stream timer fires.
type timeoutError struct {
	what string // "first byte" or "idle"
	d    time.Duration
}

func (e *timeoutError) Error() string {
	if e.what == "idle" {
		return fmt.Sprintf("llm: timeout: the endpoint sent nothing for %s mid-answer; try again, or raise the idle timeout for slow models", e.d)
	}
	return fmt.Sprintf("llm: timeout: no answer from the endpoint within %s; try again later", e.d)
}

func (e *timeoutError) Is(target error) bool { return target == ErrTimeout }

// transportError describes a network failure without the request URL, which
// may carry a key in its query.
func transportError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}
