package main

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/parleyhq/parley/llm/llmtest"
)

// terminal is `parley console` run as a process on a pseudo-terminal, as
// a person runs it: Ctrl-C is the terminal's, the process gets SIGINT.
type terminal struct {
	t    *testing.T
	cmd  *exec.Cmd
	pty  *os.File
	out  syncBuffer // everything the terminal showed
	logs syncBuffer // standard error
	read chan struct{}
	done chan error
}

func startTerminal(t *testing.T, srv *llmtest.Server) *terminal {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Dir = t.TempDir()
	cmd.Env = append([]string{"PARLEY_TEST_MAIN=1", "PARLEY_TEST_ARGS=console", "TERM=dumb",
		"LLM_BASE_URL=" + srv.BaseURL(), "LLM_API_KEY=" + secretKey, "LLM_MODEL=fake-small",
		"DATABASE_URL=sqlite://" + filepath.Join(cmd.Dir, "parley.db")}, coverEnv(t)...)
	term := &terminal{t: t, cmd: cmd, read: make(chan struct{}), done: make(chan error, 1)}
	cmd.Stderr = &term.logs
	f, err := pty.Start(cmd)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	term.pty = f
	go func() {
		defer close(term.read)
		io.Copy(&term.out, f) // ends with EIO once the process is gone
	}()
	go func() { term.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-term.done
		}
		f.Close()
		<-term.read
		if strings.Contains(term.out.String()+term.logs.String(), secretKey) {
			t.Errorf("the terminal or the logs show the API key")
		}
		if t.Failed() {
			t.Logf("terminal:\n%q\nlogs:\n%s", term.out.String(), term.logs.String())
		}
	})
	return term
}

// waitOutput waits until the terminal has shown want after the first n
// bytes, and returns where that want ends.
func (term *terminal) waitOutput(n int, want string) int {
	term.t.Helper()
	end := 0
	eventually(term.t, "the terminal to show "+want, func() bool {
		out := term.out.String()
		if i := strings.Index(out[min(n, len(out)):], want); i >= 0 {
			end = n + i + len(want)
			return true
		}
		return false
	})
	return end
}

func (term *terminal) typeText(s string) {
	term.t.Helper()
	if _, err := term.pty.WriteString(s); err != nil {
		term.t.Fatal(err)
	}
}

// exited waits for the process and checks that it exited with 0.
func (term *terminal) exited() {
	term.t.Helper()
	select {
	case err := <-term.done:
		var exit *exec.ExitError
		if errors.As(err, &exit) || err != nil {
			term.t.Errorf("console exited with %v, want 0", err)
		}
	case <-time.After(30 * time.Second):
		term.t.Fatal("the console did not exit")
	}
}

// Ctrl-C stops the answer being written and the console goes on; a
// second Ctrl-C, with no answer being written, quits.
func TestConsoleCtrlC(t *testing.T) {
	srv := llmtest.NewServer()
	defer srv.Close()
	hold := make(chan struct{}) // closed when the test ends: only Ctrl-C ends the answer
	defer close(hold)
	srv.Answer = func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Chunks: []string{"Once upon a time", " there was"}, Hold: hold}
	}
	term := startTerminal(t, srv)
	n := term.waitOutput(0, "/exit")
	n = term.waitOutput(n, "> ")

	term.typeText("tell me a story\r")
	n = term.waitOutput(n, "Once upon a") // the last word waits for the next chunk
	if strings.Contains(term.out.String(), "there was") {
		t.Fatal("the answer went past the held chunk")
	}
	term.typeText("\x03") // Ctrl-C
	n = term.waitOutput(n, "Stopped")
	n = term.waitOutput(n, "> ")
	select {
	case err := <-term.done:
		t.Fatalf("the first Ctrl-C ended the console: %v", err)
	default:
	}
	if got := len(srv.Requests()); got != 1 {
		t.Errorf("the endpoint got %d requests, want 1", got)
	}
	term.typeText("\x03")
	term.exited()
}

// /exit leaves the console at once.
func TestConsoleExitOnTerminal(t *testing.T) {
	srv := llmtest.NewServer()
	defer srv.Close()
	term := startTerminal(t, srv)
	n := term.waitOutput(0, "/exit")
	term.waitOutput(n, "> ")
	term.typeText("/exit\r")
	term.exited()
	if got := len(srv.Requests()); got != 0 {
		t.Errorf("the endpoint got %d requests, want none", got)
	}
}
