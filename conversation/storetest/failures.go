package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parleyhq/parley/conversation"
)

// RunFailures checks what every Store method does when its database cannot
// answer: after Close, and with a context that has ended (a shutdown in
// the middle of a call). Every method returns an error, never
// conversation.ErrNotFound (which the engine reads as "start afresh"),
// and nothing is written; a call whose context ended leaves the store
// usable. newStore is as for Run.
func RunFailures(t *testing.T, newStore func(t *testing.T) conversation.Store) {
	t.Run("Closed", func(t *testing.T) {
		s := newStore(t)
		f := seedFailures(t, s)
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		for _, c := range f.calls() {
			err := c.fn(ctx(t))
			if err == nil {
				t.Errorf("%s on a closed store: got no error", c.name)
			} else if errors.Is(err, conversation.ErrNotFound) {
				t.Errorf("%s on a closed store: got %v, want an error other than ErrNotFound", c.name, err)
			}
		}
	})
	t.Run("PlatformIDTaken", func(t *testing.T) {
		s := newStore(t)
		f := seedFailures(t, s)
		other := mustAppend(t, s, f.conv.ID, userMessage("second", "1700000000.000200"))
		// An update giving other the id f.msg holds breaks the uniqueness
		// Append relies on: it is refused, not ErrNotFound, and nothing
		// changes.
		changed := other
		changed.PlatformID, changed.Text = f.msg.PlatformID, "changed"
		err := s.UpdateMessage(ctx(t), changed)
		if err == nil || errors.Is(err, conversation.ErrNotFound) {
			t.Fatalf("UpdateMessage to a platform id taken: got %v, want an error other than ErrNotFound", err)
		}
		h := mustHistory(t, s, f.conv.ID, conversation.HistoryQuery{})
		if len(h) != 2 || h[0].PlatformID != f.msg.PlatformID || h[0].Text != "kept" || h[1].PlatformID != other.PlatformID || h[1].Text != "second" {
			t.Errorf("after the refused update, history is %+v, want both messages unchanged", h)
		}
		_, m, err := s.MessageByPlatformID(ctx(t), f.conv.Key.Platform, f.conv.Key.Workspace, f.msg.PlatformID)
		if err != nil || m.ID != f.msg.ID {
			t.Errorf("MessageByPlatformID(%s): got message %d, %v; want %d", f.msg.PlatformID, m.ID, err, f.msg.ID)
		}
	})
	t.Run("ContextEnded", func(t *testing.T) {
		s := newStore(t)
		f := seedFailures(t, s)
		ended, cancel := context.WithCancel(ctx(t))
		cancel()
		for _, c := range f.calls() {
			err := c.fn(ended)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s with an ended context: got %v, want an error wrapping context.Canceled", c.name, err)
			}
		}
		// Nothing of the cancelled calls was written; the store still
		// answers.
		h := mustHistory(t, s, f.conv.ID, conversation.HistoryQuery{})
		if len(h) != 1 || h[0].ID != f.msg.ID || h[0].Text != f.msg.Text || h[0].Status != f.msg.Status {
			t.Errorf("after the cancelled calls, history is %+v, want only %+v", h, f.msg)
		}
		u, err := s.SumUsage(ctx(t), conversation.UsageFilter{Platform: f.conv.Key.Platform, Workspace: f.conv.Key.Workspace})
		if err != nil {
			t.Fatalf("SumUsage: %v", err)
		}
		if u != (conversation.Usage{}) {
			t.Errorf("after the cancelled calls, usage is %+v, want none", u)
		}
		if _, _, ok, err := s.ResolveSetting(ctx(t), conversation.SettingModel, f.scope); err != nil || ok {
			t.Errorf("after the cancelled calls, ResolveSetting: ok %v, err %v; want no setting", ok, err)
		}
		first, err := s.MarkEvent(ctx(t), f.conv.Key.Platform, f.conv.Key.Workspace, "Ev-failures", time.Hour)
		if err != nil || !first {
			t.Errorf("after the cancelled calls, MarkEvent: first %v, err %v; want the event unseen", first, err)
		}
		_, claimed, err := s.ClaimConversation(ctx(t), f.conv.ID, "other", time.Minute)
		if err != nil || !claimed {
			t.Errorf("after the cancelled calls, ClaimConversation by another owner: %v, %v; want it free", claimed, err)
		}
	})
}

