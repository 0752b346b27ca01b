package slack

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// toMrkdwn converts the Markdown a model writes into Slack's mrkdwn, for
// chat.postMessage and chat.update (native streams take Markdown as is).
//
// Block level: fenced code keeps its content and drops the language line,
// headings become bold lines, list markers become bullets, quotes stay
// quotes, tables become a preformatted block. Inline: bold, italics,
// strikethrough, code spans and links. &, < and > are escaped as Slack
// requires, except in the user and channel mentions Slack would render.
//
// The output is never much longer than the input: apart from the escapes it
// is at most about a tenth longer, so a length limit on Markdown holds for
// the mrkdwn too.
func toMrkdwn(md string) string {
	md = strings.ReplaceAll(md, "\r\n", "\n")
	lines := strings.Split(md, "\n")
	var out []string
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if fence, ok := openFence(line); ok {
			j := i + 1
			for j < len(lines) && !closesFence(lines[j], fence) {
				j++
			}
			out = append(out, "```")
			for _, l := range lines[i+1 : min(j, len(lines))] {
				out = append(out, escape(l))
			}
			out = append(out, "```")
			i = j // the closing fence (or the end)
			continue
		}
		if n := tableLen(lines[i:]); n > 0 {
			out = append(out, table(lines[i:i+n])...)
			i += n - 1
			continue
		}
		if i+1 < len(lines) && isSetextEquals(lines[i+1]) && strings.TrimSpace(line) != "" && !isBlockStart(line) {
			out = append(out, bold(line))
			i++
			continue
		}
		out = append(out, block(line))
	}
	return strings.Join(out, "\n")
}

// fence is an opening code fence: its character and length.
type fence struct {
	char byte
	n    int
}

func openFence(line string) (fence, bool) {
	s := strings.TrimLeft(line, " ")
	if len(line)-len(s) > 3 || len(s) < 3 || (s[0] != '`' && s[0] != '~') {
		return fence{}, false
	}
	n := 0
	for n < len(s) && s[n] == s[0] {
		n++
	}
	// A backtick fence's info string may not hold a backtick.
	if n < 3 || (s[0] == '`' && strings.IndexByte(s[n:], '`') >= 0) {
		return fence{}, false
	}
	return fence{char: s[0], n: n}, true
}

func closesFence(line string, f fence) bool {
	s := strings.TrimLeft(line, " ")
	if len(line)-len(s) > 3 {
		return false
	}
	n := 0
	for n < len(s) && s[n] == f.char {
		n++
	}
	return n >= f.n && strings.TrimSpace(s[n:]) == ""
}

var (
	headingRe  = regexp.MustCompile(`^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$`)
	ruleRe     = regexp.MustCompile(`^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$`)
	bulletRe   = regexp.MustCompile(`^([ \t]*)[-*+][ \t]+(.*)$`)
	taskRe     = regexp.MustCompile(`^\[([ xX])\][ \t]+(.*)$`)
	orderedRe  = regexp.MustCompile(`^([ \t]*)(\d{1,9})([.)])[ \t]+(.*)$`)
	quoteRe    = regexp.MustCompile(`^ {0,3}>+[ \t]?(.*)$`)
	setextEqRe = regexp.MustCompile(`^ {0,3}=+[ \t]*$`)
)

func isSetextEquals(line string) bool { return setextEqRe.MatchString(line) }

// isBlockStart reports whether line opens a block that a setext underline
// cannot turn into a heading.
func isBlockStart(line string) bool {
	return headingRe.MatchString(line) || bulletRe.MatchString(line) ||
		orderedRe.MatchString(line) || quoteRe.MatchString(line) || ruleRe.MatchString(line)
}

// block converts one line outside code and tables.
func block(line string) string {
	if m := headingRe.FindStringSubmatch(line); m != nil {
		return bold(m[2])
	}
	if ruleRe.MatchString(line) {
		return "———"
	}
	if rest, ok := unquote(line); ok {
		if strings.TrimSpace(rest) == "" {
			return ">"
		}
		return "> " + block(rest)
	}
	if m := bulletRe.FindStringSubmatch(line); m != nil {
		if t := taskRe.FindStringSubmatch(m[2]); t != nil {
			box := "☐ "
			if t[1] != " " {
				box = "☑ "
			}
			return m[1] + box + inline(t[2], false)
		}
		return m[1] + "• " + inline(m[2], false)
	}
	if m := orderedRe.FindStringSubmatch(line); m != nil {
		return m[1] + m[2] + ". " + inline(m[4], false)
	}
	return inline(line, false)
}

