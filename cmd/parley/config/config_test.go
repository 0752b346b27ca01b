package config

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
)

// Distinctive secrets: a test fails if any of them shows up in output.
const (
	llmKey     = "sk-LLMKEY-0123456789"
	slackBot   = "xoxb-SLACKBOT-0123456789"
	slackApp   = "xapp-SLACKAPP-0123456789"
	slackSign  = "SLACKSIGN0123456789"
	discordTok = "DISCORDTOKEN.0123456789"
	dbPassword = "DBPASSWORD0123456789"
)

var allSecrets = []string{llmKey, slackBot, slackApp, slackSign, discordTok, dbPassword}

func load(t *testing.T, environ map[string]string, purpose Purpose) (*Config, error) {
	t.Helper()
	return Load(context.Background(), envconfig.MapLookuper(environ), nil, purpose)
}

// valid is a complete bot configuration; tests change one thing at a time.
func valid() map[string]string {
	return map[string]string{
		"LLM_API_KEY":       llmKey,
		"DISCORD_BOT_TOKEN": discordTok,
	}
}

func with(m map[string]string, kv ...string) map[string]string {
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, secret := range allSecrets {
		if strings.Contains(s, secret) {
			t.Errorf("%s shows a secret: %s", what, s)
		}
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := load(t, map[string]string{}, ForInspect)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		LLM: LLM{
			BaseURL:           "https://api.n1n.ai/v1",
			Model:             "gpt-4o-mini",
			ContextTokens:     16000,
			FirstTokenTimeout: 120 * time.Second,
			IdleTimeout:       90 * time.Second,
			ModelTimeouts: []ModelTimeout{
				{"sora*", 15 * time.Minute}, {"veo*", 15 * time.Minute}, {"*video*", 15 * time.Minute},
			},
		},
		Slack:   Slack{APIURL: "https://slack.com/api/", Streaming: "auto"},
		Discord: Discord{APIURL: "https://discord.com/api/v10", ReplyMode: "thread", ShardCount: 1, MaxUpload: 10 << 20, CatchUp: 10 * time.Minute},
		Store:   Store{Driver: SQLite, Path: "parley.db"},
		HTTP:    HTTP{Addr: ":8080", OpsAddr: ":8080", ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxConns: 1024},
		Log:     Log{Level: slog.LevelInfo, Format: "text"},
		Engine: Engine{MaxConcurrent: 256, StopEmoji: []string{"octagonal_sign", "🛑"}, ShutdownGrace: 20 * time.Second, RecoveryMode: "answer",
			Refusal: "dm", MediaMaxBytes: 25 << 20},
		Tools: Tools{MaxRounds: 10, CallTimeout: time.Minute, MaxResultBytes: 16 << 10, ApprovalTimeout: 2 * time.Minute},
	}
	got := *cfg
	got.vars = nil
	if g, w := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", want); g != w {
		t.Errorf("defaults:\ngot  %s\nwant %s", g, w)
	}
}

