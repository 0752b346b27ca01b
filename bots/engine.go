// Package bots is Parley's engine: it turns a normalized incoming message
// into a streamed, stored reply on any platform. It holds the conversation
// rules, the commands, the edit scheduler and the message splitter, and
// defines the Platform interface the adapters implement.
//
// It knows no platform SDK: adapters translate to and from its types.
package bots

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parleyhq/parley/bots/media"
	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/llm"
	"github.com/parleyhq/parley/tools"
)

// Config configures an Engine. Zero values are documented defaults.
type Config struct {
	DefaultModel  string
	SystemPrompt  string
	ContextTokens int      // history budget; default 16000
	MaxConcurrent int      // conversations answered at once; default 256
	StopEmoji     []string // reaction names that stop a stream; default octagonal_sign, 🛑
	// HistoryLimit is the most stored messages loaded for a reply before the
	// token budget trims them; default 200.
	HistoryLimit int
	// FinishTimeout bounds how long the final text of a reply is retried
	// after the answer ended; default 2 minutes.
	FinishTimeout time.Duration
	// ShutdownGrace is how long replies in flight may go on once Run's
	// context ends; the rest are then handed over (or, with RecoverMark, cut
	// with a notice). Default 20 s: with the handover, within the 30 s a
	// Kubernetes pod gets by default.
	ShutdownGrace time.Duration
	Observer      Observer // default: none
	// Media fetches the files an answer links to, for platforms that take
	// uploads; nil leaves links as links.
	Media *media.Fetcher
	// VisionModels are glob patterns of the models that take images
	// (LLM_VISION_MODELS); other models get a note that an image was
	// attached.
	VisionModels []string
	// MaxImageBytes bounds an image sent to a model; default 20 MiB.
	MaxImageBytes int64
	// Tools are offered to the model while it answers (MCP_CONFIG); nil:
	// none.
	Tools *tools.Loop
	// ApprovalTimeout is how long a person has to approve a tool call
	// that needs it; no answer denies it. Default 2 minutes.
	ApprovalTimeout time.Duration
	// Access says whom Parley answers (PARLEY_ALLOW_*).
	Access Access
	// UserRate bounds each person's requests (PARLEY_USER_RATE); the zero
	// Rate is unlimited.
	UserRate Rate
	// DailyTokens is each person's daily token budget (USAGE_DAILY_TOKENS);
	// 0 is unlimited.
	DailyTokens int64
	// Owner names this process for conversation claims, so that replicas
	// on one database answer each conversation one at a time and in order;
	// default host name, process id and start time.
	Owner string
	// OrderWait is how long a replica waits for another to answer an older
	// question of the same conversation before answering it itself;
	// default 1 minute.
	OrderWait time.Duration
	// HeartbeatEvery is how often this replica renews its lease in the
	// store, re-divides the platforms' budgets between the replicas alive
	// and takes over the work of instances whose lease lapsed; default 1 s
	// (a lease lasts five beats, so a dead instance's work is taken over
	// within about six).
	HeartbeatEvery time.Duration
	// Recovery says what becomes of an answer an instance left unfinished
	// (killed, or shut down before it ended): RecoverAnswer (the default)
	// answers the question again in the same reply, RecoverMark only says
	// that it was interrupted.
	Recovery RecoveryMode
	// Alone says that no other instance shares the store (an SQLite file
	// this process holds): at start every claim of another instance is
	// that of a dead one, taken over at once.
	Alone  bool
	Now    func() time.Time
	Logger *slog.Logger
}

// Causes of a stream's end other than the answer's own end.
var (
	errStopDeleted  = errors.New("the question was deleted")
	errStopReaction = errors.New("stopped by a reaction")
	errReplyGone    = errors.New("the reply was deleted")
	errShutdown     = errors.New("parley is shutting down")
)

// RecoveryMode is what a takeover does with an unfinished answer.
type RecoveryMode string

// Recovery modes (RECOVERY_MODE).
const (
	RecoverAnswer RecoveryMode = "answer" // answer again, in the same reply
	RecoverMark   RecoveryMode = "mark"   // say that it was interrupted
)

