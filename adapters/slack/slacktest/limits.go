package slacktest

import (
	"strings"
	"testing"
	"time"
)

// Rate is the shape of a token bucket: Burst calls at once, then one more
// each Every. The zero Rate is no bucket.
type Rate struct {
	Every time.Duration
	Burst int
}

// Limit is how Slack limits one Web API method for one app: a bucket per
// workspace (team) and, for chat.postMessage, one per channel as well. A
// call must find a token in every bucket that applies to it; a call refused
// by one takes no token from the other. The zero Limit is no limit.
type Limit struct {
	Workspace Rate
	Channel   Rate
}

// Slack's tiers as the fake reads them
// (https://docs.slack.dev/apis/web-api/rate-limits): "Tier 1: 1+ per
// minute", "Tier 2: 20+ per minute", "Tier 3: 50+ per minute", "Tier 4:
// 100+ per minute", each "per API method per workspace/team per app". The
// bursts are ours: Slack says only that Tier 1 tolerates "a small amount of
// burst behavior", Tier 2 "occasional bursts", Tier 3 "sporadic bursts" and
// Tier 4 "generous burst behavior".
var (
	Tier1 = Rate{Every: time.Minute, Burst: 5}
	Tier2 = Rate{Every: time.Minute / 20, Burst: 5}
	Tier3 = Rate{Every: time.Minute / 50, Burst: 10}
	Tier4 = Rate{Every: time.Minute / 100, Burst: 20}
)

// PostPerChannel is chat.postMessage's limit in one channel: "1 per second
// per channel", "short bursts >1 allowed"
// (https://docs.slack.dev/apis/web-api/rate-limits, "Posting messages").
var PostPerChannel = Rate{Every: time.Second, Burst: 3}

// PostPerWorkspace is chat.postMessage's limit across a workspace. Slack
// speaks of "a workspace-wide limit"
// (https://docs.slack.dev/reference/methods/chat.postMessage: "several
// hundred messages per minute", with "generous burst behavior") and
// publishes no figure: 600 a minute and a burst of 100 is our reading.
var PostPerWorkspace = Rate{Every: time.Minute / 600, Burst: 100}

// StatusRate is assistant.threads.setStatus's limit, per workspace: a
// special tier on its page
// (https://docs.slack.dev/reference/methods/assistant.threads.setStatus)
// without a published figure; 600 a minute and a burst of 100 is our
// reading.
var StatusRate = Rate{Every: time.Minute / 600, Burst: 100}

// Tiers is Slack's limit on each Web API method the fake serves, enforced
// by default; a method not listed gets DefaultLimit. Each row names the
// method page that gives its tier. Read it, never change it: a test sets
// Config.Limits instead.
var Tiers = map[string]Limit{
	// Special tier: https://docs.slack.dev/reference/methods/chat.postMessage
	"chat.postMessage": {Workspace: PostPerWorkspace, Channel: PostPerChannel},
	// Tier 3: https://docs.slack.dev/reference/methods/chat.update
	"chat.update": {Workspace: Tier3},
	// Tier 3: https://docs.slack.dev/reference/methods/chat.delete
	"chat.delete": {Workspace: Tier3},
	// Tier 4: https://docs.slack.dev/reference/methods/chat.postEphemeral
	// (listed for when the fake serves it)
	"chat.postEphemeral": {Workspace: Tier4},
	// Tier 2: https://docs.slack.dev/reference/methods/chat.startStream
	"chat.startStream": {Workspace: Tier2},
	// Tier 4: https://docs.slack.dev/reference/methods/chat.appendStream
	"chat.appendStream": {Workspace: Tier4},
	// Tier 2: https://docs.slack.dev/reference/methods/chat.stopStream
	"chat.stopStream": {Workspace: Tier2},
	// Special tier, our figure (StatusRate):
	// https://docs.slack.dev/reference/methods/assistant.threads.setStatus
	"assistant.threads.setStatus": {Workspace: StatusRate},
	// Tier 4: https://docs.slack.dev/reference/methods/files.getUploadURLExternal
	"files.getUploadURLExternal": {Workspace: Tier4},
	// Tier 4: https://docs.slack.dev/reference/methods/files.completeUploadExternal
	"files.completeUploadExternal": {Workspace: Tier4},
	// Tier 4: https://docs.slack.dev/reference/methods/auth.test; the
	// stricter reading, as Slack's Java SDK records a special tier of
	// "hundreds of requests per minute".
	"auth.test": {Workspace: Tier4},
	// Tier 4: https://docs.slack.dev/reference/methods/users.info
	"users.info": {Workspace: Tier4},
	// Tier 1: https://docs.slack.dev/reference/methods/apps.connections.open;
	// the burst of 5 lets a test reconnect a few times.
	"apps.connections.open": {Workspace: Tier1},
}

