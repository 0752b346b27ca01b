package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/llm"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxRounds      = 10
	DefaultCallTimeout    = 60 * time.Second
	DefaultMaxResultBytes = 16 << 10
	DefaultMaxTools       = 64
)

// Outcomes of a call, for metrics (Config.OnCall).
const (
	OutcomeOK          = "ok"            // the tool answered
	OutcomeError       = "error"         // the tool answered with an error of its own
	OutcomeFailed      = "failed"        // the call failed (server down, protocol error)
	OutcomeTimeout     = "timeout"       // no answer within CallTimeout
	OutcomeUnknown     = "unknown"       // the model called a tool that is not offered
	OutcomeBadArgs     = "bad_arguments" // the arguments are not a JSON object
	OutcomeNotRun      = "not_run"       // the round limit was reached, or the answer stopped
	OutcomeDenied      = "denied"        // refused where approval is needed
	OutcomeCutToLength = "cut"           // the tool answered, and its result was cut to the limit
)

// ErrRounds means the model kept calling tools past the round limit.
var ErrRounds = errors.New("tools: the model kept calling tools past the round limit")

// ErrNoApprover means approval cannot be asked for where the answer is
// shown; an Approver returns it when its platform has no buttons.
var ErrNoApprover = errors.New("tools: approval cannot be asked for here")

// stateApproval is a call's state while a person is asked to approve it.
const stateApproval = "approval"

// Config configures a Loop. Zero values are documented defaults.
type Config struct {
	Source Source
	// MaxRounds bounds the rounds of calls in one answer; default 10.
	// Calls past it are not run: the model is told to answer with what it
	// has.
	MaxRounds int
	// CallTimeout bounds each call; default 60 s.
	CallTimeout time.Duration
	// MaxResultBytes bounds a result sent to the model; a longer one is cut
	// (on a character boundary) with a note the model reads. Default 16 KiB.
	MaxResultBytes int
	// MaxTools bounds the tools offered in one request; default 64
	// (OpenAI takes at most 128, and each costs prompt tokens).
	MaxTools int
	// OnCall, when set, is called after each call with its server, tool,
	// outcome (one of the Outcome constants) and duration, for metrics.
	OnCall func(server, tool, outcome string, d time.Duration)
	Logger *slog.Logger
}

// Loop runs answers that may call tools. It is safe for concurrent use.
type Loop struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	toolless map[string]time.Time // models that refused a request with tools, until when
	capped   sync.Once            // the warning that MaxTools left tools out
}

// toollessFor is how long a model that refused tools is asked without
// them: a gateway's model may not support function calling at all.
const toollessFor = 10 * time.Minute

