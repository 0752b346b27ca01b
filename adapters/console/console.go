// Package console is a chat platform in the terminal: `parley console` talks
// to the engine through standard input and output, with the same store and
// LLM settings as the bot, for trying Parley without Slack or Discord.
//
// Each line read is a direct message; a line starting with "/" is a
// command (/exit and /quit end the console, as the end of input does). The
// answer streams to the output as it arrives, and the next line is read
// only when it is finished, so piped input is answered line by line, in
// order. On a terminal, an interrupt (Ctrl-C) stops the answer being
// written, and one while none is quits. It is not a chat client for
// several people.
package console

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/parleyhq/parley/bots"
)

// Names the engine stores console conversations under.
const (
	Name      = "console"
	Workspace = "local"
	Channel   = "console"
)

// Engine is what the console needs of bots.Engine.
type Engine interface {
	Handle(ctx context.Context, p bots.Platform, in bots.Incoming) error
	Command(ctx context.Context, p bots.Platform, cmd bots.Command) bots.CommandReply
	Reacted(p bots.Platform, workspace, channel, messageID, user, emoji string)
}

// Config configures a Terminal. Zero values are documented defaults.
type Config struct {
	In  io.Reader // lines to send; required
	Out io.Writer // where answers are written; required
	// User is the author of the lines, as stored; default "you".
	User string
	// Interactive says that In and Out are a terminal: a prompt is shown
	// before each line, progress is shown while the answer has not begun,
	// and a placeholder is replaced in place rather than followed by the
	// answer on a new line.
	Interactive bool
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Interrupt delivers the terminal's Ctrl-C (os.Interrupt): the first
	// stops the answer being written, as a stop reaction does; one while
	// no answer is being written ends Run. Nil: interrupts are not
	// handled here.
	Interrupt <-chan os.Signal
	// Greeting, Markdown, is shown on a terminal before the first prompt.
	Greeting string
	// StopEmoji is a reaction the engine takes as "stop"
	// (PARLEY_STOP_EMOJI); default "octagonal_sign", the default's first.
	StopEmoji string
}

// help is /help on the console: the engine's help speaks of channels,
// mentions and reactions, which a terminal has not.
const help = `Each line you type is a message to the model; the answer streams here.
  /model [NAME]     show the model, or answer with NAME from now on (/model clear: the default)
  /models [FILTER]  list the models you may choose
  /system [PROMPT]  show or set the system prompt (/system clear removes it)
  /reset            forget this conversation
  /usage            the tokens you used today and in the last 30 days
  /help             this help
  /exit, /quit      leave (Ctrl-D too)
Ctrl-C stops the answer being written; Ctrl-C again leaves.`

// errQuit ends Run without an error: /exit, or Ctrl-C with no answer to stop.
var errQuit = errors.New("console: quit")

// Terminal is the console platform. Create it with New and run it with Run.
type Terminal struct {
	cfg Config

	mu     sync.Mutex
	run    string // this run's prefix of message ids
	seq    int
	msgs   map[string]*message
	last   string // the message written last
	col0   bool   // the output is at the start of a line
	status bool   // a progress line is on screen
	turn   *turn  // the question being answered
	// approval is the tool call waiting for a y or n, if any; asking
	// wakes the answer being waited for when one is asked.
	approval string
	asking   chan struct{}
}

// message is one message of the bot.
type message struct {
	printed string // the text on screen
	held    bool   // posted but not printed yet (piped output)
}

// turn is a question waiting for its answer to finish.
type turn struct {
	id   string // the question's message id
	done chan struct{}
}

var _ bots.Platform = (*Terminal)(nil)

