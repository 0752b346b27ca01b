package config

import (
	"bufio"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// defaults returns every variable Parley reads, in order, with its
// default ("" when none), from the env struct's tags.
func defaults(t *testing.T) (names []string, def map[string]string) {
	t.Helper()
	def = map[string]string{}
	typ := reflect.TypeFor[env]()
	for i := range typ.NumField() {
		tag := typ.Field(i).Tag.Get("env")
		name, opts, _ := strings.Cut(tag, ",")
		d := ""
		if _, after, ok := strings.Cut(opts, "default="); ok {
			d = after
		}
		names = append(names, name)
		def[name] = d
	}
	return names, def
}

// The README's table of variables lists every variable with the default
// the code has: a value in backticks first, or no value when there is no
// default.
func TestREADMEVariables(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([A-Z][A-Z0-9_]*)` \\|([^|]*)\\|")
	cells := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		cells[m[1]] = strings.TrimSpace(m[2])
	}
	names, def := defaults(t)
	for _, name := range names {
		cell, ok := cells[name]
		switch {
		case !ok:
			t.Errorf("README.md's table lacks %s", name)
		case def[name] == "" && strings.HasPrefix(cell, "`"):
			t.Errorf("README.md gives %s the default %s; it has none", name, cell)
		case def[name] != "" && !strings.HasPrefix(cell, "`"+def[name]+"`"):
			t.Errorf("README.md gives %s the default %q, want `%s`", name, cell, def[name])
		}
		delete(cells, name)
	}
	for name := range cells {
		t.Errorf("README.md's table lists %s, which Parley does not read", name)
	}
}

// .env.example shows every variable as NAME=value (to fill in) or
// #NAME=default (left at its default), with the code's default.
func TestEnvExampleVariables(t *testing.T) {
	f, err := os.Open("../../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line := regexp.MustCompile(`^#?([A-Z][A-Z0-9_]*)=(.*)$`)
	shown := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := line.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil {
			if _, dup := shown[m[1]]; dup {
				t.Errorf(".env.example shows %s twice", m[1])
			}
			shown[m[1]] = m[2]
		}
	}
	names, def := defaults(t)
	for _, name := range names {
		v, ok := shown[name]
		switch {
		case !ok:
			t.Errorf(".env.example lacks %s", name)
		case v != def[name]:
			t.Errorf(".env.example shows %s=%s, but its default is %q", name, v, def[name])
		}
		delete(shown, name)
	}
	for name := range shown {
		t.Errorf(".env.example shows %s, which Parley does not read", name)
	}
}