// unquote strips the quote markers of line, nested ones too: mrkdwn has a
// single quote level.
func unquote(line string) (rest string, ok bool) {
	for {
		s := strings.TrimLeft(line, " ")
		if len(line)-len(s) > 3 || !strings.HasPrefix(s, ">") {
			return line, ok
		}
		line, ok = s[1:], true
		if strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			line = line[1:]
		}
	}
}

// bold renders a heading's text as a bold line; emphasis inside is dropped,
// as mrkdwn cannot nest bold.
func bold(text string) string {
	s := strings.TrimSpace(inline(text, true))
	if s == "" {
		return ""
	}
	return "*" + s + "*"
}

// escape escapes the three characters Slack reserves.
func escape(s string) string {
	if !strings.ContainsAny(s, "&<>") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// mentionRe matches the Slack mentions kept as they are: users and channels.
// Broadcasts (<!here>, <!channel>) are escaped so a model cannot ping a room.
var mentionRe = regexp.MustCompile(`^<(?:@[UW][A-Z0-9]{2,20}|#C[A-Z0-9]{2,20}(?:\|[a-z0-9_-]{1,80})?)>`)

// inline converts a line's inline Markdown. Inside a heading (noBold),
// bold markers are dropped.
func inline(s string, noBold bool) string {
	var b strings.Builder
	// none holds, per delimiter ('*', '_', '~' by run length), the offset
	// from which no closer exists: later openers need not search again.
	var none [3][4]int
	for c := range none {
		for n := range none[c] {
			none[c][n] = len(s) + 1
		}
	}
	i := 0
	for i < len(s) {
		c := s[i]
		switch c {
		case '\\':
			if i+1 < len(s) && isASCIIPunct(s[i+1]) {
				b.WriteString(escape(s[i+1 : i+2]))
				i += 2
				continue
			}
		case '`':
			n := run(s, i, '`')
			if end := strings.Index(s[i+n:], strings.Repeat("`", n)); end >= 0 && run(s, i+n+end, '`') == n {
				code := s[i+n : i+n+end]
				if strings.TrimSpace(code) != "" {
					b.WriteString("`" + escape(code) + "`")
				} else {
					b.WriteString(escape(s[i : i+2*n+end]))
				}
				i += 2*n + end
				continue
			}
			b.WriteString(s[i : i+n])
			i += n
			continue
		case '!', '[':
			start := i
			if c == '!' {
				if i+1 >= len(s) || s[i+1] != '[' {
					break
				}
				start = i + 1
			}
			if text, url, end, ok := link(s, start); ok {
				b.WriteString(renderLink(text, url))
				i = end
				continue
			}
		case '<':
			if m := mentionRe.FindString(s[i:]); m != "" {
				b.WriteString(m)
				i += len(m)
				continue
			}
			if end := strings.IndexByte(s[i:], '>'); end > 0 {
				if u := s[i+1 : i+end]; isURL(u) && !strings.ContainsAny(u, " <") {
					b.WriteString("<" + escapeURL(u) + ">")
					i += end + 1
					continue
				}
			}
		case '*', '_', '~':
			if out, end, ok := emphasis(s, i, noBold, &none); ok {
				b.WriteString(out)
				i = end
				continue
			}
			n := run(s, i, c)
			b.WriteString(s[i : i+n])
			i += n
			continue
		}
		b.WriteString(escape(s[i : i+1]))
		i++
	}
	return b.String()
}

func run(s string, i int, c byte) int {
	n := 0
	for i+n < len(s) && s[i+n] == c {
		n++
	}
	return n
}

// emphasis converts the emphasis opening at s[i], if it closes on this line.
func emphasis(s string, i int, noBold bool, none *[3][4]int) (out string, end int, ok bool) {
	c := s[i]
	n := run(s, i, c)
	if c == '~' && n != 2 || n > 3 {
		return "", 0, false
	}
	// An opener is followed by a non-space; '_' does not open inside a word.
	if i+n >= len(s) || isSpace(s[i+n]) {
		return "", 0, false
	}
	if c == '_' && i > 0 && isWordByte(s[i-1]) {
		return "", 0, false
	}
	no := &none[strings.IndexByte("*_~", c)][n]
	delim := strings.Repeat(string(c), n)
	from := i + n
	if from >= *no {
		return "", 0, false
	}
	for j := from; ; {
		k := strings.Index(s[j:], delim)
		if k < 0 {
			*no = min(*no, from)
			return "", 0, false
		}
		at := j + k
		// A closer follows a non-space, is not longer than the delimiter, and
		// for '_' does not sit inside a word.
		if at > from && !isSpace(s[at-1]) && run(s, at, c) == n &&
			(c != '_' || at+n >= len(s) || !isWordByte(s[at+n])) {
			inner := inline(s[from:at], noBold)
			switch {
			case c == '~':
				return "~" + inner + "~", at + n, true
			case n == 3 && noBold:
				return "_" + inner + "_", at + n, true
			case n == 3:
				return "*_" + inner + "_*", at + n, true
			case n == 2 && noBold:
				return inner, at + n, true
			case n == 2:
				return "*" + inner + "*", at + n, true
			default:
				return "_" + inner + "_", at + n, true
			}
		}
		j = at + run(s, at, c)
	}
}

// maxLinkLen bounds the search for a link's closing bracket and parenthesis,
// so that a line of unclosed brackets converts in linear time.
const maxLinkLen = 2048

// link parses [text](url "title") starting at s[i] == '['.
func link(s string, i int) (text, url string, end int, ok bool) {
	depth := 0
	j := i
	for ; j < len(s) && j-i < maxLinkLen; j++ {
		switch s[j] {
		case '\\':
			j++
			continue
		case '[':
			depth++
		case ']':
			depth--
		}
		if depth == 0 {
			break
		}
	}
	if j >= len(s) || j-i >= maxLinkLen || j+1 >= len(s) || s[j+1] != '(' {
		return "", "", 0, false
	}
	text = s[i+1 : j]
	depth = 0
	k := j + 1
	for ; k < len(s) && k-j < maxLinkLen; k++ {
		if s[k] == '(' {
			depth++
		} else if s[k] == ')' {
			depth--
			if depth == 0 {
				break
			}
		}
	}
	if k >= len(s) || k-j >= maxLinkLen {
		return "", "", 0, false
	}
	dest := strings.TrimSpace(s[j+2 : k])
	if sp := strings.IndexAny(dest, " \t"); sp >= 0 {
		dest = dest[:sp] // drop a title
	}
	dest = strings.TrimSuffix(strings.TrimPrefix(dest, "<"), ">")
	return text, dest, k + 1, true
}

func renderLink(text, url string) string {
	label := strings.TrimSpace(inline(text, false))
	if !isURL(url) {
		if url == "" {
			return label
		}
		return label + " (" + escape(url) + ")"
	}
	u := escapeURL(url)
	if label == "" || label == escape(url) {
		return "<" + u + ">"
	}
	// '>' and '|' would end the label early: escape the first, and a label may
	// hold further '|' after the separator.
	return "<" + u + "|" + label + ">"
}

func isURL(u string) bool {
	l := strings.ToLower(u)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "mailto:")
}

