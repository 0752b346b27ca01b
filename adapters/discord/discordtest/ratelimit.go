package discordtest

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// rateBucket is a fixed window of calls that starts at its first call.
type rateBucket struct {
	hash   string
	limit  int
	window time.Duration
	count  int
	start  time.Time
}

// routeOf names the route of a call.
func routeOf(method string, seg []string) Route {
	n := len(seg)
	switch {
	case seg[0] == "channels" && n == 2 && method == "GET":
		return RouteChannel
	case seg[0] == "channels" && n == 3 && seg[2] == "messages" && method == "POST":
		return RouteMessageCreate
	case seg[0] == "channels" && n == 3 && seg[2] == "messages" && method == "GET":
		return RouteMessageList
	case seg[0] == "channels" && n == 4 && seg[2] == "messages" && method == "PATCH":
		return RouteMessageEdit
	case seg[0] == "channels" && n == 4 && seg[2] == "messages" && method == "DELETE":
		return RouteMessageDelete
	case seg[0] == "channels" && n == 5 && seg[2] == "messages" && seg[4] == "threads" && method == "POST":
		return RouteThreadFromMessage
	case seg[0] == "channels" && n == 3 && seg[2] == "typing" && method == "POST":
		return RouteTyping
	case seg[0] == "interactions" && n == 4 && seg[3] == "callback" && method == "POST":
		return RouteInteractionCallback
	case seg[0] == "webhooks" && n == 5 && seg[3] == "messages" && seg[4] == "@original" && method == "GET":
		return RouteOriginalGet
	case seg[0] == "webhooks" && n == 5 && seg[3] == "messages" && seg[4] == "@original" && method == "PATCH":
		return RouteOriginalEdit
	case seg[0] == "webhooks" && n == 3 && method == "POST":
		return RouteFollowup
	case seg[0] == "applications" && n == 3 && seg[2] == "commands" && method == "PUT":
		return RouteCommandsOverwrite
	case seg[0] == "applications" && n == 5 && seg[2] == "guilds" && seg[4] == "commands" && method == "PUT":
		return RouteGuildCommandsOverwrite
	case seg[0] == "users" && n == 2 && seg[1] == "@me" && method == "GET":
		return RouteCurrentUser
	case seg[0] == "guilds" && n == 2 && method == "GET":
		return RouteGuild
	case seg[0] == "guilds" && n == 4 && seg[2] == "members" && method == "GET":
		return RouteGuildMember
	case seg[0] == "gateway" && n == 1 && method == "GET":
		return RouteGateway
	case seg[0] == "gateway" && n == 2 && seg[1] == "bot" && method == "GET":
		return RouteGatewayBot
	}
	return RouteOther
}

// outsideGlobal reports whether a call escapes the bot's global limit:
// Discord's docs exempt the interaction endpoints, the callback and the
// interaction's webhook (the original response and the followups).
func outsideGlobal(seg []string) bool {
	return seg[0] == "interactions" || seg[0] == "webhooks"
}

// bucketLocked returns the bucket a call counts against, or nil when its
// route has no per-route limit.
func (s *Server) bucketLocked(route Route, seg []string, now time.Time) *rateBucket {
	var age time.Duration
	if route == RouteMessageDelete {
		// An unknown message counts in the new messages' bucket, as on
		// Discord (#8330).
		if m, ok := s.messages[seg[3]]; ok {
			age = now.Sub(m.Time)
		}
	}
	l, ok := s.limits.find(route, age)
	if !ok || l.Limit <= 0 {
		return nil
	}
	var resource string
	switch l.Per {
	case PerChannel:
		resource = seg[1]
	case PerGuild:
		switch {
		case seg[0] == "applications" && len(seg) > 3:
			resource = seg[3]
		case seg[0] == "guilds":
			resource = seg[1]
		case seg[0] == "channels":
			resource = seg[1]
			if c, ok := s.channels[seg[1]]; ok && c.GuildID != "" {
				resource = c.GuildID
			}
		}
	case PerWebhook:
		resource = seg[1] + "/" + seg[2]
	}
	key := l.Bucket + "|" + resource
	if l.Apart {
		key = string(route) + "|" + key
	}
	b, ok := s.buckets[key]
	if !ok {
		b = &rateBucket{hash: l.Bucket, limit: l.Limit, window: l.Window}
		s.buckets[key] = b
	}
	return b
}

// takeLocked counts a call against b, or answers 429. Every answer
// carries the bucket's headers, as Discord's do.
func (s *Server) takeLocked(w http.ResponseWriter, b *rateBucket, now time.Time, rs *RouteStats) bool {
	if b.start.IsZero() || !now.Before(b.start.Add(b.window)) {
		b.start, b.count = now, 0
	}
	reset := b.start.Add(b.window)
	resetAfter := reset.Sub(now)
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(b.limit))
	h.Set("X-RateLimit-Bucket", b.hash)
	h.Set("X-RateLimit-Reset", fmt.Sprintf("%.3f", float64(reset.UnixMilli())/1000))
	h.Set("X-RateLimit-Reset-After", ceilSeconds(resetAfter))
	if b.count >= b.limit {
		h.Set("X-RateLimit-Remaining", "0")
		h.Set("X-RateLimit-Scope", "user")
		rs.Limited++
		s.limitedLocked(w, resetAfter, false)
		return false
	}
	b.count++
	h.Set("X-RateLimit-Remaining", strconv.Itoa(b.limit-b.count))
	return true
}

// takeGlobalLocked counts a call against the bot's global limit, or
// answers a global 429, which carries no bucket headers.
func (s *Server) takeGlobalLocked(w http.ResponseWriter, now time.Time, rs *RouteStats) bool {
	g := &s.global
	if g.start.IsZero() || !now.Before(g.start.Add(g.window)) {
		g.start, g.count = now, 0
	}
	if g.count >= g.limit {
		w.Header().Set("X-RateLimit-Global", "true")
		w.Header().Set("X-RateLimit-Scope", "global")
		s.stats.GlobalLimit++
		rs.GlobalLimited++
		s.limitedLocked(w, g.start.Add(g.window).Sub(now), true)
		return false
	}
	g.count++
	return true
}

// limitedLocked answers 429: Retry-After in whole seconds, rounded up, and
// the body's retry_after in seconds with millisecond precision.
func (s *Server) limitedLocked(w http.ResponseWriter, after time.Duration, global bool) {
	s.stats.RateLimited++
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(after.Seconds()))))
	writeJSON(w, http.StatusTooManyRequests, map[string]any{
		"message": "You are being rate limited.", "retry_after": math.Ceil(after.Seconds()*1000) / 1000, "global": global,
	})
	s.notifyLocked()
}

func ceilSeconds(d time.Duration) string {
	return strconv.FormatFloat(math.Ceil(d.Seconds()*1000)/1000, 'f', 3, 64)
}
