package discord

import (
	"container/list"
	"sync"
)

// Cache bounds: enough for a busy bot, small enough to never matter.
const (
	maxChannels = 10000 // resolved channels and threads
	maxPosted   = 10000 // our messages and the channel they are in
	maxPrompts  = 2000  // prompts awaiting a thread name
	maxActive   = 100   // channels to backfill after a lost session
)

// lru is a map of bounded size that forgets the least recently used entry.
// It is not safe for concurrent use.
type lru[K comparable, V any] struct {
	max   int
	ll    *list.List
	items map[K]*list.Element
}

type entry[K comparable, V any] struct {
	k K
	v V
}

func newLRU[K comparable, V any](n int) *lru[K, V] {
	return &lru[K, V]{max: n, ll: list.New(), items: make(map[K]*list.Element)}
}

func (c *lru[K, V]) get(k K) (V, bool) {
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*entry[K, V]).v, true
	}
	var zero V
	return zero, false
}

func (c *lru[K, V]) put(k K, v V) {
	if e, ok := c.items[k]; ok {
		e.Value.(*entry[K, V]).v = v
		c.ll.MoveToFront(e)
		return
	}
	c.items[k] = c.ll.PushFront(&entry[K, V]{k, v})
	if c.ll.Len() > c.max {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.items, last.Value.(*entry[K, V]).k)
	}
}

func (c *lru[K, V]) remove(k K) {
	if e, ok := c.items[k]; ok {
		c.ll.Remove(e)
		delete(c.items, k)
	}
}

// each calls f for every entry, most recent first.
func (c *lru[K, V]) each(f func(K, V)) {
	for e := c.ll.Front(); e != nil; e = e.Next() {
		en := e.Value.(*entry[K, V])
		f(en.k, en.v)
	}
}

// chanInfo is what the adapter needs to know of a channel.
type chanInfo struct {
	guild  string
	parent string // for a thread: its channel
	thread bool
}

// threadState is what is known of a conversation's Thread id in a guild.
type threadState int

const (
	threadUnknown threadState = iota
	threadMessage             // a top-level message without a thread yet
	threadExists              // a thread channel
	threadNone                // no thread can be started here: reply in the channel
)

// active is a channel with recent messages: after a session is lost, its
// messages after last are fetched.
type active struct {
	guild string
	last  string // newest message id seen
}

// cache holds what the adapter learned from events and calls.
type cache struct {
	mu       sync.Mutex
	channels *lru[string, chanInfo]
	threads  *lru[string, threadState]
	posted   *lru[string, string] // our message id -> its channel
	prompts  *lru[string, string] // user message id -> prompt
	active   *lru[string, active]
}

func newCache() *cache {
	return &cache{
		channels: newLRU[string, chanInfo](maxChannels),
		threads:  newLRU[string, threadState](maxChannels),
		posted:   newLRU[string, string](maxPosted),
		prompts:  newLRU[string, string](maxPrompts),
		active:   newLRU[string, active](maxActive),
	}
}

func (c *cache) channel(id string) (chanInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.channels.get(id)
}

func (c *cache) setChannel(id string, ci chanInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.channels.put(id, ci)
	if ci.thread {
		c.threads.put(id, threadExists)
	}
}

func (c *cache) forgetChannel(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.channels.remove(id)
	c.threads.remove(id)
	c.active.remove(id)
}

func (c *cache) thread(id string) threadState {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, _ := c.threads.get(id)
	return st
}

// setThread records st for id; a known thread stays known.
func (c *cache) setThread(id string, st threadState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, _ := c.threads.get(id); old == threadExists && st == threadMessage {
		return
	}
	c.threads.put(id, st)
}

func (c *cache) setPosted(id, channel string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.posted.put(id, channel)
}

func (c *cache) postedIn(id string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.posted.get(id)
}

func (c *cache) setPrompt(id, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prompts.put(id, text)
}

func (c *cache) prompt(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, _ := c.prompts.get(id)
	return p
}

// seen records message id in channel as the newest seen there.
func (c *cache) seen(channel, guild, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.active.get(channel)
	if ok && !newer(id, old.last) {
		return
	}
	if guild == "" {
		guild = old.guild
	}
	c.active.put(channel, active{guild: guild, last: id})
}

// actives returns the active channels, most recent first.
func (c *cache) actives() map[string]active {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]active, len(c.active.items))
	c.active.each(func(k string, v active) { out[k] = v })
	return out
}

// newer reports whether snowflake a is newer than b. Snowflakes grow with
// time; a longer one is larger.
func newer(a, b string) bool {
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a > b
}
