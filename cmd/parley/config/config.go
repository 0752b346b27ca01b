// Package config reads Parley's settings from the environment and from a
// .env file, checks them all at once, and prints them with secrets masked.
//
// Variables are read as plain strings and validated afterwards, so that one
// error names every bad variable (go-envconfig would stop at the first, name
// the Go field and quote the value, which may hold a password). It is owned
// by cmd/parley: other packages take their own option structs.
package config

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"
)

// DefaultLLMBaseURL is the n1n.ai gateway, the default endpoint.
const DefaultLLMBaseURL = "https://api.n1n.ai/v1"

// env is the environment as go-envconfig reads it. Every field is a string,
// so that reading never fails; parse checks and converts them. The field
// order is the order `parley config` prints.
type env struct {
	LLMBaseURL           string `env:"LLM_BASE_URL, default=https://api.n1n.ai/v1"`
	LLMAPIKey            Secret `env:"LLM_API_KEY"`
	LLMModel             string `env:"LLM_MODEL, default=gpt-4o-mini"`
	LLMModels            string `env:"LLM_MODELS"`
	LLMSystemPrompt      string `env:"LLM_SYSTEM_PROMPT"`
	LLMContextTokens     string `env:"LLM_CONTEXT_TOKENS, default=16000"`
	LLMFirstTokenTimeout string `env:"LLM_FIRST_TOKEN_TIMEOUT, default=120s"`
	LLMIdleTimeout       string `env:"LLM_IDLE_TIMEOUT, default=90s"`
	LLMModelTimeouts     string `env:"LLM_MODEL_TIMEOUTS, default=sora*=15m,veo*=15m,*video*=15m"`
	LLMVisionModels      string `env:"LLM_VISION_MODELS"`

	SlackBotToken      Secret `env:"SLACK_BOT_TOKEN"`
	SlackAppToken      Secret `env:"SLACK_APP_TOKEN"`
	SlackSigningSecret Secret `env:"SLACK_SIGNING_SECRET"`
	SlackAPIURL        string `env:"SLACK_API_URL, default=https://slack.com/api/"`
	SlackStreaming     string `env:"SLACK_STREAMING, default=auto"`
	SlackCommandPrefix string `env:"SLACK_COMMAND_PREFIX"`

	DiscordBotToken   Secret `env:"DISCORD_BOT_TOKEN"`
	DiscordAPIURL     string `env:"DISCORD_API_URL, default=https://discord.com/api/v10"`
	DiscordGuildID    string `env:"DISCORD_GUILD_ID"`
	DiscordReplyMode  string `env:"DISCORD_REPLY_MODE, default=thread"`
	DiscordShardID    string `env:"DISCORD_SHARD_ID, default=0"`
	DiscordShardCount string `env:"DISCORD_SHARD_COUNT, default=1"`
	DiscordMaxUpload  string `env:"DISCORD_MAX_UPLOAD_BYTES, default=10485760"`
	DiscordCatchUp    string `env:"DISCORD_CATCHUP_WINDOW, default=10m"`

	// DatabaseURL is a Secret: a PostgreSQL URL may hold a password.
	DatabaseURL Secret `env:"DATABASE_URL, default=sqlite://parley.db"`

	HTTPAddr         string `env:"HTTP_ADDR, default=:8080"`
	OpsAddr          string `env:"OPS_ADDR"`
	HTTPReadTimeout  string `env:"HTTP_READ_TIMEOUT, default=10s"`
	HTTPWriteTimeout string `env:"HTTP_WRITE_TIMEOUT, default=30s"`
	HTTPIdleTimeout  string `env:"HTTP_IDLE_TIMEOUT, default=60s"`
	HTTPMaxConns     string `env:"HTTP_MAX_CONNS, default=1024"`
	LogLevel         string `env:"LOG_LEVEL, default=info"`
	LogFormat        string `env:"LOG_FORMAT, default=text"`

	MaxConcurrent string `env:"PARLEY_MAX_CONCURRENT, default=256"`
	StopEmoji     string `env:"PARLEY_STOP_EMOJI, default=octagonal_sign,🛑"`
	ShutdownGrace string `env:"SHUTDOWN_GRACE, default=20s"`
	RecoveryMode  string `env:"RECOVERY_MODE, default=answer"`

	AllowWorkspaces string `env:"PARLEY_ALLOW_WORKSPACES"`
	AllowChannels   string `env:"PARLEY_ALLOW_CHANNELS"`
	AllowUsers      string `env:"PARLEY_ALLOW_USERS"`
	AllowRoles      string `env:"PARLEY_ALLOW_ROLES"`
	Admins          string `env:"PARLEY_ADMINS"`
	Refusal         string `env:"PARLEY_REFUSAL, default=dm"`
	UserRate        string `env:"PARLEY_USER_RATE"`
	DailyTokens     string `env:"USAGE_DAILY_TOKENS, default=0"`

	MediaMaxBytes     string `env:"MEDIA_MAX_BYTES, default=26214400"`
	MediaAllowPrivate string `env:"MEDIA_ALLOW_PRIVATE, default=false"`

	MCPConfig           string `env:"MCP_CONFIG"`
	ToolsMaxRounds      string `env:"TOOLS_MAX_ROUNDS, default=10"`
	ToolsCallTimeout    string `env:"TOOLS_CALL_TIMEOUT, default=60s"`
	ToolsMaxResultBytes string `env:"TOOLS_MAX_RESULT_BYTES, default=16384"`
	ToolsApprovalWait   string `env:"TOOLS_APPROVAL_TIMEOUT, default=2m"`
}

