//go:build unix

package sqlite

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// nobody is the unprivileged user a test that needs file permissions to
// hold runs itself as when the tests run as root.
const nobody = 65534

// asNobody runs the test named test in a copy of the test binary as the
// user nobody, and fails if it does not pass there. The copy sits in a
// directory nobody can read, since the go command builds the binary in one
// only its owner can.
func asNobody(t *testing.T, test string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// t.TempDir makes dir and its parent for the owner only.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copied := filepath.Join(dir, filepath.Base(self))
	if err := os.WriteFile(copied, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), copied, "-test.run=^"+test+"$", "-test.v", "-test.count=1")
	cmd.Dir = dir
	// The child's own temporary directories go where nobody may write;
	// coverage, if measured, is the parent's to write.
	cmd.Env = []string{"TMPDIR=" + os.TempDir(), "PATH=" + os.Getenv("PATH")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if errors.Is(err, syscall.EPERM) {
		t.Skipf("running as root, and cannot switch to the user nobody to take away write permission: %v", err)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: "+test+" ") || strings.Contains(string(out), "--- SKIP") {
		t.Fatalf("%s as nobody: %v\n%s", test, err, out)
	}
}