func TestValues(t *testing.T) {
	cfg, err := load(t, with(valid(),
		"LLM_BASE_URL", "http://localhost:11434/v1",
		"LLM_MODELS", " gpt-4o*, claude-* ,,",
		"LLM_CONTEXT_TOKENS", "32000",
		"LLM_IDLE_TIMEOUT", "2m",
		"LLM_MODEL_TIMEOUTS", "none",
		"LLM_VISION_MODELS", "gpt-4o*",
		"SLACK_API_URL", "http://127.0.0.1:9/api",
		"SLACK_STREAMING", "Update",
		"DISCORD_BOT_TOKEN", "Bot "+discordTok,
		"DISCORD_SHARD_ID", "2",
		"DISCORD_SHARD_COUNT", "4",
		"DATABASE_URL", "sqlite:///var/lib/parley/parley.db",
		"LOG_LEVEL", "DEBUG",
		"PARLEY_STOP_EMOJI", ":x:, stop_sign",
	), ForBot)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"models", cfg.LLM.Models, []string{"gpt-4o*", "claude-*"}},
		{"context tokens", cfg.LLM.ContextTokens, 32000},
		{"idle timeout", cfg.LLM.IdleTimeout, 2 * time.Minute},
		{"model timeouts", len(cfg.LLM.ModelTimeouts), 0},
		{"vision", cfg.LLM.VisionModels, []string{"gpt-4o*"}},
		{"slack url gets its slash", cfg.Slack.APIURL, "http://127.0.0.1:9/api/"},
		{"streaming", cfg.Slack.Streaming, StreamingUpdate},
		{"discord token without Bot prefix", cfg.Discord.BotToken.Reveal(), discordTok},
		{"shard", [2]int{cfg.Discord.ShardID, cfg.Discord.ShardCount}, [2]int{2, 4}},
		{"sqlite path", cfg.Store, Store{Driver: SQLite, Path: "/var/lib/parley/parley.db"}},
		{"log level", cfg.Log.Level, slog.LevelDebug},
		{"stop emoji", cfg.Engine.StopEmoji, []string{"x", "stop_sign"}},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestProblems(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		purpose Purpose
		wantVar string
		want    string // part of the message
	}{
		{"base url", with(valid(), "LLM_BASE_URL", "api.n1n.ai/v1"), ForBot, "LLM_BASE_URL", "http"},
		{"base url with password", with(valid(), "LLM_BASE_URL", "https://u:pw@example.com/v1"), ForBot, "LLM_BASE_URL", "password"},
		{"api key missing", with(valid(), "LLM_API_KEY", ""), ForBot, "LLM_API_KEY", "not set"},
		{"api key missing for console", map[string]string{}, ForConsole, "LLM_API_KEY", "not set"},
		{"api key with newline", with(valid(), "LLM_API_KEY", "sk-abc\nsk-def"), ForBot, "LLM_API_KEY", "line breaks"},
		{"two models", with(valid(), "LLM_MODEL", "gpt-4o,gpt-4"), ForBot, "LLM_MODEL", "one model"},
		{"bad glob", with(valid(), "LLM_MODELS", "gpt-[4"), ForBot, "LLM_MODELS", "malformed pattern"},
		{"context tokens", with(valid(), "LLM_CONTEXT_TOKENS", "16k"), ForBot, "LLM_CONTEXT_TOKENS", "whole number"},
		{"context tokens zero", with(valid(), "LLM_CONTEXT_TOKENS", "0"), ForBot, "LLM_CONTEXT_TOKENS", "at least 1"},
		{"first token timeout", with(valid(), "LLM_FIRST_TOKEN_TIMEOUT", "120"), ForBot, "LLM_FIRST_TOKEN_TIMEOUT", "90s"},
		{"idle timeout negative", with(valid(), "LLM_IDLE_TIMEOUT", "-1s"), ForBot, "LLM_IDLE_TIMEOUT", "longer than 0s"},
		{"model timeouts", with(valid(), "LLM_MODEL_TIMEOUTS", "sora*:15m"), ForBot, "LLM_MODEL_TIMEOUTS", "pattern=duration"},
		{"vision glob", with(valid(), "LLM_VISION_MODELS", "["), ForBot, "LLM_VISION_MODELS", "malformed"},
		{"slack without app token", with(valid(), "SLACK_BOT_TOKEN", slackBot), ForBot, "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"},
		{"slack app token alone", with(valid(), "SLACK_APP_TOKEN", slackApp), ForBot, "SLACK_BOT_TOKEN", "not set, but SLACK_APP_TOKEN is"},
		{"slack signing secret alone", with(valid(), "SLACK_SIGNING_SECRET", slackSign), ForBot, "SLACK_BOT_TOKEN", "not set, but SLACK_SIGNING_SECRET is"},
		{"slack tokens swapped", with(valid(), "SLACK_BOT_TOKEN", slackApp, "SLACK_APP_TOKEN", slackApp), ForBot, "SLACK_BOT_TOKEN", "app-level token"},
		{"slack oauth token as app token", with(valid(), "SLACK_BOT_TOKEN", slackBot, "SLACK_APP_TOKEN", slackBot), ForBot, "SLACK_APP_TOKEN", "xapp-"},
		{"slack api url", with(valid(), "SLACK_API_URL", "slack.com/api"), ForBot, "SLACK_API_URL", "URL"},
		{"slack streaming", with(valid(), "SLACK_STREAMING", "fast"), ForBot, "SLACK_STREAMING", "auto, native, update"},
		{"slack prefix", with(valid(), "SLACK_COMMAND_PREFIX", "/pl"), ForBot, "SLACK_COMMAND_PREFIX", "lowercase"},
		{"slack prefix long", with(valid(), "SLACK_COMMAND_PREFIX", strings.Repeat("p", 21)), ForBot, "SLACK_COMMAND_PREFIX", "20"},
		{"discord token with space", with(valid(), "DISCORD_BOT_TOKEN", "abc def"), ForBot, "DISCORD_BOT_TOKEN", "spaces"},
		{"discord api url", with(valid(), "DISCORD_API_URL", "ftp://discord.com"), ForBot, "DISCORD_API_URL", "URL"},
		{"discord guild", with(valid(), "DISCORD_GUILD_ID", "my-server"), ForBot, "DISCORD_GUILD_ID", "Copy Server ID"},
		{"discord reply mode", with(valid(), "DISCORD_REPLY_MODE", "dm"), ForBot, "DISCORD_REPLY_MODE", "thread, reply"},
		{"discord shard id", with(valid(), "DISCORD_SHARD_ID", "-1"), ForBot, "DISCORD_SHARD_ID", "at least 0"},
		{"discord shard count", with(valid(), "DISCORD_SHARD_COUNT", "0"), ForBot, "DISCORD_SHARD_COUNT", "at least 1"},
		{"discord shard id too big", with(valid(), "DISCORD_SHARD_ID", "1"), ForBot, "DISCORD_SHARD_ID", "less than DISCORD_SHARD_COUNT"},
		{"database scheme", with(valid(), "DATABASE_URL", "nosuchdb://x"), ForStore, "DATABASE_URL", "neither sqlite, postgres nor postgresql"},
		{"database no scheme", with(valid(), "DATABASE_URL", "parley.db"), ForStore, "DATABASE_URL", "sqlite://parley.db"},
		{"database sqlite no path", with(valid(), "DATABASE_URL", "sqlite://"), ForStore, "DATABASE_URL", "no database file"},
		{"database postgres bad escape", with(valid(), "DATABASE_URL", "postgres://u:"+dbPassword+"%zz@db/parley"), ForStore, "DATABASE_URL", "%-encoded"},
		{"database postgres no host", with(valid(), "DATABASE_URL", "postgres:///parley"), ForStore, "DATABASE_URL", "no host"},
		{"database postgres bad port", with(valid(), "DATABASE_URL", "postgres://u:"+dbPassword+"@db:x5432/parley"), ForStore, "DATABASE_URL", "not a valid"},
		{"http addr", with(valid(), "HTTP_ADDR", "8080"), ForBot, "HTTP_ADDR", ":8080"},
		{"http port", with(valid(), "HTTP_ADDR", ":80800"), ForBot, "HTTP_ADDR", "65535"},
		{"ops addr", with(valid(), "OPS_ADDR", "localhost"), ForBot, "OPS_ADDR", ":8080"},
		{"http read timeout", with(valid(), "HTTP_READ_TIMEOUT", "ten"), ForBot, "HTTP_READ_TIMEOUT", "duration"},
		{"http write timeout", with(valid(), "HTTP_WRITE_TIMEOUT", "0s"), ForBot, "HTTP_WRITE_TIMEOUT", "longer than 0s"},
		{"http idle timeout", with(valid(), "HTTP_IDLE_TIMEOUT", "-1m"), ForBot, "HTTP_IDLE_TIMEOUT", "longer than 0s"},
		{"http max conns", with(valid(), "HTTP_MAX_CONNS", "0"), ForBot, "HTTP_MAX_CONNS", "at least 1"},
		{"log level", with(valid(), "LOG_LEVEL", "verbose"), ForBot, "LOG_LEVEL", "debug, info, warn, error"},
		{"log format", with(valid(), "LOG_FORMAT", "yaml"), ForBot, "LOG_FORMAT", "text, json"},
		{"max concurrent", with(valid(), "PARLEY_MAX_CONCURRENT", "many"), ForBot, "PARLEY_MAX_CONCURRENT", "whole number"},
		{"stop emoji", with(valid(), "PARLEY_STOP_EMOJI", "stop sign"), ForBot, "PARLEY_STOP_EMOJI", "emoji"},
		{"user rate", with(valid(), "PARLEY_USER_RATE", "fast"), ForBot, "PARLEY_USER_RATE", "20/h"},
		{"user rate period", with(valid(), "PARLEY_USER_RATE", "5/fortnight"), ForBot, "PARLEY_USER_RATE", "period"},
		{"refusal", with(valid(), "PARLEY_REFUSAL", "loudly"), ForBot, "PARLEY_REFUSAL", "dm, always, never"},
		{"daily tokens", with(valid(), "USAGE_DAILY_TOKENS", "-5"), ForBot, "USAGE_DAILY_TOKENS", "at least 0"},
		{"shutdown grace", with(valid(), "SHUTDOWN_GRACE", "soon"), ForBot, "SHUTDOWN_GRACE", "duration"},
		{"media max bytes", with(valid(), "MEDIA_MAX_BYTES", "25MB"), ForBot, "MEDIA_MAX_BYTES", "whole number"},
		{"media allow private", with(valid(), "MEDIA_ALLOW_PRIVATE", "maybe"), ForBot, "MEDIA_ALLOW_PRIVATE", "true or false"},
		{"no platform", map[string]string{"LLM_API_KEY": llmKey}, ForBot, "", "parley console"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.env, tt.purpose)
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("got %v, want a *config.Error", err)
			}
			if len(cerr.Problems) != 1 {
				t.Fatalf("got problems %q, want one about %s", cerr.Problems, tt.wantVar)
			}
			p := cerr.Problems[0]
			if p.Var != tt.wantVar || !strings.Contains(p.Msg, tt.want) {
				t.Errorf("got %q, want a problem with %s saying %q", p, tt.wantVar, tt.want)
			}
			assertNoSecret(t, "error", err.Error())
			for k, v := range tt.env {
				if strings.Contains(p.Msg, strconv.Quote(v)) {
					t.Errorf("message %q quotes the value of %s", p.Msg, k)
				}
			}
		})
	}
}