// Config is Parley's configuration, one struct per concern.
type Config struct {
	LLM     LLM
	Slack   Slack
	Discord Discord
	Store   Store
	HTTP    HTTP
	Log     Log
	Engine  Engine
	Tools   Tools

	// vars is what Vars returns, masked when loaded: Config holds no
	// unexported copy of a secret that fmt could print raw.
	vars []Var
}

// LLM configures the OpenAI-compatible endpoint.
type LLM struct {
	BaseURL           string   // LLM_BASE_URL
	APIKey            Secret   // LLM_API_KEY
	Model             string   // LLM_MODEL: the default model
	Models            []string // LLM_MODELS: glob patterns of allowed models; empty allows all
	SystemPrompt      string   // LLM_SYSTEM_PROMPT
	ContextTokens     int      // LLM_CONTEXT_TOKENS: the history budget
	FirstTokenTimeout time.Duration
	IdleTimeout       time.Duration
	// ModelTimeouts are LLM_MODEL_TIMEOUTS, in the order written.
	ModelTimeouts []ModelTimeout
	VisionModels  []string // LLM_VISION_MODELS: glob patterns of models that take images
}

// ModelTimeout overrides the idle timeout for models matching Pattern.
type ModelTimeout struct {
	Pattern string
	Timeout time.Duration
}

// ModelTimeoutMap returns ModelTimeouts as a map from pattern to timeout.
func (l LLM) ModelTimeoutMap() map[string]time.Duration {
	if len(l.ModelTimeouts) == 0 {
		return nil
	}
	m := make(map[string]time.Duration, len(l.ModelTimeouts))
	for _, mt := range l.ModelTimeouts {
		m[mt.Pattern] = mt.Timeout
	}
	return m
}

// Slack streaming modes (SLACK_STREAMING).
const (
	StreamingAuto   = "auto"   // native streaming where the workspace has it, else edits
	StreamingNative = "native" // chat.startStream / appendStream / stopStream
	StreamingUpdate = "update" // paced chat.update edits
)

// Slack configures the Slack adapter. It is on when BotToken is set.
type Slack struct {
	BotToken      Secret // SLACK_BOT_TOKEN (xoxb-...)
	AppToken      Secret // SLACK_APP_TOKEN (xapp-...): Socket Mode
	SigningSecret Secret // SLACK_SIGNING_SECRET: HTTP events mode
	APIURL        string // SLACK_API_URL, always ending in "/"
	Streaming     string // SLACK_STREAMING: StreamingAuto, StreamingNative or StreamingUpdate
	CommandPrefix string // SLACK_COMMAND_PREFIX: prepended to slash command names
}

