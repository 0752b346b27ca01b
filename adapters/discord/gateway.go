package discord

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"
)

// The gateway, as discordgo v0.29 runs it, and what Parley adds:
//
//   - discordgo resumes after a lost connection (it keeps the session id
//     and sequence), but against the gateway URL it first discovered: it
//     ignores READY's resume_gateway_url. Discord asks clients to resume
//     there; elsewhere a resume may be refused (INVALID_SESSION), which
//     costs a fresh IDENTIFY (out of 1000 a day) and the events of the gap.
//     Parley covers that gap: on any READY after the first, it fetches the
//     messages posted since the last one seen in recently active channels.
//   - discordgo reconnects in a goroutine of its own with uncancellable
//     sleeps; Parley turns that off and reconnects itself, with a context.
//   - discordgo's Open reads HELLO and READY without a deadline; Parley
//     tracks the gateway's TCP connections and closes them when Run ends,
//     which unblocks it.
//   - Closing a session takes a second: discordgo waits after sending the
//     close frame.

const (
	backoffMin = time.Second
	backoffMax = time.Minute
	// backfillPages bounds the messages fetched per channel after a lost
	// session: 100 per page.
	backfillPages = 5
)

var errStopping = errors.New("discord: shutting down")

// dial opens the gateway's TCP connection and tracks it.
func (a *Adapter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	a.mu.Lock()
	if a.stopping {
		a.mu.Unlock()
		return nil, errStopping
	}
	run := a.runCtx
	a.mu.Unlock()
	if run != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(run, cancel)()
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, a: a}
	a.mu.Lock()
	if a.stopping {
		a.mu.Unlock()
		c.Close()
		return nil, errStopping
	}
	a.conns[tc] = struct{}{}
	a.mu.Unlock()
	return tc, nil
}

// trackedConn leaves the adapter's set when closed.
type trackedConn struct {
	net.Conn
	a    *Adapter
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.a.mu.Lock()
		delete(c.a.conns, c)
		c.a.mu.Unlock()
	})
	return c.Conn.Close()
}

func (a *Adapter) closeConns() {
	a.mu.Lock()
	conns := make([]net.Conn, 0, len(a.conns))
	for c := range a.conns {
		conns = append(conns, c)
	}
	a.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// open runs discordgo's Open (IDENTIFY, or RESUME when the session has an
// id and a sequence) and gives up when ctx ends.
func (a *Adapter) open(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- a.s.Open() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		a.closeConns()
		<-done
		return context.Cause(ctx)
	}
}

// supervise reconnects after the gateway connection is lost, with
// exponential backoff. The first attempt is immediate.
func (a *Adapter) supervise(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.disconnect:
		}
		wait := backoffMin
		for {
			if ctx.Err() != nil {
				return
			}
			err := a.open(ctx)
			if err == nil || errors.Is(err, discordgo.ErrWSAlreadyOpen) {
				break
			}
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("gateway reconnect failed", "err", redact(err), "retry_in", wait)
			if sleep(ctx, wait) != nil {
				return
			}
			wait = min(2*wait, backoffMax)
		}
	}
}

// addHandlers registers the gateway handlers. discordgo calls them on its
// reading goroutine (SyncEvents), so they only record or enqueue.
func (a *Adapter) addHandlers() {
	a.s.AddHandler(func(_ *discordgo.Session, r *discordgo.Ready) {
		a.connected.Store(true)
		a.onReady(r)
	})
	a.s.AddHandler(func(_ *discordgo.Session, _ *discordgo.Resumed) {
		a.connected.Store(true)
		a.log.Info("gateway session resumed")
	})
	a.s.AddHandler(func(_ *discordgo.Session, _ *discordgo.Disconnect) {
		a.connected.Store(false)
		select {
		case a.disconnect <- struct{}{}:
		default:
		}
	})
	a.s.AddHandler(func(_ *discordgo.Session, m *discordgo.MessageCreate) {
		if m == nil || m.Message == nil {
			return
		}
		msg := m.Message
		a.enqueue(func(ctx context.Context) { a.onMessage(ctx, msg) })
	})
	a.s.AddHandler(func(_ *discordgo.Session, m *discordgo.MessageDelete) {
		if m == nil || m.Message == nil || m.ID == "" {
			return
		}
		guild, channel, id := m.GuildID, m.ChannelID, m.ID
		a.enqueue(func(ctx context.Context) { a.onDelete(ctx, guild, channel, id) })
	})
	a.s.AddHandler(func(_ *discordgo.Session, m *discordgo.MessageDeleteBulk) {
		if m == nil {
			return
		}
		guild, channel, ids := m.GuildID, m.ChannelID, slices.Clone(m.Messages)
		a.enqueue(func(ctx context.Context) {
			for _, id := range ids {
				a.onDelete(ctx, guild, channel, id)
			}
		})
	})
	a.s.AddHandler(func(_ *discordgo.Session, r *discordgo.MessageReactionAdd) {
		if r == nil || r.MessageReaction == nil {
			return
		}
		re := *r.MessageReaction
		a.enqueue(func(ctx context.Context) { a.onReaction(ctx, re) })
	})
	a.s.AddHandler(func(_ *discordgo.Session, i *discordgo.InteractionCreate) {
		if i == nil || i.Interaction == nil {
			return
		}
		in := i.Interaction
		a.spawn(func(ctx context.Context) { a.onInteraction(ctx, in) })
	})
	// Channel and thread events keep the channel cache current, which
	// saves a REST lookup per new channel.
	a.s.AddHandler(func(_ *discordgo.Session, g *discordgo.GuildCreate) {
		if g == nil || g.Guild == nil {
			return
		}
		for _, c := range g.Channels {
			a.learnChannel(c, g.ID)
		}
		for _, c := range g.Threads {
			a.learnChannel(c, g.ID)
		}
	})
	a.s.AddHandler(func(_ *discordgo.Session, c *discordgo.ThreadCreate) {
		if c != nil {
			a.learnChannel(c.Channel, "")
		}
	})
	a.s.AddHandler(func(_ *discordgo.Session, c *discordgo.ChannelCreate) {
		if c != nil {
			a.learnChannel(c.Channel, "")
		}
	})
	a.s.AddHandler(func(_ *discordgo.Session, t *discordgo.ThreadListSync) {
		if t == nil {
			return
		}
		for _, c := range t.Threads {
			a.learnChannel(c, t.GuildID)
		}
	})
	a.s.AddHandler(func(_ *discordgo.Session, c *discordgo.ThreadDelete) {
		if c != nil && c.Channel != nil {
			a.cache.forgetChannel(c.ID)
		}
	})
	a.s.AddHandler(func(_ *discordgo.Session, c *discordgo.ChannelDelete) {
		if c != nil && c.Channel != nil {
			a.cache.forgetChannel(c.ID)
		}
	})
}

