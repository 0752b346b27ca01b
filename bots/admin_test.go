package bots_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/bots/botstest"
	"github.com/parleyhq/parley/conversation"
)

// TestAccessRules runs the access rules through Engine.Command: who may
// change what others see (admins: listed, or the platform's own), what
// everyone may do for themselves, and who is refused altogether.
func TestAccessRules(t *testing.T) {
	h := newHarness(t, botstest.SlackLike, bots.Config{Access: bots.Access{
		Workspaces: []string{"W1"},
		Admins:     []string{"U-listed", "R-admins"},
	}})
	p := botstest.NewAdmins("fake", botstest.SlackLike)
	p.SetAdmin("W1", "U-admin", true)
	p.SetAdmin("W1", "U-guest", true) // an admin of their own organization, as users.info may say
	ctx := context.Background()

	// A thread U-member started alone, and one U-other wrote in too.
	seed := func(thread string, authors ...string) {
		conv, err := h.store.Conversation(ctx, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: thread})
		if err != nil {
			t.Fatal(err)
		}
		for i, a := range authors {
			if _, _, err := h.store.Append(ctx, conv.ID, conversation.Message{Role: conversation.RoleUser, Author: a, PlatformID: thread + "-" + a + string(rune('a'+i)), Text: "hi", Status: conversation.StatusComplete}); err != nil {
				t.Fatal(err)
			}
		}
	}
	seed("t-own", "U-member", "U-member")
	seed("t-shared", "U-member", "U-other")
	seed("t-reset-own", "U-member")
	seed("t-reset-shared", "U-member", "U-other")
	seed("t-reset-admin", "U-member", "U-other")

	const (
		done    = "done"
		admins  = "Only admins"
		refused = "not available"
		unsure  = "could not check"
	)
	member := bots.Command{Workspace: "W1", Channel: "C1", User: "U-member"}
	with := func(c bots.Command, f func(*bots.Command)) bots.Command { f(&c); return c }
	tests := []struct {
		name string
		cmd  bots.Command
		want string
	}{
		{"platform admin sets the channel's prompt", with(member, func(c *bots.Command) { c.User = "U-admin"; c.Name, c.Args = "system", "Be brief." }), done},
		{"listed admin sets the channel's prompt", with(member, func(c *bots.Command) { c.User = "U-listed"; c.Name, c.Args = "system", "Be brief." }), done},
		{"member of a listed role sets the channel's model", with(member, func(c *bots.Command) { c.Roles = []string{"R-admins"}; c.Name, c.Args = "model", "fake-large" }), done},
		{"platform admin sets the workspace's model", with(member, func(c *bots.Command) { c.User = "U-admin"; c.Name, c.Args = "model", "fake-large workspace" }), done},
		{"member may not set the channel's prompt", with(member, func(c *bots.Command) { c.Name, c.Args = "system", "Talk like a pirate." }), admins},
		{"member may not clear the channel's prompt", with(member, func(c *bots.Command) { c.Name, c.Args = "system", "clear" }), admins},
		{"member may not set the channel's model", with(member, func(c *bots.Command) { c.Name, c.Args = "model", "fake-large" }), admins},
		{"member may not set the workspace's prompt", with(member, func(c *bots.Command) { c.Name, c.Args = "system", "workspace Talk like a pirate." }), admins},
		{"member may not set the workspace's model from a DM", with(member, func(c *bots.Command) { c.Channel, c.DM = "D1", true; c.Name, c.Args = "model", "workspace fake-large" }), admins},
		{"member sets a model for themselves", with(member, func(c *bots.Command) { c.Name, c.Args = "model", "fake-large me" }), done},
		{"member sets a prompt for themselves", with(member, func(c *bots.Command) { c.Name, c.Args = "system", "me Answer in French." }), done},
		{"member sets the prompt of their DM", with(member, func(c *bots.Command) { c.Channel, c.DM = "D1", true; c.Name, c.Args = "system", "Be brief." }), done},
		{"member sets the prompt of a thread of their own", with(member, func(c *bots.Command) { c.Thread = "t-own"; c.Name, c.Args = "system", "Be brief." }), done},
		{"member may not set the prompt of a thread others are in", with(member, func(c *bots.Command) { c.Thread = "t-shared"; c.Name, c.Args = "system", "Be brief." }), admins},
		{"member reads the channel's prompt", with(member, func(c *bots.Command) { c.Name = "system" }), "system prompt here"},
		{"member lists the models", with(member, func(c *bots.Command) { c.Name = "models" }), "model(s)"},
		{"member resets a thread of their own", with(member, func(c *bots.Command) { c.Thread = "t-reset-own"; c.Name = "reset" }), "forgot"},
		{"member may not reset a thread others are in", with(member, func(c *bots.Command) { c.Thread = "t-reset-shared"; c.Name = "reset" }), admins},
		{"admin resets a thread others are in", with(member, func(c *bots.Command) { c.User = "U-admin"; c.Thread = "t-reset-admin"; c.Name = "reset" }), "forgot"},
		{"Slack Connect guest is refused", with(member, func(c *bots.Command) {
			c.User, c.UserTeam = "U-guest", "T-other"
			c.Name, c.Args = "system", "Be brief."
		}), refused},
		{"outsider's DM is refused", with(member, func(c *bots.Command) {
			c.User, c.UserTeam = "U-out", "T-other"
			c.Channel, c.DM = "D2", true
			c.Name = "help"
		}), refused},
		{"outside workspace is refused", with(member, func(c *bots.Command) { c.Workspace = "W2"; c.Name = "help" }), refused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.engine.Command(ctx, p, tt.cmd)
			switch tt.want {
			case done:
				if !strings.Contains(r.Text, "now answers with") && !strings.Contains(r.Text, "is set") {
					t.Fatalf("got %q, want the setting made", r.Text)
				}
			default:
				if !strings.Contains(r.Text, tt.want) {
					t.Fatalf("got %q, want %q in it", r.Text, tt.want)
				}
			}
			if tt.want == admins && !strings.Contains(r.Text, "the fake workspace's admins") || tt.want == admins && !strings.Contains(r.Text, "PARLEY_ADMINS") {
				t.Errorf("the refusal %q does not say who may", r.Text)
			}
		})
	}

	// What was refused changed nothing; what was done holds.
	prompt, from, ok, err := h.store.ResolveSetting(ctx, conversation.SettingSystemPrompt,
		conversation.Scope{Kind: conversation.ScopeChannel, Platform: "fake", Workspace: "W1", ID: "C1"})
	if err != nil || !ok || prompt != "Be brief." || from.Kind != conversation.ScopeChannel {
		t.Errorf("the channel's prompt is %q (%v, %v), want the admins' %q", prompt, ok, err, "Be brief.")
	}
	shared, err := h.store.FindConversation(ctx, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "t-reset-shared"})
	if err != nil {
		t.Fatal(err)
	}
	if ms, _ := h.store.History(ctx, shared.ID, conversation.HistoryQuery{}); len(ms) != 2 {
		t.Errorf("the shared thread holds %d messages after a refused /reset, want 2", len(ms))
	}

	// A failed lookup refuses, and says why.
	p.FailLookups(errors.New("users.info: timeout"))
	r := h.engine.Command(ctx, p, with(member, func(c *bots.Command) { c.User = "U-admin"; c.Name, c.Args = "system", "Be long." }))
	if !strings.Contains(r.Text, unsure) {
		t.Errorf("with the lookup failing, got %q, want %q", r.Text, unsure)
	}
	// A listed admin needs no lookup.
	before := p.Lookups()
	r = h.engine.Command(ctx, p, with(member, func(c *bots.Command) { c.User = "U-listed"; c.Name, c.Args = "system", "Be long." }))
	if !strings.Contains(r.Text, "is set") || p.Lookups() != before {
		t.Errorf("listed admin: got %q after %d lookups, want the prompt set without one", r.Text, p.Lookups()-before)
	}
}

