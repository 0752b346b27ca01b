package config

import (
	"log/slog"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// parser converts the raw strings and collects every problem.
type parser struct {
	cfg      Config
	problems []Problem
}

func (p *parser) add(name, msg string) { p.problems = append(p.problems, Problem{Var: name, Msg: msg}) }

func parse(r env, purpose Purpose) *parser {
	p := &parser{}
	c := &p.cfg

	c.LLM = LLM{
		BaseURL:           p.httpURL("LLM_BASE_URL", r.LLMBaseURL),
		APIKey:            p.secret("LLM_API_KEY", r.LLMAPIKey),
		Model:             strings.TrimSpace(r.LLMModel),
		Models:            p.globs("LLM_MODELS", r.LLMModels),
		SystemPrompt:      r.LLMSystemPrompt,
		ContextTokens:     p.integer("LLM_CONTEXT_TOKENS", r.LLMContextTokens, 1),
		FirstTokenTimeout: p.duration("LLM_FIRST_TOKEN_TIMEOUT", r.LLMFirstTokenTimeout),
		IdleTimeout:       p.duration("LLM_IDLE_TIMEOUT", r.LLMIdleTimeout),
		ModelTimeouts:     p.modelTimeouts("LLM_MODEL_TIMEOUTS", r.LLMModelTimeouts),
		VisionModels:      p.globs("LLM_VISION_MODELS", r.LLMVisionModels),
	}
	if strings.ContainsAny(c.LLM.Model, ", \t") {
		p.add("LLM_MODEL", "holds several names or spaces; name one model (LLM_MODELS lists the allowed ones)")
	}

	c.Slack = Slack{
		BotToken:      p.secret("SLACK_BOT_TOKEN", r.SlackBotToken),
		AppToken:      p.secret("SLACK_APP_TOKEN", r.SlackAppToken),
		SigningSecret: p.secret("SLACK_SIGNING_SECRET", r.SlackSigningSecret),
		APIURL:        p.httpURL("SLACK_API_URL", r.SlackAPIURL),
		Streaming:     p.oneOf("SLACK_STREAMING", r.SlackStreaming, StreamingAuto, StreamingNative, StreamingUpdate),
		CommandPrefix: p.commandPrefix("SLACK_COMMAND_PREFIX", r.SlackCommandPrefix),
	}
	if c.Slack.APIURL != "" && !strings.HasSuffix(c.Slack.APIURL, "/") {
		// slack-go appends method names to the URL as is.
		c.Slack.APIURL += "/"
	}
	// The two kinds of Slack token are easily swapped.
	if strings.HasPrefix(c.Slack.BotToken.Reveal(), "xapp-") {
		p.add("SLACK_BOT_TOKEN", "holds an app-level token (xapp-...); put it in SLACK_APP_TOKEN and set SLACK_BOT_TOKEN to the bot token (xoxb-...) from OAuth & Permissions")
	}
	if strings.HasPrefix(c.Slack.AppToken.Reveal(), "xox") {
		p.add("SLACK_APP_TOKEN", "holds an OAuth token (xox...), not an app-level token; create one (xapp-...) with the connections:write scope under Basic Information > App-Level Tokens")
	}

	discordToken := Secret(strings.TrimPrefix(strings.TrimSpace(r.DiscordBotToken.Reveal()), "Bot "))
	c.Discord = Discord{
		BotToken:   p.secret("DISCORD_BOT_TOKEN", discordToken),
		APIURL:     p.httpURL("DISCORD_API_URL", r.DiscordAPIURL),
		GuildID:    strings.TrimSpace(r.DiscordGuildID),
		ReplyMode:  p.oneOf("DISCORD_REPLY_MODE", r.DiscordReplyMode, ReplyThread, ReplyReply),
		ShardID:    p.integer("DISCORD_SHARD_ID", r.DiscordShardID, 0),
		ShardCount: p.integer("DISCORD_SHARD_COUNT", r.DiscordShardCount, 1),
		MaxUpload:  int64(p.integer("DISCORD_MAX_UPLOAD_BYTES", r.DiscordMaxUpload, 1)),
		CatchUp:    p.duration("DISCORD_CATCHUP_WINDOW", r.DiscordCatchUp),
	}
	if c.Discord.GuildID != "" && !isDigits(c.Discord.GuildID) {
		p.add("DISCORD_GUILD_ID", "is not a guild id (a number); copy it with Developer Mode on: right-click the server > Copy Server ID")
	}
	if c.Discord.ShardCount >= 1 && c.Discord.ShardID >= c.Discord.ShardCount {
		p.add("DISCORD_SHARD_ID", "must be less than DISCORD_SHARD_COUNT (shards are numbered from 0)")
	}

	store, msg := parseDatabaseURL(strings.TrimSpace(r.DatabaseURL.Reveal()))
	if msg != "" {
		p.add("DATABASE_URL", msg)
	}
	c.Store = store

	c.HTTP = HTTP{
		Addr:         p.addr("HTTP_ADDR", r.HTTPAddr),
		ReadTimeout:  p.duration("HTTP_READ_TIMEOUT", r.HTTPReadTimeout),
		WriteTimeout: p.duration("HTTP_WRITE_TIMEOUT", r.HTTPWriteTimeout),
		IdleTimeout:  p.duration("HTTP_IDLE_TIMEOUT", r.HTTPIdleTimeout),
		MaxConns:     p.integer("HTTP_MAX_CONNS", r.HTTPMaxConns, 1),
	}
	c.HTTP.OpsAddr = c.HTTP.Addr
	if strings.TrimSpace(r.OpsAddr) != "" {
		c.HTTP.OpsAddr = p.addr("OPS_ADDR", r.OpsAddr)
	}
	c.Log = Log{
		Level:  p.logLevel("LOG_LEVEL", r.LogLevel),
		Format: p.oneOf("LOG_FORMAT", r.LogFormat, FormatText, FormatJSON),
	}
	c.Engine = Engine{
		MaxConcurrent: p.integer("PARLEY_MAX_CONCURRENT", r.MaxConcurrent, 1),
		StopEmoji:     p.emoji("PARLEY_STOP_EMOJI", r.StopEmoji),
		ShutdownGrace: p.duration("SHUTDOWN_GRACE", r.ShutdownGrace),
		RecoveryMode:  p.oneOf("RECOVERY_MODE", r.RecoveryMode, "answer", "mark"),

		AllowWorkspaces: list(r.AllowWorkspaces),
		AllowChannels:   list(r.AllowChannels),
		AllowUsers:      list(r.AllowUsers),
		AllowRoles:      list(r.AllowRoles),
		Admins:          list(r.Admins),
		Refusal:         p.oneOf("PARLEY_REFUSAL", r.Refusal, "dm", "always", "never"),
		DailyTokens:     int64(p.integer("USAGE_DAILY_TOKENS", r.DailyTokens, 0)),

		MediaMaxBytes:     int64(p.integer("MEDIA_MAX_BYTES", r.MediaMaxBytes, 1)),
		MediaAllowPrivate: p.boolean("MEDIA_ALLOW_PRIVATE", r.MediaAllowPrivate),
	}
	c.Engine.UserRateN, c.Engine.UserRatePer = p.rate("PARLEY_USER_RATE", r.UserRate)
	c.Tools = Tools{
		MCPConfig:       strings.TrimSpace(r.MCPConfig),
		MaxRounds:       p.integer("TOOLS_MAX_ROUNDS", r.ToolsMaxRounds, 1),
		CallTimeout:     p.duration("TOOLS_CALL_TIMEOUT", r.ToolsCallTimeout),
		MaxResultBytes:  p.integer("TOOLS_MAX_RESULT_BYTES", r.ToolsMaxResultBytes, 256),
		ApprovalTimeout: p.duration("TOOLS_APPROVAL_TIMEOUT", r.ToolsApprovalWait),
	}

	p.require(purpose)
	return p
}

// require adds the problems of settings missing for purpose.
func (p *parser) require(purpose Purpose) {
	c := &p.cfg
	if purpose >= ForConsole && !c.LLM.APIKey.IsSet() && strings.TrimRight(c.LLM.BaseURL, "/") == DefaultLLMBaseURL {
		p.add("LLM_API_KEY", "not set; create an API key at n1n.ai and set LLM_API_KEY to it (or point LLM_BASE_URL at an endpoint that needs none)")
	}
	if purpose < ForBot {
		return
	}
	s := c.Slack
	switch {
	case s.BotToken.IsSet() && !s.AppToken.IsSet() && !s.SigningSecret.IsSet():
		p.add("SLACK_APP_TOKEN", "not set, and neither is SLACK_SIGNING_SECRET: with SLACK_BOT_TOKEN set one of them: SLACK_APP_TOKEN (xapp-..., scope connections:write) for Socket Mode, or SLACK_SIGNING_SECRET for HTTP events sent to HTTP_ADDR")
	case !s.BotToken.IsSet() && s.AppToken.IsSet():
		p.add("SLACK_BOT_TOKEN", "not set, but SLACK_APP_TOKEN is; set it to the Bot User OAuth Token (xoxb-...) from the Slack app's OAuth & Permissions page")
	case !s.BotToken.IsSet() && s.SigningSecret.IsSet():
		p.add("SLACK_BOT_TOKEN", "not set, but SLACK_SIGNING_SECRET is; set it to the Bot User OAuth Token (xoxb-...) from the Slack app's OAuth & Permissions page")
	}
	if !s.BotToken.IsSet() && !s.AppToken.IsSet() && !s.SigningSecret.IsSet() && !c.Discord.Enabled() {
		p.add("", "no chat platform is configured: set SLACK_BOT_TOKEN with SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP events) for Slack, or DISCORD_BOT_TOKEN for Discord (in the environment or in a .env file; see .env.example), or run `parley console` to try Parley in the terminal")
	}
}

// secret refuses a token holding white space: a paste gone wrong.
func (p *parser) secret(name string, s Secret) Secret {
	v := strings.TrimSpace(s.Reveal())
	if strings.ContainsFunc(v, unicode.IsSpace) {
		p.add(name, "contains spaces or line breaks; paste the token alone")
	}
	return Secret(v)
}

func (p *parser) integer(name, raw string, min int) int {
	n, err := strconv.Atoi(strings.TrimSpace(raw))
	if err != nil {
		p.add(name, "is not a whole number")
		return 0
	}
	if n < min {
		p.add(name, "must be at least "+strconv.Itoa(min))
		return 0
	}
	return n
}

func (p *parser) duration(name, raw string) time.Duration {
	d, err := time.ParseDuration(strings.TrimSpace(raw))
	if err != nil {
		p.add(name, "is not a duration; write it like 90s, 2m or 1h30m")
		return 0
	}
	if d <= 0 {
		p.add(name, "must be longer than 0s")
		return 0
	}
	return d
}

func (p *parser) oneOf(name, raw string, choices ...string) string {
	v := strings.ToLower(strings.TrimSpace(raw))
	for _, c := range choices {
		if v == c {
			return v
		}
	}
	p.add(name, "must be one of "+strings.Join(choices, ", "))
	return ""
}

func (p *parser) httpURL(name, raw string) string {
	v := strings.TrimSpace(raw)
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add(name, "is not an http:// or https:// URL")
		return ""
	}
	if u.User != nil {
		p.add(name, "holds a user name or password; put credentials in the token variables instead")
		return ""
	}
	return v
}

