package schema

import (
	"errors"
	"testing"
	"testing/fstest"

	"github.com/parleyhq/parley/conversation"
)

func TestLoadRejectsBadNames(t *testing.T) {
	tests := []struct {
		name  string
		files []string
	}{
		{"gap", []string{"0001_init.sql", "0003_more.sql"}},
		{"not numbered", []string{"0001_init.sql", "init.sql"}},
		{"short number", []string{"1_init.sql"}},
		{"none", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for _, f := range tc.files {
				fsys["migrations/"+f] = &fstest.MapFile{Data: []byte("SELECT 1;")}
			}
			if _, err := Load(fsys); err == nil {
				t.Errorf("Load(%q): got nil error, want one", tc.files)
			}
		})
	}
}

func TestPending(t *testing.T) {
	fsys := fstest.MapFS{
		"migrations/0001_init.sql": {Data: []byte("one")},
		"migrations/0002_more.sql": {Data: []byte("two")},
	}
	ms, err := Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	for current, want := range []int{2, 1, 0} {
		got, err := Pending(ms, current)
		if err != nil || len(got) != want {
			t.Errorf("Pending at version %d: %d migrations, %v; want %d", current, len(got), err, want)
		}
	}
	if _, err := Pending(ms, 3); !errors.Is(err, conversation.ErrNewerSchema) {
		t.Errorf("Pending at version 3 of 2: %v, want ErrNewerSchema", err)
	}
}
