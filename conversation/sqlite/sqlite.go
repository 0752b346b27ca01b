// Package sqlite is the conversation.Store on an SQLite file, Parley's
// default database (DATABASE_URL=sqlite://parley.db). It uses
// modernc.org/sqlite, so the binary needs no cgo.
//
// It suits one Parley process; several processes on one file work (WAL and
// a busy timeout), but replicas belong on conversation/postgres.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"runtime"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/conversation/schema"
)

// Options configures a Store. The zero value is ready to use.
type Options struct {
	// Now is the clock for the times the store records; default time.Now.
	// It also times claims and replica leases (Heartbeat): the processes
	// on one file share one host, so their clocks cannot disagree.
	Now func() time.Time
	// Exclusive holds the file for this process alone, until Close: Open
	// fails with an error wrapping conversation.ErrLocked while another
	// live process holds it. A bot process opens its file so, which makes
	// every other instance's claim on it the claim of a dead one, to take
	// over at once (Takeover with everyone).
	Exclusive bool
}

// Store is a conversation.Store on an SQLite file.
//
// SQLite takes one writer at a time, so writes go through a pool of one
// connection whose transactions begin IMMEDIATE (taking the write lock up
// front, never upgrading a read lock, which is what ends in SQLITE_BUSY),
// and reads use a separate pool that WAL lets run beside the writer.
type Store struct {
	path  string
	write *sql.DB
	read  *sql.DB
	stmts statements
	now   func() time.Time
	lock  *os.File // held while Exclusive

	resolveMu sync.Mutex
	resolve   map[int]*sql.Stmt // ResolveSetting's query by its number of scopes

	wmu     sync.Mutex
	pending []*writeOp // writes waiting for the writer, oldest first
	leading bool       // a writer is committing pending's groups
}

var _ conversation.Store = (*Store)(nil)

// busyTimeout is how long a connection waits for another process's lock.
const busyTimeout = 10 * time.Second

// Open opens (creating if needed) the SQLite database at path and brings
// its schema up to date. The path ":memory:" gives a private in-memory
// database, gone when the Store is closed.
//
// A database written by a newer Parley is refused with an error wrapping
// conversation.ErrNewerSchema.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	return open(ctx, path, opts, migrationFiles)
}

