package bots

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// fence is the state of a fenced code block at some point of a text:
// open reports whether the point is inside a block, marker is the fence
// ("```" or "~~~", possibly longer) and info its language line.
type fence struct {
	open   bool
	marker string
	info   string
}

// reopen is the text that reopens the block at the start of a new message.
func (f fence) reopen() string {
	if !f.open {
		return ""
	}
	return f.marker + f.info + "\n"
}

// close is the text that closes the block at the end of a message.
func (f fence) close(text string) string {
	if !f.open {
		return ""
	}
	if strings.HasSuffix(text, "\n") || text == "" {
		return f.marker
	}
	return "\n" + f.marker
}

// scanFences returns the fence state after text, starting from state st.
// A fence line is a line whose first non-space characters (at most three
// spaces) are three or more backticks or tildes; it closes an open block
// when it uses the same character, is at least as long and carries no info.
func scanFences(st fence, text string) fence {
	for len(text) > 0 {
		line := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		st = fenceLine(st, line)
	}
	return st
}

func fenceLine(st fence, line string) fence {
	trimmed := strings.TrimLeft(line, " ")
	if len(line)-len(trimmed) > 3 || len(trimmed) < 3 {
		return st
	}
	c := trimmed[0]
	if c != '`' && c != '~' {
		return st
	}
	n := 0
	for n < len(trimmed) && trimmed[n] == c {
		n++
	}
	if n < 3 {
		return st
	}
	rest := strings.TrimSpace(trimmed[n:])
	if st.open {
		if c == st.marker[0] && n >= len(st.marker) && rest == "" {
			return fence{}
		}
		return st
	}
	if c == '`' && strings.ContainsRune(rest, '`') {
		return st // not a fence: an info string may not hold a backtick
	}
	// Only the language word is carried over to a reopened block.
	if i := strings.IndexFunc(rest, unicode.IsSpace); i >= 0 {
		rest = rest[:i]
	}
	if len(rest) > 32 {
		rest = ""
	}
	return fence{open: true, marker: trimmed[:n], info: rest}
}

// partBudget is how many runes of answer text fit in a part that starts in
// state st and may have to close a block, within max runes.
func partBudget(st fence, max int) int {
	// Keep room for a closing fence in case the cut lands inside a block:
	// a newline and a marker as long as any we may meet.
	return max - utf8.RuneCountInString(st.reopen()) - 1 - maxMarker(st)
}

func maxMarker(st fence) int {
	if st.open && len(st.marker) > 7 {
		return len(st.marker)
	}
	return 7
}

// cut chooses where a part that must hold at most budget runes of text ends:
// at the last paragraph break, else line break, else sentence end, else
// space, inside the budget; never inside a word unless the text has no
// boundary at all. It returns a byte offset into text, at least 1.
func cut(text string, budget int) int {
	if budget < 1 {
		budget = 1
	}
	// The byte offset of the budget-th rune.
	limit := len(text)
	n := 0
	for i := range text {
		if n == budget {
			limit = i
			break
		}
		n++
	}
	if limit >= len(text) {
		return len(text)
	}
	window := text[:limit]
	// Don't cut so early that the part is mostly empty: a boundary must
	// leave at least a third of the budget in the part, else a weaker kind
	// of boundary is tried.
	min := len(window) / 3
	if i := strings.LastIndex(window, "\n\n"); i >= min && i > 0 {
		return i + 2
	}
	if i := strings.LastIndexByte(window, '\n'); i >= min && i > 0 {
		return i + 1
	}
	if i := lastSentenceEnd(window); i >= min && i > 0 {
		return i
	}
	if i := lastSpace(window); i > 0 {
		return i
	}
	// One word longer than the budget: cut at a rune boundary.
	return len(window)
}

// lastSentenceEnd returns the offset just after the last ". ", "! " or "? "
// (the space stays with the part) in s, or -1.
func lastSentenceEnd(s string) int {
	for i := len(s) - 2; i > 0; i-- {
		if (s[i] == '.' || s[i] == '!' || s[i] == '?') && (s[i+1] == ' ' || s[i+1] == '\n') {
			return i + 2
		}
	}
	return -1
}

// lastSpace returns the offset just after the last white space in s that
// follows a non-space character, or -1.
func lastSpace(s string) int {
	for i := len(s); i > 0; {
		r, size := utf8.DecodeLastRuneInString(s[:i])
		if unicode.IsSpace(r) && i-size > 0 {
			return i
		}
		i -= size
	}
	return -1
}

// Part is one message's worth of an answer.
type Part struct {
	Text string // what the message shows: reopened fence + body + closing fence
	Body string // the slice of the answer it holds
}

// Split splits text into messages of at most max runes each, at natural
// boundaries, closing and reopening fenced code blocks across parts. The
// parts' bodies concatenate to text.
func Split(text string, max int) []Part {
	var parts []Part
	st := fence{}
	for {
		p, rest, next := splitOne(st, text, max)
		parts = append(parts, p)
		if rest == "" {
			return parts
		}
		text, st = rest, next
	}
}

// splitOne takes the first part off text, which starts in fence state st.
// When text fits whole it returns it with rest "".
func splitOne(st fence, text string, max int) (p Part, rest string, next fence) {
	if utf8.RuneCountInString(st.reopen())+utf8.RuneCountInString(text) <= max {
		return Part{Text: st.reopen() + text, Body: text}, "", scanFences(st, text)
	}
	i := cut(text, partBudget(st, max))
	body := text[:i]
	end := scanFences(st, body)
	return Part{Text: st.reopen() + body + end.close(body), Body: body}, text[i:], end
}