// New returns a Loop for cfg.
func New(cfg Config) *Loop {
	if cfg.MaxRounds <= 0 {
		cfg.MaxRounds = DefaultMaxRounds
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.MaxResultBytes <= 0 {
		cfg.MaxResultBytes = DefaultMaxResultBytes
	}
	if cfg.MaxTools <= 0 {
		cfg.MaxTools = DefaultMaxTools
	}
	if cfg.OnCall == nil {
		cfg.OnCall = func(string, string, string, time.Duration) {}
	}
	l := &Loop{cfg: cfg, log: cfg.Logger}
	if l.log == nil {
		l.log = slog.Default()
	}
	return l
}

// Offer returns the tools to offer in one answer: the source's tools that
// allow accepts (nil accepts all), at most Config.MaxTools of them.
func (l *Loop) Offer(allow func(Tool) bool) []Tool {
	if l == nil || l.cfg.Source == nil {
		return nil
	}
	var out []Tool
	for _, t := range l.cfg.Source.Tools() {
		if allow != nil && !allow(t) {
			continue
		}
		if len(out) == l.cfg.MaxTools {
			l.capped.Do(func() {
				l.log.Warn("tools: more tools than are offered at once; the rest are left out (turn servers off per scope with /tools)", "max", l.cfg.MaxTools)
			})
			break
		}
		out = append(out, t)
	}
	return out
}

// Statuser is a Source that reports its servers (Servers is one).
type Statuser interface {
	Status() []ServerStatus
}

// Servers returns the state of the source's servers, or nil when the
// source does not report them.
func (l *Loop) Servers() []ServerStatus {
	if l == nil {
		return nil
	}
	if s, ok := l.cfg.Source.(Statuser); ok {
		return s.Status()
	}
	return nil
}

// Model streams completions; *llm.Client is one.
type Model interface {
	Stream(ctx context.Context, req llm.Request) (*llm.Stream, error)
}

// Output receives what people see of an answer while it is written.
type Output interface {
	// Text is the answer so far, whole: it only grows. The first call
	// comes with the model's first text.
	Text(text string)
	// Status is a short line saying which tools run, and which finished
	// or failed; it stands in for the answer until text comes.
	Status(line string)
}

// Answer is the outcome of Loop.Answer.
type Answer struct {
	// Text is the whole answer as shown: the text of each round, a blank
	// line apart (see Join).
	Text string
	// Rounds are the rounds that called tools, with their results, in
	// order: what the conversation stores.
	Rounds []conversation.ToolRound
	Usage  *llm.Usage // summed over the rounds; nil when none was reported
	Finish string     // the last round's finish reason
}

// Join appends a round's text to the answer so far, a blank line apart.
func Join(answer, round string) string {
	if answer == "" {
		return round
	}
	if round == "" {
		return answer
	}
	return answer + "\n\n" + round
}

// Answer streams req's answer, offering tools; when the model calls them
// it runs them (in parallel), sends their results back and streams on,
// until the model answers without calls. The error is the stream's (the
// answer is then what came before it) or ErrRounds.
func (l *Loop) Answer(ctx context.Context, m Model, req llm.Request, offered []Tool, out Output) (Answer, error) {
	if l.refusedTools(req.Model) {
		offered = nil
	}
	ans, err := l.answer(ctx, m, req, offered, out)
	if len(offered) > 0 && errors.Is(err, llm.ErrBadRequest) && ans.Text == "" && len(ans.Rounds) == 0 {
		// The request was refused before any answer: most often a model
		// without function calling. Ask again without tools, and keep
		// asking this model without them for a while.
		l.log.Info("tools: the model refused a request with tools; asking without them", "model", req.Model, "for", toollessFor, "err", err)
		l.mu.Lock()
		if l.toolless == nil {
			l.toolless = make(map[string]time.Time)
		}
		l.toolless[req.Model] = time.Now().Add(toollessFor)
		l.mu.Unlock()
		return l.answer(ctx, m, req, nil, out)
	}
	return ans, err
}

// refusedTools reports whether model refused tools lately.
func (l *Loop) refusedTools(model string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	until, ok := l.toolless[model]
	if ok && time.Now().After(until) {
		delete(l.toolless, model)
		return false
	}
	return ok
}

func (l *Loop) answer(ctx context.Context, m Model, req llm.Request, offered []Tool, out Output) (Answer, error) {
	var ans Answer
	byName := make(map[string]Tool, len(offered))
	req.Tools = nil
	for _, t := range offered {
		byName[t.Name] = t
		req.Tools = append(req.Tools, llm.Tool{Name: t.Name, Description: t.Description, Parameters: t.Schema})
	}
	req.Messages = append([]llm.Message(nil), req.Messages...)
	for round := 0; ; round++ {
		text, calls, usage, finish, err := l.receive(ctx, m, req, ans.Text, out)
		ans.Finish = finish
		if usage != nil {
			if ans.Usage == nil {
				ans.Usage = &llm.Usage{}
			}
			ans.Usage.PromptTokens += usage.PromptTokens
			ans.Usage.CompletionTokens += usage.CompletionTokens
		}
		if err != nil || len(calls) == 0 || finish == llm.FinishLength {
			// A call cut by the length limit has cut arguments: the
			// answer ends there, and says so.
			ans.Text = Join(ans.Text, text)
			return ans, err
		}
		if round > l.cfg.MaxRounds {
			ans.Text = Join(ans.Text, text)
			return ans, ErrRounds
		}
		done := l.run(ctx, calls, byName, round == l.cfg.MaxRounds, out)
		if ctx.Err() != nil {
			ans.Text = Join(ans.Text, text)
			return ans, context.Cause(ctx)
		}
		ans.Text = Join(ans.Text, text)
		ans.Rounds = append(ans.Rounds, conversation.ToolRound{Text: text, Calls: done})
		req.Messages = append(req.Messages, Replay(conversation.ToolRound{Text: text, Calls: done})...)
	}
}

// receive streams one round: its text (shown after the answer so far), its
// calls, usage and finish reason.
func (l *Loop) receive(ctx context.Context, m Model, req llm.Request, before string, out Output) (string, []llm.ToolCall, *llm.Usage, string, error) {
	s, err := m.Stream(ctx, req)
	if err != nil {
		return "", nil, nil, "", err
	}
	defer s.Close()
	var text strings.Builder
	var calls llm.Calls
	var usage *llm.Usage
	var finish string
	for {
		d, err := s.Recv()
		if err == io.EOF {
			return text.String(), calls.Calls(), usage, finish, nil
		}
		if err != nil {
			return text.String(), nil, usage, finish, err
		}
		if d.Usage != nil {
			usage = d.Usage
		}
		if d.FinishReason != "" {
			finish = d.FinishReason
		}
		calls.Add(d.ToolCalls)
		if d.Text != "" {
			text.WriteString(d.Text)
			out.Text(Join(before, text.String()))
		}
	}
}

// run makes one round's calls at once and returns them with their
// results, in the model's order. When last is set the round limit is
// reached: nothing runs, and each call's result says so.
func (l *Loop) run(ctx context.Context, calls []llm.ToolCall, byName map[string]Tool, last bool, out Output) []conversation.ToolCall {
	done := make([]conversation.ToolCall, len(calls))
	st := &status{out: out, names: make([]string, len(calls)), state: make([]string, len(calls))}
	for i, c := range calls {
		done[i] = conversation.ToolCall{ID: c.ID, Name: c.Name, Arguments: c.Arguments}
		st.names[i] = c.Name
		if t, ok := byName[c.Name]; ok {
			st.names[i] = t.Display()
		}
	}
	if last {
		for i := range done {
			done[i].Result = fmt.Sprintf("Not run: this answer reached its limit of %d rounds of tool calls. Answer with what you have.", l.cfg.MaxRounds)
			done[i].Error = true
			l.cfg.OnCall(serverOf(byName, calls[i].Name), toolOf(byName, calls[i].Name), OutcomeNotRun, 0)
		}
		return done
	}
	st.show()
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			res, outcome := l.call(ctx, calls[i], byName, out, func() { st.set(i, stateApproval) })
			done[i].Result, done[i].Error = res.Text, res.Error
			st.set(i, outcome)
		})
	}
	wg.Wait()
	return done
}

