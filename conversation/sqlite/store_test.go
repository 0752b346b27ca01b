package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/conversation/sqlite"
	"github.com/parleyhq/parley/conversation/storetest"
)

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	return openWith(t, path, sqlite.Options{Now: storetest.Now(t)})
}

func openWith(t testing.TB, path string, opts sqlite.Options) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) conversation.Store {
		return open(t, filepath.Join(t.TempDir(), "parley.db"))
	})
}

func TestStoreInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) conversation.Store {
		return open(t, ":memory:")
	})
}

// TestShared opens one file twice, as two processes would.
func TestShared(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (conversation.Store, conversation.Store) {
		path := filepath.Join(t.TempDir(), "parley.db")
		return open(t, path), open(t, path)
	})
}

// The benchmarks run on the real clock.

func BenchmarkHistoryLast50(b *testing.B) {
	storetest.BenchHistoryLast50(b, openWith(b, filepath.Join(b.TempDir(), "parley.db"), sqlite.Options{}))
}

func BenchmarkAppendParallel(b *testing.B) {
	storetest.BenchAppendParallel(b, openWith(b, filepath.Join(b.TempDir(), "parley.db"), sqlite.Options{}))
}

func BenchmarkSumUsageMonth(b *testing.B) {
	storetest.BenchSumUsageMonth(b, openWith(b, filepath.Join(b.TempDir(), "parley.db"), sqlite.Options{}))
}

func BenchmarkPending(b *testing.B) {
	storetest.BenchPending(b, openWith(b, filepath.Join(b.TempDir(), "parley.db"), sqlite.Options{}))
}
