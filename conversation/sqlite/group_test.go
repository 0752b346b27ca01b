package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// groupStore opens a store with a scratch table t, and holds its writer
// busy until the returned release is called, so that the writes started
// meanwhile are committed as one group.
func groupStore(t *testing.T) (s *Store, release func()) {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "group.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.write.ExecContext(t.Context(), `CREATE TABLE t (v INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	hold, held := make(chan struct{}), make(chan struct{})
	go s.writeTx(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
		close(held)
		<-hold
		return nil
	})
	<-held
	return s, sync.OnceFunc(func() { close(hold) })
}

// waitPending waits until n writes wait for the writer.
func waitPending(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.wmu.Lock()
		got := len(s.pending)
		s.wmu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes pending, want %d", got, n)
		}
		time.Sleep(time.Millisecond) // polling a condition, with a deadline
	}
}

func stored(t *testing.T, s *Store) []int {
	t.Helper()
	rows, err := s.read.QueryContext(t.Context(), `SELECT v FROM t ORDER BY v`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	return vs
}

func insert(v int) func(ctx context.Context, tx *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO t (v) VALUES (?)`, v)
		return err
	}
}

// A write that fails in a group is rolled back alone: the others commit,
// and each caller gets its own result.
func TestGroupedWriteFailsAlone(t *testing.T) {
	s, release := groupStore(t)
	defer release()
	errOdd := errors.New("odd")
	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.writeTx(t.Context(), func(ctx context.Context, tx *sql.Tx) error {
				if err := insert(i)(ctx, tx); err != nil {
					return err
				}
				if i%2 == 1 {
					return fmt.Errorf("write %d: %w", i, errOdd)
				}
				return nil
			})
		})
	}
	waitPending(t, s, n)
	release()
	wg.Wait()
	for i, err := range errs {
		if i%2 == 1 && !errors.Is(err, errOdd) {
			t.Errorf("write %d: err %v, want its own error", i, err)
		}
		if i%2 == 0 && err != nil {
			t.Errorf("write %d: %v", i, err)
		}
	}
	if got, want := stored(t, s), []int{0, 2, 4, 6, 8}; !slices.Equal(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
}

// A write that ends its group's transaction (as SQLite does itself on some
// errors: a full disk, an interrupt) fails the group; every write then
// runs alone, so that the others still commit (once) and only the one that
// ended it fails.
func TestBrokenGroupRunsAlone(t *testing.T) {
	s, release := groupStore(t)
	defer release()
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			errs[i] = s.writeTx(t.Context(), func(ctx context.Context, tx *sql.Tx) error {
				if i == 1 {
					// Rolls the whole transaction back under the group's feet.
					_, err := tx.ExecContext(ctx, `ROLLBACK`)
					return err
				}
				return insert(i)(ctx, tx)
			})
		})
		waitPending(t, s, i+1) // in this order
	}
	release()
	wg.Wait()
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("the sound writes failed: %v, %v", errs[0], errs[2])
	}
	if errs[1] == nil {
		t.Error("the write that ended its transaction succeeded")
	}
	if got, want := stored(t, s), []int{0, 2}; !slices.Equal(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
}

// A write whose context ends while it waits is not run, and says so.
func TestWriteCancelledWhileWaiting(t *testing.T) {
	s, release := groupStore(t)
	defer release()
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan struct{}, 1)
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		err = s.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			ran <- struct{}{}
			return insert(1)(ctx, tx)
		})
	}()
	other := make(chan error, 1)
	go func() { other <- s.writeTx(t.Context(), insert(2)) }()
	waitPending(t, s, 2)
	cancel()
	release()
	<-done
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
	select {
	case <-ran:
		t.Error("a write cancelled before its turn ran")
	default:
	}
	if err := s.writeTx(t.Context(), insert(3)); err != nil {
		t.Fatal(err)
	}
	if err := <-other; err != nil {
		t.Errorf("the other write: %v", err)
	}
	if got, want := stored(t, s), []int{2, 3}; !slices.Equal(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
}
