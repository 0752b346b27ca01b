package slack

import (
	"context"
	"log/slog"
	"runtime/debug"
	"sync"
)

// The dispatcher's bounds in the adapter.
const (
	// maxHandlers is how many events are handed to the engine at once.
	maxHandlers = 64
	// maxBacklog is how many events may wait for their turn. Beyond it the
	// engine is not keeping up at all (Slack sends a workspace at most
	// 30,000 events an hour): an event is then left for Slack to deliver
	// again rather than held in memory.
	maxBacklog = 4096
)

// dispatcher runs tasks concurrently across keys and one at a time, in the
// order they were submitted, within a key.
//
// Slack wants each envelope acknowledged within 3 seconds, so events are
// not handled on the socket's read loop: one slow store write would hold up
// every acknowledgement behind it. Yet the events of one conversation must
// reach the engine in the order Slack sent them: the engine answers a
// conversation's messages in the order it stores them, and a deletion or a
// stop reaction must come after the message it is about. So each key (a
// conversation, see conversationKey) has a queue of its own, which one
// worker at a time serves. A queue exists only while it holds work: the
// first submit creates it and its worker removes it once empty, so the
// keys of past conversations cost nothing.
//
// At most limit workers run. A key with work and no worker waits in a FIFO
// for one, and a worker done with a task moves on to the oldest waiting key
// before its own next task, so that a busy conversation does not starve the
// others. submit never blocks, so that the read loop goes on acknowledging;
// the back-pressure is the backlog: with backlog tasks waiting, submit
// refuses and the caller leaves the event for Slack to deliver again.
//
// Workers are started with spawn, which ties them to their owner: the
// adapter's Run waits for them. Once the owner's context ends, workers still
// run the tasks queued, with that ended context, so that each can say what
// it did not do; a task must return promptly then.
type dispatcher struct {
	limit   int
	backlog int
	spawn   func(func(ctx context.Context)) bool // false when the owner is stopping
	log     *slog.Logger

	mu      sync.Mutex
	queues  map[string]*keyQueue // every key with a worker or waiting for one
	ready   []*keyQueue          // keys with work and no worker, oldest first
	workers int
	waiting int // tasks submitted and not started
}

// keyQueue is one key's tasks, oldest first. It is either served by a
// worker or in the dispatcher's ready list, never both.
type keyQueue struct {
	key   string
	tasks []func(ctx context.Context)
}

func newDispatcher(limit, backlog int, spawn func(func(ctx context.Context)) bool, log *slog.Logger) *dispatcher {
	return &dispatcher{limit: max(limit, 1), backlog: backlog, spawn: spawn, log: log, queues: make(map[string]*keyQueue)}
}

// submit queues task under key. It reports false, queuing nothing, when the
// backlog is full or the owner is stopping.
func (d *dispatcher) submit(key string, task func(ctx context.Context)) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.waiting >= d.backlog {
		return false
	}
	if q := d.queues[key]; q != nil {
		// A worker serves it or will: the task waits its turn.
		q.tasks = append(q.tasks, task)
		d.waiting++
		return true
	}
	q := &keyQueue{key: key, tasks: []func(context.Context){task}}
	if d.workers < d.limit {
		if !d.spawn(func(ctx context.Context) { d.work(ctx, q) }) {
			return false
		}
		d.workers++
	} else {
		d.ready = append(d.ready, q)
	}
	d.queues[key] = q
	d.waiting++
	return true
}

// work serves q, then the keys waiting for a worker, until none is left.
func (d *dispatcher) work(ctx context.Context, q *keyQueue) {
	for {
		d.mu.Lock()
		q = d.nextLocked(q)
		if q == nil {
			d.workers--
			d.mu.Unlock()
			return
		}
		task := q.tasks[0]
		q.tasks[0] = nil
		q.tasks = q.tasks[1:]
		d.waiting--
		d.mu.Unlock()
		d.run(ctx, q.key, task)
	}
}

// nextLocked returns the queue whose task a worker that served q runs next:
// the oldest waiting key's when there is one (q, if not empty, waits behind
// it), else q's own; nil when no task is left.
func (d *dispatcher) nextLocked(q *keyQueue) *keyQueue {
	switch {
	case len(q.tasks) == 0:
		delete(d.queues, q.key)
	case len(d.ready) == 0:
		return q
	default:
		d.ready = append(d.ready, q)
	}
	if len(d.ready) == 0 {
		return nil
	}
	q = d.ready[0]
	d.ready[0] = nil
	d.ready = d.ready[1:]
	return q
}

// run runs one task; a panic is a bug in the task: it is logged and the
// worker goes on with the next.
func (d *dispatcher) run(ctx context.Context, key string, task func(ctx context.Context)) {
	defer func() {
		if v := recover(); v != nil {
			d.log.Error("slack event handler panicked: event skipped", "key", key, "panic", v, "stack", string(debug.Stack()))
		}
	}()
	task(ctx)
}

// load returns how many workers run, how many tasks wait and how many keys
// have a queue.
func (d *dispatcher) load() (workers, waiting, keys int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.workers, d.waiting, len(d.queues)
}
