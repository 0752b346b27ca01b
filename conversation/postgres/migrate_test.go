package postgres

import (
	"errors"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/parleyhq/parley/conversation"
)

func TestEmbeddedMigrations(t *testing.T) {
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		t.Fatalf("loadMigrations: %v", err)
	}
	for i, m := range ms {
		if m.version != i+1 {
			t.Errorf("migration %s: version %d, want %d", m.name, m.version, i+1)
		}
	}
}

func TestLoadMigrationsRejectsBadNames(t *testing.T) {
	tests := []struct {
		name  string
		files []string
	}{
		{"gap", []string{"0001_init.sql", "0003_more.sql"}},
		{"not numbered", []string{"0001_init.sql", "init.sql"}},
		{"none", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for _, f := range tc.files {
				fsys["migrations/"+f] = &fstest.MapFile{Data: []byte("SELECT 1;")}
			}
			if _, err := loadMigrations(fsys); err == nil {
				t.Errorf("loadMigrations(%q): got nil error, want one", tc.files)
			}
		})
	}
}

// withMigration returns the embedded migrations plus one more.
func withMigration(t *testing.T, name, sql string) fs.FS {
	t.Helper()
	fsys := fstest.MapFS{}
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		fsys["migrations/"+m.name] = &fstest.MapFile{Data: []byte(m.sql)}
	}
	fsys["migrations/"+name] = &fstest.MapFile{Data: []byte(sql)}
	return fsys
}

func schemaVersion(t *testing.T, s *Store) int {
	t.Helper()
	var v int
	if err := s.pool.QueryRow(t.Context(), `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		t.Fatalf("read schema version: %v", err)
	}
	return v
}

// TestMigrateReplicasStartTogether opens several stores on one empty schema
// at once: one migrates, the others wait and find it done.
func TestMigrateReplicasStartTogether(t *testing.T) {
	u := freshURL(t)
	var wg sync.WaitGroup
	stores := make([]*Store, 4)
	for i := range stores {
		wg.Go(func() {
			s, err := Open(t.Context(), u, Options{})
			if err != nil {
				t.Errorf("Open %d: %v", i, err)
				return
			}
			stores[i] = s
		})
	}
	wg.Wait()
	for _, s := range stores {
		if s != nil {
			defer s.Close()
		}
	}
	if t.Failed() {
		return
	}
	if got := schemaVersion(t, stores[0]); got != 1 {
		t.Errorf("schema version: got %d, want 1", got)
	}
}

func TestMigrateUpgradesInPlace(t *testing.T) {
	u := freshURL(t)
	s := openStore(t, u)
	c, err := s.Conversation(t.Context(), conversation.Key{Platform: "slack", Workspace: "T1", Channel: "C1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Append(t.Context(), c.ID, conversation.Message{Role: conversation.RoleUser, Text: "kept across the upgrade"}); err != nil {
		t.Fatal(err)
	}
	before := schemaVersion(t, s)
	s.Close()

	next := withMigration(t, "0002_pins.sql", `CREATE TABLE pins (message_id bigint NOT NULL REFERENCES messages (id));`)
	s, err = open(t.Context(), u, Options{}, next)
	if err != nil {
		t.Fatalf("Open with a newer migration: %v", err)
	}
	defer s.Close()
	if got := schemaVersion(t, s); got != before+1 {
		t.Errorf("schema version after upgrade: got %d, want %d", got, before+1)
	}
	h, err := s.History(t.Context(), c.ID, conversation.HistoryQuery{})
	if err != nil || len(h) != 1 || h[0].Text != "kept across the upgrade" {
		t.Errorf("History after upgrade: got %d messages, %v; want the one stored before", len(h), err)
	}
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO pins (message_id) VALUES ($1)`, h[0].ID); err != nil {
		t.Errorf("the upgraded schema lacks the new table: %v", err)
	}
}

func TestMigrateFailureChangesNothing(t *testing.T) {
	u := freshURL(t)
	s := openStore(t, u)
	before := schemaVersion(t, s)

	broken := withMigration(t, "0002_broken.sql", `CREATE TABLE half (id integer); THIS IS NOT SQL;`)
	if _, err := open(t.Context(), u, Options{}, broken); err == nil || !strings.Contains(err.Error(), "0002_broken.sql") {
		t.Fatalf("Open with a broken migration: got %v, want an error naming it", err)
	}
	if got := schemaVersion(t, s); got != before {
		t.Errorf("schema version after a failed migration: got %d, want %d", got, before)
	}
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO half (id) VALUES (1)`); err == nil {
		t.Error("a table from the failed migration exists, want it rolled back")
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	u := freshURL(t)
	s := openStore(t, u)
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO schema_version (version, name, applied_at) VALUES (99, '0099_future.sql', now())`); err != nil {
		t.Fatal(err)
	}
	_, err := Open(t.Context(), u, Options{})
	if !errors.Is(err, conversation.ErrNewerSchema) {
		t.Fatalf("Open of a newer database: got %v, want ErrNewerSchema", err)
	}
	for _, want := range []string{"version 99", "up to 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
