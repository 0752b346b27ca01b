package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/conversation/schema"
)

func TestEmbeddedMigrations(t *testing.T) {
	ms, err := schema.Load(migrationFiles)
	if err != nil {
		t.Fatalf("schema.Load: %v", err)
	}
	for i, m := range ms {
		if m.Version != i+1 {
			t.Errorf("migration %s: version %d, want %d", m.Name, m.Version, i+1)
		}
	}
}

// withMigration returns the embedded migrations plus one more, named
// NNNN_name with the next version, and that file's name.
func withMigration(t *testing.T, name, sql string) (fs.FS, string) {
	t.Helper()
	fsys := fstest.MapFS{}
	ms, err := schema.Load(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		fsys["migrations/"+m.Name] = &fstest.MapFile{Data: []byte(m.SQL)}
	}
	file := fmt.Sprintf("%04d_%s", len(ms)+1, name)
	fsys["migrations/"+file] = &fstest.MapFile{Data: []byte(sql)}
	return fsys, file
}

// latestVersion returns the version of the newest embedded migration.
func latestVersion(t *testing.T) int {
	t.Helper()
	ms, err := schema.Load(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	return ms[len(ms)-1].Version
}

func schemaVersion(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRowContext(t.Context(), `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		t.Fatalf("read schema version: %v", err)
	}
	return v
}

func TestMigrateUpgradesInPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	s, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	c, err := s.Conversation(t.Context(), conversation.Key{Platform: "slack", Workspace: "T1", Channel: "C1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Append(t.Context(), c.ID, conversation.Message{Role: conversation.RoleUser, Text: "kept across the upgrade"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before := schemaVersion(t, path)

	next, _ := withMigration(t, "pins.sql", `CREATE TABLE pins (message_id INTEGER NOT NULL REFERENCES messages (id));`)
	s, err = open(t.Context(), path, Options{}, next)
	if err != nil {
		t.Fatalf("Open with a newer migration: %v", err)
	}
	defer s.Close()
	if got := schemaVersion(t, path); got != before+1 {
		t.Errorf("schema version after upgrade: got %d, want %d", got, before+1)
	}
	h, err := s.History(t.Context(), c.ID, conversation.HistoryQuery{})
	if err != nil || len(h) != 1 || h[0].Text != "kept across the upgrade" {
		t.Errorf("History after upgrade: got %d messages, %v; want the one stored before", len(h), err)
	}
	if _, err := s.write.ExecContext(t.Context(), `INSERT INTO pins (message_id) VALUES (?)`, h[0].ID); err != nil {
		t.Errorf("the upgraded schema lacks the new table: %v", err)
	}
}

func TestMigrateFailureChangesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	s, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s.Close()
	before := schemaVersion(t, path)

	broken, name := withMigration(t, "broken.sql", `CREATE TABLE half (id INTEGER); THIS IS NOT SQL;`)
	if _, err := open(t.Context(), path, Options{}, broken); err == nil || !strings.Contains(err.Error(), name) {
		t.Fatalf("Open with a broken migration: got %v, want an error naming it", err)
	}
	if got := schemaVersion(t, path); got != before {
		t.Errorf("schema version after a failed migration: got %d, want %d", got, before)
	}
	s, err = Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatalf("Open after a failed migration: %v", err)
	}
	defer s.Close()
	if _, err := s.write.ExecContext(t.Context(), `INSERT INTO half (id) VALUES (1)`); err == nil {
		t.Error("a table from the failed migration exists, want it rolled back")
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	s, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, err := s.write.ExecContext(t.Context(), `INSERT INTO schema_version (version, name, applied_at) VALUES (99, '0099_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()

	_, err = Open(t.Context(), path, Options{})
	if !errors.Is(err, conversation.ErrNewerSchema) {
		t.Fatalf("Open of a newer database: got %v, want ErrNewerSchema", err)
	}
	for _, want := range []string{"parley.db", "version 99", fmt.Sprintf("up to %d", latestVersion(t))} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// firstMigrations returns the embedded migrations up to version n.
func firstMigrations(t *testing.T, n int) fs.FS {
	t.Helper()
	ms, err := schema.Load(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{}
	for _, m := range ms[:n] {
		fsys["migrations/"+m.Name] = &fstest.MapFile{Data: []byte(m.SQL)}
	}
	return fsys
}

// TestMigrateFromFirstVersion upgrades a database written before usage,
// claims and replica heartbeats existed: what it held is kept, and the new
// operations work on it.
func TestMigrateFromFirstVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	// Written as a build of version 1 wrote it: this build's statements
	// name columns that version has no place for.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := schema.Load(firstMigrations(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(t.Context(), db, ms, time.Now()); err != nil {
		t.Fatalf("migrate to version 1: %v", err)
	}
	now := micros(time.Now())
	var c conversation.Conversation
	var q conversation.Message
	if err := db.QueryRowContext(t.Context(), `INSERT INTO conversations (platform, workspace, channel, thread, created_at, updated_at)
		VALUES ('slack', 'T1', 'C1', '', ?, ?) RETURNING id`, now, now).Scan(&c.ID); err != nil {
		t.Fatal(err)
	}
	insert := `INSERT INTO messages (conversation_id, role, author, text, model, prompt_tokens, completion_tokens, status,
		reply_to, created_at, updated_at, sort_at, sort_id) VALUES (?, ?, '', ?, '', 0, 0, ?, ?, ?, ?, ?, ?) RETURNING id`
	if err := db.QueryRowContext(t.Context(), insert, c.ID, "user", "asked before the upgrade", "complete", 0, now, now, now, 1).Scan(&q.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(t.Context(), insert, c.ID, "assistant", "answering", "streaming", q.ID, now, now, now, q.ID); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatalf("Open after the upgrade: %v", err)
	}
	defer s.Close()
	if got, want := schemaVersion(t, path), latestVersion(t); got != want {
		t.Errorf("schema version: got %d, want %d", got, want)
	}
	if p, err := s.Pending(t.Context(), c.ID, 0); err != nil || len(p) != 0 {
		t.Errorf("Pending after the upgrade: got %d messages, %v; want none, the question has its answer", len(p), err)
	}
	if _, ok, err := s.ClaimConversation(t.Context(), c.ID, "replica-a", time.Minute); err != nil || !ok {
		t.Fatalf("ClaimConversation after the upgrade: got %v, %v; want true", ok, err)
	}
	if st, err := s.Stranded(t.Context(), "slack"); err != nil || len(st) != 0 {
		t.Errorf("Stranded of a claimed conversation: got %d messages, %v; want none", len(st), err)
	}
	if live, err := s.Heartbeat(t.Context(), "replica-a", time.Minute); err != nil || len(live) != 1 || live[0] != "replica-a" {
		t.Errorf("Heartbeat after the upgrade: got %q, %v; want [replica-a]", live, err)
	}
}
