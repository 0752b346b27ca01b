//go:build unix

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/parleyhq/parley/conversation"
)

// lockFile takes an exclusive lock on the file beside the database at
// path, held until the returned file is closed or the process ends (the
// kernel drops it even on SIGKILL, so a killed process never holds it).
// Another live process holding it gives an error wrapping
// conversation.ErrLocked.
func lockFile(path string) (*os.File, error) {
	name := path + "-lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w", name, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w; stop it, or run replicas on PostgreSQL", conversation.ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return f, nil
}