// Settings that only some commands need are not required by the others.
func TestPurpose(t *testing.T) {
	for _, purpose := range []Purpose{ForInspect, ForStore} {
		if _, err := load(t, map[string]string{}, purpose); err != nil {
			t.Errorf("purpose %d with an empty environment: %v", purpose, err)
		}
	}
	if _, err := load(t, map[string]string{"LLM_API_KEY": llmKey}, ForConsole); err != nil {
		t.Errorf("console needs no platform: %v", err)
	}
	// A local endpoint may need no key.
	if _, err := load(t, map[string]string{"LLM_BASE_URL": "http://127.0.0.1:11434/v1"}, ForConsole); err != nil {
		t.Errorf("console against a custom endpoint without a key: %v", err)
	}
	for _, env := range []map[string]string{
		{"SLACK_BOT_TOKEN": slackBot, "SLACK_APP_TOKEN": slackApp},
		{"SLACK_BOT_TOKEN": slackBot, "SLACK_SIGNING_SECRET": slackSign},
		{"DISCORD_BOT_TOKEN": discordTok},
	} {
		if _, err := load(t, with(env, "LLM_API_KEY", llmKey), ForBot); err != nil {
			t.Errorf("bot with %d platform variables: %v", len(env), err)
		}
	}
}

func TestSlackMode(t *testing.T) {
	cfg, err := load(t, map[string]string{"LLM_API_KEY": llmKey, "SLACK_BOT_TOKEN": slackBot, "SLACK_APP_TOKEN": slackApp, "SLACK_SIGNING_SECRET": slackSign}, ForBot)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Slack.Enabled() || !cfg.Slack.SocketMode() || cfg.Discord.Enabled() {
		t.Errorf("got slack %v socket %v discord %v, want slack on in Socket Mode, discord off", cfg.Slack.Enabled(), cfg.Slack.SocketMode(), cfg.Discord.Enabled())
	}
}