// escapeURL escapes a link target: entities for &, < and >, and a
// percent-encoded '|', which would otherwise end the target.
func escapeURL(u string) string {
	return strings.ReplaceAll(escape(u), "|", "%7C")
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }

func isWordByte(c byte) bool {
	return c == '_' || c >= utf8.RuneSelf || unicode.IsLetter(rune(c)) || unicode.IsDigit(rune(c))
}

func isASCIIPunct(c byte) bool {
	return c < utf8.RuneSelf && unicode.IsPunct(rune(c)) || strings.IndexByte("$+<=>^`|~", c) >= 0
}

// tableLen returns how many lines at the head of lines form a GFM table
// (header, delimiter row, body rows), or 0.
func tableLen(lines []string) int {
	if len(lines) < 2 || !strings.Contains(lines[0], "|") || !isDelimiterRow(lines[1]) {
		return 0
	}
	if len(cells(lines[0])) != len(cells(lines[1])) {
		return 0
	}
	n := 2
	for n < len(lines) && strings.Contains(lines[n], "|") && strings.TrimSpace(lines[n]) != "" {
		if _, ok := openFence(lines[n]); ok {
			break
		}
		n++
	}
	return n
}

var delimCellRe = regexp.MustCompile(`^:?-+:?$`)

func isDelimiterRow(line string) bool {
	if !strings.Contains(line, "-") || strings.Trim(line, " \t|:-") != "" {
		return false
	}
	for _, c := range cells(line) {
		if !delimCellRe.MatchString(c) {
			return false
		}
	}
	return true
}

