package main

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// The recovery counters are exported under their names and labels.
func TestRecoveryMetrics(t *testing.T) {
	m := newMetrics()
	m.Takeover("slack", 3)
	m.Resumed("slack", "answered")
	m.Resumed("slack", "failed")
	m.CaughtUp("discord", 2)
	rec := httptest.NewRecorder()
	m.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`parley_takeovers_total{platform="slack"} 3`,
		`parley_resumed_answers_total{outcome="answered",platform="slack"} 1`,
		`parley_resumed_answers_total{outcome="failed",platform="slack"} 1`,
		`parley_caught_up_messages_total{platform="discord"} 2`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