// Engine answers messages. Create it with New and run it with Run; Handle
// and Command may be called from any goroutine once Run has started.
type Engine struct {
	cfg   Config
	store conversation.Store
	llm   *llm.Client
	log   *slog.Logger
	obs   Observer
	sched *scheduler
	sem   chan struct{}
	stop  map[string]bool
	users *userLimiter

	runCtx  context.Context // set by Run before started is closed
	started chan struct{}

	mu      sync.Mutex
	closing bool // Run's context ended: no new messages
	wg      sync.WaitGroup
	queues  map[int64]*queue
	// recovered are the platforms Recover ran for; Run repeats it.
	recovered map[string]Platform
	active    map[string]*job // by "platform/workspace/message id": questions and replies
	// gone are messages deleted before the engine knew them (a reply's
	// deletion can arrive before its post returns), by the same key.
	gone map[string]time.Time
	// recovering are the conversations with a recovery job queued or
	// running.
	recovering map[int64]bool

	// The lease, by this process's monotonic clock: until when the last
	// heartbeat keeps it surely alive, and an epoch that grows whenever
	// heartbeats lapsed for longer than a lease (the process may have
	// been taken for dead meanwhile).
	leaseMu    sync.Mutex
	lastBeat   time.Time
	leaseUntil time.Time
	leaseEpoch int64
	approvals  approvals // tool calls waiting for a person's approval
}

// New returns an Engine.
func New(cfg Config, store conversation.Store, client *llm.Client) *Engine {
	if cfg.ContextTokens <= 0 {
		cfg.ContextTokens = 16000
	}
	if cfg.MaxConcurrent <= 0 {
		// A whole workspace may ask at once: a waiting answer costs a
		// connection and a few KB, while a queued one waits seconds.
		cfg.MaxConcurrent = 256
	}
	if len(cfg.StopEmoji) == 0 {
		cfg.StopEmoji = []string{"octagonal_sign", "🛑"}
	}
	if cfg.HistoryLimit <= 0 {
		cfg.HistoryLimit = 200
	}
	if cfg.FinishTimeout <= 0 {
		cfg.FinishTimeout = 2 * time.Minute
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 20 * time.Second
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.OrderWait <= 0 {
		cfg.OrderWait = time.Minute
	}
	if cfg.HeartbeatEvery <= 0 {
		cfg.HeartbeatEvery = time.Second
	}
	if cfg.Recovery == "" {
		cfg.Recovery = RecoverAnswer
	}
	if cfg.Owner == "" {
		host, _ := os.Hostname()
		cfg.Owner = fmt.Sprintf("%s/%d/%d", host, os.Getpid(), time.Now().UnixNano())
	}
	e := &Engine{
		cfg: cfg, store: store, llm: client, log: cfg.Logger, obs: cfg.Observer,
		sched:      newScheduler(cfg.Now),
		sem:        make(chan struct{}, cfg.MaxConcurrent),
		users:      &userLimiter{rate: cfg.UserRate, buckets: make(map[string]*bucket)},
		stop:       make(map[string]bool),
		started:    make(chan struct{}),
		queues:     make(map[int64]*queue),
		recovered:  make(map[string]Platform),
		active:     make(map[string]*job),
		gone:       make(map[string]time.Time),
		recovering: make(map[int64]bool),
	}
	for _, s := range cfg.StopEmoji {
		e.stop[strings.Trim(s, ": ")] = true
	}
	return e
}

// Run runs the engine until ctx ends. Then it takes no new messages and
// lets the replies in flight finish within ShutdownGrace, heartbeating on.
// What is still running then is handed over (RecoverAnswer): left
// unfinished in the store, for another instance, or the next start, to
// resume at once once this one leaves; or, with RecoverMark, cut with a
// notice.
func (e *Engine) Run(ctx context.Context) error {
	// Replies live in runCtx, which outlives ctx by the grace period.
	runCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	e.runCtx = runCtx
	e.heartbeat(runCtx)
	close(e.started)
	sweep := time.NewTicker(10 * time.Minute)
	defer sweep.Stop()
	recovery := time.NewTicker(recoverEvery)
	defer recovery.Stop()
	beat := time.NewTicker(e.cfg.HeartbeatEvery)
	defer beat.Stop()
	defer func() {
		// Leaving ends the lease at once: whatever this instance still
		// holds is taken over at the next heartbeat of another.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := e.store.Leave(lctx, e.cfg.Owner); err != nil {
			e.log.Warn("leave the replicas", "err", err)
		}
	}()
	for {
		select {
		case <-beat.C:
			e.heartbeat(runCtx)
			e.takeover(runCtx, false)
			continue
		case <-sweep.C:
			e.sched.sweep(10 * time.Minute)
			continue
		case <-recovery.C:
			// Answers left streaming outside any claim (an older build,
			// a final update that never landed) are found here.
			e.mu.Lock()
			ps := slices.Collect(maps.Values(e.recovered))
			e.mu.Unlock()
			for _, p := range ps {
				if err := e.recoverStranded(runCtx, p); err != nil {
					e.log.Warn("recover interrupted answers", "platform", p.Name(), "err", err)
				}
			}
			continue
		case <-ctx.Done():
		}
		break
	}
	e.mu.Lock()
	e.closing = true
	e.mu.Unlock()
	idle := make(chan struct{})
	go func() {
		e.wg.Wait()
		close(idle)
	}()
	grace := time.NewTimer(e.cfg.ShutdownGrace)
	defer grace.Stop()
wait:
	for {
		select {
		case <-idle:
			break wait
		case <-beat.C:
			// The lease must hold while answers finish, or another
			// instance would take them over under our feet.
			e.heartbeat(runCtx)
		case <-grace.C:
			if e.cfg.Recovery == RecoverMark {
				e.log.Warn("shutdown grace over: cutting the replies still streaming")
				cancel(errShutdown)
			} else {
				e.log.Warn("shutdown grace over: handing the answers still running over")
				cancel(errHandoff)
			}
			break wait
		}
	}
	cancel(errShutdown)
	<-idle
	return nil
}