// list splits a comma-separated list, dropping empty entries.
func list(raw string) []string {
	var out []string
	for _, s := range strings.Split(raw, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func validGlob(pattern string) bool {
	_, err := path.Match(pattern, "")
	return err == nil
}

func (p *parser) globs(name, raw string) []string {
	gs := list(raw)
	for _, g := range gs {
		if !validGlob(g) {
			p.add(name, "holds a malformed pattern (check its [ ] brackets); write comma-separated names or patterns like gpt-4o*,claude-*")
			return nil
		}
	}
	return gs
}

func (p *parser) modelTimeouts(name, raw string) []ModelTimeout {
	if strings.EqualFold(strings.TrimSpace(raw), "none") {
		return nil
	}
	var out []ModelTimeout
	for _, entry := range list(raw) {
		pattern, d, ok := strings.Cut(entry, "=")
		pattern = strings.TrimSpace(pattern)
		timeout, err := time.ParseDuration(strings.TrimSpace(d))
		if !ok || pattern == "" || !validGlob(pattern) || err != nil || timeout <= 0 {
			p.add(name, `must be comma-separated pattern=duration pairs like "sora*=15m,veo*=15m", or "none"`)
			return nil
		}
		out = append(out, ModelTimeout{Pattern: pattern, Timeout: timeout})
	}
	return out
}

func (p *parser) commandPrefix(name, raw string) string {
	v := strings.TrimSpace(raw)
	if len(v) > 20 {
		p.add(name, "is longer than 20 characters; slash command names are at most 32")
		return ""
	}
	for _, r := range v {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_') {
			p.add(name, "may hold only lowercase letters, digits, - and _ (it is put before command names: a prefix of pl- gives /pl-model)")
			return ""
		}
	}
	return v
}

func (p *parser) addr(name, raw string) string {
	v := strings.TrimSpace(raw)
	_, port, err := net.SplitHostPort(v)
	if err != nil || !isDigits(port) {
		p.add(name, "is not a listen address like :8080 or 127.0.0.1:8080")
		return ""
	}
	if n, _ := strconv.Atoi(port); n > 65535 {
		p.add(name, "has a port above 65535")
		return ""
	}
	return v
}

func (p *parser) logLevel(name, raw string) slog.Level {
	switch strings.ToLower(strings.TrimSpace(raw)) {
	case "debug":
		return slog.LevelDebug
	case "info":
		return slog.LevelInfo
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	p.add(name, "must be one of debug, info, warn, error")
	return slog.LevelInfo
}

func (p *parser) emoji(name, raw string) []string {
	var out []string
	for _, e := range list(raw) {
		e = strings.Trim(e, ":")
		if e == "" || strings.ContainsFunc(e, unicode.IsSpace) {
			p.add(name, "must be comma-separated emoji names (octagonal_sign) or emoji (🛑)")
			return nil
		}
		out = append(out, e)
	}
	return out
}

// rate reads "N/UNIT" (UNIT one of s, m, h, d, or a duration such as 10m):
// at most N requests per UNIT. Empty means unlimited.
func (p *parser) rate(name, raw string) (int, time.Duration) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return 0, 0
	}
	const how = "write it as requests per period, like 20/h, 5/m or 100/24h"
	ns, per, ok := strings.Cut(raw, "/")
	n, err := strconv.Atoi(strings.TrimSpace(ns))
	if !ok || err != nil || n < 1 {
		p.add(name, "is not a rate; "+how)
		return 0, 0
	}
	units := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}
	per = strings.TrimSpace(per)
	d, ok := units[per]
	if !ok {
		d, err = time.ParseDuration(per)
		if err != nil || d <= 0 {
			p.add(name, "has no valid period; "+how)
			return 0, 0
		}
	}
	return n, d
}

func (p *parser) boolean(name, raw string) bool {
	b, err := strconv.ParseBool(strings.TrimSpace(raw))
	if err != nil {
		p.add(name, "is not true or false")
		return false
	}
	return b
}
