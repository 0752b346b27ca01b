package slack

import (
	"strings"
	"testing"

	"github.com/parleyhq/parley/adapters/slack/slacktest"
	"github.com/parleyhq/parley/bots"
)

// TestE2EAccess runs the access rules through the real slack-go client and
// the fake Slack: a channel's /system is for the workspace's admins and
// owners (as users.info says, once per person within its TTL), a member
// is told who may, a Slack Connect guest is refused in the shared channel
// and in a DM though the event's workspace is allowed.
func TestE2EAccess(t *testing.T) {
	h := newE2E(t, StreamingUpdate, slacktest.Config{})
	h.slack.AddUser(slacktest.User{ID: "U-admin", Admin: true})
	h.slack.AddUser(slacktest.User{ID: "U-owner", Owner: true})
	h.slack.AddUser(slacktest.User{ID: "U-member"})
	h.slack.AddUser(slacktest.User{ID: "U-guest", TeamID: "T0OTHER", Admin: true}) // an admin of their own organization
	h.configure = func(c *bots.Config) { c.Access = bots.Access{Workspaces: []string{"T0TEAM"}} }
	h.start()
	h.llm.script(llmReply{Chunks: []string{"Arr."}})

	command := func(user, text string) string {
		t.Helper()
		env, _ := h.slack.SlashCommand("C1", user, "/system", text)
		var ack struct {
			Text string `json:"text"`
		}
		waitAck(t, h.slack, env, &ack)
		return ack.Text
	}
	tests := []struct {
		name, user, text, want string
	}{
		{"member refused, told who may", "U-member", "Talk like a pirate.", "Only admins can change the system prompt in this channel. Admins here are the workspace's admins and owners"},
		{"guest refused", "U-guest", "Talk like a pirate.", "not available"},
		{"owner sets it", "U-owner", "Talk like a sailor.", "is set"},
		{"admin sets it", "U-admin", "Talk like a pirate.", "is set"},
		{"member reads it", "U-member", "", "Talk like a pirate."},
		{"admin again, from the cache", "U-admin", "Talk like a pirate.", "is set"},
	}
	for _, tt := range tests {
		if got := command(tt.user, tt.text); !strings.Contains(got, tt.want) {
			t.Errorf("%s: /system answered %q, want %q in it", tt.name, got, tt.want)
		}
	}
	if n := h.slack.Calls("users.info"); n != 4 {
		t.Errorf("users.info was called %d times for 4 people, want 4 (one each, then cached)", n)
	}

	// The guest's mention in the shared channel and DM are refused; the
	// member's mention is answered with the admins' prompt.
	h.slack.UserMessage("C1", "", "U-guest", bot+" hello")
	h.slack.UserMessage("D-guest", "", "U-guest", "hello")
	q := h.slack.UserMessage("C1", "", "U-member", bot+" hello")
	h.replyIn("C1", q.TS, 1, "Arr.")
	waitFor(t, h.slack, e2eTimeout, "the guest's DM refused", func() bool {
		ms := h.slack.BotMessages("D-guest", "")
		return len(ms) == 1 && strings.Contains(ms[0].Text, "not available")
	})
	reqs := h.llm.requestsMade()
	if len(reqs) != 1 {
		t.Fatalf("the model was asked %d times, want once (the member)", len(reqs))
	}
	if m := reqs[0].Messages; len(m) == 0 || m[0].Role != "system" || m[0].Content != "Talk like a pirate." {
		t.Errorf("the member's request began with %+v, want the admins' system prompt", m)
	}
}