// Replicas on one database split each platform budget between them: the
// limits belong to the workspace, not to a process. Each replica renews a
// lease in the store (timed by the database's clock) and divides every
// budget by the number of live leases.
// leaseBeats is how many heartbeats a lease lasts: a few missed beats (a
// loaded host, a slow query) do not make an instance taken for dead.
const leaseBeats = 5

// heartbeat renews this replica's lease and re-divides the budgets
// between the replicas alive. A store that cannot answer leaves the share
// as it was.
func (e *Engine) heartbeat(ctx context.Context) {
	ttl := leaseBeats * e.cfg.HeartbeatEvery
	began := time.Now()
	live, err := e.store.Heartbeat(ctx, e.cfg.Owner, ttl)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("replica heartbeat", "err", err)
		}
		return
	}
	e.leaseMu.Lock()
	if !e.lastBeat.IsZero() && began.Sub(e.lastBeat) >= ttl {
		// The lease may have lapsed in between: another instance may have
		// taken this one's work. Each claim is confirmed before its
		// reply writes again.
		e.leaseEpoch++
		e.log.Warn("heartbeats lapsed for longer than a lease: confirming claims", "gap", began.Sub(e.lastBeat).Round(time.Millisecond))
	}
	// The store's lease began no earlier than the call did.
	e.lastBeat, e.leaseUntil = began, began.Add(ttl)
	e.leaseMu.Unlock()
	e.sched.setShare(len(live))
}

// epoch returns the lease epoch (see heartbeat).
func (e *Engine) epoch() int64 {
	e.leaseMu.Lock()
	defer e.leaseMu.Unlock()
	return e.leaseEpoch
}

// leaseFresh reports whether this instance's lease surely holds and a
// claim confirmed in epoch still does.
func (e *Engine) leaseFresh(epoch int64) bool {
	e.leaseMu.Lock()
	defer e.leaseMu.Unlock()
	return epoch == e.leaseEpoch && time.Now().Before(e.leaseUntil)
}

// Replicas returns how many replicas this one divides the platforms'
// budgets with, itself included, as of its last heartbeat.
func (e *Engine) Replicas() int {
	e.sched.mu.Lock()
	defer e.sched.mu.Unlock()
	return e.sched.share
}

