package discord

import (
	"strings"
	"sync"
	"testing"

	"github.com/parleyhq/parley/adapters/discord/discordtest"
)

// TestE2EAccess runs the access rules through the real discordgo client
// and the fake Discord: a channel's /system is for the server's owner and
// the members with Manage Server (or Administrator), read from the guild's
// roles and the member's, each looked up once within its TTL; a member
// is told who may, by slash command and by a mention that starts with the
// command.
func TestE2EAccess(t *testing.T) {
	t.Parallel()
	w := newWorld(t, discordtest.Options{}, Options{})
	mods := w.fake.AddRole("mods", discordtest.PermManageGuild|discordtest.PermSendMessages)
	root := w.fake.AddRole("root", discordtest.PermAdministrator)
	chatty := w.fake.AddRole("chatty", discordtest.PermSendMessages)
	owner, mod, adm, member := w.fake.AddUser("owner"), w.fake.AddUser("mod"), w.fake.AddUser("adm"), w.fake.AddUser("member")
	w.fake.SetOwner(owner)
	w.fake.SetRoles(mod, mods)
	w.fake.SetRoles(adm, chatty, root)
	w.fake.SetRoles(member, chatty)
	var (
		mu      sync.Mutex
		prompts []string
	)
	w.llm.setAnswer(func(s *sse, req chatRequest) {
		mu.Lock()
		if len(req.Messages) > 0 && req.Messages[0].Role == "system" {
			prompts = append(prompts, req.Messages[0].Content)
		} else {
			prompts = append(prompts, "")
		}
		mu.Unlock()
		s.send("Arr.")
		s.done()
	})

	system := func(u discordtest.User, prompt string) string {
		t.Helper()
		id := w.fake.Interact(discordtest.Interaction{GuildID: w.fake.GuildID, ChannelID: w.ch, User: u,
			Name: "system", Options: []discordtest.Option{{Name: "prompt", Value: prompt}}})
		var r discordtest.Response
		w.fake.Await(t, wait, "the /system answer", func() (ok bool) { r, ok = w.fake.Response(id); return ok && r.Edits > 0 })
		if !r.Ephemeral {
			t.Errorf("the /system answer %+v is not ephemeral", r)
		}
		return r.Content
	}
	tests := []struct {
		name   string
		user   discordtest.User
		prompt string
		want   string
	}{
		{"member refused, told who may", member, "Talk like a pirate.", "Only admins can change the system prompt in this channel. Admins here are the server's owner and the members with Manage Server"},
		{"owner sets it", owner, "Talk like a sailor.", "is set"},
		{"Manage Server sets it", mod, "Talk like a parrot.", "is set"},
		{"Administrator sets it", adm, "Talk like a pirate.", "is set"},
		{"member reads it", member, "", "Talk like a pirate."},
		{"Manage Server again, from the cache", mod, "Talk like a pirate.", "is set"},
	}
	for _, tt := range tests {
		if got := system(tt.user, tt.prompt); !strings.Contains(got, tt.want) {
			t.Errorf("%s: /system answered %q, want %q in it", tt.name, got, tt.want)
		}
	}
	st := w.fake.Stats()
	if n := st.Routes[discordtest.RouteGuild].Calls; n != 1 {
		t.Errorf("GET /guilds/{id} was called %d times, want once (cached)", n)
	}
	if n := st.Routes[discordtest.RouteGuildMember].Calls; n != 3 {
		t.Errorf("GET /guilds/{id}/members/{id} was called %d times, want 3 (the member, the mod and the admin; the owner needs none)", n)
	}

	// A mention that starts with the command is held to the same rule.
	q := w.fake.Post(w.ch, member, w.bot+" /system Talk like a robot.", "")
	w.fake.Await(t, wait, "the refusal of the mention's /system", func() bool {
		for _, m := range w.fake.AllMessages() {
			if m.Author.ID == w.fake.BotID && strings.Contains(m.Content, "Only admins can change the system prompt") {
				return true
			}
		}
		return false
	})
	// The member's question is answered with the admins' prompt.
	q = w.fake.Post(w.ch, member, w.bot+" hello", "")
	w.answered(t, q.ID, 1, is("Arr."))
	mu.Lock()
	defer mu.Unlock()
	if len(prompts) != 1 || prompts[0] != "Talk like a pirate." {
		t.Errorf("the model saw system prompts %q, want the admins' once", prompts)
	}
}
