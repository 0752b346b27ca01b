package bots

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSplit(t *testing.T) {
	para := strings.Repeat("word ", 30) // 150 runes
	code := "```go\n" + strings.Repeat("fmt.Println(\"hello\")\n", 20) + "```\n"
	tests := []struct {
		name      string
		text      string
		max       int
		wantParts int
		check     func(t *testing.T, parts []Part)
	}{
		{name: "fits", text: "hello", max: 100, wantParts: 1},
		{name: "paragraph boundary", text: para + "\n\n" + para, max: 200, wantParts: 2, check: func(t *testing.T, parts []Part) {
			if !strings.HasSuffix(parts[0].Body, "\n\n") {
				t.Errorf("first part %q does not end at the paragraph break", parts[0].Body)
			}
		}},
		{name: "never inside a word", text: strings.Repeat("abcdefg ", 100), max: 100, check: func(t *testing.T, parts []Part) {
			for _, p := range parts[:len(parts)-1] {
				if !strings.HasSuffix(p.Body, " ") {
					t.Errorf("part %q ends inside a word", p.Body)
				}
			}
		}},
		{name: "code fence reopened with language", text: "Here:\n\n" + code + "\nDone.", max: 200, check: func(t *testing.T, parts []Part) {
			for i, p := range parts[1:] {
				if strings.Contains(p.Body, "fmt.") && !strings.HasPrefix(p.Text, "```go\n") && i < len(parts)-2 {
					t.Errorf("part %d does not reopen the go block: %q", i+1, p.Text)
				}
			}
			if !strings.HasSuffix(parts[0].Text, "```") {
				t.Errorf("first part does not close the block: %q", parts[0].Text)
			}
		}},
		{name: "one long word", text: strings.Repeat("x", 250), max: 100, wantParts: 3},
		{name: "multibyte runes", text: strings.Repeat("héllo wörld ", 50), max: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parts := Split(tt.text, tt.max)
			if tt.wantParts != 0 && len(parts) != tt.wantParts {
				t.Errorf("got %d parts, want %d", len(parts), tt.wantParts)
			}
			checkParts(t, tt.text, tt.max, parts)
			if tt.check != nil {
				tt.check(t, parts)
			}
		})
	}
}

var longFence = regexp.MustCompile("[`~]{17,}")

func checkParts(t *testing.T, text string, max int, parts []Part) {
	t.Helper()
	var joined strings.Builder
	for i, p := range parts {
		if n := utf8.RuneCountInString(p.Text); n > max {
			t.Errorf("part %d has %d runes, limit %d", i, n, max)
		}
		if i < len(parts)-1 && scanFences(fence{}, p.Text).open {
			t.Errorf("part %d leaves a code block open: %q", i, p.Text)
		}
		if !strings.Contains(p.Text, p.Body) {
			t.Errorf("part %d text %q does not hold its body %q", i, p.Text, p.Body)
		}
		joined.WriteString(p.Body)
	}
	if joined.String() != text {
		t.Errorf("parts rejoin to %q, want %q", joined.String(), text)
	}
}

// FuzzSplit checks, for any input: every part fits the limit, fences balance
// in every part but the last (which may end inside a block the answer never
// closed), and the parts rejoin to the input.
func FuzzSplit(f *testing.F) {
	f.Add("hello world", 100)
	f.Add("```go\nfunc main() {}\n```\n\ntext after. More text! And more? yes", 80)
	f.Add(strings.Repeat("para one line\n", 40)+"\n\n~~~~ py\ncode\n~~~~\n", 120)
	f.Add("    ```\nindented too far\n```\n"+strings.Repeat("z", 300), 64)
	f.Fuzz(func(t *testing.T, text string, max int) {
		if max < 64 || max > 5000 || !utf8.ValidString(text) || longFence.MatchString(text) {
			t.Skip()
		}
		checkParts(t, text, max, Split(text, max))
	})
}
