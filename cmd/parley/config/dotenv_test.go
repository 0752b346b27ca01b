package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseDotenv(t *testing.T) {
	tests := []struct {
		name string
		text string
		want map[string]string
	}{
		{"empty", "", map[string]string{}},
		{"comments and blanks", "# a comment\n\n   # indented\nA=1\n", map[string]string{"A": "1"}},
		{"spaces around =", "A = 1 \n", map[string]string{"A": "1"}},
		{"export", "export A=1\nexport\tB=2\nexport=3\n", map[string]string{"A": "1", "B": "2", "export": "3"}},
		{"inline comment", "A=value # comment\nB=x#y\n", map[string]string{"A": "value", "B": "x#y"}},
		{"empty value", "A=\nB= # only a comment\n", map[string]string{"A": "", "B": ""}},
		{"no expansion", "A=$HOME/x${B}\n", map[string]string{"A": "$HOME/x${B}"}},
		{"single quotes literal", `A='a \n "b" # c'` + "\n", map[string]string{"A": `a \n "b" # c`}},
		{"double quote escapes", `A="a\nb\t\"c\" \\ \$d # e"` + "\n", map[string]string{"A": "a\nb\t\"c\" \\ $d # e"}},
		{"unknown escape kept", `A="C:\path"`, map[string]string{"A": `C:\path`}},
		{"multi-line", "A=\"line 1\nline 2\"\nB=2", map[string]string{"A": "line 1\nline 2", "B": "2"}},
		{"comment after quote", `A="x" # comment`, map[string]string{"A": "x"}},
		{"crlf", "A=1\r\nB=\"2\"\r\n", map[string]string{"A": "1", "B": "2"}},
		{"bom", "\uFEFFA=1", map[string]string{"A": "1"}},
		{"last wins", "A=1\nA=2\n", map[string]string{"A": "2"}},
		{"equals in value", "DATABASE_URL=postgres://u:p@h/db?sslmode=disable\n", map[string]string{"DATABASE_URL": "postgres://u:p@h/db?sslmode=disable"}},
		{"unicode", "PARLEY_STOP_EMOJI=octagonal_sign,🛑\n", map[string]string{"PARLEY_STOP_EMOJI": "octagonal_sign,🛑"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDotenv(tt.text)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseDotenvErrors(t *testing.T) {
	const secret = "sk-SECRET123"
	tests := []struct {
		name string
		text string
		want string // the message starts with the line number
	}{
		{"no name", "A=1\n=" + secret + "\n", "2: expected a variable name"},
		{"no equals", "A=1\n\nexport B " + secret + "\n", "3: no = after the variable name"},
		{"token alone on a line", "sk" + secret[3:] + "\n", "1: no = after"},
		{"unclosed double quote", "A=1\nB=\"" + secret + "\nC=2\n", "2: the value of B opens a \" quote that is never closed"},
		{"unclosed single quote", "B='" + secret, "1: the value of B opens a ' quote"},
		{"text after quote", "A=\"x\ny\" " + secret + "\n", "2: unexpected text after the closing quote of A"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDotenv(tt.text)
			if err == nil {
				t.Fatal("got no error")
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("got %q, want it to start with %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret[3:]) {
				t.Errorf("error shows the value: %q", err)
			}
		})
	}
}

func TestReadDotenv(t *testing.T) {
	dir := t.TempDir()
	m, err := ReadDotenv(filepath.Join(dir, ".env"))
	if err != nil || len(m) != 0 {
		t.Fatalf("missing file: got %v, %v; want an empty map", m, err)
	}
	path := filepath.Join(dir, ".env")
	if err := os.WriteFile(path, []byte("A=1\nB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = ReadDotenv(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":2: ") {
		t.Errorf("got %v, want an error starting with %s:2:", err, path)
	}
}

// FuzzDotenv checks that parsing never panics and that every value, quoted
// as `parley config` prints it, reads back unchanged.
func FuzzDotenv(f *testing.F) {
	f.Add("A=1\n# c\nexport B='x'\nC=\"y\\n\"", "plain")
	f.Add("A=\"unclosed", "with space and \"quotes\" and \\ and # and\nnewline")
	f.Add("=\n\n", " leading and trailing ")
	f.Fuzz(func(t *testing.T, text, value string) {
		ParseDotenv(text)
		got, err := ParseDotenv("V=" + quote(value) + "\n")
		if err != nil {
			t.Fatalf("quoted %q does not parse: %v", value, err)
		}
		if got["V"] != value {
			t.Fatalf("quoted %q reads back as %q", value, got["V"])
		}
	})
}
