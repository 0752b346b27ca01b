package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/parleyhq/parley/cmd/parley/config"
)

type stringer struct{ s string }

func (s stringer) String() string { return s.s }

type logValuer struct{ s string }

func (l logValuer) LogValue() slog.Value { return slog.StringValue(l.s) }

// TestLogsRedacted feeds every way a value reaches a log line a secret:
// the message, string, error, wrapped error, fmt.Stringer, slog.LogValuer,
// struct and group attributes, and attributes bound with With; in both
// formats no secret comes out.
func TestLogsRedacted(t *testing.T) {
	secrets := map[string]string{
		"slack bot token":   "xoxb-2222222222-3333333333-SeCrEtBoTtOkEn",
		"slack app token":   "xapp-1-A0000000-4444444444-SeCrEtApPtOkEn",
		"response_url path": "https://hooks.slack.com/commands/T0TEAM/5555555555/SeCrEtReSpOnSePaTh",
		"webhook path":      "https://hooks.slack.com/services/T0TEAM/B0000000/SeCrEtWeBhOoKpAtH",
		"interaction token": "https://discord.com/api/v10/webhooks/1234567890/SeCrEtInTeRaCtIoNtOkEn/messages/@original",
		"discord token":     "MTA5ODc2NTQzMjEwOTg3NjU0Mw.GaBcDe.SeCrEtDiScOrDtOkEnAbCdEfGhIjKlMn",
		"api key":           "sk-SeCrEtApIkEy0123456789",
		"bearer":            "Authorization: Bearer SeCrEtBeArEr0123456789",
		"database password": "postgres://parley:SeCrEtPaSsWoRd@db:5432/parley",
		"socket ticket":     "wss://wss-primary.slack.com/link/?ticket=SeCrEtTiCkEt&app_id=A1",
	}
	for _, format := range []string{config.FormatText, config.FormatJSON} {
		for name, secret := range secrets {
			t.Run(format+"/"+name, func(t *testing.T) {
				var out bytes.Buffer
				log := newLogger(&out, config.Log{Level: slog.LevelDebug, Format: format})
				err := fmt.Errorf("slack: response_url: %w", errors.New(`Post "`+secret+`": dial tcp: i/o timeout`))
				log.Info("message with " + secret)
				log.Warn("attrs", "string", secret, "err", err, "wrapped", fmt.Errorf("outer: %w", err),
					"stringer", stringer{secret}, "valuer", logValuer{secret}, "struct", struct{ URL string }{secret},
					slog.Group("group", "inner", secret, slog.Group("deeper", "err", err)))
				log.With("bound", secret).WithGroup("g").Error("bound", "k", secret)
				got := out.String()
				for _, part := range []string{"SeCrEt"} {
					if strings.Contains(got, part) {
						t.Errorf("the log holds the secret:\n%s", got)
					}
				}
				if !strings.Contains(got, "message with") || !strings.Contains(got, "deeper") {
					t.Errorf("the log lost its lines:\n%s", got)
				}
			})
		}
	}
}