// Started is closed once Run has started: Handle and Command work from then.
func (e *Engine) Started() <-chan struct{} { return e.started }

// context returns the engine's run context, or an error before Run.
func (e *Engine) context() (context.Context, error) {
	select {
	case <-e.started:
	default:
		return nil, errors.New("bots: engine is not running")
	}
	e.mu.Lock()
	closing := e.closing
	e.mu.Unlock()
	if closing {
		return nil, errors.New("bots: engine is shutting down")
	}
	return e.runCtx, nil
}

// shutdownFlush bounds how long a reply cut by a shutdown may take to show
// its notice.
const shutdownFlush = 5 * time.Second

// job is one message to answer.
type job struct {
	p      Platform
	in     Incoming
	conv   conversation.Conversation
	user   conversation.Message
	dest   Destination
	reply  *reply
	ctx    context.Context
	cancel context.CancelCauseFunc

	// Guarded by Engine.mu: the stored answer's id and the reply's first
	// message id, stored together as soon as both are known so that a
	// restart can find the message to correct.
	answerID int64
	firstID  string
	queued   time.Time     // when it was accepted
	started  chan struct{} // closed when its turn comes

	hold     *hold // the conversation's claim, shared with adopted jobs
	recovery bool  // takes over a conversation's unfinished work (recover.go)
	// asst is the stored answer to write into, when it exists already (a
	// resumed answer); resumed says so.
	asst    conversation.Message
	resumed bool
	pre     *prefetch // reads made while the claim is taken, or nil
}

// queuedNoticeAfter is how long a message waits behind another of its
// conversation before it shows that it is queued.
const queuedNoticeAfter = 750 * time.Millisecond

// queue holds one conversation's messages waiting for their answer: they
// are answered one after another, in arrival order.
type queue struct {
	jobs    []*job
	running bool
}

func activeKey(platform, workspace, id string) string {
	return platform + "/" + workspace + "/" + id
}

