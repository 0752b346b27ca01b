package config

import "strings"

// Problem is what is wrong with one variable (or, with Var empty, with the
// configuration as a whole).
type Problem struct {
	Var string
	Msg string
}

func (p Problem) String() string {
	if p.Var == "" {
		return p.Msg
	}
	return p.Var + ": " + p.Msg
}

// Error is every problem found in a configuration. Its message names the
// variables and what to do, never their values.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("configuration: ")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}