func (a *Adapter) learnChannel(c *discordgo.Channel, guild string) {
	if c == nil || c.ID == "" {
		return
	}
	if c.GuildID != "" {
		guild = c.GuildID
	}
	a.cache.setChannel(c.ID, chanInfo{guild: guild, parent: c.ParentID, thread: c.IsThread()})
}

// onReady runs inside discordgo's Open (which holds the session's lock):
// it only records.
func (a *Adapter) onReady(r *discordgo.Ready) {
	if r == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.User != nil && r.User.ID != "" {
		a.botID = r.User.ID
	}
	switch {
	case r.Application != nil && r.Application.ID != "":
		a.appID = r.Application.ID
	case a.appID == "" && r.User != nil:
		a.appID = r.User.ID // a bot's application shares its user's id
	}
	a.readies++
	a.log.Info("gateway session ready", "shard", a.opts.ShardID, "sessions", a.readies)
	// A new session, not a resumed one: the events of the gap are lost.
	// The first one too: what was sent while no process was connected
	// (a restart) is read back from the conversations the store holds.
	select {
	case a.missed <- struct{}{}:
	default:
	}
}

// enqueue hands an event to the worker, in arrival order.
func (a *Adapter) enqueue(f func(context.Context)) {
	a.mu.Lock()
	ctx := a.runCtx
	a.mu.Unlock()
	if ctx == nil {
		return
	}
	select {
	case a.events <- f:
	case <-ctx.Done():
	}
}

// work runs the queued events one at a time, so that the messages of a
// conversation reach the engine in order.
func (a *Adapter) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-a.events:
			f(ctx)
		}
	}
}

// backfillLoop fetches what a lost session missed, after each new READY.
func (a *Adapter) backfillLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.missed:
			a.backfill(ctx)
		}
	}
}

// backfill fetches the messages posted since the last one seen in each
// recently active channel and queues them like gateway events. The engine
// appends idempotently on the message id, so a message seen twice is
// answered once.
func (a *Adapter) backfill(ctx context.Context) {
	a.mu.Lock()
	seed := !a.seeded
	a.seeded = true
	a.mu.Unlock()
	if seed {
		a.seedFromStore(ctx)
	}
	chans := a.cache.actives()
	if len(chans) == 0 {
		return
	}
	a.log.Info("new gateway session: fetching missed messages", "channels", len(chans))
	// Within the window only: older messages are not answered late.
	since := time.Now().Add(-a.catchUpWindow())
	handed := 0
	defer func() { a.caughtUp(handed) }()
	for ch, act := range chans {
		after := act.last
		var msgs []*discordgo.Message
		for range backfillPages {
			var page []*discordgo.Message
			err := a.do(ctx, "GET", discordgo.EndpointChannelMessages(ch), 1, func(o []discordgo.RequestOption) error {
				var err error
				page, err = a.s.ChannelMessages(ch, 100, "", after, "", o...)
				return err
			})
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				a.log.Warn("fetch missed messages", "channel", ch, "err", err)
				break
			}
			for _, m := range page {
				if m != nil && m.ID != "" && newer(m.ID, after) {
					msgs = append(msgs, m)
				}
			}
			if len(page) < 100 {
				break
			}
			after = newest(page)
		}
		slices.SortFunc(msgs, func(x, y *discordgo.Message) int {
			switch {
			case x.ID == y.ID:
				return 0
			case newer(y.ID, x.ID):
				return -1
			}
			return 1
		})
		msgs = slices.CompactFunc(msgs, func(x, y *discordgo.Message) bool { return x.ID == y.ID })
		for _, m := range msgs {
			if m.GuildID == "" {
				m.GuildID = act.guild // REST messages do not say their guild
			}
			if m.ChannelID == "" {
				m.ChannelID = ch
			}
			if (m.Author != nil && m.Author.ID == a.bot()) || (!m.Timestamp.IsZero() && m.Timestamp.Before(since)) {
				continue
			}
			handed++
			a.enqueue(func(ctx context.Context) { a.onMessage(ctx, m) })
		}
	}
}

func newest(page []*discordgo.Message) string {
	var id string
	for _, m := range page {
		if m != nil && newer(m.ID, id) {
			id = m.ID
		}
	}
	return id
}
