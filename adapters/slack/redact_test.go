package slack

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/adapters/slack/slacktest"
)

// TestErrorPathsRedacted feeds each error path that carries something of
// the outside world a secret, and checks neither the error nor the logs
// hold it: an unreachable response_url (its path is the secret, on
// Slack's host or any other), a model choice whose answer cannot be
// delivered, and an engine error holding a password and a token.
func TestErrorPathsRedacted(t *testing.T) {
	const secret = "SeCrEt"
	fake := slacktest.New(t, slacktest.Config{})
	logs := &logBuffer{}
	eng := &fakeEngine{}
	a := startAdapter(t, fake, eng, Options{}, logs)
	a.retry = retryPolicy{first: time.Millisecond, max: time.Millisecond, within: 20 * time.Millisecond}

	// respond, directly: a refused connection names the URL it tried.
	for _, u := range []string{
		"https://127.0.0.1:1/commands/T0TEAM/1234/" + secret + "Path1",
		"https://[::1]:1/commands/T0TEAM/1234/" + secret + "Path2?x=" + secret,
	} {
		err := a.respond(context.Background(), u, &answer{Text: "hi"})
		if err == nil {
			t.Fatalf("respond to %s: no error", hidePath(u))
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("respond's error holds the response_url's path: %v", err)
		}
		if !strings.Contains(err.Error(), "response_url https://") {
			t.Errorf("respond's error %q does not say where it failed", err)
		}
	}

	// A model chosen from the picker, whose answer goes to an unreachable
	// response_url.
	env := fake.Interaction(map[string]any{
		"type": "block_actions", "response_url": "https://127.0.0.1:1/actions/T0TEAM/1234/" + secret + "Path3",
		"team": map[string]any{"id": "T0TEAM"}, "user": map[string]any{"id": "U1", "team_id": "T0TEAM"},
		"channel": map[string]any{"id": "C1"}, "container": map[string]any{"type": "message", "channel_id": "C1"},
		"actions": []any{map[string]any{"type": "external_select", "action_id": modelActionID, "block_id": modelBlockID, "selected_option": map[string]any{"value": "gpt-x"}}},
	})
	waitAck(t, fake, env, nil)
	waitFor(t, fake, 10*time.Second, "the lost answer logged", func() bool { return strings.Contains(logs.String(), "model choice answer lost") })

	// An engine error that quotes a database URL and a token.
	eng.setHandleErr(errors.New("store: dial postgres://parley:" + secret + "Pw@db:5432/parley: refused; token xoxb-1-2-" + secret + "Token"))
	fake.UserMessage("D1", "", "U1", "hello")
	waitFor(t, fake, 10*time.Second, "the lost event logged", func() bool { return strings.Contains(logs.String(), "slack event lost") })

	if strings.Contains(logs.String(), secret) {
		t.Errorf("the logs hold a secret:\n%s", logs.String())
	}
}