// Enabled reports whether Slack is configured.
func (s Slack) Enabled() bool { return s.BotToken.IsSet() }

// SocketMode reports whether Slack events arrive over Socket Mode (an app
// token is set) rather than as HTTP requests to HTTP_ADDR. When both an app
// token and a signing secret are set, Socket Mode is used.
func (s Slack) SocketMode() bool { return s.AppToken.IsSet() }

// Discord reply modes (DISCORD_REPLY_MODE).
const (
	ReplyThread = "thread" // answer a channel mention in a new thread
	ReplyReply  = "reply"  // answer with a reply in the channel
)

// Discord configures the Discord adapter. It is on when BotToken is set.
type Discord struct {
	BotToken   Secret // DISCORD_BOT_TOKEN, without a "Bot " prefix
	APIURL     string // DISCORD_API_URL
	GuildID    string // DISCORD_GUILD_ID: register commands in this guild only
	ReplyMode  string // DISCORD_REPLY_MODE: ReplyThread or ReplyReply
	ShardID    int    // DISCORD_SHARD_ID
	ShardCount int    // DISCORD_SHARD_COUNT
	// MaxUpload is DISCORD_MAX_UPLOAD_BYTES: the server's upload limit
	// (10 MiB, more with boosts).
	MaxUpload int64
	// CatchUp is DISCORD_CATCHUP_WINDOW: how far back the messages missed
	// while no process was connected are read and answered.
	CatchUp time.Duration
}

// Enabled reports whether Discord is configured.
func (d Discord) Enabled() bool { return d.BotToken.IsSet() }

// HTTP configures the HTTP servers: the public one (Slack's HTTP events,
// /healthz) and the operators' (/healthz, /readyz, /metrics), which are
// one server when their addresses are the same.
type HTTP struct {
	Addr string // HTTP_ADDR
	// OpsAddr is OPS_ADDR: where /readyz and /metrics are served; Addr
	// when unset.
	OpsAddr string
	// ReadTimeout bounds the time a client may take to send a request,
	// headers and body (HTTP_READ_TIMEOUT); WriteTimeout the time from the
	// end of its headers to the end of the answer (HTTP_WRITE_TIMEOUT);
	// IdleTimeout how long a kept-alive connection may wait for its next
	// request (HTTP_IDLE_TIMEOUT).
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxConns is HTTP_MAX_CONNS: the most connections each server holds
	// at once; one more is closed as soon as it is accepted.
	MaxConns int
}

// SplitOps reports whether the operators' endpoints have an address of
// their own.
func (h HTTP) SplitOps() bool { return h.OpsAddr != h.Addr }

// Log formats (LOG_FORMAT).
const (
	FormatText = "text"
	FormatJSON = "json"
)

// Log configures logging.
type Log struct {
	Level  slog.Level // LOG_LEVEL
	Format string     // LOG_FORMAT: FormatText or FormatJSON
}

// Engine configures the reply engine.
type Engine struct {
	MaxConcurrent int           // PARLEY_MAX_CONCURRENT
	StopEmoji     []string      // PARLEY_STOP_EMOJI: reaction names, without colons
	ShutdownGrace time.Duration // SHUTDOWN_GRACE
	RecoveryMode  string        // RECOVERY_MODE: answer or mark

	AllowWorkspaces []string // PARLEY_ALLOW_WORKSPACES
	AllowChannels   []string // PARLEY_ALLOW_CHANNELS
	AllowUsers      []string // PARLEY_ALLOW_USERS
	AllowRoles      []string // PARLEY_ALLOW_ROLES (Discord role ids)
	Admins          []string // PARLEY_ADMINS: user ids, or Discord role ids
	Refusal         string   // PARLEY_REFUSAL: dm, always or never
	// UserRate is PARLEY_USER_RATE: at most UserRateN requests per
	// UserRatePer for each person; 0 is unlimited.
	UserRateN   int
	UserRatePer time.Duration
	DailyTokens int64 // USAGE_DAILY_TOKENS; 0 is unlimited

	MediaMaxBytes     int64 // MEDIA_MAX_BYTES
	MediaAllowPrivate bool  // MEDIA_ALLOW_PRIVATE
}

