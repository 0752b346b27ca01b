package llm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Errors of the endpoint as a whole, as Check and Health report them and
// as Stream returns them when the endpoint, not the model, is the problem.
var (
	// ErrEndpointNotFound means the base URL answers 404 where the API
	// should be: it is probably missing its /v1.
	ErrEndpointNotFound = errors.New("llm: endpoint not found")
	// ErrUnreachable means no connection could be made (refused, DNS, TLS,
	// no route). It also matches ErrServer.
	ErrUnreachable = errors.New("llm: endpoint unreachable")
)

// checkTimeout bounds Check's request: a start must not wait for a
// black-holed endpoint.
const checkTimeout = 10 * time.Second

// EndpointError says why the endpoint's model list could not be read: the
// base URL is wrong (ErrEndpointNotFound), the key is refused
// (ErrUnauthorized), the endpoint cannot be reached (ErrUnreachable), or
// it failed (ErrServer, ErrTimeout, ErrRateLimited). It matches its kind
// with errors.Is. It never holds the API key: URL has no credentials and
// no query.
type EndpointError struct {
	URL     string // the URL tried
	Status  int    // the HTTP status; 0 when there was no answer
	Message string // the endpoint's message or the network error
	Kind    error
}

func (e *EndpointError) Error() string {
	var s string
	if e.Status != 0 {
		s = fmt.Sprintf("llm: GET %s answered %d %s", e.URL, e.Status, http.StatusText(e.Status))
		if e.Message != "" && !strings.Contains(strings.ToLower(http.StatusText(e.Status)), strings.ToLower(e.Message)) {
			s += " (" + e.Message + ")"
		}
	} else {
		s = fmt.Sprintf("llm: GET %s: %s", e.URL, e.Message)
	}
	switch {
	case errors.Is(e.Kind, ErrEndpointNotFound):
		if hint := v1Hint(e.URL); hint != "" {
			return s + ": the base URL probably lacks /v1 (try " + hint + ")"
		}
		return s + ": the base URL does not point at an OpenAI-compatible API"
	case errors.Is(e.Kind, ErrUnauthorized):
		return s + ": the endpoint refused the API key"
	case errors.Is(e.Kind, ErrUnreachable):
		return s + ": cannot reach the endpoint; check the base URL and the network"
	case errors.Is(e.Kind, ErrTimeout):
		return s + ": the endpoint did not answer in time"
	}
	return s
}

// Unwrap returns the error's kind.
func (e *EndpointError) Unwrap() error { return e.Kind }

// v1Hint returns the base URL with /v1 added, for a models URL whose base
// does not end in /v1; "" when it does.
func v1Hint(modelsURL string) string {
	base := strings.TrimSuffix(strings.TrimRight(modelsURL, "/"), "/models")
	u, err := url.Parse(base)
	if err != nil || strings.HasSuffix(strings.TrimRight(u.Path, "/"), "/v1") {
		return ""
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/v1"
	return u.String()
}

// modelsURL is the URL of the model list, without credentials.
func (c *Client) modelsURL() string {
	return redactURL(strings.TrimRight(c.cfg.BaseURL, "/") + "/models")
}

// endpointError classifies a failed GET of the model list.
func (c *Client) endpointError(err error) *EndpointError {
	e := &EndpointError{URL: c.modelsURL()}
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		e.Status, e.Message = ae.status, ae.message
		switch {
		case ae.status == http.StatusNotFound:
			e.Kind = ErrEndpointNotFound
		case ae.status == http.StatusUnauthorized || ae.status == http.StatusForbidden:
			e.Kind = ErrUnauthorized
		case ae.status == http.StatusTooManyRequests:
			e.Kind = ErrRateLimited
		case ae.status >= 500:
			e.Kind = ErrServer
		default:
			e.Kind = ErrBadRequest
		}
	case isTimeout(err):
		e.Message, e.Kind = c.redact(transportError(err)), ErrTimeout
	case isTransport(err):
		e.Message, e.Kind = c.redact(transportError(err)), ErrUnreachable
	default:
		// The list came but could not be read.
		e.Message, e.Kind = c.redact(err.Error()), ErrServer
	}
	return e
}

// Check reads the model list now, refreshing the catalog, and returns nil
// when the endpoint answered with one, or an *EndpointError saying what is
// wrong. It waits at most 10 seconds. Whatever it returns, the client goes
// on working: Run keeps trying the endpoint in the background.
func (c *Client) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	_, err, _ := c.catalog.group.Do("models", func() (any, error) {
		return nil, c.refresh(ctx)
	})
	if err != nil {
		return &EndpointError{URL: c.modelsURL(), Message: "no answer within " + checkTimeout.String(), Kind: ErrTimeout}
	}
	return c.Health()
}

// Health returns the endpoint's state as last seen: nil when the model
// list was read, or when an answer has streamed since the last failed
// listing (an endpoint without a model list that answers all the same is
// healthy); else the *EndpointError of the last listing. It is nil before
// the first listing, and makes no request.
func (c *Client) Health() error {
	cat := &c.catalog
	cat.mu.Lock()
	err, at := cat.health, cat.healthAt
	cat.mu.Unlock()
	if err == nil {
		return nil
	}
	if ok := c.streamed.Load(); ok != 0 && (errors.Is(err, ErrEndpointNotFound) || ok >= at.UnixNano()) {
		return nil
	}
	return err
}

// isTimeout reports whether err is a network timeout or a deadline.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// ErrorKind names the kind of an error of this package, for metrics:
// "unauthorized", "model_not_found", "rate_limited", "context_length",
// "timeout", "stream_cut", "endpoint_not_found", "unreachable", "server",
// "bad_request", or "other". A *MidAnswerError is named by its kind.
func ErrorKind(err error) string {
	switch {
	case errors.Is(err, ErrUnauthorized):
		return "unauthorized"
	case errors.Is(err, ErrModelNotFound):
		return "model_not_found"
	case errors.Is(err, ErrRateLimited):
		return "rate_limited"
	case errors.Is(err, ErrContextLength):
		return "context_length"
	case errors.Is(err, ErrTimeout):
		return "timeout"
	case errors.Is(err, ErrStreamCut):
		return "stream_cut"
	case errors.Is(err, ErrEndpointNotFound):
		return "endpoint_not_found"
	case errors.Is(err, ErrUnreachable):
		return "unreachable"
	case errors.Is(err, ErrServer):
		return "server"
	case errors.Is(err, ErrBadRequest):
		return "bad_request"
	}
	return "other"
}

// ErrorKinds are the names ErrorKind returns, so that metrics can show
// every kind from the start.
var ErrorKinds = []string{"unauthorized", "model_not_found", "rate_limited", "context_length", "timeout",
	"stream_cut", "endpoint_not_found", "unreachable", "server", "bad_request", "other"}

// RetryKinds are the kinds of failure Stream retries before the first
// byte, as Config.OnRetry names them.
var RetryKinds = []string{"rate_limited", "server", "unreachable", "stream_cut"}

// retryKind names a failure before the first byte that is retried.
func retryKind(err error) string {
	var ae *apiError
	switch {
	case errors.As(err, &ae) && ae.status == http.StatusTooManyRequests:
		return "rate_limited"
	case errors.As(err, &ae):
		return "server"
	}
	return "unreachable"
}
