package slack

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestToMrkdwn(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "hello world", "hello world"},
		{"bold", "a **bold** b", "a *bold* b"},
		{"bold underscores", "__bold__", "*bold*"},
		{"italic star", "an *italic* word", "an _italic_ word"},
		{"italic underscore", "an _italic_ word", "an _italic_ word"},
		{"bold italic", "***both***", "*_both_*"},
		{"strike", "~~gone~~", "~gone~"},
		{"snake case stays", "call my_var_name now", "call my_var_name now"},
		{"lone star", "2 * 3 = 6", "2 * 3 = 6"},
		{"code span", "run `a < b && c` now", "run `a &lt; b &amp;&amp; c` now"},
		{"code span keeps stars", "`**x**`", "`**x**`"},
		{"link", "see [the docs](https://example.com/a?b=1&c=2)", "see <https://example.com/a?b=1&amp;c=2|the docs>"},
		{"link same text", "[https://x.io](https://x.io)", "<https://x.io>"},
		{"link bold label", "[**big**](https://x.io)", "<https://x.io|*big*>"},
		{"link with parens", "[w](https://en.wikipedia.org/wiki/Go_(language))", "<https://en.wikipedia.org/wiki/Go_(language)|w>"},
		{"link title", `[t](https://x.io "title")`, "<https://x.io|t>"},
		{"relative link", "[t](/path)", "t (/path)"},
		{"image", "![a cat](https://x.io/cat.png)", "<https://x.io/cat.png|a cat>"},
		{"pipe in url", "[t](https://x.io/a|b)", "<https://x.io/a%7Cb|t>"},
		{"autolink", "<https://x.io>", "<https://x.io>"},
		{"escapes", "a < b > c & d", "a &lt; b &gt; c &amp; d"},
		{"broadcast escaped", "<!channel> hi", "&lt;!channel&gt; hi"},
		{"user mention kept", "thanks <@U123ABC>", "thanks <@U123ABC>"},
		{"channel mention kept", "see <#C123ABC|general>", "see <#C123ABC|general>"},
		{"backslash escape", `\*not italic\*`, "*not italic*"},
		{"heading", "# Title", "*Title*"},
		{"heading with bold", "## A **b** c ##", "*A b c*"},
		{"setext heading", "Title\n=====", "*Title*"},
		{"hashtag", "#hashtag", "#hashtag"},
		{"bullets", "- one\n* two\n+ three", "• one\n• two\n• three"},
		{"nested bullets", "- a\n  - b", "• a\n  • b"},
		{"tasks", "- [ ] todo\n- [x] done", "☐ todo\n☑ done"},
		{"ordered", "1. a\n2) **b**", "1. a\n2. *b*"},
		{"quote", "> quoted *it*\n>> deeper", "> quoted _it_\n> deeper"},
		{"empty quote line", ">", ">"},
		{"rule", "a\n\n---\nb", "a\n\n———\nb"},
		{"fence drops language", "```go\nif a < b {\n\t**x**\n}\n```", "```\nif a &lt; b {\n\t**x**\n}\n```"},
		{"tilde fence", "~~~\n``` inside\n~~~", "```\n``` inside\n```"},
		{"unclosed fence", "```\ncode", "```\ncode\n```"},
		{"crlf", "a\r\n**b**", "a\n*b*"},
		{
			"table padded", "| Name | Qty |\n|------|----:|\n| apple | 3 |\n| kiwi | 12 |",
			"```\nName   Qty\napple  3\nkiwi   12\n```",
		},
		{"table cell markup", "|a|b|\n|-|-|\n|**x**|`y`|", "```\na  b\nx  y\n```"},
		{"not a table", "a | b\nc | d", "a | b\nc | d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := toMrkdwn(tt.in); got != tt.want {
				t.Errorf("toMrkdwn(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFromMrkdwn(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"entities", "a &lt; b &amp;&amp; c &gt; d", "a < b && c > d"},
		{"link with label", "see <https://x.io|the site>", "see [the site](https://x.io)"},
		{"bare link", "<https://x.io>", "https://x.io"},
		{"mail", "<mailto:a@b.co|a@b.co>", "a@b.co"},
		{"user", "hi <@U123|bob>", "hi <@U123>"},
		{"channel", "in <#C1|general>", "in #general"},
		{"broadcast", "<!here> look", "@here look"},
		{"subteam", "<!subteam^S1|@devs>", "@devs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fromMrkdwn(tt.in); got != tt.want {
				t.Errorf("fromMrkdwn(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// mrkdwnBound is the longest mrkdwn toMrkdwn may make of md: a tenth more
// than the Markdown plus a constant, besides the entities of &, < and > and
// the percent-encoding of '|' (at most four more characters each).
func mrkdwnBound(md string) int {
	n := utf8.RuneCountInString(md)
	return n + n/10 + 16 + 4*strings.Count(md, "&") + 4*strings.Count(md, "<") +
		4*strings.Count(md, ">") + 4*strings.Count(md, "|")
}

// FuzzMrkdwn checks that any Markdown converts without panicking, within the
// length bound, and that a fenced code block keeps its content.
func FuzzMrkdwn(f *testing.F) {
	f.Add("# Title\n\nSome **bold** and _it_ and [a link](https://x.io).\n- item\n> quote", "fmt.Println(\"hi\")")
	f.Add("|a|b|\n|-|-|\n|1|2|", "a < b && c > d")
	f.Fuzz(func(t *testing.T, md, code string) {
		got := toMrkdwn(md)
		if n, bound := utf8.RuneCountInString(got), mrkdwnBound(md); n > bound {
			t.Fatalf("toMrkdwn(%q) has %d characters, more than the bound %d", md, n, bound)
		}
		// Embed code in a fenced block after md, when neither can open or
		// close a fence by itself.
		if strings.ContainsAny(md+code, "`~\r") {
			return
		}
		in := md + "\n```python\n" + code + "\n```\n"
		want := "```\n" + escape(code) + "\n```"
		if got := toMrkdwn(in); !strings.Contains(got, want) {
			t.Fatalf("toMrkdwn(%q) = %q, lost the code block %q", in, got, want)
		}
	})
}

func BenchmarkToMrkdwn(b *testing.B) {
	md := strings.Repeat("## Heading\n\nSome **bold**, _italic_ and `code` with a [link](https://example.com).\n"+
		"- item one\n- item two\n\n```go\nfunc main() {}\n```\n|a|b|\n|-|-|\n|1|2|\n", 40)
	b.SetBytes(int64(len(md)))
	for b.Loop() {
		toMrkdwn(md)
	}
}