func cells(line string) []string {
	s := strings.TrimSpace(line)
	s = strings.TrimPrefix(s, "|")
	if strings.HasSuffix(s, "|") && !strings.HasSuffix(s, `\|`) {
		s = s[:len(s)-1]
	}
	var out []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && s[i+1] == '|' {
			cur.WriteByte('|')
			i++
			continue
		}
		if s[i] == '|' {
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
			continue
		}
		cur.WriteByte(s[i])
	}
	return append(out, strings.TrimSpace(cur.String()))
}

// table renders a GFM table as a preformatted block: columns padded when the
// padding keeps the table about as long as its Markdown, else separated by
// " | " or, at the tightest, "|".
func table(lines []string) []string {
	var rows [][]string
	for i, l := range lines {
		if i == 1 {
			continue // the delimiter row
		}
		cs := cells(l)
		for k, c := range cs {
			cs[k] = plainCell(c)
		}
		rows = append(rows, cs)
	}
	budget := 0
	for _, l := range lines {
		budget += utf8.RuneCountInString(l) + 1
	}
	budget += budget/10 + 8
	var widths []int
	for _, r := range rows {
		for k, c := range r {
			if k >= len(widths) {
				widths = append(widths, 0)
			}
			widths[k] = max(widths[k], utf8.RuneCountInString(c))
		}
	}
	render := func(sep string, pad bool) ([]string, int) {
		out := []string{"```"}
		size := 8
		for _, r := range rows {
			var b strings.Builder
			for k, c := range r {
				if k > 0 {
					b.WriteString(sep)
				}
				b.WriteString(c)
				if pad && k < len(r)-1 {
					b.WriteString(strings.Repeat(" ", widths[k]-utf8.RuneCountInString(c)))
				}
			}
			line := strings.TrimRight(b.String(), " ")
			size += utf8.RuneCountInString(line) + 1
			out = append(out, escape(line))
		}
		return append(out, "```"), size
	}
	for _, try := range []struct {
		sep string
		pad bool
	}{{"  ", true}, {" | ", false}} {
		if out, size := render(try.sep, try.pad); size <= budget {
			return out
		}
	}
	out, _ := render("|", false)
	return out
}

// plainCell drops the inline markers a preformatted block would show as is.
func plainCell(c string) string {
	c = strings.ReplaceAll(c, "**", "")
	c = strings.ReplaceAll(c, "__", "")
	c = strings.ReplaceAll(c, "`", "")
	return c
}

// slackLinkRe matches Slack's angle-bracket markup in incoming text.
var slackLinkRe = regexp.MustCompile(`<([^<>|]*)(?:\|([^<>]*))?>`)

// fromMrkdwn turns the mrkdwn of an incoming message into the text a model reads:
// links become Markdown links, channel and broadcast markup their names,
// entities their characters. User mentions stay <@U…> so the model can
// address people.
func fromMrkdwn(s string) string {
	s = slackLinkRe.ReplaceAllStringFunc(s, func(m string) string {
		sub := slackLinkRe.FindStringSubmatch(m)
		target, label := sub[1], sub[2]
		switch {
		case strings.HasPrefix(target, "@"):
			return "<" + target + ">"
		case strings.HasPrefix(target, "#"):
			if label != "" {
				return "#" + label
			}
			return target
		case strings.HasPrefix(target, "!"):
			if label != "" {
				return label
			}
			name, _, _ := strings.Cut(target[1:], "^")
			return "@" + name
		case label == "" || label == target:
			return strings.TrimPrefix(target, "mailto:")
		case strings.HasPrefix(target, "mailto:"):
			return label
		default:
			return "[" + label + "](" + target + ")"
		}
	})
	return unescape(s)
}

func unescape(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
}