// Handle takes one incoming message: it deduplicates, applies the
// conversation rules, stores the message and queues the reply. It returns
// quickly (before any LLM work), so adapters can acknowledge the event.
// An error means the message was not stored; the adapter should log it and
// not acknowledge it where the platform would then retry.
func (e *Engine) Handle(ctx context.Context, p Platform, in Incoming) error {
	runCtx, err := e.context()
	if err != nil {
		return err
	}
	if in.AuthorIsBot {
		return nil
	}
	e.obs.Event(p.Name(), "message")
	if strings.TrimSpace(in.Text) == "" && len(in.Attachments) == 0 {
		return nil
	}
	// A platform may deliver one message twice: the same event again
	// (Slack retries), or as two events (a Slack mention is both an
	// app_mention and a message). Both are recognized through the store,
	// so also across replicas, before anything is counted or run; the
	// second only for messages the bot answers, and for a mention or a DM
	// before it is routed (the second event of a mention then costs no
	// lookup of its conversation). An event is marked as seen only with
	// what it caused: in the transaction that stores its message, so that
	// a retry after a failed write is answered.
	if seen, err := e.seen(ctx, p, in.Workspace, in.EventID); err != nil || seen {
		return err
	}
	msgEvent := messageEventID(in)
	early := in.Mentioned || in.DM
	if early {
		if seen, err := e.seen(ctx, p, in.Workspace, msgEvent); err != nil || seen {
			return err
		}
	}
	conv, ok, err := e.route(ctx, p, in)
	if err != nil || !ok {
		return err
	}
	if !early {
		if seen, err := e.seen(ctx, p, in.Workspace, msgEvent); err != nil || seen {
			return err
		}
	}
	var events []string
	for _, id := range []string{in.EventID, msgEvent} {
		if id != "" {
			events = append(events, id)
		}
	}
	dest := Destination{
		Workspace: in.Workspace, Channel: in.Channel, Thread: conv.Key.Thread,
		ReplyTo: in.MessageID, User: in.Author, UserTeam: in.AuthorTeam, DM: in.DM,
	}
	if refusal := e.admit(ctx, p, in); refusal != "" {
		if first, err := e.firstTime(ctx, p, in.Workspace, events...); err != nil || !first {
			return err
		}
		if refusal != "-" && e.track() {
			go func() {
				defer e.wg.Done()
				e.say(runCtx, p, dest, refusal)
			}()
		}
		return nil
	}
	if name, args, ok := parseCommand(in.Text); ok {
		if first, err := e.firstTime(ctx, p, in.Workspace, events...); err != nil || !first {
			return err
		}
		cmd := Command{Workspace: in.Workspace, Channel: in.Channel, Thread: conv.Key.Thread, User: in.Author, UserTeam: in.AuthorTeam, Roles: in.Roles, DM: in.DM, Name: name, Args: args}
		if !e.track() {
			return errors.New("bots: engine is shutting down")
		}
		go func() {
			defer e.wg.Done()
			e.say(runCtx, p, dest, e.Command(runCtx, p, cmd).Text)
		}()
		return nil
	}
	user, created, err := e.store.Accept(ctx, conv.ID, conversation.Message{
		Role: conversation.RoleUser, Author: in.Author, PlatformID: in.MessageID,
		Text: in.Text, Status: conversation.StatusComplete, Attachments: in.Attachments,
	}, conversation.Intake{Owner: e.cfg.Owner, Platform: p.Name(), Workspace: in.Workspace, Events: events, TTL: time.Hour, Key: conv.Key})
	if err != nil {
		return fmt.Errorf("bots: store message: %w: %w", ErrNotStored, err)
	}
	conv.ID = user.ConversationID
	if !created {
		// The same message again (a retry, or a mention delivered as two
		// events).
		e.log.Debug("duplicate event ignored", "platform", p.Name(), "event", in.EventID)
		return nil
	}
	jctx, cancel := context.WithCancelCause(runCtx)
	j := &job{p: p, in: in, conv: conv, user: user, dest: dest, ctx: jctx, cancel: cancel, queued: time.Now(), started: make(chan struct{}), hold: &hold{}}
	j.reply = newReply(e, p, dest)
	j.reply.guard = func(ctx context.Context) error { return e.mayWrite(ctx, j) }
	// From now on progress indicators leave this reply's first text its
	// budget, also while the question waits for its turn.
	j.reply.expectFirst()
	j.reply.onGone = func() { j.cancel(errReplyGone) }
	j.reply.dropped = func(id string) {
		// The engine deletes it: its deletion stops nothing.
		e.mu.Lock()
		delete(e.active, activeKey(p.Name(), in.Workspace, id))
		e.mu.Unlock()
	}
	j.reply.posted = func(id string, first bool) {
		key := activeKey(p.Name(), in.Workspace, id)
		e.mu.Lock()
		e.active[key] = j
		_, deleted := e.gone[key]
		delete(e.gone, key)
		if deleted {
			// Deleted before its post returned: nothing more can be shown.
			defer j.cancel(errReplyGone)
		}
		var answerID int64
		if first {
			j.firstID = id
			answerID = j.answerID
		}
		e.mu.Unlock()
		switch {
		case answerID != 0:
			e.checkpoint(j, answerID, id, "")
		case first:
			// A notice that it waits: should this instance die, whoever
			// answers the question writes the answer into it.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(j.ctx), 5*time.Second)
			if err := e.store.SetReply(ctx, j.user.ID, id); err != nil {
				e.log.Warn("record a queued notice", "conversation", j.conv.ID, "err", err)
			}
			cancel()
		}
	}
	if !e.enqueue(j) {
		cancel(errShutdown)
		return errors.New("bots: engine is shutting down")
	}
	return nil
}

// ErrNotStored is wrapped by Handle's error when the message could not be
// stored (the store is down): nothing was marked seen, so a platform's
// retry of the event is answered.
var ErrNotStored = errors.New("the message could not be stored")

// notStoredNotice tells a person Parley could not keep their message.
const notStoredNotice = "⚠️ _Parley could not save your message (its database did not answer), so it cannot answer it. Please send it again in a minute._"

