package discord

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// TestErrorPathsRedacted feeds the error paths that quote a URL or a
// library's message a secret: a failed request to an interaction's or a
// webhook's URL (the token is in the path), a signed CDN link, and
// discordgo's own log lines, which may quote the bot token. The cause
// stays reachable with errors.Is.
func TestErrorPathsRedacted(t *testing.T) {
	const secret = "SeCrEt"
	cause := context.DeadlineExceeded
	tests := []struct {
		name string
		err  error
	}{
		{"interaction callback", &url.Error{Op: "Post", URL: "https://discord.com/api/v10/interactions/1234/" + secret + "InteractionToken/callback", Err: cause}},
		{"original response", &url.Error{Op: "Patch", URL: "https://discord.com/api/v10/webhooks/1234/" + secret + "Token/messages/@original", Err: cause}},
		{"followup", fmt.Errorf("answer /model: %w", &url.Error{Op: "Post", URL: "https://discord.com/api/v10/webhooks/1234/" + secret + "Token", Err: cause})},
		{"signed link", &url.Error{Op: "Get", URL: "https://cdn.discordapp.com/attachments/1/2/a.png?ex=1&hm=" + secret, Err: cause}},
		{"library message", fmt.Errorf("discordgo: identify with MTA5ODc2NTQzMjEwOTg3NjU0Mw.GaBcDe.%sabcdefghijklmnopqrstuvwx failed: %w", secret, cause)},
		{"authorization", fmt.Errorf("request with Authorization: Bot %s0123456789abcdef: %w", secret, cause)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := redact(tt.err)
			if strings.Contains(got.Error(), secret) {
				t.Errorf("redact: %q holds the secret", got)
			}
			if !errors.Is(got, cause) {
				t.Errorf("redact: %v no longer wraps its cause", got)
			}
			if line := redactURL(tt.err.Error()); strings.Contains(line, secret) {
				t.Errorf("a library log line %q holds the secret", line)
			}
		})
	}
}
