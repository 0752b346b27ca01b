package sqlite

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parleyhq/parley/conversation"
)

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("this is not a database\n", 200)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		want string
	}{
		{"missing directory", filepath.Join(dir, "no", "such", "dir", "parley.db"), "check that its directory exists and is writable"},
		{"not a database", notDB, "not an SQLite database"},
		{"empty path", "", "database path is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), tc.path, Options{})
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q): got nil error, want one saying %q", tc.path, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "sqlite: open") {
				t.Errorf("Open(%q): got %q, want it to start with \"sqlite: open\" and say %q", tc.path, err, tc.want)
			}
		})
	}
}

// TestReadOnlyError checks that the driver's read-only code, met when a
// write is refused, reads as an error a person can act on. Root writes to
// any file, so the database is opened read-only by URI here; the same code
// comes from a file without write permission (TestReadOnlyFile).
func TestReadOnlyError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	s, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.ExecContext(t.Context(), `DELETE FROM messages`)
	if err == nil {
		t.Fatal("a write to a read-only database succeeded")
	}
	got := openError("parley.db", err).Error()
	if want := "sqlite: open parley.db: database file is read-only; check its permissions"; !strings.HasPrefix(got, want) {
		t.Errorf("got %q, want it to start with %q", got, want)
	}
}

func TestReadOnlyFile(t *testing.T) {
	if os.Geteuid() == 0 {
		// Root writes to files without write permission, so file modes
		// cannot refuse it a write: run this test again, as nobody.
		asNobody(t, "TestReadOnlyFile")
		return
	}
	tests := []struct {
		name    string
		lockDir bool // else the database file is made read-only
		want    string
	}{
		{"read-only file", false, "database file is read-only; check its permissions"},
		{"read-only directory", true, "database file is read-only; check its permissions"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "parley.db")
			s, err := Open(t.Context(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			target := path
			if tc.lockDir {
				target = dir
			}
			if err := os.Chmod(target, 0o555); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(target, 0o755) })
			s, err = Open(t.Context(), path, Options{})
			if err == nil {
				s.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: got %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// An exclusive store holds its file: a second exclusive Open is refused
// with ErrLocked and a message that says what to do, until the first
// closes.
func TestOpenExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	a, err := Open(t.Context(), path, Options{Exclusive: true})
	if err != nil {
		t.Fatalf("first exclusive Open: %v", err)
	}
	_, err = Open(t.Context(), path, Options{Exclusive: true})
	if !errors.Is(err, conversation.ErrLocked) {
		t.Fatalf("second exclusive Open: got %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "PostgreSQL") {
		t.Errorf("second exclusive Open: %q does not say to run replicas on PostgreSQL", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := Open(t.Context(), path, Options{Exclusive: true})
	if err != nil {
		t.Fatalf("exclusive Open once the first closed: %v", err)
	}
	b.Close()
}
