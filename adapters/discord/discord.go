// Package discord connects Parley's engine to Discord through discordgo: the
// gateway (mentions, DMs, replies, reactions, deletions), REST calls paced
// to Discord's rate-limit headers, threads or reply chains for answers, and
// slash commands with model autocomplete.
//
// It is the only package that imports discordgo; it knows nothing of LLMs or
// storage beyond the bots types.
package discord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/bots"
)

// Reply modes.
const (
	// ReplyThread answers a mention in a thread started from it.
	ReplyThread = "thread"
	// ReplyReply answers a mention with a reply in the channel; the reply
	// chain carries the conversation.
	ReplyReply = "reply"
)

// fileTimeout is the least time an upload or a download may take: a
// 10 MiB file on a slow link outlasts the REST calls' 20 s.
const fileTimeout = 2 * time.Minute

// DefaultAPIURL is Discord's REST API root.
const DefaultAPIURL = "https://discord.com/api/v10"

// Options configures an Adapter. Zero values are documented defaults.
type Options struct {
	// Token is the bot token (Developer Portal, Bot, Reset Token); a "Bot "
	// prefix is added when missing.
	Token string
	// APIURL is the REST API root; default DefaultAPIURL. Gateway discovery
	// goes there too, so a fake Discord serves both.
	APIURL string
	// GuildID registers the slash commands in that guild only (instant
	// updates while developing) instead of globally.
	GuildID string
	// ReplyMode is ReplyThread (default) or ReplyReply.
	ReplyMode string
	// ShardID and ShardCount select this process's shard; ShardCount 0 or
	// 1 means no sharding. Discord delivers DMs to shard 0 only.
	ShardID, ShardCount int
	// HTTPClient is used for REST calls; default a client with a 20 s
	// timeout. Its Transport is wrapped, the client is not modified.
	// Uploads and downloads of files use it with a timeout of at least
	// two minutes.
	HTTPClient *http.Client
	// MaxUploadBytes is the largest file Upload sends; default
	// DefaultMaxUploadBytes (10 MiB). Set it to the limit of the server's
	// boost level (50 MiB at level 2, 100 MiB at level 3) to upload more.
	MaxUploadBytes int64
	// CatchUp bounds how far back Parley reads the messages it missed,
	// after a start or a reconnect that could not resume; default
	// DefaultCatchUp (10 minutes), negative turns the catch-up after a
	// start off.
	CatchUp time.Duration
}

// intents are the gateway intents Parley needs, and no more: guilds (thread
// and channel events), messages in guilds and DMs with their content, and
// reactions (a stop emoji stops a stream).
const intents = discordgo.IntentsGuilds |
	discordgo.IntentsGuildMessages |
	discordgo.IntentsDirectMessages |
	discordgo.IntentsMessageContent |
	discordgo.IntentsGuildMessageReactions |
	discordgo.IntentsDirectMessageReactions

// engine is what the adapter needs of *bots.Engine; tests substitute a
// recorder.
type engine interface {
	Handle(ctx context.Context, p bots.Platform, in bots.Incoming) error
	Command(ctx context.Context, p bots.Platform, cmd bots.Command) bots.CommandReply
	Models(ctx context.Context, query string, n int) []string
	Deleted(p bots.Platform, workspace, channel, messageID string)
	Reacted(p bots.Platform, workspace, channel, messageID, user, emoji string)
}

// Adapter is Parley on Discord. It implements bots.Platform, bots.Uploader
// and bots.Downloader.
type Adapter struct {
	opts   Options
	engine engine
	log    *slog.Logger
	s      *discordgo.Session
	rl     *limiter
	// window is the length of the per-channel buckets the engine paces
	// to (Discord's 5 s; tests shorten it).
	window time.Duration
	now    func() time.Time

	// uploads is the REST client with a longer timeout; downloads fetches
	// from the CDN without the REST transport (and so without the token).
	uploads, downloads *http.Client

	// Gateway events, in order, for the worker; signals for the supervisor.
	events     chan func(context.Context)
	disconnect chan struct{}
	missed     chan struct{}

	connected atomic.Bool // a gateway session is up (READY or RESUMED seen)
	// identified is closed once the gateway accepted the first IDENTIFY.
	identified chan struct{}

	mu       sync.Mutex
	botID    string
	appID    string
	readies  int
	seeded   bool                  // the first backfill read the store's recent conversations
	conns    map[net.Conn]struct{} // gateway connections, closed on shutdown
	running  bool
	stopping bool
	wg       sync.WaitGroup // interaction handlers
	runCtx   context.Context

	cache  *cache
	admins admins // guilds' and members' roles, for admin checks
}

var _ bots.Platform = (*Adapter)(nil)
var _ bots.Preparer = (*Adapter)(nil)

// New returns an Adapter answering through engine. Run starts it.
func New(opts Options, engine *bots.Engine, logger *slog.Logger) (*Adapter, error) {
	if engine == nil {
		return nil, errors.New("discord: no engine")
	}
	return newAdapter(opts, engine, logger)
}

