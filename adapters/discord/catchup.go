package discord

import (
	"context"
	"time"

	"github.com/parleyhq/parley/bots"
)

// DefaultCatchUp is how far back Parley looks for the messages it missed
// while no process was connected (Options.CatchUp).
const DefaultCatchUp = 10 * time.Minute

// recents is what the catch-up after a start needs of the engine: the
// conversations it was active in, from the store. The engine has it; a
// test's recorder may not, and then only reconnects catch up.
type recents interface {
	Recent(ctx context.Context, p bots.Platform, window time.Duration) ([]bots.Place, error)
	CaughtUp(p bots.Platform, n int)
}

// catchUpWindow is Options.CatchUp with its default.
func (a *Adapter) catchUpWindow() time.Duration {
	if a.opts.CatchUp == 0 {
		return DefaultCatchUp
	}
	return a.opts.CatchUp
}

// seedFromStore makes the channels, threads and DMs of the conversations
// the store holds from within the window known as active, after the newest
// message stored in each: Discord does not deliver again what was sent
// while no process was connected, so the first session's backfill reads
// them. A thread is read after its newest stored message; its parent
// channel after its newest conversation's root, so that a mention there
// is found too.
func (a *Adapter) seedFromStore(ctx context.Context) {
	src, ok := a.engine.(recents)
	if !ok || a.opts.CatchUp < 0 {
		return
	}
	places, err := src.Recent(ctx, a, a.catchUpWindow())
	if err != nil {
		a.log.Warn("catch up: recent conversations", "err", err)
		return
	}
	for _, p := range places {
		switch {
		case p.Thread == "":
			a.cache.seen(p.Channel, p.Workspace, p.LastID)
		default:
			a.cache.seen(p.Thread, p.Workspace, p.LastID)
			a.cache.seen(p.Channel, p.Workspace, p.Thread)
		}
	}
}

// caughtUp counts the missed messages handed to the engine.
func (a *Adapter) caughtUp(n int) {
	if src, ok := a.engine.(recents); ok && n > 0 {
		src.CaughtUp(a, n)
	}
}
