package discordtest

import (
	"cmp"
	"slices"
	"time"
)

// Route names a REST route the server answers, as Discord's docs write
// it: the method, then the path template.
type Route string

// The routes Parley calls.
const (
	RouteMessageCreate          Route = "POST /channels/{channel.id}/messages"
	RouteMessageEdit            Route = "PATCH /channels/{channel.id}/messages/{message.id}"
	RouteMessageDelete          Route = "DELETE /channels/{channel.id}/messages/{message.id}"
	RouteMessageList            Route = "GET /channels/{channel.id}/messages"
	RouteChannel                Route = "GET /channels/{channel.id}"
	RouteThreadFromMessage      Route = "POST /channels/{channel.id}/messages/{message.id}/threads"
	RouteTyping                 Route = "POST /channels/{channel.id}/typing"
	RouteInteractionCallback    Route = "POST /interactions/{interaction.id}/{interaction.token}/callback"
	RouteOriginalGet            Route = "GET /webhooks/{application.id}/{interaction.token}/messages/@original"
	RouteOriginalEdit           Route = "PATCH /webhooks/{application.id}/{interaction.token}/messages/@original"
	RouteFollowup               Route = "POST /webhooks/{application.id}/{interaction.token}"
	RouteCommandsOverwrite      Route = "PUT /applications/{application.id}/commands"
	RouteGuildCommandsOverwrite Route = "PUT /applications/{application.id}/guilds/{guild.id}/commands"
	RouteCurrentUser            Route = "GET /users/@me"
	RouteGuild                  Route = "GET /guilds/{guild.id}"
	RouteGuildMember            Route = "GET /guilds/{guild.id}/members/{user.id}"
	RouteGateway                Route = "GET /gateway"
	RouteGatewayBot             Route = "GET /gateway/bot"
	// RouteOther is any call the server does not serve (it answers 404).
	RouteOther Route = "other"
)

// Resource is what a bucket is kept per: Discord counts a per-route limit
// apart for each top-level resource in the path.
type Resource int

// Resources.
const (
	PerBot     Resource = iota // one bucket for the whole bot
	PerChannel                 // the channel in the path
	PerGuild                   // the guild in the path, or the guild of the channel in it
	PerWebhook                 // the webhook id with its token (an interaction's webhook)
)

// Limit is the per-route limit of one route, as Discord's headers
// announce it: Limit calls per Window in a fixed window that starts at
// the bucket's first call.
type Limit struct {
	Route Route
	// Bucket is the X-RateLimit-Bucket hash. Routes announcing the same
	// hash count their calls together, unless Apart.
	Bucket string
	// Apart counts the route's calls on their own although it announces
	// the same hash as another route (as Discord does for message edits).
	Apart  bool
	Per    Resource
	Limit  int // 0: no per-route limit, and no X-RateLimit headers
	Window time.Duration
	// OlderThan makes the row apply only to messages at least that old
	// (message deletes fall in a bucket chosen by the message's age).
	OlderThan time.Duration
}

// Limits returns the table of per-route limits the server enforces by
// default: the figures Discord's headers announce for the routes Parley
// calls. Discord documents none of them and says to read the headers
// rather than hard-code them, so each figure comes from observed headers
// reported by others, cited beside it; where reports disagree or are
// missing the figure is the conservative one, and the comment says so.
// A test that needs other figures passes its own in Options.Limits.
//
// Routes Parley does not call are not served: reactions (1 per 0.25 s per
// channel, in hata's table) among them.
func Limits() []Limit {
	return slices.Clone(limits)
}