// open is Open with the migrations read from fsys.
func open(ctx context.Context, path string, opts Options, fsys fs.FS) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: open: the database path is empty; give a file name such as parley.db")
	}
	s := &Store{path: path, now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.Exclusive && path != ":memory:" {
		lock, err := lockFile(path)
		if err != nil {
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
		s.lock = lock
		opened := false
		defer func() {
			if !opened {
				lock.Close()
			}
		}()
		defer func() { opened = s.read != nil && s.stmts.history != nil }()
	}

	if path == ":memory:" {
		// Every connection to :memory: is a database of its own: keep one.
		db, err := sql.Open("sqlite", "file::memory:?_pragma=foreign_keys(1)")
		if err != nil {
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
		s.write, s.read = db, db
	} else {
		write, err := sql.Open("sqlite", dsn(path, url.Values{
			"_pragma": {
				fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()),
				"journal_mode(WAL)",
				// NORMAL is safe from corruption in WAL mode; a power cut
				// may lose the last commits, not the database.
				"synchronous(NORMAL)",
				"foreign_keys(1)",
			},
			"_txlock": {"immediate"},
		}))
		if err != nil {
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
		write.SetMaxOpenConns(1)
		write.SetMaxIdleConns(1)
		write.SetConnMaxLifetime(0)
		write.SetConnMaxIdleTime(0)
		s.write = write
	}

	ms, err := schema.Load(fsys)
	if err != nil {
		s.write.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if err := migrate(ctx, s.write, ms, s.now()); err != nil {
		s.write.Close()
		if errors.Is(err, conversation.ErrNewerSchema) {
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
		return nil, openError(path, err)
	}

	if s.read == nil {
		read, err := sql.Open("sqlite", dsn(path, url.Values{
			"_pragma": {
				fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()),
				"foreign_keys(1)",
				"query_only(1)",
			},
		}))
		if err != nil {
			s.write.Close()
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
		// Reads are short and many at once under a burst (each question
		// looks up its events, conversation, settings, inbox and history):
		// with few connections they queue for one, not for the CPU.
		n := max(16, runtime.GOMAXPROCS(0))
		read.SetMaxOpenConns(n)
		read.SetMaxIdleConns(n)
		if err := read.PingContext(ctx); err != nil {
			read.Close()
			s.write.Close()
			return nil, openError(path, err)
		}
		s.read = read
	}
	if err := s.prepare(ctx); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return s, nil
}

// dsn returns the driver's name for the file at path with params: a file:
// URI, so that any character of the path is kept.
func dsn(path string, params url.Values) string {
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + params.Encode()
}

// openError explains an error met while opening the database at path, by
// the driver's result code, in terms of what to do about it.
func openError(path string, err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	var hint string
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH:
		hint = "database file is read-only; check its permissions, and that its directory is writable for the -wal and -shm files beside it"
	case sqlite3.SQLITE_CANTOPEN:
		hint = "cannot open the database file; check that its directory exists and is writable"
	case sqlite3.SQLITE_NOTADB:
		hint = "the file is not an SQLite database; check the path"
	case sqlite3.SQLITE_CORRUPT:
		hint = "the database file is damaged; restore it from a backup"
	case sqlite3.SQLITE_FULL:
		hint = "the disk is full; free some space"
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		hint = fmt.Sprintf("the database stayed locked by another process for %v; check what else has it open", busyTimeout)
	default:
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return fmt.Errorf("sqlite: open %s: %s (%w)", path, hint, err)
}

// sqliteCode returns the extended result code of err, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// Close releases the store's connections.
func (s *Store) Close() error {
	s.stmts.close()
	s.resolveMu.Lock()
	for _, st := range s.resolve {
		st.Close()
	}
	s.resolve = nil
	s.resolveMu.Unlock()
	if err := s.closeDBs(); err != nil {
		return fmt.Errorf("sqlite: close %s: %w", s.path, err)
	}
	return nil
}

func (s *Store) closeDBs() error {
	var errs []error
	if s.read != s.write {
		errs = append(errs, s.read.Close())
	}
	errs = append(errs, s.write.Close())
	if s.lock != nil {
		errs = append(errs, s.lock.Close())
		s.lock = nil
	}
	return errors.Join(errs...)
}

// writeTx runs fn in a transaction on the writer, and returns once that
// transaction has committed or failed.
//
// Writes are committed in groups. Under a burst, each commit's fixed cost
// (the write lock, the WAL frames of every page touched, the commit
// record) is most of a write, and SQLite takes one writer at a time, so
// transactions committed one by one queue up behind each other: fifty
// questions at once waited 30 ms for each of their writes. So the first
// writer to find the writer idle leads: it takes every write waiting,
// runs each in a savepoint of one transaction (a write that fails is
// rolled back alone, and its caller gets its error), commits them
// together, and goes on while writes keep arriving. A lone write pays
// nothing for this: it runs alone, as before. A group that fails as a
// whole (its commit, say) is run again one write at a time, so that each
// caller gets its own result.
//
// fn must do all its work through tx and with the ctx it is given, and
// must not keep state between calls: it may run twice (once in a group
// that failed). A write whose ctx ends before its turn is not run. One in
// a group runs to its end even if its ctx ends meanwhile (SQLite rolls
// back the whole transaction of an interrupted statement), and writeTx
// always waits for the outcome: a caller never takes a committed write
// for a lost one.
func (s *Store) writeTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op := &writeOp{ctx: ctx, fn: fn, done: make(chan error, 1)}
	s.wmu.Lock()
	s.pending = append(s.pending, op)
	if s.leading {
		s.wmu.Unlock()
		return <-op.done
	}
	s.leading = true
	for {
		group := s.pending
		s.pending = nil
		if len(group) == 0 {
			s.leading = false
			s.wmu.Unlock()
			break
		}
		s.wmu.Unlock()
		s.commitGroup(group)
		s.wmu.Lock()
	}
	return <-op.done
}

// writeOp is one caller's transaction, waiting for the writer.
type writeOp struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *sql.Tx) error
	done chan error // buffered: the result, sent once
}

// maxGroup bounds a group, so that one commit stays short.
const maxGroup = 64

// commitGroup runs group, in transactions of at most maxGroup writes.
func (s *Store) commitGroup(group []*writeOp) {
	for len(group) > 0 {
		n := min(len(group), maxGroup)
		s.commitOnce(group[:n])
		group = group[n:]
	}
}

// commitOnce runs ops in one transaction, or one by one when that fails.
func (s *Store) commitOnce(ops []*writeOp) {
	live := ops[:0:0]
	for _, op := range ops {
		if err := op.ctx.Err(); err != nil {
			op.done <- err // not started: nothing to learn
			continue
		}
		live = append(live, op)
	}
	if len(live) == 1 {
		live[0].done <- s.runTx(live[0])
		return
	}
	if len(live) == 0 {
		return
	}
	// The group's statements are not interrupted by one caller's ctx:
	// SQLite rolls back the whole transaction of an interrupted write.
	ctx := context.WithoutCancel(live[0].ctx)
	errs, err := s.groupTx(ctx, live)
	if err != nil {
		for _, op := range live {
			op.done <- s.runTx(op)
		}
		return
	}
	for i, op := range live {
		op.done <- errs[i]
	}
}

// groupTx runs ops in one transaction, each in a savepoint of its own. It
// returns each op's own error, or an error of the group as a whole (when
// nothing was committed).
func (s *Store) groupTx(ctx context.Context, ops []*writeOp) ([]error, error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	errs := make([]error, len(ops))
	for i, op := range ops {
		if _, err := tx.ExecContext(ctx, `SAVEPOINT w`); err != nil {
			return nil, err
		}
		errs[i] = op.fn(context.WithoutCancel(op.ctx), tx)
		if errs[i] != nil {
			if _, err := tx.ExecContext(ctx, `ROLLBACK TO w`); err != nil {
				return nil, err
			}
		}
		if _, err := tx.ExecContext(ctx, `RELEASE w`); err != nil {
			return nil, err
		}
	}
	return errs, tx.Commit()
}

// runTx runs op in a transaction of its own.
func (s *Store) runTx(op *writeOp) error {
	tx, err := s.write.BeginTx(op.ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := op.fn(op.ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}

// micros is how times are stored: Unix microseconds, UTC.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// timestamp returns the store's clock, at the precision it keeps.
func (s *Store) timestamp() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}
