package discord

import (
	"fmt"
	"strings"
	"testing"

	"github.com/parleyhq/parley/adapters/discord/discordtest"
	"github.com/parleyhq/parley/bots"
)

func TestIsAdmin(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	a := newReplica(t, fake, Options{})
	owner, admin, member := fake.AddUser("owner"), fake.AddUser("admin"), fake.AddUser("member")
	fake.SetOwner(owner)
	fake.SetRoles(admin, fake.AddRole("mods", discordtest.PermManageGuild))
	fake.SetRoles(member, fake.AddRole("helpers", 0))
	ctx := t.Context()
	tests := []struct {
		name, guild, user string
		want              bool
	}{
		{"owner", fake.GuildID, owner.ID, true},
		{"Manage Server", fake.GuildID, admin.ID, true},
		{"a role without it", fake.GuildID, member.ID, false},
		{"a DM", "", member.ID, false},
	}
	for _, tc := range tests {
		got, err := a.IsAdmin(ctx, tc.guild, tc.user)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	// What Discord cannot answer is an error, not a "no".
	if ok, err := a.IsAdmin(ctx, fake.GuildID, "404"); err == nil || ok || !strings.Contains(err.Error(), "roles of member 404") {
		t.Errorf("an unknown member: got %v, %v; want an error naming the member", ok, err)
	}
	if ok, err := a.IsAdmin(ctx, "404", member.ID); err == nil || ok || !strings.Contains(err.Error(), "roles of guild 404") {
		t.Errorf("an unknown guild: got %v, %v; want an error naming the guild", ok, err)
	}
	// The roles are kept a while: asking again costs no call.
	st := fake.Stats()
	for range 3 {
		if ok, err := a.IsAdmin(ctx, fake.GuildID, admin.ID); !ok || err != nil {
			t.Fatalf("again: %v, %v", ok, err)
		}
	}
	if got := fake.Stats().Requests; got != st.Requests {
		t.Errorf("asking again made %d calls, want 0", got-st.Requests)
	}
}

func TestSlashCommandInThreadAndDM(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	rec := newRecorder()
	rec.reply = bots.CommandReply{Text: "ok"}
	run(t, fake, rec, Options{})
	ch := fake.AddChannel("general")
	ann := fake.AddUser("ann")
	root := fake.Post(ch, ann, "root", "")
	rec.incoming(t, root.ID)
	fakeThread(t, fake, ch, root.ID)

	fake.Interact(discordtest.Interaction{GuildID: fake.GuildID, ChannelID: root.ID, User: ann, Name: "reset"})
	dm := fake.AddDM()
	fake.Interact(discordtest.Interaction{ChannelID: dm, User: ann, Name: "help"})
	rec.await(t, "both commands", func() bool { return len(rec.cmds) == 2 })
	rec.mu.Lock()
	cmds := append([]bots.Command(nil), rec.cmds...)
	rec.mu.Unlock()
	byName := map[string]bots.Command{}
	for _, c := range cmds {
		byName[c.Name] = c
	}
	if c := byName["reset"]; c.Channel != ch || c.Thread != root.ID || c.User != ann.ID || c.DM {
		t.Errorf("/reset in a thread: got %+v, want channel %s, thread %s", c, ch, root.ID)
	}
	if c := byName["help"]; c.Channel != dm || c.Thread != "" || c.User != ann.ID || !c.DM || c.Workspace != "" {
		t.Errorf("/help in a DM: got %+v, want the DM %s from %s", c, dm, ann.ID)
	}
}

func TestBackfillPagesThroughABusyChannel(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	rec := newRecorder()
	run(t, fake, rec, Options{})
	ch := fake.AddChannel("busy")
	quiet := fake.AddChannel("quiet")
	ann := fake.AddUser("ann")
	rec.incoming(t, fake.Post(ch, ann, "first", "").ID)
	rec.incoming(t, fake.Post(quiet, ann, "first", "").ID)

	// 150 messages during the gap: more than one page of 100.
	fake.InvalidateSession()
	fake.Drop()
	var missed []string
	for i := range 150 {
		missed = append(missed, fake.Post(ch, ann, fmt.Sprintf("missed %03d", i), "").ID)
	}
	last := missed[len(missed)-1]
	rec.incoming(t, last)
	rec.mu.Lock()
	var order []string
	for _, in := range rec.in {
		if in.Channel == ch && strings.HasPrefix(in.Text, "missed ") {
			order = append(order, in.MessageID)
		}
	}
	rec.mu.Unlock()
	if strings.Join(order, ",") != strings.Join(missed, ",") {
		t.Errorf("got %d missed messages (first %v), want all 150 in order", len(order), order[:min(3, len(order))])
	}
	// The quiet channel is fetched too, in an order of its own.
	fake.Await(t, wait, "the quiet channel fetched", func() bool {
		return fake.Stats().Routes[discordtest.RouteMessageList].Calls >= 3
	})
	if st := fake.Stats().Routes[discordtest.RouteMessageList]; st.Calls != 3 || st.Limited != 0 {
		t.Errorf("got list stats %+v, want two pages of the busy channel, one of the quiet one, and no 429", st)
	}
}
