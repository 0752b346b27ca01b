package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/conversation/storetest"
)

func TestStoreFailures(t *testing.T) {
	storetest.RunFailures(t, func(t *testing.T) conversation.Store {
		return open(t, filepath.Join(t.TempDir(), "parley.db"))
	})
}

func TestStoreFailuresInMemory(t *testing.T) {
	storetest.RunFailures(t, func(t *testing.T) conversation.Store {
		return open(t, ":memory:")
	})
}