// NotStored tells the person who addressed Parley (a mention, a DM) that
// their message could not be stored, where the platform will not deliver
// it again (Discord): the alternative is silence.
func (e *Engine) NotStored(p Platform, in Incoming) {
	if in.AuthorIsBot || (!in.Mentioned && !in.DM) || !e.track() {
		return
	}
	dest := Destination{Workspace: in.Workspace, Channel: in.Channel, Thread: in.Thread, ReplyTo: in.MessageID, User: in.Author, DM: in.DM}
	go func() {
		defer e.wg.Done()
		e.say(e.runCtx, p, dest, notStoredNotice)
	}()
}

// say posts text at dest as a reply of its own, paced and retried like
// any other, and waits until it is shown (or FinishTimeout passes).
func (e *Engine) say(ctx context.Context, p Platform, dest Destination, text string) {
	e.show(ctx, newReply(e, p, dest), text)
}

// show sets r's whole text and waits, at most FinishTimeout, until it is
// shown. It reports whether the target was gone.
func (e *Engine) show(ctx context.Context, r *reply, text string) (gone bool) {
	r.set(text, true)
	fctx, cancel := context.WithTimeout(ctx, e.cfg.FinishTimeout)
	defer cancel()
	r.flush(fctx)
	return r.goneErr() != nil
}

// track counts a new goroutine of the engine's, unless the engine is
// shutting down; the goroutine calls e.wg.Done.
func (e *Engine) track() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return false
	}
	e.wg.Add(1)
	return true
}

// seen reports whether event id was seen already; an empty id never was.
func (e *Engine) seen(ctx context.Context, p Platform, workspace, id string) (bool, error) {
	if id == "" {
		return false, nil
	}
	seen, err := e.store.Seen(ctx, p.Name(), workspace, id)
	if err != nil {
		return false, fmt.Errorf("bots: look up event: %w", err)
	}
	if seen {
		e.log.Debug("duplicate event ignored", "platform", p.Name(), "event", id)
	}
	return seen, nil
}

// firstTime records ids as seen and reports whether all are new, for
// events that store no message (commands, refusals).
func (e *Engine) firstTime(ctx context.Context, p Platform, workspace string, ids ...string) (bool, error) {
	first := true
	for _, id := range ids {
		f, err := e.store.MarkEvent(ctx, p.Name(), workspace, id, time.Hour)
		if err != nil {
			return false, fmt.Errorf("bots: mark event: %w", err)
		}
		first = first && f
	}
	if !first {
		e.log.Debug("duplicate event ignored", "platform", p.Name(), "event", ids)
	}
	return first, nil
}

// messageEventID names a message for deduplication: its platform id,
// within its channel.
func messageEventID(in Incoming) string {
	if in.MessageID == "" {
		return ""
	}
	return "message/" + in.Channel + "/" + in.MessageID
}

// route applies the conversation rules: it returns the conversation a
// message belongs to and whether the bot answers it. In a DM every message
// is answered; in a channel, a mention starts or continues a conversation,
// and a message without one is answered only inside a conversation the bot
// is part of (a thread where it answered, or a reply to its message).
func (e *Engine) route(ctx context.Context, p Platform, in Incoming) (conversation.Conversation, bool, error) {
	// A reply to one of the bot's answers continues that answer's
	// conversation, mention or not.
	if in.ReplyTo != "" {
		conv, m, err := e.store.MessageByPlatformID(ctx, p.Name(), in.Workspace, in.ReplyTo)
		if err == nil && m.Role == conversation.RoleAssistant {
			return conv, true, nil
		}
		if err != nil && !errors.Is(err, conversation.ErrNotFound) {
			return conv, false, fmt.Errorf("bots: find replied message: %w", err)
		}
	}
	key := conversation.Key{Platform: p.Name(), Workspace: in.Workspace, Channel: in.Channel, Thread: in.Thread}
	if in.DM || in.Mentioned {
		// A new conversation is created by Accept, with its first
		// message: one write, not two (conv.ID stays 0 until then).
		conv, err := e.store.FindConversation(ctx, key)
		if errors.Is(err, conversation.ErrNotFound) {
			return conversation.Conversation{Key: key}, true, nil
		}
		if err != nil {
			return conv, false, fmt.Errorf("bots: conversation: %w", err)
		}
		return conv, true, nil
	}
	// Conversations are only created when the bot answers, so an existing
	// one is a thread the bot is part of.
	conv, err := e.store.FindConversation(ctx, key)
	if err == nil {
		return conv, true, nil
	}
	if !errors.Is(err, conversation.ErrNotFound) {
		return conv, false, fmt.Errorf("bots: find conversation: %w", err)
	}
	return conversation.Conversation{}, false, nil
}