// DefaultLimit is the limit of a method missing from Tiers: Tier 3, until
// its page says otherwise.
var DefaultLimit = Limit{Workspace: Tier3}

// MaxStreamText is the most characters of markdown_text one
// chat.startStream, chat.appendStream or chat.stopStream call takes, and
// the most a natively streamed message may hold in all (msg_too_long
// beyond) (https://docs.slack.dev/reference/methods/chat.appendStream).
const MaxStreamText = 12000

// relaxes reports whether l lets through something def refuses: a scope
// def limits and l does not, a bigger burst or a faster refill.
func relaxes(def, l Limit) bool {
	looser := func(d, r Rate) bool {
		if d == (Rate{}) {
			return false
		}
		return r == (Rate{}) || r.Burst > d.Burst || r.Every < d.Every
	}
	return looser(def.Workspace, l.Workspace) || looser(def.Channel, l.Channel)
}

// defaultLimit returns the limit Slack sets on method.
func defaultLimit(method string) Limit {
	if l, ok := Tiers[method]; ok {
		return l
	}
	return DefaultLimit
}

// checkRelaxed fails tb unless its name says it relaxes Slack's limits.
func checkRelaxed(tb testing.TB, cfg Config) {
	tb.Helper()
	if strings.Contains(tb.Name(), "Unlimited") {
		return
	}
	if cfg.Unlimited {
		tb.Fatalf("slacktest: Config.Unlimited turns Slack's rate limits off; say so in the test's name (%sUnlimited)", tb.Name())
	}
	for method, l := range cfg.Limits {
		if relaxes(defaultLimit(method), l) {
			tb.Fatalf("slacktest: Config.Limits[%q] = %+v is looser than Slack's %+v; say so in the test's name (%sUnlimited)", method, l, defaultLimit(method), tb.Name())
		}
	}
}

// bucket is a token bucket's state: tokens whole tokens, and the time from
// which the next one is being refilled.
type bucket struct {
	tokens int
	last   time.Time
}

// refill adds the tokens earned since b.last, at most r.Burst in all.
func (b *bucket) refill(r Rate, now time.Time) {
	if now.Before(b.last) {
		return
	}
	if n := int(now.Sub(b.last) / r.Every); n > 0 {
		b.tokens += n
		b.last = b.last.Add(time.Duration(n) * r.Every)
	}
	if b.tokens >= r.Burst {
		b.tokens, b.last = r.Burst, now
	}
}

// wait returns how long until b holds a token; 0 when it holds one.
func (b *bucket) wait(r Rate, now time.Time) time.Duration {
	if b.tokens > 0 {
		return 0
	}
	return b.last.Add(r.Every).Sub(now)
}

// takeLocked takes a token from each bucket of limit l that applies to a
// call of method on channel, or none and returns how long until every one
// holds a token. s.mu is held.
func (s *Server) takeLocked(method, channel string, l Limit, now time.Time) time.Duration {
	type scoped struct {
		r Rate
		b *bucket
	}
	var bs []scoped
	add := func(r Rate, key string) {
		if r == (Rate{}) {
			return
		}
		b := s.buckets[key]
		if b == nil {
			b = &bucket{tokens: max(r.Burst, 1), last: now}
			s.buckets[key] = b
		}
		bs = append(bs, scoped{Rate{Every: r.Every, Burst: max(r.Burst, 1)}, b})
	}
	add(l.Workspace, method+" team "+s.cfg.TeamID)
	if channel != "" {
		add(l.Channel, method+" channel "+channel)
	}
	var wait time.Duration
	for _, sb := range bs {
		sb.b.refill(sb.r, now)
		wait = max(wait, sb.b.wait(sb.r, now))
	}
	if wait > 0 {
		return wait
	}
	for _, sb := range bs {
		sb.b.tokens--
	}
	return 0
}