// Sources:
//
//	hata: github.com/HuyaneMatsu/hata, hata/discord/http/rate_limit_groups.py,
//	      a library's record of the headers each route answered.
//	docs: github.com/discord/discord-api-docs, topics/rate-limits and
//	      interactions/receiving-and-responding.
//	#N:   github.com/discord/discord-api-docs/issues/N.
var limits = []Limit{
	// hata: 5 per 4 s per channel; drc issue 17 observed "five in five
	// seconds"; rustplusplus issue 475 logs Limit 5 with 4.4-4.6 s waits.
	// The longer window is the conservative one.
	{Route: RouteMessageCreate, Bucket: "messages", Per: PerChannel, Limit: 5, Window: 5 * time.Second},
	// Edits announce the create bucket's hash (#981, #1442, #8073) but are
	// counted apart: each route's Remaining starts at Limit-1 whatever the
	// other spent (#1442, #8073). hata: 5 per 4 s; 5 s as for creates.
	{Route: RouteMessageEdit, Bucket: "messages", Apart: true, Per: PerChannel, Limit: 5, Window: 5 * time.Second},
	// #8330 (2026): a message younger than 10 s is deleted in a 5 per 1 s
	// bucket (9a4e05a2...), an older one in 3 per 0.333 s (c51d12ac...);
	// hata records 3 per 1 s for the latter, the conservative figure kept
	// here. Messages older than two weeks by other authors have a third
	// bucket (30 per 120 s in hata, 30 per 4 s in #8330); Parley deletes
	// only its own replies, and the fake leaves it out.
	{Route: RouteMessageDelete, Bucket: "message-delete-new", Per: PerChannel, Limit: 5, Window: time.Second},
	{Route: RouteMessageDelete, Bucket: "message-delete", Per: PerChannel, Limit: 3, Window: time.Second, OlderThan: 10 * time.Second},
	// hata: 5 per 5 s per channel.
	{Route: RouteMessageList, Bucket: "messages-read", Per: PerChannel, Limit: 5, Window: 5 * time.Second},
	// Unknown: hata records no figure. A guess, as strict as the channel's
	// other buckets.
	{Route: RouteChannel, Bucket: "channel", Per: PerChannel, Limit: 5, Window: 5 * time.Second},
	// hata: 50 per 300 s, shared with POST /channels/{id}/threads and not
	// kept per channel; #8082 reports thread routes counted per guild.
	// The fake counts per guild; with its one guild that is the whole bot.
	{Route: RouteThreadFromMessage, Bucket: "threads-create", Per: PerGuild, Limit: 50, Window: 300 * time.Second},
	// hata: 5 per 5 s per channel.
	{Route: RouteTyping, Bucket: "typing", Per: PerChannel, Limit: 5, Window: 5 * time.Second},
	// hata: the callback has no per-route limit (it is answered once).
	{Route: RouteInteractionCallback},
	// docs: "Interactions webhooks share the same rate limit properties as
	// normal webhooks". hata: 5 per 2 s per interaction, shared by the
	// original response and the followups.
	{Route: RouteOriginalGet, Bucket: "interaction-webhook", Per: PerWebhook, Limit: 5, Window: 2 * time.Second},
	{Route: RouteOriginalEdit, Bucket: "interaction-webhook", Per: PerWebhook, Limit: 5, Window: 2 * time.Second},
	{Route: RouteFollowup, Bucket: "interaction-webhook", Per: PerWebhook, Limit: 5, Window: 2 * time.Second},
	// hata: 2 per 60 s, for the bot (global commands) or per guild.
	{Route: RouteCommandsOverwrite, Bucket: "commands-overwrite", Per: PerBot, Limit: 2, Window: 60 * time.Second},
	{Route: RouteGuildCommandsOverwrite, Bucket: "guild-commands-overwrite", Per: PerGuild, Limit: 2, Window: 60 * time.Second},
	// Unknown: hata records none ("optimistic"). A guess.
	{Route: RouteCurrentUser, Bucket: "current-user", Per: PerBot, Limit: 5, Window: 5 * time.Second},
	// Unknown: hata records none ("optimistic", per guild). A guess, as
	// strict as the channel's.
	{Route: RouteGuild, Bucket: "guild", Per: PerGuild, Limit: 5, Window: 5 * time.Second},
	// hata: 5 per 1 s per guild.
	{Route: RouteGuildMember, Bucket: "guild-member", Per: PerGuild, Limit: 5, Window: time.Second},
	// hata: 2 per 5 s for the bot.
	{Route: RouteGatewayBot, Bucket: "gateway-bot", Per: PerBot, Limit: 2, Window: 5 * time.Second},
	// Unknown (hata: untested). A guess: as GET /gateway/bot.
	{Route: RouteGateway, Bucket: "gateway", Per: PerBot, Limit: 2, Window: 5 * time.Second},
}

// limitTable finds a route's row.
type limitTable map[Route][]Limit

func newLimitTable(rows []Limit) limitTable {
	t := make(limitTable)
	for _, l := range rows {
		t[l.Route] = append(t[l.Route], l)
	}
	for _, rs := range t {
		slices.SortFunc(rs, func(a, b Limit) int { return cmp.Compare(a.OlderThan, b.OlderThan) })
	}
	return t
}

// find returns the row of route for a message of age (0 when no message
// is involved), and whether the route has one.
func (t limitTable) find(route Route, age time.Duration) (Limit, bool) {
	rows := t[route]
	var found Limit
	ok := false
	for _, l := range rows {
		if age >= l.OlderThan {
			found, ok = l, true
		}
	}
	return found, ok
}
