// Package schema loads the versioned migrations a store embeds and judges
// a database's schema version against them. The stores run the SQL, each
// in its own dialect; the rules for files and versions are kept here once.
package schema

import (
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/parleyhq/parley/conversation"
)

// Migration is one file of migrations/: NNNN_name.sql brings the schema to
// version NNNN.
type Migration struct {
	Version int
	Name    string // the file name
	SQL     string
}

// Load reads migrations/*.sql from fsys. Versions must run 1, 2, 3, ...
// without gaps, so that a database's version says what it holds.
func Load(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration // fs.Glob returns names sorted
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || len(num) != 4 {
			return nil, fmt.Errorf("migration %s: name is not NNNN_name.sql", base)
		}
		if v != len(ms)+1 {
			return nil, fmt.Errorf("migration %s: version %d, want %d", base, v, len(ms)+1)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: base, SQL: string(b)})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations")
	}
	return ms, nil
}

// Pending returns the migrations a database at version current lacks, or
// an error wrapping conversation.ErrNewerSchema when a newer Parley wrote
// it.
func Pending(ms []Migration, current int) ([]Migration, error) {
	latest := ms[len(ms)-1].Version
	if current > latest {
		return nil, fmt.Errorf("database schema version %d, this build knows versions up to %d; run a newer parley, or restore a backup taken before the upgrade: %w",
			current, latest, conversation.ErrNewerSchema)
	}
	return ms[current:], nil
}