func serverOf(byName map[string]Tool, name string) string {
	if t, ok := byName[name]; ok {
		return t.Server
	}
	return "unknown"
}

func toolOf(byName map[string]Tool, name string) string {
	if t, ok := byName[name]; ok {
		return t.Remote
	}
	return "unknown"
}

// call runs one call and returns its result for the model and its outcome.
func (l *Loop) call(ctx context.Context, c llm.ToolCall, byName map[string]Tool, out Output, asking func()) (Result, string) {
	t, ok := byName[c.Name]
	if !ok {
		l.cfg.OnCall("unknown", "unknown", OutcomeUnknown, 0)
		return Result{Text: fmt.Sprintf("Error: there is no tool %q here; call only the tools offered.", clip(c.Name, 80)), Error: true}, OutcomeUnknown
	}
	args := json.RawMessage(strings.TrimSpace(c.Arguments))
	if len(args) == 0 {
		args = json.RawMessage("{}")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(args, &obj); err != nil || obj == nil {
		l.cfg.OnCall(t.Server, t.Remote, OutcomeBadArgs, 0)
		return Result{Text: "Error: the arguments are not a JSON object; call again with a JSON object that follows the tool's schema.", Error: true}, OutcomeBadArgs
	}
	if t.Approval {
		// Asked before the call's own time starts.
		ok, err := false, ErrNoApprover
		if a, can := out.(Approver); can {
			asking()
			ok, err = a.Approve(ctx, t, c.Arguments)
		}
		switch {
		case ctx.Err() != nil:
			l.cfg.OnCall(t.Server, t.Remote, OutcomeNotRun, 0)
			return Result{Text: "Error: the answer was stopped before the call was approved.", Error: true}, OutcomeNotRun
		case errors.Is(err, ErrNoApprover):
			l.cfg.OnCall(t.Server, t.Remote, OutcomeDenied, 0)
			return Result{Text: "Error: this tool needs a person's approval for each call, and approval cannot be asked for here. Tell the user.", Error: true}, OutcomeDenied
		case !ok:
			if err != nil {
				l.log.Warn("tool approval", "server", t.Server, "tool", t.Remote, "err", err)
			}
			l.cfg.OnCall(t.Server, t.Remote, OutcomeDenied, 0)
			return Result{Text: "Error: the call was not approved (denied, or no answer in time). Do not call it again unless the user asks.", Error: true}, OutcomeDenied
		}
	}
	cctx, cancel := context.WithTimeout(ctx, l.cfg.CallTimeout)
	defer cancel()
	start := time.Now()
	res, err := l.cfg.Source.Call(cctx, t, args)
	d := time.Since(start)
	outcome := OutcomeOK
	switch {
	case err != nil && ctx.Err() != nil:
		outcome, res = OutcomeNotRun, Result{Text: "Error: the answer was stopped before the tool finished.", Error: true}
	case err != nil && cctx.Err() != nil:
		outcome, res = OutcomeTimeout, Result{Text: fmt.Sprintf("Error: the tool did not answer within %s.", l.cfg.CallTimeout), Error: true}
	case err != nil:
		outcome, res = OutcomeFailed, Result{Text: "Error: " + clip(err.Error(), 500), Error: true}
		l.log.Warn("tool call failed", "server", t.Server, "tool", t.Remote, "err", err)
	case res.Error:
		outcome = OutcomeError
		res.Text = "Error: " + res.Text
	}
	text, cut := l.limit(res.Text)
	res.Text = text
	if cut && outcome == OutcomeOK {
		outcome = OutcomeCutToLength
	}
	l.cfg.OnCall(t.Server, t.Remote, outcome, d)
	return res, outcome
}

// limit cleans a result (untrusted text: valid UTF-8, no NUL) and cuts it
// to MaxResultBytes on a character boundary, with a note for the model.
func (l *Loop) limit(s string) (string, bool) {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "")
	if len(s) <= l.cfg.MaxResultBytes {
		return s, false
	}
	n := l.cfg.MaxResultBytes
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + fmt.Sprintf("\n\n[Parley cut this result at %d of its %d bytes. If you need the rest, ask the tool for less at a time.]", n, len(s)), true
}

