package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/conversation/storetest"
)

// envURL names the database the tests may use; each test works in a schema
// of its own, dropped when it ends.
const envURL = "PARLEY_TEST_POSTGRES_URL"

// freshURL returns the test database's url with search_path set to a new,
// empty schema that is dropped when tb ends. It skips tb when no database
// is configured.
func freshURL(tb testing.TB) string {
	tb.Helper()
	base := needDB(tb)
	b := make([]byte, 8)
	rand.Read(b)
	schema := "parley_test_" + hex.EncodeToString(b)
	admin, err := connectAdmin(tb.Context(), base)
	if err != nil {
		tb.Fatalf("connect to %s: %v", envURL, err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(tb.Context(), `CREATE SCHEMA `+schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		// tb's context has ended by now.
		admin, err := connectAdmin(context.Background(), base)
		if err != nil {
			tb.Errorf("connect to drop schema %s: %v", schema, err)
			return
		}
		defer admin.Close(context.Background())
		if _, err := admin.Exec(context.Background(), `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return withSearchPath(tb, base, schema)
}

// connectAdmin connects to url without the pool; the url may carry pool
// settings (pool_max_conns) that a lone connection does not take.
func connectAdmin(ctx context.Context, url string) (*pgx.Conn, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.New("the url is malformed")
	}
	return pgx.ConnectConfig(ctx, cfg.ConnConfig)
}

// needDB returns the test database's url, or skips tb.
func needDB(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(envURL)
	if base == "" {
		tb.Skipf("set %s to run the PostgreSQL tests, e.g. %s=postgres://postgres@127.0.0.1:5432/test?sslmode=disable go test ./conversation/postgres/", envURL, envURL)
	}
	return base
}

func withSearchPath(tb testing.TB, base, schema string) string {
	if !strings.HasPrefix(base, "postgres://") && !strings.HasPrefix(base, "postgresql://") {
		return base + " search_path=" + schema // key=value form
	}
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("%s is not a url", envURL) // not the error: it may quote a password
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func openStore(tb testing.TB, url string) *Store {
	tb.Helper()
	return openWith(tb, url, Options{Now: storetest.Now(tb)})
}

func openWith(tb testing.TB, url string, opts Options) *Store {
	tb.Helper()
	s, err := Open(tb.Context(), url, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	needDB(t)
	storetest.Run(t, func(t *testing.T) conversation.Store {
		return openStore(t, freshURL(t))
	})
}

// TestStoreSmallPages runs the suite with History reading two messages at
// a time, so that its paging is exercised.
func TestStoreSmallPages(t *testing.T) {
	needDB(t)
	defer func(n int) { historyPage = n }(historyPage)
	historyPage = 2
	storetest.Run(t, func(t *testing.T) conversation.Store {
		return openStore(t, freshURL(t))
	})
}

// TestShared opens two pools on one schema, as two replicas would.
func TestShared(t *testing.T) {
	needDB(t)
	storetest.RunShared(t, func(t *testing.T) (conversation.Store, conversation.Store) {
		u := freshURL(t)
		return openStore(t, u), openStore(t, u)
	})
}

// The benchmarks run on the real clock.

func BenchmarkHistoryLast50(b *testing.B) {
	storetest.BenchHistoryLast50(b, openWith(b, freshURL(b), Options{}))
}

func BenchmarkAppendParallel(b *testing.B) {
	storetest.BenchAppendParallel(b, openWith(b, freshURL(b), Options{}))
}

func BenchmarkSumUsageMonth(b *testing.B) {
	storetest.BenchSumUsageMonth(b, openWith(b, freshURL(b), Options{}))
}

func BenchmarkPending(b *testing.B) {
	storetest.BenchPending(b, openWith(b, freshURL(b), Options{}))
}