// enqueue queues j behind the conversation's other messages; it returns
// false when the engine is shutting down.
func (e *Engine) enqueue(j *job) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return false
	}
	if !j.recovery {
		e.active[activeKey(j.p.Name(), j.in.Workspace, j.in.MessageID)] = j
	}
	q := e.queues[j.conv.ID]
	if q == nil {
		q = &queue{}
		e.queues[j.conv.ID] = q
	}
	q.jobs = append(q.jobs, j)
	if q.running && j.reply != nil {
		// Show that it waits for the answer before it, unless that one is
		// just finishing.
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			t := time.NewTimer(queuedNoticeAfter)
			defer t.Stop()
			select {
			case <-t.C:
				j.reply.setPlaceholder("⏳ _Queued: answering the earlier message first…_")
				e.startFlush(j)
			case <-j.started:
				return
			case <-j.ctx.Done():
				return
			}
			// A question deleted or stopped while it waits says so at
			// once, not when its turn comes (which ends it then).
			select {
			case <-j.started:
			case <-j.ctx.Done():
				if cause := context.Cause(j.ctx); errors.Is(cause, errStopDeleted) || errors.Is(cause, errStopReaction) {
					j.reply.set(stopNotice(cause), true)
				}
			}
		}()
		return true
	}
	q.running = true
	e.wg.Add(1)
	go e.drain(j.conv.ID, q)
	return true
}

// drain answers a conversation's queued messages one after another.
func (e *Engine) drain(convID int64, q *queue) {
	defer e.wg.Done()
	for {
		e.mu.Lock()
		if len(q.jobs) == 0 {
			q.running = false
			delete(e.queues, convID)
			e.mu.Unlock()
			return
		}
		j := q.jobs[0]
		q.jobs = q.jobs[1:]
		e.mu.Unlock()
		e.run(j)
	}
}

// startFlush starts the goroutine that shows j's reply, once.
func (e *Engine) startFlush(j *job) {
	r := j.reply
	r.mu.Lock()
	if r.flushing {
		r.mu.Unlock()
		return
	}
	r.flushing = true
	r.mu.Unlock()
	// The flusher outlives a stopped stream (it must still show the final
	// text), so it runs in the engine's context, not the job's. runCtx is
	// set once, before started is closed, so it is read without the lock.
	runCtx := e.runCtx
	fctx, cancel := context.WithCancel(context.WithoutCancel(runCtx))
	e.wg.Add(2)
	go func() {
		defer e.wg.Done()
		r.flush(fctx)
	}()
	go func() {
		// Bound the flusher: once the engine stops, or the answer is done,
		// it has FinishTimeout to show the last text.
		defer e.wg.Done()
		defer cancel()
		select {
		case <-r.finished:
			return
		case <-runCtx.Done():
		case <-j.ctx.Done():
		}
		limit := e.cfg.FinishTimeout
		if runCtx.Err() != nil {
			// Shutting down: the process is about to exit.
			limit = min(limit, shutdownFlush)
		}
		t := time.NewTimer(limit)
		defer t.Stop()
		select {
		case <-r.finished:
		case <-t.C:
		}
	}()
}

