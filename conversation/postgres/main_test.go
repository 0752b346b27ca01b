package postgres

import (
	"os"
	"testing"
)

// TestMain says, where a person sees it, that the PostgreSQL tests were
// skipped and how to run them. go test shows a passing package's output
// only with -v, so the notice goes to the terminal itself when there is
// one (and to standard error when there is none, as in CI, which sets the
// variable anyway).
func TestMain(m *testing.M) {
	code := m.Run()
	if os.Getenv(envURL) == "" {
		notice := "\n*** The PostgreSQL tests were SKIPPED (the store's here, and cmd/parley's two replicas): " + envURL + " is not set.\n" +
			"*** Run them against a server (each test works in a schema of its own, dropped after):\n" +
			"***   " + envURL + "=\"postgres://postgres@127.0.0.1:5432/test?sslmode=disable\" go test ./...\n\n"
		if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
			tty.WriteString(notice)
			tty.Close()
		} else {
			os.Stderr.WriteString(notice)
		}
	}
	os.Exit(code)
}
