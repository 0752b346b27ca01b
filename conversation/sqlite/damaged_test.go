package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/conversation"
)

// TestDamagedAttachments checks that a row whose attachments are not JSON
// (a database edited by hand, or damaged) is an error naming the message,
// from every read that returns it, not a message without its files.
func TestDamagedAttachments(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "parley.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := conversation.Key{Platform: "slack", Workspace: "T1", Channel: "C1", Thread: "1.1"}
	c, err := s.Conversation(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := s.Append(ctx, c.ID, conversation.Message{Role: conversation.RoleAssistant, Author: "B1",
		PlatformID: "1.2", Text: "answer", Status: conversation.StatusStreaming,
		Attachments: []conversation.Attachment{{Name: "a.png"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.write.ExecContext(ctx, `UPDATE messages SET attachments = '{not json' WHERE id = ?`, m.ID); err != nil {
		t.Fatal(err)
	}
	want := "message " + strconv.FormatInt(m.ID, 10) + ": decode attachments"
	_, err = s.History(ctx, c.ID, conversation.HistoryQuery{})
	checkDamaged(t, "History", err, want)
	_, _, err = s.MessageByPlatformID(ctx, "slack", "T1", "1.2")
	checkDamaged(t, "MessageByPlatformID", err, want)
	_, err = s.Stranded(ctx, "slack")
	checkDamaged(t, "Stranded", err, want)

	q, _, err := s.Append(ctx, c.ID, conversation.Message{Role: conversation.RoleUser, Author: "U1",
		PlatformID: "1.3", Text: "question", Attachments: []conversation.Attachment{{Name: "b.png"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.write.ExecContext(ctx, `UPDATE messages SET attachments = '[{' WHERE id = ?`, q.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.Pending(ctx, c.ID, 0)
	checkDamaged(t, "Pending", err, "message "+strconv.FormatInt(q.ID, 10)+": decode attachments")
}

// TestMissingTables checks that a database missing one of its tables (a
// partial restore, a table dropped by hand) gives errors naming the
// table, from the calls that need it, and not ErrNotFound.
func TestMissingTables(t *testing.T) {
	day := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		table string
		call  func(ctx context.Context, s *Store, convID int64) error
	}{
		{"events", func(ctx context.Context, s *Store, _ int64) error {
			_, err := s.MarkEvent(ctx, "slack", "T1", "Ev1", time.Hour)
			return err
		}},
		{"replicas", func(ctx context.Context, s *Store, _ int64) error {
			_, err := s.Heartbeat(ctx, "me", time.Minute)
			return err
		}},
		{"claims", func(ctx context.Context, s *Store, id int64) error {
			_, _, err := s.ClaimConversation(ctx, id, "me", time.Minute)
			return err
		}},
		{"usage", func(ctx context.Context, s *Store, _ int64) error {
			return s.AddUsage(ctx, conversation.UsageKey{Platform: "slack", Workspace: "T1", Day: day}, conversation.Usage{Requests: 1})
		}},
		{"settings", func(ctx context.Context, s *Store, _ int64) error {
			_, _, _, err := s.ResolveSetting(ctx, conversation.SettingModel,
				conversation.Scope{Kind: conversation.ScopeWorkspace, Platform: "slack", Workspace: "T1"})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.table, func(t *testing.T) {
			ctx := t.Context()
			s, err := Open(ctx, filepath.Join(t.TempDir(), "parley.db"), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			c, err := s.Conversation(ctx, conversation.Key{Platform: "slack", Workspace: "T1", Channel: "C1"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.write.ExecContext(ctx, `DROP TABLE `+tc.table); err != nil {
				t.Fatal(err)
			}
			err = tc.call(ctx, s, c.ID)
			checkDamaged(t, tc.table, err, "no such table: "+tc.table)
			if err != nil && !strings.HasPrefix(err.Error(), "sqlite: ") {
				t.Errorf("got %q, want it to start with \"sqlite: \"", err)
			}
		})
	}
}

func checkDamaged(t *testing.T, what string, err error, want string) {
	t.Helper()
	if err == nil || errors.Is(err, conversation.ErrNotFound) || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: got %v, want an error saying %q", what, err, want)
	}
}

// TestOpenWithEndedContext checks that Open gives up, with the context's
// error, when its context has ended, and leaves the file fit to open.
func TestOpenWithEndedContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	ended, cancel := context.WithCancel(t.Context())
	cancel()
	if s, err := Open(ended, path, Options{}); !errors.Is(err, context.Canceled) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open with an ended context: got %v, want context.Canceled", err)
	}
	s, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatalf("Open after the cancelled one: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestWritesRefusedReadsServed checks the store on a database that stops
// taking writes after Open (a disk remounted read-only): every write is an
// error a person can recognise, never ErrNotFound, and reads still answer.
func TestWritesRefusedReadsServed(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "parley.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := conversation.Key{Platform: "slack", Workspace: "T1", Channel: "C1", Thread: "1.1"}
	c, err := s.Conversation(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := s.Append(ctx, c.ID, conversation.Message{Role: conversation.RoleUser, Author: "U1", PlatformID: "1.1", Text: "kept"})
	if err != nil {
		t.Fatal(err)
	}
	// The writer is one connection: the pragma holds for every write.
	if _, err := s.write.ExecContext(ctx, `PRAGMA query_only = 1`); err != nil {
		t.Fatal(err)
	}
	scope := conversation.Scope{Kind: conversation.ScopeChannel, Platform: "slack", Workspace: "T1", ID: "C1"}
	day := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	writes := []struct {
		name string
		call func() error
	}{
		{"Conversation", func() error {
			_, err := s.Conversation(ctx, conversation.Key{Platform: "slack", Workspace: "T1", Channel: "C2"})
			return err
		}},
		{"Append", func() error {
			_, _, err := s.Append(ctx, c.ID, conversation.Message{Role: conversation.RoleUser, Author: "U1", Text: "lost"})
			return err
		}},
		{"UpdateMessage", func() error { m2 := m; m2.Text = "changed"; return s.UpdateMessage(ctx, m2) }},
		{"Forget", func() error { return s.Forget(ctx, c.ID) }},
		{"MarkEvent", func() error { _, err := s.MarkEvent(ctx, "slack", "T1", "Ev1", time.Hour); return err }},
		{"SetSetting", func() error { return s.SetSetting(ctx, scope, conversation.SettingModel, "m") }},
		{"AddUsage", func() error {
			return s.AddUsage(ctx, conversation.UsageKey{Platform: "slack", Workspace: "T1", Day: day}, conversation.Usage{Requests: 1})
		}},
		{"ClaimConversation", func() error { _, _, err := s.ClaimConversation(ctx, c.ID, "me", time.Minute); return err }},
		{"Heartbeat", func() error { _, err := s.Heartbeat(ctx, "me", time.Minute); return err }},
	}
	for _, w := range writes {
		err := w.call()
		if err == nil || errors.Is(err, conversation.ErrNotFound) || !strings.HasPrefix(err.Error(), "sqlite: ") || !strings.Contains(err.Error(), "readonly") {
			t.Errorf("%s on a read-only database: got %v, want an sqlite error saying readonly", w.name, err)
		}
	}
	h, err := s.History(ctx, c.ID, conversation.HistoryQuery{})
	if err != nil || len(h) != 1 || h[0].Text != "kept" {
		t.Errorf("History: got %+v, %v; want the one message kept", h, err)
	}
	if got, err := s.FindConversation(ctx, k); err != nil || got.ID != c.ID {
		t.Errorf("FindConversation: got %+v, %v", got, err)
	}
}