// One message names every bad variable, and none of their values.
func TestAllProblemsInOneMessage(t *testing.T) {
	env := map[string]string{
		"SLACK_BOT_TOKEN":    slackBot,
		"LLM_CONTEXT_TOKENS": "lots",
		"LLM_IDLE_TIMEOUT":   "soon",
		"DATABASE_URL":       "mysql://root:" + dbPassword + "@db/parley",
		"LOG_LEVEL":          "loud",
		"DISCORD_REPLY_MODE": "whisper",
	}
	_, err := load(t, env, ForBot)
	if err == nil {
		t.Fatal("got no error")
	}
	msg := err.Error()
	for _, name := range []string{"LLM_API_KEY", "LLM_CONTEXT_TOKENS", "LLM_IDLE_TIMEOUT", "DATABASE_URL", "LOG_LEVEL", "DISCORD_REPLY_MODE", "SLACK_APP_TOKEN"} {
		if !strings.Contains(msg, name+":") {
			t.Errorf("message does not name %s: %s", name, msg)
		}
	}
	for _, v := range []string{"lots", "soon", "mysql", "loud", "whisper"} {
		if strings.Contains(msg, v) {
			t.Errorf("message quotes the value %q: %s", v, msg)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("message spans several lines: %q", msg)
	}
	assertNoSecret(t, "error", msg)
}

func TestDotenvPrecedence(t *testing.T) {
	environ := map[string]string{
		"LLM_MODEL":   "from-env",
		"LOG_LEVEL":   "", // set but empty: hides .env's value, the default applies
		"LLM_API_KEY": llmKey,
	}
	dotenv := map[string]string{
		"LLM_MODEL":         "from-dotenv",
		"LLM_SYSTEM_PROMPT": "Be brief.",
		"LOG_LEVEL":         "debug",
		"LOG_FORMAT":        "", // empty in .env: the default applies
	}
	cfg, err := Load(context.Background(), envconfig.MapLookuper(environ), dotenv, ForConsole)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.LLM.Model != "from-env" {
		t.Errorf("LLM_MODEL: got %q, want the environment's", cfg.LLM.Model)
	}
	if cfg.LLM.SystemPrompt != "Be brief." {
		t.Errorf("LLM_SYSTEM_PROMPT: got %q, want .env's", cfg.LLM.SystemPrompt)
	}
	if cfg.Log.Level != slog.LevelInfo || cfg.Log.Format != FormatText {
		t.Errorf("log: got %v %q, want the defaults", cfg.Log.Level, cfg.Log.Format)
	}
	sources := map[string]Source{}
	for _, v := range cfg.Vars() {
		sources[v.Name] = v.Source
	}
	want := map[string]Source{
		"LLM_MODEL":         FromEnvironment,
		"LLM_SYSTEM_PROMPT": FromDotenv,
		"LOG_LEVEL":         FromDefault,
		"LOG_FORMAT":        FromDefault,
		"LLM_API_KEY":       FromEnvironment,
		"HTTP_ADDR":         FromDefault,
	}
	for name, w := range want {
		if sources[name] != w {
			t.Errorf("source of %s: got %q, want %q", name, sources[name], w)
		}
	}
}

func secretEnv() map[string]string {
	return map[string]string{
		"LLM_API_KEY":          llmKey,
		"SLACK_BOT_TOKEN":      slackBot,
		"SLACK_APP_TOKEN":      slackApp,
		"SLACK_SIGNING_SECRET": slackSign,
		"DISCORD_BOT_TOKEN":    discordTok,
		"DATABASE_URL":         "postgres://parley:" + dbPassword + "@db.internal:5432/parley?sslmode=disable&password=" + dbPassword,
		"LLM_SYSTEM_PROMPT":    "You are \"Parley\".\nBe brief. # not a comment",
	}
}

// No way of printing a loaded configuration shows a secret.
func TestNoSecretPrinted(t *testing.T) {
	cfg, err := load(t, secretEnv(), ForBot)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := cfg.Write(&out); err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, "Write", out.String())
	for _, line := range []string{"LLM_API_KEY=***", "SLACK_BOT_TOKEN=***", "DISCORD_BOT_TOKEN=***",
		"DATABASE_URL=postgres://parley:***@db.internal:5432/parley?sslmode=disable&password=***",
		"# slack: on, Socket Mode", "# discord: on, shard 0 of 1", "SLACK_COMMAND_PREFIX=  "} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("Write output lacks %q:\n%s", line, out.String())
		}
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		assertNoSecret(t, format, fmt.Sprintf(format, cfg))
		assertNoSecret(t, format, fmt.Sprintf(format, *cfg))
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "config", cfg, "key", cfg.LLM.APIKey)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("config", "config", cfg, "key", cfg.LLM.APIKey)
	assertNoSecret(t, "slog", logs.String())
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, "json", string(b))
}

