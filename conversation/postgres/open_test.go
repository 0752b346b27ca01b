package postgres

import (
	"strings"
	"testing"
)

func TestOpenErrors(t *testing.T) {
	const secret = "s3cr3t-pa55"
	tests := []struct {
		name string
		url  string
		want string
	}{
		{"malformed url", "postgres://parley:" + secret + "@127.0.0.1:notaport/parley", "database url is malformed"},
		{"nothing listening", "postgres://parley:" + secret + "@127.0.0.1:1/parley?connect_timeout=5", "check the database url and that the server is up"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), tc.url, Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open: got nil error, want one")
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatal("Open's error shows the password")
			}
			t.Logf("Open: %v", err)
			if !strings.HasPrefix(err.Error(), "postgres: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: got %q, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestOpenMissingSchema(t *testing.T) {
	base := needDB(t)
	_, err := Open(t.Context(), withSearchPath(t, base, "parley_no_such_schema"), Options{})
	if err == nil || !strings.Contains(err.Error(), "check the search_path") {
		t.Errorf("Open with a search_path naming no schema: got %v, want it to say so", err)
	}
}
