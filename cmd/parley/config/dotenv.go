package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// ReadDotenv reads the .env file at path. A missing file is no error: it
// returns an empty map.
func ReadDotenv(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	m, err := ParseDotenv(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s:%w", path, err)
	}
	return m, nil
}

// ParseDotenv parses the text of a .env file:
//
//	# a comment
//	KEY=value                 # unquoted; a " #" starts a comment
//	export KEY=value          # the shell's export prefix is allowed
//	KEY='single quoted'       # taken literally
//	KEY="double quoted\n"     # \n \r \t \" \\ and \$ escapes; may span lines
//
// Unlike a shell it expands no $VARIABLES: a value is taken as written, so a
// key or password holding a "$" needs no escaping. A later line for the same
// KEY wins. Errors give the line number and never the value (it may be a
// secret).
func ParseDotenv(text string) (map[string]string, error) {
	text = strings.TrimPrefix(text, "\uFEFF")
	text = strings.ReplaceAll(text, "\r\n", "\n")
	p := dotenvParser{rest: text, line: 1}
	vars := map[string]string{}
	for p.rest != "" {
		key, value, ok, err := p.next()
		if err != nil {
			return nil, err
		}
		if ok {
			vars[key] = value
		}
	}
	return vars, nil
}

type dotenvParser struct {
	rest string
	line int // the line p.rest starts on
}

func (p *dotenvParser) errorf(line int, format string, args ...any) error {
	return fmt.Errorf("%d: "+format, append([]any{line}, args...)...)
}

// takeLine removes and returns the rest of the current line.
func (p *dotenvParser) takeLine() string {
	s, rest, found := strings.Cut(p.rest, "\n")
	p.rest = rest
	if found {
		p.line++
	}
	return s
}

// next parses one assignment; ok is false for a blank or comment line.
func (p *dotenvParser) next() (key, value string, ok bool, err error) {
	line := p.line
	s := strings.TrimLeft(p.rest, " \t")
	if s == "" || s[0] == '\n' || s[0] == '#' {
		p.takeLine()
		return "", "", false, nil
	}
	if rest, found := strings.CutPrefix(s, "export"); found && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
		s = strings.TrimLeft(rest, " \t")
	}
	n := 0
	for n < len(s) && isNameByte(s[n], n == 0) {
		n++
	}
	key, s = s[:n], strings.TrimLeft(s[n:], " \t")
	if key == "" {
		p.takeLine()
		return "", "", false, p.errorf(line, "expected a variable name (letters, digits and _) at the start of the line; write KEY=VALUE")
	}
	if s == "" || s[0] != '=' {
		p.takeLine()
		// The "name" is not quoted: a token pasted alone on a line looks like one.
		return "", "", false, p.errorf(line, "no = after the variable name; write KEY=VALUE")
	}
	v := strings.TrimLeft(s[1:], " \t")
	if len(v) < len(s[1:]) && strings.HasPrefix(v, "#") {
		// KEY= # comment: an empty value.
		p.takeLine()
		return key, "", true, nil
	}
	s = v
	p.rest = s

	if s == "" || (s[0] != '"' && s[0] != '\'') {
		v := p.takeLine()
		// An unquoted value ends at a comment: a # after white space.
		for i := 1; i < len(v); i++ {
			if v[i] == '#' && (v[i-1] == ' ' || v[i-1] == '\t') {
				v = v[:i]
				break
			}
		}
		return key, strings.TrimRight(v, " \t\r"), true, nil
	}

	quote := s[0]
	var b strings.Builder
	i := 1
	for ; i < len(s) && s[i] != quote; i++ {
		c := s[i]
		if c == '\n' {
			p.line++
		}
		if c == '\\' && quote == '"' && i+1 < len(s) {
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '"', '\\', '$', '\'':
				b.WriteByte(s[i])
			case '\n':
				// A backslash at the end of a line continues it.
				p.line++
			default:
				b.WriteByte('\\')
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(c)
	}
	if i >= len(s) {
		p.rest = ""
		return "", "", false, p.errorf(line, "the value of %s opens a %c quote that is never closed", key, quote)
	}
	p.rest = s[i+1:]
	closing := p.line
	after := strings.TrimLeft(p.takeLine(), " \t")
	if after != "" && after[0] != '#' {
		return "", "", false, p.errorf(closing, "unexpected text after the closing quote of %s; put a # before a comment", key)
	}
	return key, b.String(), true, nil
}

func isNameByte(c byte, first bool) bool {
	switch {
	case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		return true
	case '0' <= c && c <= '9':
		return !first
	}
	return false
}