// New returns a Terminal.
func New(cfg Config) *Terminal {
	if cfg.User == "" {
		cfg.User = "you"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StopEmoji == "" {
		cfg.StopEmoji = "octagonal_sign"
	}
	// Message ids must not repeat across runs on one database: the store
	// takes a known id for a duplicate delivery and the engine ignores it.
	run := strconv.FormatInt(cfg.Now().UnixNano(), 36)
	return &Terminal{cfg: cfg, run: run, msgs: map[string]*message{}, col0: true, asking: make(chan struct{}, 1)}
}

// Name returns "console".
func (t *Terminal) Name() string { return Name }

// Limits are those of a terminal: one message holds any answer, and
// nothing is paced. FinalEdit is set because the final edit is how the
// console learns that an answer is finished.
func (t *Terminal) Limits(bots.Destination) bots.Limits {
	return bots.Limits{MaxChars: 1 << 30, FinalEdit: true}
}

// Run reads lines from In and has e answer each, one at a time, until the
// end of In or ctx ends.
//
// A read of a terminal's standard input cannot be interrupted: when ctx
// ends during one, Run closes In (when it is an io.Closer) and returns; the
// reading goroutine ends with that read, or with the process.
func (t *Terminal) Run(ctx context.Context, e Engine) error {
	lines := make(chan string)
	readErr := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		defer close(lines)
		r := bufio.NewReader(t.cfg.In)
		for {
			s, err := r.ReadString('\n')
			if s != "" {
				select {
				case lines <- s:
				case <-stop:
					return
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					readErr <- err
				}
				return
			}
		}
	}()
	defer func() {
		close(stop)
		if c, ok := t.cfg.In.(io.Closer); ok && ctx.Err() != nil {
			c.Close()
		}
	}()

	if t.cfg.Interactive && t.cfg.Greeting != "" {
		t.printBlock(render(t.cfg.Greeting, true))
	}
	for {
		t.prompt()
		var line string
		var ok bool
		select {
		case line, ok = <-lines:
		case <-t.cfg.Interrupt:
			t.endLine()
			return nil
		case <-ctx.Done():
			return nil
		}
		if !ok {
			t.endLine()
			select {
			case err := <-readErr:
				return fmt.Errorf("console: read input: %w", err)
			default:
				return nil
			}
		}
		line = strings.TrimRight(line, "\r\n")
		text := strings.TrimSpace(line)
		switch {
		case text == "":
			continue
		case strings.HasPrefix(text, "/"):
			name, args, _ := strings.Cut(text[1:], " ")
			name = strings.ToLower(name)
			switch name {
			case "exit", "quit":
				return nil
			case "help":
				t.printBlock(help)
				continue
			}
			reply := e.Command(ctx, t, bots.Command{
				Workspace: Workspace, Channel: Channel, User: t.cfg.User, DM: true,
				Name: name, Args: strings.TrimSpace(args),
			})
			t.printBlock(render(reply.Text, t.cfg.Interactive))
			continue
		}
		if err := t.ask(ctx, e, line, lines); errors.Is(err, errQuit) {
			t.endLine()
			return nil
		} else if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// ask sends one line and waits until its answer is finished. While a
// tool call waits for approval, the next line of lines answers it.
func (t *Terminal) ask(ctx context.Context, e Engine, line string, lines <-chan string) error {
	t.mu.Lock()
	t.seq++
	tr := &turn{id: t.run + "-q" + strconv.Itoa(t.seq), done: make(chan struct{})}
	t.turn = tr
	t.mu.Unlock()
	err := e.Handle(ctx, t, bots.Incoming{
		Workspace: Workspace, Channel: Channel, MessageID: tr.id,
		Author: t.cfg.User, AuthorName: t.cfg.User, DM: true,
		Text: line, Time: t.cfg.Now(),
	})
	if err != nil {
		t.mu.Lock()
		t.turn = nil
		t.mu.Unlock()
		if ctx.Err() != nil {
			return nil // the engine stopped with ctx
		}
		return fmt.Errorf("console: %w", err)
	}
	stopped := false
	for {
		var answer <-chan string
		id := t.pendingApproval()
		if id != "" {
			answer = lines
		}
		select {
		case l, ok := <-answer:
			if !ok {
				l = "" // input ended: denied
			}
			t.answerApproval(ctx, e, id, l)
			if !ok {
				lines = nil
			}
		case <-t.asking:
		case <-tr.done:
			return nil
		case <-t.cfg.Interrupt:
			if stopped {
				return errQuit
			}
			// Stop it as its asker's stop reaction would: the engine
			// ends the reply with what was written and a note.
			stopped = true
			e.Reacted(t, Workspace, Channel, tr.id, t.cfg.User, t.cfg.StopEmoji)
		case <-ctx.Done():
			return nil
		}
	}
}

// Post writes a new message. When the output is not a terminal, the text
// is held until the message's next edit: a placeholder ("Queued…") is then
// replaced without ever being written, so that piped output holds answers
// only. The engine always ends a message with an edit (FinalEdit).
func (t *Terminal) Post(ctx context.Context, dest bots.Destination, text string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	id := t.run + "-r" + strconv.Itoa(t.seq)
	if !t.cfg.Interactive {
		t.msgs[id] = &message{held: true}
		return id, nil
	}
	t.msgs[id] = &message{printed: text}
	return id, t.startLocked(id, text)
}

// startLocked writes the text of message id on a line of its own.
func (t *Terminal) startLocked(id, text string) error {
	t.clearStatusLocked()
	if !t.col0 {
		t.writeLocked("\n")
	}
	t.last = id
	return t.writeLocked(text)
}

// Edit shows the new text of message id: when it extends what is on
// screen, only the new part; otherwise the lines from the first change on.
// The final edit of the answer being waited for ends its turn.
func (t *Terminal) Edit(ctx context.Context, dest bots.Destination, id, text string, final bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.msgs[id]
	if !ok {
		return bots.ErrGone
	}
	t.clearStatusLocked()
	old := m.printed
	m.printed = text
	var err error
	switch {
	case m.held:
		m.held = false
		err = t.startLocked(id, text)
	case id == t.last && strings.HasPrefix(text, old):
		err = t.writeLocked(text[len(old):])
	default:
		err = t.rewriteLocked(id, old, text)
	}
	t.last = id
	if final && t.turn != nil && dest.ReplyTo == t.turn.id {
		if !t.col0 {
			t.writeLocked("\n")
		}
		close(t.turn.done)
		t.turn = nil
	}
	return err
}

// rewriteLocked shows a text that does not extend the one on screen (a
// placeholder replaced by the answer). On a terminal a changed last line is
// rewritten in place; otherwise the changed lines follow on a new line.
func (t *Terminal) rewriteLocked(id, old, text string) error {
	cp := commonPrefix(old, text)
	ls := strings.LastIndexByte(text[:cp], '\n') + 1 // start of the changed line
	if t.cfg.Interactive && id == t.last && !strings.Contains(old[ls:], "\n") && utf8.RuneCountInString(old[ls:]) < 80 {
		// \r and "erase line" redo the one line that changed. Longer
		// lines may have wrapped, which \r cannot undo.
		return t.writeLocked("\r\x1b[K" + text[ls:])
	}
	if !t.col0 {
		t.writeLocked("\n")
	}
	return t.writeLocked(text[ls:])
}

// Delete forgets message id; what was written stays on screen.
func (t *Terminal) Delete(ctx context.Context, dest bots.Destination, id string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.msgs[id]; !ok {
		return bots.ErrGone
	}
	delete(t.msgs, id)
	return nil
}

// Progress shows status ("is thinking…") on a terminal until the answer
// begins; it shows nothing when the output is not a terminal.
func (t *Terminal) Progress(ctx context.Context, dest bots.Destination, status string) error {
	if !t.cfg.Interactive {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clearStatusLocked()
	if status == "" || !t.col0 {
		return nil
	}
	t.status = true
	// Dim, and not ended by a newline: the next write erases it.
	return t.writeLocked("\x1b[2mparley " + status + "\x1b[0m")
}

func (t *Terminal) clearStatusLocked() {
	if t.status {
		t.status = false
		t.writeLocked("\r\x1b[K")
		t.col0 = true
	}
}

// prompt shows "> " before a line is read from a terminal.
func (t *Terminal) prompt() {
	if !t.cfg.Interactive {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.col0 {
		t.writeLocked("\n")
	}
	t.writeLocked("> ")
	t.col0 = true // the user's Enter ends the line
}

// endLine ends the output with a newline (on a terminal, the prompt's
// line, ended by ^D rather than Enter).
func (t *Terminal) endLine() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.col0 || t.cfg.Interactive {
		t.writeLocked("\n")
	}
}

// printBlock writes a command's reply on lines of its own.
func (t *Terminal) printBlock(text string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clearStatusLocked()
	if !t.col0 {
		t.writeLocked("\n")
	}
	if text != "" {
		t.writeLocked(strings.TrimRight(text, "\n") + "\n")
	}
}

func (t *Terminal) writeLocked(s string) error {
	if s == "" {
		return nil
	}
	t.col0 = strings.HasSuffix(s, "\n")
	if _, err := io.WriteString(t.cfg.Out, s); err != nil {
		return fmt.Errorf("console: write: %w", err)
	}
	return nil
}

// commonPrefix returns the length of the longest common prefix of a and b
// that ends on a rune boundary.
func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	for i > 0 && i < len(b) && !utf8.RuneStart(b[i]) {
		i--
	}
	return i
}

// render turns the engine's Markdown (command answers) into terminal text:
// **bold** in bold and `code` in cyan when ansi is set, the marks dropped
// when it is not.
func render(md string, ansi bool) string {
	var b strings.Builder
	bold, code := false, false
	for i := 0; i < len(md); i++ {
		switch {
		case !code && strings.HasPrefix(md[i:], "**"):
			bold = !bold
			i++
			if ansi {
				b.WriteString(map[bool]string{true: "\x1b[1m", false: "\x1b[22m"}[bold])
			}
		case md[i] == '`':
			code = !code
			if ansi {
				b.WriteString(map[bool]string{true: "\x1b[36m", false: "\x1b[39m"}[code])
			}
		default:
			b.WriteByte(md[i])
		}
	}
	if ansi && (bold || code) {
		b.WriteString("\x1b[0m")
	}
	return b.String()
}