// run answers one job, holding one of the MaxConcurrent slots.
func (e *Engine) run(j *job) {
	close(j.started)
	if j.recovery {
		defer func() {
			e.mu.Lock()
			delete(e.recovering, j.conv.ID)
			e.mu.Unlock()
		}()
	}
	defer e.forget(j)
	defer j.cancel(nil)
	select {
	case e.sem <- struct{}{}:
	default:
		if j.reply != nil {
			j.reply.setPlaceholder("⏳ _Queued: Parley is busy, answering soon…_")
			e.startFlush(j)
		}
		select {
		case e.sem <- struct{}{}:
		case <-j.ctx.Done():
			e.unanswered(j)
			return
		}
	}
	defer func() { <-e.sem }()
	if !j.recovery {
		e.prefetchSettings(j)
	}
	older, err := e.claim(j)
	if err != nil {
		if j.ctx.Err() == nil && !errors.Is(err, errTaken) {
			e.log.Error("claim conversation", "conversation", j.conv.ID, "err", err)
		}
		if errors.Is(err, errTaken) {
			j.cancel(errTaken)
		}
		e.unanswered(j)
		return
	}
	defer e.release(j)
	// Keep the claim while answering, however long the model takes.
	renewDone := make(chan struct{})
	defer close(renewDone)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		t := time.NewTicker(claimTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				e.renew(j)
			case <-renewDone:
				return
			}
		}
	}()
	if j.recovery {
		e.recoverWork(j)
		return
	}
	for _, q := range older {
		if j.ctx.Err() != nil {
			break
		}
		a := e.adopt(j, q.Message, q.ReplyID)
		e.answer(a)
		a.cancel(nil)
		e.forget(a)
	}
	e.answer(j)
}

// unanswered ends a job that never got to answer: stopped or cut before
// its turn (it says so, and is marked unanswered so that it holds up no
// later question), or taken over or handed over (silently: another
// instance answers it).
func (e *Engine) unanswered(j *job) {
	cause := context.Cause(j.ctx)
	if j.recovery {
		return
	}
	if silent(cause) {
		// A queued notice stays: it is recorded with the question, and
		// the instance that answers it writes the answer there.
		j.reply.abandon(cause)
		return
	}
	e.markUnanswered(j)
	e.finishStopped(j, "", cause)
}

// forget drops j's entries from the active map, and its reply's claim on
// the budget of a first text.
func (e *Engine) forget(j *job) {
	if j.reply != nil {
		j.reply.mu.Lock()
		j.reply.shownFirstLocked()
		j.reply.mu.Unlock()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, v := range e.active {
		if v == j {
			delete(e.active, k)
		}
	}
}

// Models returns at most n allowed model names matching query, for
// autocomplete and select menus.
func (e *Engine) Models(ctx context.Context, query string, n int) []string {
	return e.llm.SearchModels(ctx, query, n)
}

// Deleted tells the engine a message was deleted: a stream answering it,
// or writing it, stops, and a queued question is not answered.
func (e *Engine) Deleted(p Platform, workspace, channel, messageID string) {
	e.obs.Event(p.Name(), "delete")
	key := activeKey(p.Name(), workspace, messageID)
	e.mu.Lock()
	j := e.active[key]
	if j == nil {
		e.rememberGoneLocked(key)
	}
	e.mu.Unlock()
	switch {
	case j == nil:
	case j.in.MessageID == messageID:
		j.cancel(errStopDeleted)
	default:
		// One of the reply's own messages: nothing more can be shown.
		j.cancel(errReplyGone)
	}
}

// goneFor is how long a deletion of a message the engine does not know is
// remembered, in case it is a reply whose post has not returned yet;
// maxGone bounds how many are.
const (
	goneFor = time.Minute
	maxGone = 1024
)

// rememberGoneLocked notes that the message of key was deleted.
func (e *Engine) rememberGoneLocked(key string) {
	now := time.Now()
	if len(e.gone) >= maxGone {
		for k, at := range e.gone {
			if now.Sub(at) > goneFor {
				delete(e.gone, k)
			}
		}
		if len(e.gone) >= maxGone {
			clear(e.gone)
		}
	}
	e.gone[key] = now
}

// Reacted tells the engine a user reacted to a message; a stop emoji on a
// reply being streamed, by the person who asked, stops it.
func (e *Engine) Reacted(p Platform, workspace, channel, messageID, user, emoji string) {
	e.obs.Event(p.Name(), "reaction")
	if !e.stop[strings.Trim(emoji, ": ")] {
		return
	}
	e.mu.Lock()
	j := e.active[activeKey(p.Name(), workspace, messageID)]
	e.mu.Unlock()
	if j != nil && j.in.Author == user {
		j.cancel(errStopReaction)
	}
}