func newAdapter(opts Options, e engine, logger *slog.Logger) (*Adapter, error) {
	token := strings.TrimSpace(opts.Token)
	if token == "" {
		return nil, errors.New("discord: the bot token is empty: copy it from the Developer Portal (Bot, Reset Token)")
	}
	if !strings.HasPrefix(token, "Bot ") {
		token = "Bot " + token
	}
	if opts.APIURL == "" {
		opts.APIURL = DefaultAPIURL
	}
	api, err := url.Parse(strings.TrimSuffix(opts.APIURL, "/"))
	if err != nil || (api.Scheme != "http" && api.Scheme != "https") || api.Host == "" {
		return nil, fmt.Errorf("discord: API URL %q is not an http(s) URL like %s", opts.APIURL, DefaultAPIURL)
	}
	switch opts.ReplyMode {
	case "":
		opts.ReplyMode = ReplyThread
	case ReplyThread, ReplyReply:
	default:
		return nil, fmt.Errorf("discord: reply mode %q is neither %q nor %q", opts.ReplyMode, ReplyThread, ReplyReply)
	}
	if opts.ShardCount < 0 || opts.ShardID < 0 || (opts.ShardCount > 1 && opts.ShardID >= opts.ShardCount) ||
		(opts.ShardCount <= 1 && opts.ShardID != 0) {
		return nil, fmt.Errorf("discord: shard %d of %d: the shard id must be below the shard count", opts.ShardID, opts.ShardCount)
	}
	if opts.MaxUploadBytes < 0 {
		return nil, fmt.Errorf("discord: the upload limit %d is negative: leave it 0 for %d bytes", opts.MaxUploadBytes, DefaultMaxUploadBytes)
	}
	if opts.MaxUploadBytes == 0 {
		opts.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("platform", "discord")

	a := &Adapter{
		opts:       opts,
		engine:     e,
		log:        logger,
		rl:         newLimiter(time.Now),
		now:        time.Now,
		events:     make(chan func(context.Context), 256),
		disconnect: make(chan struct{}, 1),
		missed:     make(chan struct{}, 1),
		identified: make(chan struct{}),
		conns:      make(map[net.Conn]struct{}),
		cache:      newCache(),
		window:     5 * time.Second,
	}

	client := &http.Client{Timeout: 20 * time.Second}
	if opts.HTTPClient != nil {
		c := *opts.HTTPClient
		client = &c
	}
	base := client.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	client.Transport = &transport{base: base, api: api, limiter: a.rl}
	uploads, downloads := *client, *client
	downloads.Transport = base
	if client.Timeout > 0 && client.Timeout < fileTimeout {
		uploads.Timeout, downloads.Timeout = fileTimeout, fileTimeout
	}
	a.uploads, a.downloads = &uploads, &downloads

	libraryLogs.Do(routeLibraryLogs)
	s, err := discordgo.New(token)
	if err != nil {
		return nil, fmt.Errorf("discord: %w", err)
	}
	s.Client = client
	s.Identify.Intents = intents
	s.ShardID = opts.ShardID
	s.ShardCount = max(opts.ShardCount, 1)
	// Parley owns reconnection (with a context and backoff), event
	// dispatch (handlers enqueue; owned workers run them) and rate limits.
	s.ShouldReconnectOnError = false
	s.ShouldRetryOnRateLimit = false
	s.SyncEvents = true
	s.StateEnabled = false
	s.Dialer = &websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: 30 * time.Second,
		NetDialContext:   a.dial,
	}
	a.s = s
	a.addHandlers()
	return a, nil
}

var libraryLogs sync.Once

// routeLibraryLogs sends discordgo's own log lines (errors only, the
// session's default level) to slog instead of the log package. discordgo
// has one logger for the process; it goes to slog.Default, as an adapter's
// logger may not outlive it. Most of these errors are conditions Parley
// handles (a dropped connection), hence the warning level.
func routeLibraryLogs() {
	discordgo.Logger = func(level, _ int, format string, args ...any) {
		msg := "discordgo: " + redactURL(fmt.Sprintf(format, args...))
		if level == discordgo.LogError {
			slog.Warn(msg, "platform", "discord")
		} else {
			slog.Debug(msg, "platform", "discord")
		}
	}
}

// Name implements bots.Platform.
func (a *Adapter) Name() string { return "discord" }

// Ready reports whether the gateway session is up, for readiness probes.
func (a *Adapter) Ready() bool { return a.connected.Load() }

// Authenticated is closed once Discord has accepted the bot token: the
// REST API and the gateway's IDENTIFY both answered. A refused token makes
// Run return an error instead.
func (a *Adapter) Authenticated() <-chan struct{} { return a.identified }

