// Package pgtest gives tests outside the PostgreSQL store a database of
// their own: a fresh schema on PARLEY_TEST_POSTGRES_URL.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the database the tests may use.
const EnvURL = "PARLEY_TEST_POSTGRES_URL"

// Schema returns the URL of a new, empty schema (its name starts with
// prefix) in the database of EnvURL, dropped when tb ends. It skips tb
// when EnvURL is unset: the database's public schema may hold any version,
// left by another build, so tests never use it.
func Schema(tb testing.TB, prefix string) string {
	tb.Helper()
	pgURL := os.Getenv(EnvURL)
	if pgURL == "" {
		tb.Skip("set " + EnvURL + " (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run the PostgreSQL tests")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		tb.Fatalf("connect to PostgreSQL: %v", err)
	}
	schema := fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		conn.Close(ctx)
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		conn.Close(context.Background())
	})
	sep := "?"
	if strings.Contains(pgURL, "?") {
		sep = "&"
	}
	return pgURL + sep + "search_path=" + schema
}
