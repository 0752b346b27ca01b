// Command parley runs the Parley bot: it bridges an OpenAI-compatible LLM
// endpoint into Slack and Discord. Its subcommands apply the database
// migrations, print the configuration and the version, and chat in the
// terminal. Settings come from the environment and a .env file; see
// .env.example.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/sethvargo/go-envconfig"

	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/cmd/parley/config"
	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/tools"
)

const usage = `Usage: parley [command]

Commands:
  (none)    run the bot on the configured chat platforms
  console   chat with Parley in the terminal, without Slack or Discord
  migrate   create or update the database schema, then exit
  config    print the effective configuration (secrets masked)
  health    exit 0 when the instance on HTTP_ADDR answers /healthz (for HEALTHCHECK)
  tools     list the MCP servers of MCP_CONFIG, their state and tools (exit 1 if one is down)
  version   print the version

Settings are read from the environment and from a .env file in the working
directory (the environment wins). See .env.example for every variable.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal starts a clean shutdown; a second one ends the
	// process at once.
	context.AfterFunc(ctx, stop)
	m := NewMain()
	err := m.Run(ctx, os.Args[1:])
	stop()
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "parley:", bots.Redact(err.Error()))
		var u usageError
		if errors.As(err, &u) {
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// Main is the program, apart from flag parsing and the process: tests run
// it with their own environment, input and output.
type Main struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer // logs
	// Environ looks up environment variables; default the process's.
	Environ envconfig.Lookuper
	// Dir holds the .env file; default the working directory.
	Dir string
	// Interactive says that Stdin and Stdout are a terminal.
	Interactive bool
	// User is the console's user name; default $USER.
	User string

	store   conversation.Store
	metrics *metrics       // set while the bot runs
	servers *tools.Servers // the MCP servers, when MCP_CONFIG is set
}

// NewMain returns a Main on the process's standard streams and environment.
func NewMain() *Main {
	return &Main{
		Stdin:       os.Stdin,
		Stdout:      os.Stdout,
		Stderr:      os.Stderr,
		Environ:     envconfig.OsLookuper(),
		Interactive: isTerminal(os.Stdin) && isTerminal(os.Stdout),
		User:        os.Getenv("USER"),
	}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// usageError is a command line mistake; main exits with status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// Run runs the command named by args until it is done or ctx ends.
func (m *Main) Run(ctx context.Context, args []string) error {
	cmd := ""
	if len(args) > 0 {
		cmd = args[0]
	}
	if len(args) > 1 {
		return usageError{fmt.Sprintf("%q takes no arguments", cmd)}
	}
	switch cmd {
	case "":
		return m.runBot(ctx)
	case "console":
		return m.runConsole(ctx)
	case "migrate":
		return m.runMigrate(ctx)
	case "config":
		return m.runConfig(ctx)
	case "health":
		return m.runHealth(ctx)
	case "tools":
		return m.runTools(ctx)
	case "version", "-version", "--version":
		_, err := fmt.Fprintln(m.Stdout, "parley", Version())
		return err
	case "help", "-h", "-help", "--help":
		_, err := fmt.Fprint(m.Stdout, usage)
		return err
	}
	return usageError{fmt.Sprintf("unknown command %q", cmd)}
}

// Close releases what Run opened.
func (m *Main) Close() error {
	if m.store == nil {
		return nil
	}
	err := m.store.Close()
	m.store = nil
	return err
}

// loadConfig reads the configuration for purpose from the environment and
// the .env file.
func (m *Main) loadConfig(ctx context.Context, purpose config.Purpose) (*config.Config, error) {
	environ := m.Environ
	if environ == nil {
		environ = envconfig.OsLookuper()
	}
	dotenv, err := config.ReadDotenv(filepath.Join(m.Dir, ".env"))
	if err != nil {
		return nil, err
	}
	return config.Load(ctx, environ, dotenv, purpose)
}

func (m *Main) runConfig(ctx context.Context) error {
	cfg, err := m.loadConfig(ctx, config.ForInspect)
	if err != nil {
		return err
	}
	return cfg.Write(m.Stdout)
}

func (m *Main) runMigrate(ctx context.Context) error {
	cfg, err := m.loadConfig(ctx, config.ForStore)
	if err != nil {
		return err
	}
	log := newLogger(m.Stderr, cfg.Log)
	if err := m.openStore(ctx, cfg.Store, log); err != nil {
		return err
	}
	log.Info("database is up to date", "driver", cfg.Store.Driver, "database", cfg.Store.Redacted())
	return nil
}
