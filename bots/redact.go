package bots

import (
	"regexp"
	"strings"
)

// secretShapes are the shapes of the secrets that may reach a log line or
// an error's text, each with what replaces it. A value is matched by its
// shape, not by knowing it: a token Parley never saw (a user's, pasted in
// a message that fails to parse) is masked too.
var secretShapes = []struct {
	re   *regexp.Regexp
	with string
}{
	// A URL's credentials and query: userinfo passwords (DATABASE_URL),
	// Socket Mode tickets, signed CDN links, API keys in query strings.
	{regexp.MustCompile(`([a-z][a-z0-9+.-]*://[^\s/:@"'<>]*):[^\s@/"'<>]+@`), "$1:***@"},
	{regexp.MustCompile(`((?:https?|wss?)://[^\s"'<>?]+)\?[^\s"'<>]*`), "$1?…"},
	// Slack's response_url and incoming webhooks: the path is the secret
	// (hooks.slack.com/commands/T…/…/…, /services/T…/B…/…, GovSlack's too).
	{regexp.MustCompile(`(hooks\.slack(?:-gov)?\.com/[A-Za-z]+)/[^\s"'<>]+`), "$1/…"},
	// Discord's interaction and webhook tokens, in their URLs' paths.
	{regexp.MustCompile(`(/(?:webhooks|interactions)/[0-9]+/)[^/?\s"'<>]+`), "${1}***"},
	// Slack tokens (xoxb-, xoxp-, xoxe.xoxp-, xapp-, …).
	{regexp.MustCompile(`\bx(?:ox[a-z]?(?:\.xox[a-z]?)?|app)-[A-Za-z0-9-]{6,}`), "x***"},
	// Bearer and Bot credentials as headers carry them.
	{regexp.MustCompile(`(?i)\b(Bearer|Bot|Basic)\s+[A-Za-z0-9._~+/=-]{12,}`), "$1 ***"},
	// Discord bot tokens: three base64url parts, the first a user id.
	{regexp.MustCompile(`\b[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,}`), "***"},
	// JSON web tokens.
	{regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}`), "***"},
	// API keys: OpenAI-style (sk-, sk-proj-), GitHub's.
	{regexp.MustCompile(`\bsk-[A-Za-z0-9_-]{12,}`), "sk-***"},
	{regexp.MustCompile(`\b(?:ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{20,}`), "***"},
}

// Redact returns s with every token-shaped string masked: Slack and Discord
// tokens, API keys, bearer credentials, web tokens, the secret paths of
// Slack's response URLs and webhooks and of Discord's interaction URLs,
// and URLs' passwords and queries. Logs and errors go through it; it is
// cheap on text without secrets.
func Redact(s string) string {
	if !mayHoldSecret(s) {
		return s
	}
	for _, sh := range secretShapes {
		s = sh.re.ReplaceAllString(s, sh.with)
	}
	return s
}

// mayHoldSecret is a quick test that skips the expressions for most text.
func mayHoldSecret(s string) bool {
	return strings.ContainsAny(s, ".-_:") && len(s) >= 12
}
