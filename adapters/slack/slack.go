// Package slack connects Parley's engine to Slack: it receives events, slash
// commands and interactions over Socket Mode or the HTTP Events API, and
// implements bots.Platform with the Web API (native streaming where the
// workspace allows it, chat.postMessage and chat.update otherwise).
//
// It is the only package that imports slack-go. It holds no conversation
// rules: the engine decides what to answer and when.
package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	slackapi "github.com/slack-go/slack"

	"github.com/parleyhq/parley/bots"
)

// Streaming modes of Options.Streaming.
const (
	StreamingAuto   = "auto"   // native streaming, falling back to updates where refused
	StreamingNative = "native" // chat.startStream / appendStream / stopStream
	StreamingUpdate = "update" // chat.postMessage, then chat.update
)

// Options configures an Adapter. Zero values are documented defaults.
type Options struct {
	BotToken string // xoxb-…; required
	// AppToken (xapp-…, connections:write) selects Socket Mode.
	AppToken string
	// SigningSecret enables the HTTP Events API on Handler.
	SigningSecret string
	// APIURL is the Web API base; default https://slack.com/api/.
	APIURL string
	// Streaming is "auto" (default), "native" or "update".
	Streaming string
	// CommandPrefix is prepended to the slash command names: with "ai-",
	// /ai-model, /ai-models, … Default none.
	CommandPrefix string
	// HTTPClient makes every Web API call and dials the Socket Mode
	// websocket (its transport's dialer and proxy); default a client with a
	// 30-second timeout.
	HTTPClient *http.Client
}

// LogValue masks the tokens when Options are logged.
func (o Options) LogValue() slog.Value {
	mask := func(s string) string {
		if s == "" {
			return ""
		}
		return "***"
	}
	return slog.GroupValue(
		slog.String("bot_token", mask(o.BotToken)),
		slog.String("app_token", mask(o.AppToken)),
		slog.String("signing_secret", mask(o.SigningSecret)),
		slog.String("api_url", o.APIURL),
		slog.String("streaming", o.Streaming),
		slog.String("command_prefix", o.CommandPrefix),
	)
}

// engine is what the adapter needs of *bots.Engine; tests record calls with
// a double.
type engine interface {
	Handle(ctx context.Context, p bots.Platform, in bots.Incoming) error
	Command(ctx context.Context, p bots.Platform, cmd bots.Command) bots.CommandReply
	Models(ctx context.Context, query string, n int) []string
	Deleted(p bots.Platform, workspace, channel, messageID string)
	Reacted(p bots.Platform, workspace, channel, messageID, user, emoji string)
}

// Adapter is Parley on Slack. Create it with New, run it with Run; in HTTP
// mode also serve Handler.
type Adapter struct {
	opts Options
	eng  engine
	log  *slog.Logger
	api  *slackapi.Client
	// upAPI makes uploads: api's calls without the HTTP client's overall
	// timeout, sized for Web API calls; Upload sets a deadline by size.
	upAPI  *slackapi.Client
	client *http.Client
	mode   string
	// ackWait is how long a command may take before it is acknowledged
	// empty and answered through response_url instead (Slack waits 3 s),
	// and how long an HTTP event waits for its first attempt.
	ackWait time.Duration
	// events runs the events' handling, in order within a conversation;
	// retry paces the new attempts at an event the engine did not take.
	events *dispatcher
	retry  retryPolicy

	ready     chan struct{} // closed once auth.test has answered
	connected atomic.Bool   // the Socket Mode connection is up
	readyOnce sync.Once
	botUserID string // set before ready is closed

	// authed is closed once Slack took the tokens: auth.test answered
	// and, in Socket Mode, the first connection is up.
	authed     chan struct{}
	authedOnce sync.Once

	mu       sync.Mutex
	runCtx   context.Context // Run's context, for work that outlives a request
	stopped  bool            // Run is returning: no more background work
	deleting map[msgKey]bool // messages the adapter deletes: no news to the engine
	noNative map[string]bool // workspaces that refused native streaming (auto mode)
	noStatus map[string]bool // workspaces that refused assistant.threads.setStatus
	wg       sync.WaitGroup  // background work: events, commands, interactions

	people people // users.info's answers, for admin checks and callers' teams
}

var (
	_ bots.Platform = (*Adapter)(nil)
	_ bots.Streamer = (*Adapter)(nil)
)

// New returns an Adapter for engine. It checks opts but makes no call:
// Run calls auth.test.
func New(opts Options, engine *bots.Engine, logger *slog.Logger) (*Adapter, error) {
	if engine == nil {
		return nil, errors.New("slack: no engine")
	}
	return newAdapter(opts, engine, logger)
}