// Limits implements bots.Platform. Discord's buckets, as its headers
// announce them (the adapter's limiter follows the headers themselves;
// these let the engine choose what goes first):
//
//	create message          5 per 5 s per channel (a thread is a channel)
//	edit message            5 per 5 s per channel, counted apart from creates
//	trigger typing          5 per 5 s per channel
//	delete message          5 per 1 s per channel
//	start thread            50 per 5 minutes per guild
//	every call but interactions: 50 a second for the whole bot
//
// In thread mode the first answer to a mention starts its thread: the
// engine has it started while the model thinks (Prepare), from the bot's
// calls and the guild's thread budget; when that budget is spent the
// answer goes into the channel instead (Unprepared). Typing lasts 10 s; it
// is repeated before it fades.
func (a *Adapter) Limits(dest bots.Destination) bots.Limits {
	ch := a.target(dest)
	win := func(n int, d time.Duration) bots.Rate { return bots.Rate{Every: d / time.Duration(n), Burst: n} }
	global := bots.Budget{Key: "global", Name: "global", Rate: win(globalLimit, time.Second), Shared: true}
	channel := func(name string, r bots.Rate) bots.Budget {
		return bots.Budget{Key: name + "/" + ch, Name: name, Rate: r}
	}
	messages := channel("messages", win(5, a.window))
	l := bots.Limits{
		MaxChars:      maxMessageChars,
		ProgressEvery: 8 * time.Second,
		Budgets: map[bots.Call][]bots.Budget{
			bots.CallPost:     {messages, global},
			bots.CallUpload:   {messages, global},
			bots.CallEdit:     {channel("edits", win(5, a.window)), global},
			bots.CallProgress: {channel("typing", win(5, a.window)), global},
			bots.CallDelete:   {channel("deletes", win(5, time.Second)), global},
		},
	}
	if a.startsThread(dest) {
		l.Budgets[bots.CallPrepare] = []bots.Budget{global,
			{Key: "threads/" + dest.Workspace, Name: "threads", Rate: win(50, 5*time.Minute), Shared: true}}
	}
	return l
}

// maxMessageChars is the most characters a Discord message holds.
const maxMessageChars = 2000

// startsThread reports whether the first post to dest may start a thread.
func (a *Adapter) startsThread(dest bots.Destination) bool {
	if dest.DM || dest.Thread == "" || a.opts.ReplyMode == ReplyReply {
		return false
	}
	st := a.cache.thread(dest.Thread)
	return st != threadExists && st != threadNone
}

// Run connects to the gateway, registers the slash commands and answers
// until ctx ends; then it closes the session and waits for its handlers.
func (a *Adapter) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.running {
		a.mu.Unlock()
		return errors.New("discord: Run called twice")
	}
	a.running = true
	a.runCtx = ctx
	a.mu.Unlock()

	me, err := a.s.User("@me", a.opts0(ctx)...)
	if err != nil {
		return a.startErr(ctx, "read the bot user", err)
	}
	a.mu.Lock()
	a.botID = me.ID
	a.mu.Unlock()

	if gb, err := a.s.GatewayBot(a.opts0(ctx)...); err == nil && gb != nil {
		a.log.Info("gateway", "recommended_shards", gb.Shards,
			"session_starts_left", gb.SessionStartLimit.Remaining)
	}

	if err := a.open(ctx); err != nil {
		return a.startErr(ctx, "open the gateway", err)
	}
	close(a.identified)

	var workers sync.WaitGroup
	workers.Go(func() { a.work(ctx) })
	workers.Go(func() { a.supervise(ctx) })
	workers.Go(func() { a.backfillLoop(ctx) })

	if err := a.registerCommands(ctx); err != nil && ctx.Err() == nil {
		a.log.Error("slash commands not registered; mentions and DMs still work", "err", err)
	}

	<-ctx.Done()
	a.mu.Lock()
	a.stopping = true
	a.mu.Unlock()
	workers.Wait()
	if err := a.s.Close(); err != nil {
		a.log.Warn("close the gateway", "err", err)
	}
	a.closeConns()
	a.wg.Wait()
	return nil
}

func (a *Adapter) startErr(ctx context.Context, what string, err error) error {
	a.mu.Lock()
	a.stopping = true
	a.mu.Unlock()
	a.closeConns()
	if ctx.Err() != nil {
		return nil // stopped while starting
	}
	var re *discordgo.RESTError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode == http.StatusUnauthorized {
		return errors.New("discord: " + what + ": Discord refused the bot token (401): check DISCORD_BOT_TOKEN, or reset the token in the Developer Portal (Bot, Reset Token) and set it again")
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		switch ce.Code {
		case 4004: // Authentication failed
			return errors.New("discord: " + what + ": the gateway refused the bot token (4004): check DISCORD_BOT_TOKEN, or reset the token in the Developer Portal (Bot, Reset Token)")
		case 4014: // Disallowed intent(s)
			return errors.New("discord: " + what + ": the gateway refused the Message Content intent (4014): turn on Message Content Intent in the Developer Portal (Bot, Privileged Gateway Intents)")
		}
	}
	return fmt.Errorf("discord: %s: %w", what, redact(err))
}

// spawn runs f in a goroutine the adapter waits for on shutdown.
func (a *Adapter) spawn(f func(ctx context.Context)) {
	a.mu.Lock()
	if a.stopping || a.runCtx == nil {
		a.mu.Unlock()
		return
	}
	ctx := a.runCtx
	a.wg.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.wg.Done()
		f(ctx)
	}()
}

// bot returns the bot's user id.
func (a *Adapter) bot() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.botID
}
