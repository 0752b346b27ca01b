package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

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
	check(t, "History", err, want)
	_, _, err = s.MessageByPlatformID(ctx, "slack", "T1", "1.2")
	check(t, "MessageByPlatformID", err, want)
	_, err = s.Stranded(ctx, "slack")
	check(t, "Stranded", err, want)
}

func check(t *testing.T, what string, err error, want string) {
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