// Tools configures tool use through MCP servers.
type Tools struct {
	// MCPConfig is MCP_CONFIG: the path of the MCP servers' JSON file;
	// empty means no tools.
	MCPConfig      string
	MaxRounds      int           // TOOLS_MAX_ROUNDS: rounds of tool calls in one answer
	CallTimeout    time.Duration // TOOLS_CALL_TIMEOUT: the longest a call may take
	MaxResultBytes int           // TOOLS_MAX_RESULT_BYTES: a longer result is cut, with a note the model reads
	// ApprovalTimeout is TOOLS_APPROVAL_TIMEOUT: how long a person has to
	// approve a call of a server marked "approval"; no answer denies it.
	ApprovalTimeout time.Duration
}

// Purpose says what a configuration is for, and so what it must hold.
// Malformed values are refused whatever the purpose.
type Purpose int

// Purposes.
const (
	// ForInspect requires nothing (parley config).
	ForInspect Purpose = iota
	// ForStore requires the store only (parley migrate).
	ForStore
	// ForConsole requires the store and the LLM endpoint (parley console).
	ForConsole
	// ForBot requires the store, the LLM endpoint and at least one
	// completely configured chat platform (parley).
	ForBot
)

// Source says where a variable's value came from.
type Source string

// Sources.
const (
	FromEnvironment Source = "environment"
	FromDotenv      Source = ".env"
	FromDefault     Source = "default"
)

// Load reads the configuration from environ, and from dotenv (the variables
// of a .env file) for each variable environ does not set. An empty variable
// counts as unset: its default applies. The error, a *Error, names every bad
// variable and what is wrong with it, never its value.
func Load(ctx context.Context, environ envconfig.Lookuper, dotenv map[string]string, purpose Purpose) (*Config, error) {
	look := envconfig.MultiLookuper(environ, envconfig.MapLookuper(dotenv))
	var raw env
	err := envconfig.ProcessWith(ctx, &envconfig.Config{
		Target:   &raw,
		Lookuper: emptyIsUnset{look},
	})
	if err != nil {
		// Every field is a string: only a mistake in the struct tags lands here.
		return nil, fmt.Errorf("config: %w", err)
	}
	c := parse(raw, purpose)
	if len(c.problems) > 0 {
		return nil, &Error{Problems: c.problems}
	}
	cfg := c.cfg
	for _, f := range fields(&raw) {
		v := Var{Name: f.name, Value: f.value, Source: source(environ, dotenv, f.name)}
		switch {
		case f.name == "DATABASE_URL":
			v.Value = cfg.Store.Redacted()
		case f.secret && f.value != "":
			v.Value = masked
		}
		cfg.vars = append(cfg.vars, v)
	}
	return &cfg, nil
}

func source(environ envconfig.Lookuper, dotenv map[string]string, name string) Source {
	if v, ok := environ.Lookup(name); ok {
		if strings.TrimSpace(v) == "" {
			return FromDefault
		}
		return FromEnvironment
	}
	if strings.TrimSpace(dotenv[name]) != "" {
		return FromDotenv
	}
	return FromDefault
}

// emptyIsUnset makes an empty variable count as unset, so that its default
// applies (a stray "LLM_MODEL=" line in .env does not blank the model).
// The real environment still wins: an empty variable there hides .env's.
type emptyIsUnset struct{ l envconfig.Lookuper }

func (e emptyIsUnset) Lookup(key string) (string, bool) {
	v, ok := e.l.Lookup(key)
	if ok && strings.TrimSpace(v) == "" {
		return "", false
	}
	return v, ok
}