func newAdapter(opts Options, eng engine, logger *slog.Logger) (*Adapter, error) {
	if opts.BotToken == "" {
		return nil, errors.New("slack: no bot token: set SLACK_BOT_TOKEN to the app's xoxb- token (OAuth & Permissions)")
	}
	if opts.AppToken == "" && opts.SigningSecret == "" {
		return nil, errors.New("slack: set SLACK_APP_TOKEN (xapp-, Socket Mode) or SLACK_SIGNING_SECRET (HTTP Events API)")
	}
	if opts.AppToken != "" && !strings.HasPrefix(opts.AppToken, "xapp-") {
		return nil, errors.New("slack: SLACK_APP_TOKEN is not an app-level token: it starts with xapp- (Basic Information, App-Level Tokens)")
	}
	mode := strings.ToLower(strings.TrimSpace(opts.Streaming))
	switch mode {
	case "":
		mode = StreamingAuto
	case StreamingAuto, StreamingNative, StreamingUpdate:
	default:
		return nil, fmt.Errorf("slack: streaming mode %q is not auto, native or update", opts.Streaming)
	}
	if opts.APIURL == "" {
		opts.APIURL = slackapi.APIURL
	}
	if !strings.HasSuffix(opts.APIURL, "/") {
		opts.APIURL += "/"
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("platform", "slack")
	a := &Adapter{
		opts:     opts,
		eng:      eng,
		log:      logger,
		client:   opts.HTTPClient,
		mode:     mode,
		ackWait:  2500 * time.Millisecond,
		ready:    make(chan struct{}),
		authed:   make(chan struct{}),
		deleting: make(map[msgKey]bool),
		noNative: make(map[string]bool),
		noStatus: make(map[string]bool),
		retry:    defaultRetry,
	}
	a.events = newDispatcher(maxHandlers, maxBacklog, a.background, logger)
	a.api = slackapi.New(opts.BotToken,
		slackapi.OptionAPIURL(opts.APIURL),
		slackapi.OptionHTTPClient(opts.HTTPClient),
		slackapi.OptionAppLevelToken(opts.AppToken),
		slackapi.OptionLog(slog.NewLogLogger(logger.Handler(), slog.LevelDebug)),
	)
	uploads := *opts.HTTPClient
	uploads.Timeout = 0
	a.upAPI = slackapi.New(opts.BotToken,
		slackapi.OptionAPIURL(opts.APIURL),
		slackapi.OptionHTTPClient(&uploads),
		slackapi.OptionLog(slog.NewLogLogger(logger.Handler(), slog.LevelDebug)),
	)
	return a, nil
}

// Ready reports whether Slack can be served, for readiness probes: the
// Socket Mode connection is up, or, in HTTP events mode, auth.test has
// answered.
func (a *Adapter) Ready() bool {
	if a.opts.AppToken == "" {
		select {
		case <-a.ready:
			return true
		default:
			return false
		}
	}
	return a.connected.Load()
}

// Authenticated is closed once Slack has accepted the tokens: auth.test
// the bot token and, in Socket Mode, apps.connections.open the app token
// (the first connection is up). A refused token makes Run return an error
// instead.
func (a *Adapter) Authenticated() <-chan struct{} { return a.authed }

// authenticated closes Authenticated's channel.
func (a *Adapter) authenticated() { a.authedOnce.Do(func() { close(a.authed) }) }

// Name returns "slack".
func (a *Adapter) Name() string { return "slack" }

// Run calls auth.test to learn the bot's user id and team, then, with an
// AppToken, holds the Socket Mode connection (reconnecting as Slack asks)
// until ctx ends; without one it waits for ctx while Handler serves. It
// returns once its goroutines have stopped.
func (a *Adapter) Run(ctx context.Context) error {
	// Background work ends with Run, also when Run fails.
	ctx, cancel := context.WithCancel(ctx)
	a.mu.Lock()
	a.runCtx = ctx
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.stopped = true
		a.mu.Unlock()
		cancel()
		a.wg.Wait()
	}()
	if err := a.authenticate(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if a.opts.AppToken == "" {
		a.authenticated()
		<-ctx.Done()
		return nil
	}
	return a.runSocket(ctx)
}

// authenticate calls auth.test, retrying network failures and 5xx with
// backoff; a refused token fails at once.
func (a *Adapter) authenticate(ctx context.Context) error {
	wait := time.Second
	for {
		res, err := a.api.AuthTestContext(ctx)
		if err == nil {
			a.readyOnce.Do(func() {
				a.botUserID = res.UserID
				close(a.ready)
			})
			a.log.Info("slack connected", "team", res.TeamID, "bot_user", res.UserID)
			return nil
		}
		var apiErr slackapi.SlackErrorResponse
		if errors.As(err, &apiErr) {
			return fmt.Errorf("slack: auth.test: %s: check SLACK_BOT_TOKEN (the xoxb- token under OAuth & Permissions)", apiErr.Err)
		}
		var rl *slackapi.RateLimitedError
		if errors.As(err, &rl) {
			wait = max(wait, rl.RetryAfter)
		}
		a.log.Warn("slack auth.test failed, retrying", "err", redact(err), "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// waitReady waits until auth.test has answered, for at most d.
func (a *Adapter) waitReady(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-a.ready:
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}

// background runs f in a goroutine owned by the adapter, in Run's context;
// Run waits for it before returning. It reports false, running nothing,
// when Run is not running.
func (a *Adapter) background(f func(ctx context.Context)) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.runCtx == nil || a.stopped {
		return false
	}
	ctx := a.runCtx
	a.wg.Go(func() { f(ctx) })
	return true
}

// dialer returns the websocket dialer for Socket Mode: it dials and proxies
// as the HTTP client's transport does.
func (a *Adapter) dialer() *websocket.Dialer {
	d := &websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: 45 * time.Second,
		// Slack does not reassemble continuation frames: keep every
		// response in one frame (responses are at most 20 KiB).
		WriteBufferSize: 32 * 1024,
	}
	if t, ok := a.client.Transport.(*http.Transport); ok {
		d.NetDialContext = t.DialContext
		d.Proxy = t.Proxy
		d.TLSClientConfig = t.TLSClientConfig
	}
	return d
}