// The printed configuration reads back as the same configuration.
func TestWriteReadsBack(t *testing.T) {
	env := secretEnv()
	env["DATABASE_URL"] = "sqlite:///tmp/parley test.db"
	cfg, err := load(t, env, ForBot)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := cfg.Write(&out); err != nil {
		t.Fatal(err)
	}
	dotenv, err := ParseDotenv(out.String())
	if err != nil {
		t.Fatalf("parse printed configuration: %v\n%s", err, out.String())
	}
	for _, v := range cfg.Vars() {
		if dotenv[v.Name] != v.Value {
			t.Errorf("%s reads back as %q, want %q", v.Name, dotenv[v.Name], v.Value)
		}
	}
	if dotenv["LLM_SYSTEM_PROMPT"] != env["LLM_SYSTEM_PROMPT"] {
		t.Errorf("system prompt reads back as %q", dotenv["LLM_SYSTEM_PROMPT"])
	}
}

func TestSecret(t *testing.T) {
	s := Secret(llmKey)
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s"} {
		got := fmt.Sprintf(format, s)
		if strings.Contains(got, llmKey) || !strings.Contains(got, "***") {
			t.Errorf("%s: got %q, want it masked", format, got)
		}
	}
	if got := fmt.Sprint(Secret("")); got != "" {
		t.Errorf("empty secret prints %q, want nothing", got)
	}
	if s.Reveal() != llmKey {
		t.Error("Reveal does not return the value")
	}
}

// .env.example documents every variable, and reads as a valid .env file
// once its commented defaults are uncommented.
func TestEnvExample(t *testing.T) {
	b, err := os.ReadFile("../../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if _, err := ParseDotenv(text); err != nil {
		t.Errorf(".env.example does not parse: %v", err)
	}
	var raw env
	for _, f := range fields(&raw) {
		if !strings.Contains(text, "\n#"+f.name+"=") && !strings.Contains(text, "\n"+f.name+"=") {
			t.Errorf(".env.example does not document %s", f.name)
		}
	}
	uncommented := regexp.MustCompile(`(?m)^#([A-Z_]+=)`).ReplaceAllString(text, "$1")
	dotenv, err := ParseDotenv(uncommented)
	if err != nil {
		t.Fatalf("uncommented .env.example does not parse: %v", err)
	}
	if _, err := Load(context.Background(), envconfig.MapLookuper(nil), dotenv, ForInspect); err != nil {
		t.Errorf("the examples of .env.example do not load: %v", err)
	}
}
