package config

import (
	"net/url"
	"slices"
	"strings"
)

// Database drivers.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Store is where conversations are kept (DATABASE_URL).
type Store struct {
	// Driver is SQLite or Postgres.
	Driver string
	// Path is the SQLite database file, relative to the working directory
	// unless absolute ("sqlite://parley.db" -> "parley.db",
	// "sqlite:///var/lib/parley/parley.db" -> "/var/lib/parley/parley.db").
	Path string
	// URL is the PostgreSQL connection URL, password included: pass it to
	// the driver and print Redacted instead.
	URL Secret
}

// Redacted returns the database URL with any password masked, for printing.
func (s Store) Redacted() string {
	switch s.Driver {
	case SQLite:
		return "sqlite://" + s.Path
	case Postgres:
		return redactURL(s.URL.Reveal())
	}
	return ""
}

// parseDatabaseURL reads DATABASE_URL. Its problems never quote the value,
// which may hold a password.
func parseDatabaseURL(raw string) (Store, string) {
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok || scheme == "" || strings.ContainsAny(scheme, "/@ ") {
		return Store{}, "not a URL; write sqlite://parley.db (a file), sqlite:///var/lib/parley/parley.db (an absolute path) or postgres://user:password@host:5432/db"
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3":
		path, ok := strings.CutPrefix(rest, "//")
		if !ok {
			path = rest // sqlite:parley.db
		}
		if path == "" {
			return Store{}, "names no database file; write sqlite://parley.db or sqlite:///absolute/path/parley.db"
		}
		return Store{Driver: SQLite, Path: path}, ""
	case "postgres", "postgresql":
		u, err := url.Parse(raw)
		// url.Parse's error quotes the URL: it is dropped, not wrapped.
		if err != nil {
			return Store{}, "is not a valid PostgreSQL URL (check that special characters in the password are %-encoded); write postgres://user:password@host:5432/db"
		}
		if u.Opaque != "" || (u.Host == "" && u.Query().Get("host") == "") {
			return Store{}, "names no host; write postgres://user:password@host:5432/db"
		}
		if p := u.Port(); p != "" && !isDigits(p) {
			return Store{}, "has a port that is not a number; write postgres://user:password@host:5432/db"
		}
		return Store{Driver: Postgres, URL: Secret(raw)}, ""
	}
	return Store{}, "scheme is neither sqlite, postgres nor postgresql; write sqlite://parley.db or postgres://user:password@host:5432/db"
}

// passwordParams are the query parameters of a PostgreSQL URL that hold a
// secret.
var passwordParams = []string{"password", "sslpassword"}

const placeholder = "PARLEY-MASKED-PASSWORD"

// redactURL masks the password of a URL, also when passed as a query
// parameter. A URL that does not parse is masked whole.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return masked
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			// url.UserPassword would escape the mask's asterisks.
			u.User = url.UserPassword(u.User.Username(), placeholder)
		}
	}
	if u.RawQuery != "" {
		// Rewritten by hand: url.Values.Encode would escape the mask.
		parts := strings.Split(u.RawQuery, "&")
		for i, part := range parts {
			k, _, _ := strings.Cut(part, "=")
			name, err := url.QueryUnescape(k)
			if err != nil || slices.Contains(passwordParams, strings.ToLower(name)) {
				parts[i] = k + "=" + masked
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	return strings.Replace(u.String(), placeholder, masked, 1)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
