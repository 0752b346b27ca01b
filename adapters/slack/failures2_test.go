package slack

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/adapters/slack/slacktest"
	"github.com/parleyhq/parley/bots"
)

func TestAuthTestRateLimitedAtStart(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	// Slack answers the first auth.test with a 429: the adapter waits the
	// Retry-After and starts, rather than failing.
	fake.Inject("auth.test", slacktest.Fault{RetryAfter: 1})
	a := startAdapter(t, fake, &fakeEngine{}, Options{}, nil)
	if n, l := fake.Calls("auth.test"), fake.RateLimited("auth.test"); n != 2 || l != 1 {
		t.Errorf("auth.test called %d times with %d 429s, want 2 and 1", n, l)
	}
	waitFor(t, fake, 10*time.Second, "readiness", a.Ready)
	select {
	case <-a.Authenticated():
	default:
		t.Error("not authenticated after the socket connected")
	}
}

func TestRunRevokedBotToken(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	fake.Inject("auth.test", slacktest.Fault{Error: "token_revoked"})
	a := newTestAdapter(t, fake, &fakeEngine{}, Options{}, nil)
	err := a.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "token_revoked") || !strings.Contains(err.Error(), "SLACK_BOT_TOKEN") ||
		strings.Contains(err.Error(), fake.Config().BotToken) {
		t.Fatalf("got %v, want a refusal naming SLACK_BOT_TOKEN without the token", err)
	}
	if a.Ready() || fake.Connections() != 0 {
		t.Errorf("ready %v with %d sockets, want neither", a.Ready(), fake.Connections())
	}
}

func TestHTTPModeReadyAfterAuthTest(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	a := newTestAdapter(t, fake, &fakeEngine{}, Options{SigningSecret: "signing-secret-123"}, nil)
	if a.Ready() {
		t.Fatal("ready before Run")
	}
	runAdapter(t, a)
	waitFor(t, fake, 10*time.Second, "authentication", func() bool {
		select {
		case <-a.Authenticated():
			return true
		default:
			return false
		}
	})
	if !a.Ready() || fake.Connections() != 0 {
		t.Errorf("ready %v with %d sockets; want ready without a socket", a.Ready(), fake.Connections())
	}
}

func TestSocketDroppedReconnects(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	eng := &fakeEngine{}
	a := startAdapter(t, fake, eng, Options{}, nil)
	// The network fails under the socket: slack-go reconnects, and a
	// message sent meanwhile is delivered on the new socket.
	fake.DropSocket()
	p := fake.UserMessage("D1", "", "U1", "sent while the socket was down")
	waitFor(t, fake, 15*time.Second, "the message after the drop", func() bool { return len(eng.incoming()) == 1 })
	if got := eng.incoming()[0]; got.MessageID != p.TS || got.Text != "sent while the socket was down" {
		t.Errorf("got %+v", got)
	}
	waitFor(t, fake, 10*time.Second, "the acknowledgement", allAcked(fake, p.Envelopes...))
	if n := fake.Connections(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
	waitFor(t, fake, 10*time.Second, "readiness", a.Ready)
}

func TestIsAdminAndCallerTeam(t *testing.T) {
	a, fake := platformAdapter(t, slacktest.Config{}, StreamingAuto)
	ctx := context.Background()
	fake.AddUser(slacktest.User{ID: "UADMIN", Admin: true})
	fake.AddUser(slacktest.User{ID: "UGONE", Owner: true, Deleted: true})
	fake.AddUser(slacktest.User{ID: "UGUEST", TeamID: "T0OTHER", Admin: true})
	tests := []struct {
		user string
		want bool
	}{
		{"UADMIN", true},
		{"UGONE", false},  // a deactivated owner is no admin
		{"UGUEST", false}, // an admin of another organization
		{"UPLAIN", false},
	}
	for _, tc := range tests {
		if got, err := a.IsAdmin(ctx, "T0TEAM", tc.user); err != nil || got != tc.want {
			t.Errorf("IsAdmin(%s): got %v, %v; want %v", tc.user, got, err, tc.want)
		}
	}
	if team := a.userTeam(ctx, "T0TEAM", "UGUEST"); team != "T0OTHER" {
		t.Errorf("the guest's team: got %q, want T0OTHER", team)
	}
	if team := a.userTeam(ctx, "T0TEAM", "UADMIN"); team != "" {
		t.Errorf("a member's team: got %q, want \"\"", team)
	}
	// What users.info says is kept a while.
	if n := fake.Calls("users.info"); n != 4 {
		t.Errorf("users.info called %d times for 4 people, want 4", n)
	}

	// Without users:read, the lookup is an error, and the caller's team
	// unknown: an allow-list then refuses rather than guesses.
	fake.Inject("users.info", slacktest.Fault{Error: "missing_scope"}, slacktest.Fault{Error: "missing_scope"})
	if ok, err := a.IsAdmin(ctx, "T0TEAM", "UNEW"); err == nil || ok || !strings.Contains(err.Error(), "missing_scope") {
		t.Errorf("IsAdmin without users:read: got %v, %v; want the error", ok, err)
	}
	if team := a.userTeam(ctx, "T0TEAM", "UNEW2"); team != bots.UnknownTeam {
		t.Errorf("the team without users:read: got %q, want UnknownTeam", team)
	}
	fake.Inject("users.info", slacktest.Fault{RetryAfter: 3})
	var rl *bots.RateLimitError
	if _, err := a.IsAdmin(ctx, "T0TEAM", "UNEW3"); !errors.As(err, &rl) || rl.RetryAfter != 3*time.Second {
		t.Errorf("IsAdmin on a 429: got %v, want a RateLimitError of 3s", err)
	}
}