// failureFixture is a store holding one conversation with one user message.
type failureFixture struct {
	s     conversation.Store
	conv  conversation.Conversation
	msg   conversation.Message
	scope conversation.Scope
}

func seedFailures(t *testing.T, s conversation.Store) failureFixture {
	t.Helper()
	c := mustConversation(t, s, key("C1", "1.1"))
	m := mustAppend(t, s, c.ID, userMessage("kept", "1700000000.000100"))
	return failureFixture{s: s, conv: c, msg: m, scope: conversation.Scope{
		Kind: conversation.ScopeChannel, Platform: c.Key.Platform, Workspace: c.Key.Workspace, ID: c.Key.Channel}}
}

type storeCall struct {
	name string
	fn   func(context.Context) error
}

// calls is one call of each Store method, each of which would write or
// find something on a working store.
func (f failureFixture) calls() []storeCall {
	s, k, id := f.s, f.conv.Key, f.conv.ID
	day := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	return []storeCall{
		{"Conversation", func(ctx context.Context) error {
			_, err := s.Conversation(ctx, conversation.Key{Platform: k.Platform, Workspace: k.Workspace, Channel: "C2", Thread: "2.2"})
			return err
		}},
		{"FindConversation", func(ctx context.Context) error { _, err := s.FindConversation(ctx, k); return err }},
		{"MessageByPlatformID", func(ctx context.Context) error {
			_, _, err := s.MessageByPlatformID(ctx, k.Platform, k.Workspace, f.msg.PlatformID)
			return err
		}},
		{"Append", func(ctx context.Context) error {
			_, _, err := s.Append(ctx, id, userMessage("lost", "1700000000.000200"))
			return err
		}},
		{"UpdateMessage", func(ctx context.Context) error {
			m := f.msg
			m.Text = "changed"
			return s.UpdateMessage(ctx, m)
		}},
		{"History", func(ctx context.Context) error {
			_, err := s.History(ctx, id, conversation.HistoryQuery{})
			return err
		}},
		{"Forget", func(ctx context.Context) error { return s.Forget(ctx, id) }},
		{"Stranded", func(ctx context.Context) error { _, err := s.Stranded(ctx, k.Platform); return err }},
		{"MarkEvent", func(ctx context.Context) error {
			_, err := s.MarkEvent(ctx, k.Platform, k.Workspace, "Ev-failures", time.Hour)
			return err
		}},
		{"SetSetting", func(ctx context.Context) error { return s.SetSetting(ctx, f.scope, conversation.SettingModel, "m") }},
		{"ResolveSetting", func(ctx context.Context) error {
			_, _, _, err := s.ResolveSetting(ctx, conversation.SettingModel, f.scope)
			return err
		}},
		{"AddUsage", func(ctx context.Context) error {
			return s.AddUsage(ctx, conversation.UsageKey{Platform: k.Platform, Workspace: k.Workspace, Channel: k.Channel,
				User: "U1", Model: "m", Day: day}, conversation.Usage{Requests: 1})
		}},
		{"SumUsage", func(ctx context.Context) error {
			_, err := s.SumUsage(ctx, conversation.UsageFilter{Platform: k.Platform, Workspace: k.Workspace})
			return err
		}},
		{"ClaimConversation", func(ctx context.Context) error {
			_, _, err := s.ClaimConversation(ctx, id, "me", time.Minute)
			return err
		}},
		{"ReleaseConversation", func(ctx context.Context) error { return s.ReleaseConversation(ctx, id, "me") }},
		{"Pending", func(ctx context.Context) error { _, err := s.Pending(ctx, id, 0); return err }},
		{"Heartbeat", func(ctx context.Context) error { _, err := s.Heartbeat(ctx, "me", time.Minute); return err }},
		{"Leave", func(ctx context.Context) error { return s.Leave(ctx, "me") }},
	}
}
