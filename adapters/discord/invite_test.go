package discord

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// The README's invite URL asks for exactly Permissions.
func TestInvitePermissionsInREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := "permissions=" + strconv.FormatInt(Permissions, 10)
	if !strings.Contains(string(readme), want) {
		t.Errorf("README.md's invite URL lacks %s", want)
	}
	if n := strings.Count(string(readme), "permissions="); n != 1 {
		t.Errorf("README.md has %d invite URLs, want one", n)
	}
	if u := InviteURL("123"); !strings.Contains(u, "client_id=123") || !strings.Contains(u, want) || !strings.Contains(u, "scope=bot+applications.commands") {
		t.Errorf("InviteURL: %s", u)
	}
}
