package llm

import (
	"fmt"
	"strings"
)

// maxToolCalls bounds the calls assembled from one answer: a model (or an
// endpoint) that streams indexes without end gets no unbounded memory.
const maxToolCalls = 128

// Calls assembles the function calls of one streamed answer from its
// ToolCallDeltas. The zero value is ready; feed it every delta's ToolCalls
// in order with Add, then read the whole calls with Calls.
//
// Endpoints differ in how they stream calls, and Calls copes with each:
// OpenAI sends a call's id and name once, on its first piece, then the
// arguments in pieces; some gateways repeat the id and name on every
// piece (a repeat is not appended again), split them too (a piece that
// differs is appended, as long as no argument has arrived), interleave the
// pieces of several calls, or reuse index 0 for every call of the answer (a
// new id after the arguments have started is a new call).
type Calls struct {
	calls []*ToolCall
	byIdx map[int]int // index -> position in calls of its newest call
	args  []bool      // per call: arguments have started
}

// Add takes the pieces of one delta.
func (c *Calls) Add(pieces []ToolCallDelta) {
	for _, d := range pieces {
		if c.byIdx == nil {
			c.byIdx = make(map[int]int)
		}
		pos, ok := c.byIdx[d.Index]
		if ok && d.ID != "" && c.args[pos] && d.ID != c.calls[pos].ID {
			ok = false // index reused for the next call
		}
		if !ok {
			if len(c.calls) >= maxToolCalls {
				continue
			}
			pos = len(c.calls)
			c.calls = append(c.calls, &ToolCall{})
			c.args = append(c.args, false)
			c.byIdx[d.Index] = pos
		}
		tc := c.calls[pos]
		tc.ID = merge(tc.ID, d.ID, c.args[pos])
		tc.Name = merge(tc.Name, d.Name, c.args[pos])
		if d.Arguments != "" {
			tc.Arguments += d.Arguments
			c.args[pos] = true
		}
	}
}

// merge joins a streamed id or name: the first piece sets it, a repeat of
// the whole is ignored, and another piece before the arguments extends it.
func merge(have, piece string, argsStarted bool) string {
	switch {
	case piece == "" || piece == have:
		return have
	case have == "":
		return piece
	case strings.HasPrefix(piece, have):
		return piece // cumulative: the whole so far
	case argsStarted:
		return have
	}
	return have + piece
}

// Len is the number of calls so far.
func (c *Calls) Len() int { return len(c.calls) }

// Calls returns the assembled calls in the order their first piece came.
// A call without an id gets "call_<n>" (some local servers send none),
// and empty arguments become "{}", which every endpoint accepts back.
func (c *Calls) Calls() []ToolCall {
	out := make([]ToolCall, 0, len(c.calls))
	seen := make(map[string]bool, len(c.calls))
	for i, tc := range c.calls {
		call := *tc
		if call.ID == "" || seen[call.ID] {
			call.ID = fmt.Sprintf("call_%d", i)
		}
		seen[call.ID] = true
		if strings.TrimSpace(call.Arguments) == "" {
			call.Arguments = "{}"
		}
		out = append(out, call)
	}
	return out
}