// clip shortens s to at most n bytes on a character boundary.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// status is the status line of one round of calls.
type status struct {
	out   Output
	mu    sync.Mutex
	names []string
	state []string // "" running, else an outcome
}

func (s *status) set(i int, outcome string) {
	s.mu.Lock()
	s.state[i] = outcome
	s.mu.Unlock()
	s.show()
}

// show sends the line: "🔧 `a.x` ✓ · `b.y` …" (running …, done ✓,
// failed ✗, ⏳ while a person is asked to approve it).
func (s *status) show() {
	s.mu.Lock()
	parts := make([]string, len(s.names))
	for i, n := range s.names {
		mark := "…"
		switch s.state[i] {
		case "":
		case stateApproval:
			mark = "⏳ awaiting approval"
		case OutcomeOK, OutcomeCutToLength:
			mark = "✓"
		default:
			mark = "✗"
		}
		parts[i] = "`" + clip(n, 80) + "` " + mark
	}
	line := "🔧 " + strings.Join(parts, " · ")
	s.mu.Unlock()
	s.out.Status(line)
}

// Replay returns a stored round as the messages the model sent and read:
// the assistant's text and calls, then one tool message per call.
func Replay(r conversation.ToolRound) []llm.Message {
	a := llm.Message{Role: llm.RoleAssistant, Content: r.Text}
	msgs := make([]llm.Message, 0, 1+len(r.Calls))
	for _, c := range r.Calls {
		a.ToolCalls = append(a.ToolCalls, llm.ToolCall{ID: c.ID, Name: c.Name, Arguments: c.Arguments})
	}
	msgs = append(msgs, a)
	for _, c := range r.Calls {
		msgs = append(msgs, llm.Message{Role: llm.RoleTool, ToolCallID: c.ID, Content: c.Result})
	}
	return msgs
}

// History returns a stored answer as the model saw it: each round
// (Replay), then the final text. Text is the whole answer (Join of the
// rounds' texts and the final text).
func History(text string, rounds []conversation.ToolRound) []llm.Message {
	var msgs []llm.Message
	final := text
	for _, r := range rounds {
		msgs = append(msgs, Replay(r)...)
		if r.Text != "" && strings.HasPrefix(final, r.Text) {
			final = strings.TrimPrefix(strings.TrimPrefix(final, r.Text), "\n\n")
		}
	}
	return append(msgs, llm.Message{Role: llm.RoleAssistant, Content: final})
}
