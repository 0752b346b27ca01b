//go:build !unix

package sqlite

import "testing"

// asNobody is for Unix, where a process can run as root.
func asNobody(t *testing.T, test string) {
	t.Skip("no user nobody to switch to on this system")
}
