package postgres

import (
	"testing"

	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/conversation/storetest"
)

func TestStoreFailures(t *testing.T) {
	needDB(t)
	storetest.RunFailures(t, func(t *testing.T) conversation.Store {
		return openStore(t, freshURL(t))
	})
}
