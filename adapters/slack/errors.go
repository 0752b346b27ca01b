package slack

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/parleyhq/parley/bots"
)

// apiCode returns the Slack error code of err ("msg_too_long"), or "".
func apiCode(err error) string {
	var e slackapi.SlackErrorResponse
	if errors.As(err, &e) {
		return e.Err
	}
	return ""
}

// Slack error codes the engine branches on.
var (
	goneCodes = map[string]bool{
		"message_not_found": true,
		"channel_not_found": true,
		"thread_not_found":  true,
		"is_archived":       true,
	}
	// Codes by which a workspace refuses a method or feature outright; the
	// refusal is remembered for the workspace.
	refusedCodes = map[string]bool{
		"not_allowed":            true,
		"not_allowed_token_type": true,
		"unknown_method":         true,
		"method_deprecated":      true,
		"feature_not_enabled":    true,
		"not_enabled":            true,
		"missing_scope":          true,
		"team_not_allowed":       true,
		"no_permission":          true,
	}
	// Codes by which a native stream says it is no longer open.
	streamClosedCodes = map[string]bool{
		"message_not_in_streaming_state": true,
		"streaming_state_conflict":       true,
		"stream_expired":                 true,
		"message_not_streaming":          true,
	}
)

// wrap converts a Web API error for the engine: a 429 into a
// *bots.RateLimitError, msg_too_long into bots.ErrTooLong, a missing target
// into bots.ErrGone. The Slack error stays in the chain.
func wrap(method string, err error) error {
	if err == nil {
		return nil
	}
	var rl *slackapi.RateLimitedError
	if errors.As(err, &rl) {
		return fmt.Errorf("slack: %s: %w", method, &bots.RateLimitError{RetryAfter: max(rl.RetryAfter, time.Second)})
	}
	var sc slackapi.StatusCodeError
	if errors.As(err, &sc) && sc.Code == http.StatusTooManyRequests {
		// A 429 without Retry-After.
		return fmt.Errorf("slack: %s: %w", method, &bots.RateLimitError{RetryAfter: time.Second})
	}
	code := apiCode(err)
	switch {
	case code == "msg_too_long":
		return fmt.Errorf("slack: %s: %w: %w", method, bots.ErrTooLong, err)
	case goneCodes[code]:
		return fmt.Errorf("slack: %s: %w: %w", method, bots.ErrGone, err)
	}
	return fmt.Errorf("slack: %s: %w", method, redactErr{err})
}

// refused reports whether err says the workspace does not offer the method.
func refused(err error) bool {
	if refusedCodes[apiCode(err)] {
		return true
	}
	var sc slackapi.StatusCodeError
	return errors.As(err, &sc) && sc.Code == http.StatusNotFound
}

// redact returns err's text with every token-shaped string masked
// (bots.Redact): URL queries (a Socket Mode URL carries a connection
// ticket), the paths of response URLs and webhooks, tokens.
func redact(err error) string {
	if err == nil {
		return ""
	}
	return bots.Redact(err.Error())
}

// redactErr is an error whose text is redacted; errors.Is and As still see
// the original.
type redactErr struct{ err error }

func (e redactErr) Error() string { return redact(e.err) }
func (e redactErr) Unwrap() error { return e.err }

// hiddenURLErr is an error whose text is redacted and hides url (a
// response_url, whose path is a secret on any host).
type hiddenURLErr struct {
	err error
	url string
}

func (e hiddenURLErr) Error() string {
	return bots.Redact(strings.ReplaceAll(e.err.Error(), e.url, hidePath(e.url)))
}

func (e hiddenURLErr) Unwrap() error { return e.err }