// TestSlackConnectMessages: with an allow-list of workspaces, a message
// from a person of another team is refused, in a shared channel and in a
// DM, though the event's workspace is allowed.
func TestSlackConnectMessages(t *testing.T) {
	h := newHarness(t, botstest.SlackLike, bots.Config{Access: bots.Access{Workspaces: []string{"W1"}, Refusal: "always"}})
	h.handle(t, bots.Incoming{Workspace: "W1", AuthorTeam: "T-other", Channel: "C1", Thread: "m1", MessageID: "m1", Author: "U-guest", Mentioned: true, Text: "hello"})
	h.handle(t, bots.Incoming{Workspace: "W1", AuthorTeam: "T-other", Channel: "D9", MessageID: "m2", Author: "U-guest", DM: true, Text: "hello"})
	h.handle(t, bots.Incoming{Workspace: "W1", AuthorTeam: "W1", Channel: "C1", Thread: "m3", MessageID: "m3", Author: "U-member", Mentioned: true, Text: "hello"})
	h.waitMessages(t, "two refusals and an answer", func(ms []botstest.Message) bool {
		refusals, answers := 0, 0
		for _, m := range ms {
			if strings.Contains(m.Text, "not available") {
				refusals++
			} else if m.Dest.Thread == "m3" && m.Text != "" {
				answers++
			}
		}
		return refusals == 2 && answers == 1
	})
	if n := len(h.llm.Requests()); n != 1 {
		t.Errorf("the model was asked %d times, want once (for the member)", n)
	}
}
