package storetest

import (
	"testing"

	"github.com/parleyhq/parley/conversation"
)

// scopes returns the thread, channel, user and workspace scopes of the
// Slack workspace T1, in that order.
func scopes(platform, workspace string) []conversation.Scope {
	return []conversation.Scope{
		{Kind: conversation.ScopeThread, Platform: platform, Workspace: workspace, ID: "1.1"},
		{Kind: conversation.ScopeChannel, Platform: platform, Workspace: workspace, ID: "C1"},
		{Kind: conversation.ScopeUser, Platform: platform, Workspace: workspace, ID: "U1"},
		{Kind: conversation.ScopeWorkspace, Platform: platform, Workspace: workspace},
	}
}

func mustSet(t *testing.T, s conversation.Store, sc conversation.Scope, name conversation.Setting, value string) {
	t.Helper()
	if err := s.SetSetting(ctx(t), sc, name, value); err != nil {
		t.Fatalf("SetSetting(%+v, %s, %q): %v", sc, name, value, err)
	}
}

// checkResolve asserts what ResolveSetting finds.
func checkResolve(t *testing.T, s conversation.Store, name conversation.Setting, in []conversation.Scope, wantValue string, wantFrom conversation.Scope, wantOK bool) {
	t.Helper()
	value, from, ok, err := s.ResolveSetting(ctx(t), name, in...)
	if err != nil {
		t.Fatalf("ResolveSetting(%s): %v", name, err)
	}
	if value != wantValue || ok != wantOK || (ok && from != wantFrom) {
		t.Errorf("ResolveSetting(%s): got %q from %+v (ok %v), want %q from %+v (ok %v)", name, value, from, ok, wantValue, wantFrom, wantOK)
	}
}

func testSettingsPrecedence(t *testing.T, s conversation.Store) {
	sc := scopes("slack", "T1")
	thread, channel, user, workspace := sc[0], sc[1], sc[2], sc[3]
	model := conversation.SettingModel

	checkResolve(t, s, model, sc, "", conversation.Scope{}, false)
	checkResolve(t, s, model, nil, "", conversation.Scope{}, false)

	mustSet(t, s, workspace, model, "gpt-4o-mini")
	checkResolve(t, s, model, sc, "gpt-4o-mini", workspace, true)
	mustSet(t, s, user, model, "o3")
	checkResolve(t, s, model, sc, "o3", user, true)
	mustSet(t, s, channel, model, "claude-sonnet")
	checkResolve(t, s, model, sc, "claude-sonnet", channel, true)
	mustSet(t, s, thread, model, "gemini-pro")
	checkResolve(t, s, model, sc, "gemini-pro", thread, true)

	// The order given is the order of precedence.
	checkResolve(t, s, model, []conversation.Scope{user, channel}, "o3", user, true)
	checkResolve(t, s, model, []conversation.Scope{workspace, thread}, "gpt-4o-mini", workspace, true)

	// Setting again replaces; an empty value removes.
	mustSet(t, s, thread, model, "gemini-flash")
	checkResolve(t, s, model, sc, "gemini-flash", thread, true)
	mustSet(t, s, thread, model, "")
	checkResolve(t, s, model, sc, "claude-sonnet", channel, true)
	mustSet(t, s, channel, model, "")
	mustSet(t, s, user, model, "")
	checkResolve(t, s, model, sc, "gpt-4o-mini", workspace, true)
	mustSet(t, s, workspace, model, "")
	checkResolve(t, s, model, sc, "", conversation.Scope{}, false)
	mustSet(t, s, workspace, model, "") // removing what is not there is fine

	// Settings are independent of each other.
	mustSet(t, s, channel, conversation.SettingSystemPrompt, "Answer in French.")
	checkResolve(t, s, conversation.SettingSystemPrompt, sc, "Answer in French.", channel, true)
	checkResolve(t, s, model, sc, "", conversation.Scope{}, false)

	// Scopes of one kind are told apart by ID.
	otherChannel := channel
	otherChannel.ID = "C2"
	checkResolve(t, s, conversation.SettingSystemPrompt, []conversation.Scope{otherChannel}, "", conversation.Scope{}, false)
	// A channel and a user with the same id are different scopes.
	sameID := user
	sameID.ID = channel.ID
	checkResolve(t, s, conversation.SettingSystemPrompt, []conversation.Scope{sameID}, "", conversation.Scope{}, false)
}

func testSettingsValidation(t *testing.T, s conversation.Store) {
	bad := conversation.Scope{Kind: "galaxy", Platform: "slack", Workspace: "T1", ID: "X"}
	if err := s.SetSetting(ctx(t), bad, conversation.SettingModel, "gpt-4o"); err == nil {
		t.Error("SetSetting with an unknown scope kind: got nil error, want one")
	}
	if _, _, _, err := s.ResolveSetting(ctx(t), conversation.SettingModel, bad); err == nil {
		t.Error("ResolveSetting with an unknown scope kind: got nil error, want one")
	}
}
