package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/parleyhq/parley/conversation"
)

// tenants are (platform, workspace) pairs that share every other id.
var tenants = []struct{ platform, workspace string }{
	{"slack", "T1"},
	{"slack", "T2"},
	{"discord", "T1"},
	{"discord", ""},
}

func testIsolationConversations(t *testing.T, s conversation.Store) {
	ids := map[int64]bool{}
	for _, tn := range tenants {
		k := conversation.Key{Platform: tn.platform, Workspace: tn.workspace, Channel: "C1", Thread: "1.1"}
		c := mustConversation(t, s, k)
		if ids[c.ID] {
			t.Errorf("%s/%s: conversation %d is shared with another workspace", tn.platform, tn.workspace, c.ID)
		}
		ids[c.ID] = true
	}
	k := conversation.Key{Platform: "slack", Workspace: "T3", Channel: "C1", Thread: "1.1"}
	if _, err := s.FindConversation(ctx(t), k); !errors.Is(err, conversation.ErrNotFound) {
		t.Errorf("FindConversation in a workspace with no conversation: got %v, want ErrNotFound", err)
	}
}

func testIsolationMessages(t *testing.T, s conversation.Store) {
	want := map[int64]string{}
	for _, tn := range tenants {
		k := conversation.Key{Platform: tn.platform, Workspace: tn.workspace, Channel: "C1", Thread: "1.1"}
		c := mustConversation(t, s, k)
		m := mustAppend(t, s, c.ID, userMessage("said in "+tn.platform+"/"+tn.workspace, "1700000000.000800"))
		want[c.ID] = m.Text
		streaming := conversation.Message{Role: conversation.RoleAssistant, Author: "B1", Status: conversation.StatusStreaming, Text: "in " + tn.platform + "/" + tn.workspace}
		mustAppend(t, s, c.ID, streaming)
	}
	for _, tn := range tenants {
		c, m, err := s.MessageByPlatformID(ctx(t), tn.platform, tn.workspace, "1700000000.000800")
		if err != nil {
			t.Fatalf("MessageByPlatformID in %s/%s: %v", tn.platform, tn.workspace, err)
		}
		if c.Key.Platform != tn.platform || c.Key.Workspace != tn.workspace {
			t.Errorf("MessageByPlatformID in %s/%s: found a message of %s/%s", tn.platform, tn.workspace, c.Key.Platform, c.Key.Workspace)
		}
		if m.Text != want[c.ID] || m.ConversationID != c.ID {
			t.Errorf("MessageByPlatformID in %s/%s: got %q in conversation %d, want %q", tn.platform, tn.workspace, m.Text, m.ConversationID, want[c.ID])
		}
		h := mustHistory(t, s, c.ID, conversation.HistoryQuery{})
		if len(h) != 2 || h[0].Text != want[c.ID] {
			t.Errorf("History of %s/%s: got %q, want its own two messages", tn.platform, tn.workspace, texts(h))
		}
	}
	if _, _, err := s.MessageByPlatformID(ctx(t), "slack", "T3", "1700000000.000800"); !errors.Is(err, conversation.ErrNotFound) {
		t.Errorf("MessageByPlatformID in a workspace without it: got %v, want ErrNotFound", err)
	}
	if _, _, err := s.MessageByPlatformID(ctx(t), "console", "T1", "1700000000.000800"); !errors.Is(err, conversation.ErrNotFound) {
		t.Errorf("MessageByPlatformID on a platform without it: got %v, want ErrNotFound", err)
	}
	for _, platform := range []string{"slack", "discord"} {
		st, err := s.Stranded(ctx(t), platform)
		if err != nil {
			t.Fatalf("Stranded(%s): %v", platform, err)
		}
		var got []string
		for _, x := range st {
			if x.Key.Platform != platform {
				t.Errorf("Stranded(%s) returned a message of %s", platform, x.Key.Platform)
			}
			got = append(got, x.Message.Text)
		}
		if len(got) != 2 {
			t.Errorf("Stranded(%s): got %q, want its two workspaces' messages", platform, got)
		}
	}
}

func testIsolationEvents(t *testing.T, s conversation.Store) {
	for _, tn := range tenants {
		first, err := s.MarkEvent(ctx(t), tn.platform, tn.workspace, "Ev1", time.Hour)
		if err != nil {
			t.Fatalf("MarkEvent in %s/%s: %v", tn.platform, tn.workspace, err)
		}
		if !first {
			t.Errorf("MarkEvent in %s/%s of an event id seen only elsewhere: got first false, want true", tn.platform, tn.workspace)
		}
	}
	for _, tn := range tenants {
		if first, err := s.MarkEvent(ctx(t), tn.platform, tn.workspace, "Ev1", time.Hour); err != nil || first {
			t.Errorf("MarkEvent in %s/%s again: got first %v, err %v; want false, nil", tn.platform, tn.workspace, first, err)
		}
	}
}

func testIsolationSettings(t *testing.T, s conversation.Store) {
	var order []conversation.Scope
	for _, tn := range tenants {
		sc := scopes(tn.platform, tn.workspace)
		for _, x := range sc {
			mustSet(t, s, x, conversation.SettingModel, string(x.Kind)+"@"+tn.platform+"/"+tn.workspace)
		}
		order = sc
	}
	// Each tenant's removals touch only its own settings.
	for _, x := range order {
		mustSet(t, s, x, conversation.SettingModel, "")
	}
	for _, tn := range tenants[:len(tenants)-1] {
		sc := scopes(tn.platform, tn.workspace)
		for i, x := range sc {
			want := string(x.Kind) + "@" + tn.platform + "/" + tn.workspace
			checkResolve(t, s, conversation.SettingModel, sc[i:], want, x, true)
		}
	}
	checkResolve(t, s, conversation.SettingModel, order, "", conversation.Scope{}, false)
	checkResolve(t, s, conversation.SettingModel, scopes("slack", "T3"), "", conversation.Scope{}, false)

	// Scopes from several tenants in one call each answer for themselves.
	mixed := []conversation.Scope{scopes("slack", "T3")[1], scopes("discord", "T1")[1], scopes("slack", "T1")[1]}
	checkResolve(t, s, conversation.SettingModel, mixed, "channel@discord/T1", mixed[1], true)
}
