package bots_test

import (
	"strings"
	"testing"

	"github.com/parleyhq/parley/bots"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		name, in, secret, keep string
	}{
		{"slack bot token", "auth failed for xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp", "xoxb-1234567890", "auth failed"},
		{"slack user token", "token xoxp-11-22-33-abcdef", "xoxp-11", "token"},
		{"slack rotating token", "xoxe.xoxp-1-Mi0yLTEyMzQ1Ng-abcdef", "Mi0yLTEyMzQ1Ng", ""},
		{"slack app token", "SLACK_APP_TOKEN=xapp-1-A012345-678901-abcdef0123", "A012345-678901", "SLACK_APP_TOKEN="},
		{"response_url", `Post "https://hooks.slack.com/commands/T0123/456789/SeCrEtPaTh0123": dial tcp: i/o timeout`, "SeCrEtPaTh0123", "hooks.slack.com/commands"},
		{"incoming webhook", "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX refused", "XXXXXXXXXXXXXXXX", "refused"},
		{"govslack webhook", "https://hooks.slack-gov.com/actions/T1/2/sEcReT99", "sEcReT99", "hooks.slack-gov.com"},
		{"socket mode ticket", "dial wss://wss-primary.slack.com/link/?ticket=abc-123-secret&app_id=A1: EOF", "abc-123-secret", "wss-primary.slack.com/link/"},
		{"discord interaction", `Post "https://discord.com/api/v10/interactions/1234/aW50ZXJhY3Rpb246MTIzNDpzZWNyZXQ/callback": EOF`, "aW50ZXJhY3Rpb246MTIzNDpzZWNyZXQ", "/interactions/1234/"},
		{"discord webhook", "/api/v10/webhooks/999/itok-secret-token/messages/@original: 404", "itok-secret-token", "/webhooks/999/"},
		{"discord bot token", "token MTA5ODc2NTQzMjEwOTg3NjU0Mw.GaBcDe.abcdefghijklmnopqrstuvwxyz012345 refused", "abcdefghijklmnopqrstuvwxyz012345", "refused"},
		{"bearer header", "Authorization: Bearer abcdefghijklmnop1234", "abcdefghijklmnop1234", "Authorization: Bearer"},
		{"discord header", "Authorization: Bot abcdefghijklmnop.1234", "abcdefghijklmnop.1234", "Authorization: Bot"},
		{"openai key", "401: Incorrect API key provided: sk-proj-AbCdEf1234567890xyz", "AbCdEf1234567890xyz", "Incorrect API key"},
		{"jwt", "id_token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "dozjgNryP4J3jVmNHl0w5N", "id_token"},
		{"github token", "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "abcdefghijklmnopqrst", ""},
		{"database password", "connect postgres://parley:hunter2-secret@db:5432/parley: refused", "hunter2-secret", "postgres://parley:***@db:5432/parley"},
		{"signed link", "GET https://cdn.discordapp.com/attachments/1/2/a.png?ex=1&is=2&hm=deadbeefcafe: 404", "deadbeefcafe", "cdn.discordapp.com/attachments/1/2/a.png"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := bots.Redact(tt.in)
			if strings.Contains(got, tt.secret) {
				t.Errorf("Redact(%q) = %q: the secret is still there", tt.in, got)
			}
			if !strings.Contains(got, tt.keep) {
				t.Errorf("Redact(%q) = %q, want %q kept", tt.in, got, tt.keep)
			}
		})
	}
	for _, plain := range []string{
		"",
		"reply finished",
		"slack: chat.postMessage: channel_not_found",
		`Post "https://slack.com/api/chat.update": context deadline exceeded`,
		"model gpt-4o-mini-2024-07-18 answered in 1.2s",
		"conversation 42 in T0TEAM/C1/1700000000.000100",
	} {
		if got := bots.Redact(plain); got != plain {
			t.Errorf("Redact(%q) = %q, want it unchanged", plain, got)
		}
	}
}
