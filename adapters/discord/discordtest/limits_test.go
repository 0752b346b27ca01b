package discordtest_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/parleyhq/parley/adapters/discord/discordtest"
)

// seconds formats d as Discord's headers do: seconds with milliseconds.
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64)
}

// wantBucket checks the rate-limit headers of an answer given at now.
func wantBucket(t *testing.T, x exchange, now time.Time, bucket string, limit, remaining int, resetAfter time.Duration) {
	t.Helper()
	want := map[string]string{
		"X-RateLimit-Bucket":      bucket,
		"X-RateLimit-Limit":       strconv.Itoa(limit),
		"X-RateLimit-Remaining":   strconv.Itoa(remaining),
		"X-RateLimit-Reset-After": seconds(resetAfter),
		"X-RateLimit-Reset":       fmt.Sprintf("%.3f", float64(now.Add(resetAfter).UnixMilli())/1000),
	}
	for k, v := range want {
		if got := x.header.Get(k); got != v {
			t.Errorf("%s %s: got %s %q, want %q", x.method, x.path, k, got, v)
		}
	}
}

// want429 checks a 429's status, scope, Retry-After and body.
func want429(t *testing.T, x exchange, scope string, retryAfter time.Duration) {
	t.Helper()
	if x.status != 429 {
		t.Fatalf("%s %s: got status %d, want 429", x.method, x.path, x.status)
	}
	global := scope == "global"
	if got := x.header.Get("X-RateLimit-Scope"); got != scope {
		t.Errorf("got X-RateLimit-Scope %q, want %q", got, scope)
	}
	if got, want := x.header.Get("X-RateLimit-Global"), map[bool]string{true: "true"}[global]; got != want {
		t.Errorf("got X-RateLimit-Global %q, want %q", got, want)
	}
	whole := strconv.Itoa(int((retryAfter + time.Second - 1) / time.Second))
	if got := x.header.Get("Retry-After"); got != whole {
		t.Errorf("got Retry-After %q, want %q", got, whole)
	}
	var b struct {
		Message    *string  `json:"message"`
		RetryAfter *float64 `json:"retry_after"`
		Global     *bool    `json:"global"`
	}
	if err := json.Unmarshal(x.body, &b); err != nil {
		t.Fatalf("429 body %s: %v", x.body, err)
	}
	if b.Message == nil || *b.Message == "" || b.RetryAfter == nil || b.Global == nil {
		t.Fatalf("got 429 body %s, want message, retry_after and global", x.body)
	}
	if *b.RetryAfter != retryAfter.Seconds() || *b.Global != global {
		t.Errorf("got retry_after %v global %v, want %v %v", *b.RetryAfter, *b.Global, retryAfter.Seconds(), global)
	}
}

func TestSixthMessageInFiveSecondsIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, discordtest.Options{})
	ch, other := e.fake.AddChannel("general"), e.fake.AddChannel("other")
	// The window starts at the channel's first message.
	e.botMessage(ch)
	wantBucket(t, e.tr.last(t), e.clock.Now(), "messages", 5, 4, 5*time.Second)
	e.clock.Advance(2 * time.Second)
	for i := range 4 {
		e.botMessage(ch)
		wantBucket(t, e.tr.last(t), e.clock.Now(), "messages", 5, 3-i, 3*time.Second)
	}

	_, err := e.s.ChannelMessageSend(ch, "one too many")
	if rle := rateLimited(t, err); rle.RetryAfter != 3*time.Second {
		t.Errorf("discordgo read retry_after %v, want 3s", rle.RetryAfter)
	}
	x := e.tr.last(t)
	want429(t, x, "user", 3*time.Second)
	wantBucket(t, x, e.clock.Now(), "messages", 5, 0, 3*time.Second)
	if n := len(e.fake.BotMessages(ch)); n != 5 {
		t.Errorf("got %d messages in the channel, want 5", n)
	}

	// Another channel has a bucket of its own.
	e.botMessage(other)
	wantBucket(t, e.tr.last(t), e.clock.Now(), "messages", 5, 4, 5*time.Second)

	// Once the window is over, the next message opens a new one.
	e.clock.Advance(3 * time.Second)
	e.botMessage(ch)
	wantBucket(t, e.tr.last(t), e.clock.Now(), "messages", 5, 4, 5*time.Second)

	st := e.fake.Stats()
	if got, want := st.Routes[discordtest.RouteMessageCreate], (discordtest.RouteStats{Calls: 8, Limited: 1}); got != want {
		t.Errorf("got message create stats %+v, want %+v", got, want)
	}
	if st.RateLimited != 1 || st.GlobalLimit != 0 {
		t.Errorf("got %d 429s, %d global, want 1 and 0", st.RateLimited, st.GlobalLimit)
	}
}

func TestEditsAnnounceTheMessageBucketButCountApart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, discordtest.Options{})
	ch := e.fake.AddChannel("general")
	id := e.botMessage(ch)
	for range 4 {
		e.botMessage(ch)
	}
	// The channel's message bucket is spent; edits count in their own.
	for i := range 5 {
		_, err := e.s.ChannelMessageEdit(ch, id, fmt.Sprint("edit ", i))
		must(t, err)
		wantBucket(t, e.tr.last(t), e.clock.Now(), "messages", 5, 4-i, 5*time.Second)
	}
	_, err := e.s.ChannelMessageEdit(ch, id, "one too many")
	rateLimited(t, err)
	x := e.tr.last(t)
	want429(t, x, "user", 5*time.Second)
	wantBucket(t, x, e.clock.Now(), "messages", 5, 0, 5*time.Second)
	if m, _ := e.fake.Message(id); m.Edits != 5 || m.Content != "edit 4" {
		t.Errorf("got %d edits, content %q, want 5 and %q", m.Edits, m.Content, "edit 4")
	}
	_, err = e.s.ChannelMessageSend(ch, "still spent")
	rateLimited(t, err)
	st := e.fake.Stats().Routes
	if st[discordtest.RouteMessageEdit].Limited != 1 || st[discordtest.RouteMessageCreate].Limited != 1 {
		t.Errorf("got edit %+v, create %+v, want one 429 each", st[discordtest.RouteMessageEdit], st[discordtest.RouteMessageCreate])
	}
}

func TestDeletesCountInABucketChosenByTheMessagesAge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, discordtest.Options{})
	ch := e.fake.AddChannel("general")
	var old []string
	for range 4 {
		old = append(old, e.botMessage(ch))
	}
	e.clock.Advance(10 * time.Second)
	fresh := e.botMessage(ch)

	for i, id := range old[:3] {
		must(t, e.s.ChannelMessageDelete(ch, id))
		wantBucket(t, e.tr.last(t), e.clock.Now(), "message-delete", 3, 2-i, time.Second)
	}
	rateLimited(t, e.s.ChannelMessageDelete(ch, old[3]))
	want429(t, e.tr.last(t), "user", time.Second)

	// A message younger than 10 s is deleted in another bucket.
	must(t, e.s.ChannelMessageDelete(ch, fresh))
	wantBucket(t, e.tr.last(t), e.clock.Now(), "message-delete-new", 5, 4, time.Second)
	if got := len(e.fake.BotMessages(ch)); got != 1 {
		t.Errorf("got %d messages left, want 1", got)
	}
}

// call makes one call of a route with discordgo, after preparing what it
// needs (a channel, a message, an interaction) with other routes.
var calls = map[discordtest.Route]func(e *env) error{
	discordtest.RouteMessageCreate: func(e *env) error {
		_, err := e.s.ChannelMessageSend(e.fake.AddChannel("c"), "x")
		return err
	},
	discordtest.RouteMessageEdit: func(e *env) error {
		ch := e.fake.AddChannel("c")
		_, err := e.s.ChannelMessageEdit(ch, e.botMessage(ch), "y")
		return err
	},
	discordtest.RouteMessageDelete: func(e *env) error {
		ch := e.fake.AddChannel("c")
		id := e.botMessage(ch)
		e.clock.Advance(e.age)
		return e.s.ChannelMessageDelete(ch, id)
	},
	discordtest.RouteMessageList: func(e *env) error {
		_, err := e.s.ChannelMessages(e.fake.AddChannel("c"), 10, "", "", "")
		return err
	},
	discordtest.RouteChannel: func(e *env) error {
		_, err := e.s.Channel(e.fake.AddChannel("c"))
		return err
	},
	discordtest.RouteThreadFromMessage: func(e *env) error {
		ch := e.fake.AddChannel("c")
		m := e.fake.Post(ch, e.fake.AddUser("ann"), "a question", "")
		_, err := e.s.MessageThreadStartComplex(ch, m.ID, &discordgo.ThreadStart{Name: "a question"})
		return err
	},
	discordtest.RouteTyping: func(e *env) error {
		return e.s.ChannelTyping(e.fake.AddChannel("c"))
	},
	discordtest.RouteInteractionCallback: func(e *env) error {
		return respond(e, e.interaction(e.fake.AddChannel("c")))
	},
	discordtest.RouteOriginalGet: func(e *env) error {
		in := e.interaction(e.fake.AddChannel("c"))
		must(e.t, respond(e, in))
		_, err := e.s.InteractionResponse(in)
		return err
	},
	discordtest.RouteOriginalEdit: func(e *env) error {
		in := e.interaction(e.fake.AddChannel("c"))
		must(e.t, respond(e, in))
		text := "edited"
		_, err := e.s.InteractionResponseEdit(in, &discordgo.WebhookEdit{Content: &text})
		return err
	},
	discordtest.RouteFollowup: func(e *env) error {
		in := e.interaction(e.fake.AddChannel("c"))
		must(e.t, respond(e, in))
		_, err := e.s.FollowupMessageCreate(in, true, &discordgo.WebhookParams{Content: "more"})
		return err
	},
	discordtest.RouteCommandsOverwrite: func(e *env) error {
		_, err := e.s.ApplicationCommandBulkOverwrite(e.fake.AppID, "", commands)
		return err
	},
	discordtest.RouteGuildCommandsOverwrite: func(e *env) error {
		_, err := e.s.ApplicationCommandBulkOverwrite(e.fake.AppID, e.fake.GuildID, commands)
		return err
	},
	discordtest.RouteCurrentUser: func(e *env) error {
		_, err := e.s.User("@me")
		return err
	},
	discordtest.RouteGuild: func(e *env) error {
		_, err := e.s.Guild(e.fake.GuildID)
		return err
	},
	discordtest.RouteGuildMember: func(e *env) error {
		_, err := e.s.GuildMember(e.fake.GuildID, e.fake.AddUser("member").ID)
		return err
	},
	discordtest.RouteGateway: func(e *env) error {
		_, err := e.s.Gateway()
		return err
	},
	discordtest.RouteGatewayBot: func(e *env) error {
		_, err := e.s.GatewayBot()
		return err
	},
}

var commands = []*discordgo.ApplicationCommand{{Name: "ask", Description: "Ask a question"}}

func respond(e *env, in *discordgo.Interaction) error {
	return e.s.InteractionRespond(in, &discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{Content: "an answer"},
	})
}

func TestEachRouteAnnouncesItsBucket(t *testing.T) {
	t.Parallel()
	for _, l := range discordtest.Limits() {
		name := fmt.Sprintf("%s %s", l.Route, l.Bucket)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			call, ok := calls[l.Route]
			if !ok {
				t.Fatalf("no test calls %s", l.Route)
			}
			e := newEnv(t, discordtest.Options{})
			e.age = l.OlderThan
			must(t, call(e))
			x := e.tr.last(t)
			if l.Limit == 0 {
				for _, k := range []string{"X-RateLimit-Bucket", "X-RateLimit-Limit", "X-RateLimit-Remaining"} {
					if v := x.header.Get(k); v != "" {
						t.Errorf("got %s %q on a route without a per-route limit", k, v)
					}
				}
				return
			}
			wantBucket(t, x, e.clock.Now(), l.Bucket, l.Limit, l.Limit-1, l.Window)
			if st := e.fake.Stats().Routes[l.Route]; st.Calls == 0 {
				t.Errorf("got no call of %s counted", l.Route)
			}
		})
	}
}

func TestEveryLimitIsEnforced(t *testing.T) {
	t.Parallel()
	// The call after a bucket's last is refused, whatever the route. The
	// routes tested above are left out; each of the others makes its
	// calls on one resource.
	calls := map[discordtest.Route]func(e *env) func() error{
		discordtest.RouteMessageList: func(e *env) func() error {
			ch := e.fake.AddChannel("c")
			return func() error { _, err := e.s.ChannelMessages(ch, 10, "", "", ""); return err }
		},
		discordtest.RouteChannel: func(e *env) func() error {
			ch := e.fake.AddChannel("c")
			return func() error { _, err := e.s.Channel(ch); return err }
		},
		discordtest.RouteCommandsOverwrite: func(e *env) func() error {
			return func() error { _, err := e.s.ApplicationCommandBulkOverwrite(e.fake.AppID, "", commands); return err }
		},
		discordtest.RouteGuildCommandsOverwrite: func(e *env) func() error {
			return func() error {
				_, err := e.s.ApplicationCommandBulkOverwrite(e.fake.AppID, e.fake.GuildID, commands)
				return err
			}
		},
		discordtest.RouteCurrentUser: func(e *env) func() error {
			return func() error { _, err := e.s.User("@me"); return err }
		},
		discordtest.RouteGateway: func(e *env) func() error {
			return func() error { _, err := e.s.Gateway(); return err }
		},
		discordtest.RouteGatewayBot: func(e *env) func() error {
			return func() error { _, err := e.s.GatewayBot(); return err }
		},
		discordtest.RouteOriginalEdit: func(e *env) func() error {
			in := e.interaction(e.fake.AddChannel("c"))
			must(e.t, respond(e, in))
			text := "edited"
			return func() error {
				_, err := e.s.InteractionResponseEdit(in, &discordgo.WebhookEdit{Content: &text})
				return err
			}
		},
	}
	for route, prepare := range calls {
		t.Run(string(route), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, discordtest.Options{})
			l := limitOf(t, route)
			call := prepare(e)
			for range l.Limit {
				must(t, call())
			}
			rateLimited(t, call())
			want429(t, e.tr.last(t), "user", l.Window)
			if st := e.fake.Stats().Routes[route]; st.Limited != 1 {
				t.Errorf("got %+v, want one 429", st)
			}
		})
	}
}

func limitOf(t *testing.T, route discordtest.Route) discordtest.Limit {
	t.Helper()
	for _, l := range discordtest.Limits() {
		if l.Route == route && l.OlderThan == 0 {
			return l
		}
	}
	t.Fatalf("no limit for %s", route)
	return discordtest.Limit{}
}

func TestFiftyFirstCallInASecondIsGloballyRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, discordtest.Options{})
	var channels []string
	for range 52 {
		channels = append(channels, e.fake.AddChannel("c"))
	}
	// One typing indicator per channel: no route's own limit is reached.
	must(t, e.s.ChannelTyping(channels[0]))
	e.clock.Advance(400 * time.Millisecond)
	for _, ch := range channels[1:50] {
		must(t, e.s.ChannelTyping(ch))
	}
	rateLimited(t, e.s.ChannelTyping(channels[50]))
	x := e.tr.last(t)
	want429(t, x, "global", 600*time.Millisecond)
	if v := x.header.Get("X-RateLimit-Bucket"); v != "" {
		t.Errorf("got X-RateLimit-Bucket %q on a global 429, want none", v)
	}
	st := e.fake.Stats()
	if got, want := st.Routes[discordtest.RouteTyping], (discordtest.RouteStats{Calls: 51, GlobalLimited: 1}); got != want {
		t.Errorf("got typing stats %+v, want %+v", got, want)
	}
	if st.GlobalLimit != 1 || st.RateLimited != 1 || st.Typing != 50 {
		t.Errorf("got %d global 429s of %d, %d typing, want 1 of 1, 50", st.GlobalLimit, st.RateLimited, st.Typing)
	}

	// The global window started at the first call.
	e.clock.Advance(600 * time.Millisecond)
	must(t, e.s.ChannelTyping(channels[51]))
}

func TestInteractionEndpointsAreOutsideTheGlobalLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, discordtest.Options{})
	ch := e.fake.AddChannel("general")
	in := e.interaction(ch)
	e.clock.Advance(time.Second) // a fresh global window

	// Interaction calls spend none of the bot's 50.
	must(t, respond(e, in))
	if x := e.tr.last(t); x.header.Get("X-RateLimit-Bucket") != "" {
		t.Errorf("got bucket %q on the callback, want none", x.header.Get("X-RateLimit-Bucket"))
	}
	text := "edited"
	for range 3 {
		_, err := e.s.InteractionResponseEdit(in, &discordgo.WebhookEdit{Content: &text})
		must(t, err)
	}
	var channels []string
	for range 51 {
		channels = append(channels, e.fake.AddChannel("c"))
	}
	for _, c := range channels[:50] {
		must(t, e.s.ChannelTyping(c))
	}
	rateLimited(t, e.s.ChannelTyping(channels[50]))
	want429(t, e.tr.last(t), "global", time.Second)

	// The global limit is spent; the interaction's calls still go through.
	_, err := e.s.FollowupMessageCreate(in, true, &discordgo.WebhookParams{Content: "more"})
	must(t, err)
	_, err = e.s.InteractionResponseEdit(in, &discordgo.WebhookEdit{Content: &text})
	must(t, err)
	wantBucket(t, e.tr.last(t), e.clock.Now(), "interaction-webhook", 5, 0, 2*time.Second)

	st := e.fake.Stats()
	for _, r := range []discordtest.Route{discordtest.RouteInteractionCallback, discordtest.RouteOriginalEdit, discordtest.RouteFollowup} {
		if st.Routes[r].GlobalLimited != 0 || st.Routes[r].Calls == 0 {
			t.Errorf("got %s stats %+v, want calls and no global 429", r, st.Routes[r])
		}
	}
	if st.GlobalLimit != 1 {
		t.Errorf("got %d global 429s, want 1", st.GlobalLimit)
	}
	r, _ := e.fake.Response(in.ID)
	if r.Content != "edited" || r.Edits != 4 || len(r.Followups) != 1 {
		t.Errorf("got response %+v, want 4 edits to %q and a followup", r, "edited")
	}
}

func TestThreadsAreCountedAndLimitedPerGuild(t *testing.T) {
	t.Parallel()
	e := newEnv(t, discordtest.Options{})
	ann := e.fake.AddUser("ann")
	a, b := e.fake.AddChannel("a"), e.fake.AddChannel("b")
	start := func(ch string) error {
		m := e.fake.Post(ch, ann, "a question", "")
		_, err := e.s.MessageThreadStartComplex(ch, m.ID, &discordgo.ThreadStart{Name: "a question"})
		return err
	}
	// Two channels of one guild share the guild's 50 threads per 300 s.
	for i := range 50 {
		if i == 25 {
			e.clock.Advance(time.Second) // past the global limit's window
		}
		ch := a
		if i%2 == 1 {
			ch = b
		}
		must(t, start(ch))
	}
	wantBucket(t, e.tr.last(t), e.clock.Now(), "threads-create", 50, 0, 299*time.Second)
	rateLimited(t, start(a))
	want429(t, e.tr.last(t), "user", 299*time.Second)

	st := e.fake.Stats()
	if st.Threads != 50 || len(e.fake.Threads(a)) != 25 || len(e.fake.Threads(b)) != 25 {
		t.Errorf("got %d threads (%d in a, %d in b), want 50 (25, 25)", st.Threads, len(e.fake.Threads(a)), len(e.fake.Threads(b)))
	}
	if got, want := st.Routes[discordtest.RouteThreadFromMessage], (discordtest.RouteStats{Calls: 51, Limited: 1}); got != want {
		t.Errorf("got thread stats %+v, want %+v", got, want)
	}
}

func TestTypingIsCountedAndLimitedPerChannel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, discordtest.Options{})
	ch, other := e.fake.AddChannel("general"), e.fake.AddChannel("other")
	for range 5 {
		must(t, e.s.ChannelTyping(ch))
	}
	rateLimited(t, e.s.ChannelTyping(ch))
	x := e.tr.last(t)
	want429(t, x, "user", 5*time.Second)
	wantBucket(t, x, e.clock.Now(), "typing", 5, 0, 5*time.Second)
	must(t, e.s.ChannelTyping(other))

	st := e.fake.Stats()
	if st.Typing != 6 || e.fake.TypingIn(ch) != 5 || e.fake.TypingIn(other) != 1 {
		t.Errorf("got %d typing (%d, %d), want 6 (5, 1)", st.Typing, e.fake.TypingIn(ch), e.fake.TypingIn(other))
	}
	if got, want := st.Routes[discordtest.RouteTyping], (discordtest.RouteStats{Calls: 7, Limited: 1}); got != want {
		t.Errorf("got typing stats %+v, want %+v", got, want)
	}
}

func TestMessagesRecordWhenTheyChanged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, discordtest.Options{})
	ch := e.fake.AddChannel("general")
	t0 := e.clock.Now()
	id := e.botMessage(ch)
	e.clock.Advance(1500 * time.Millisecond)
	_, err := e.s.ChannelMessageEdit(ch, id, "hello, world")
	must(t, err)
	e.clock.Advance(2 * time.Second)
	_, err = e.s.ChannelMessageEdit(ch, id, "hello, world")
	must(t, err)
	// A refused edit changes nothing.
	for range 3 {
		_, err = e.s.ChannelMessageEdit(ch, id, "again")
		must(t, err)
	}
	_, err = e.s.ChannelMessageEdit(ch, id, "refused")
	rateLimited(t, err)

	m, _ := e.fake.Message(id)
	want := []time.Time{t0, t0.Add(1500 * time.Millisecond)}
	for range 4 {
		want = append(want, t0.Add(3500*time.Millisecond))
	}
	if fmt.Sprint(m.Changes) != fmt.Sprint(want) || m.Content != "again" {
		t.Errorf("got changes %v and %q, want %v and %q", m.Changes, m.Content, want, "again")
	}

	in := e.interaction(ch)
	must(t, respond(e, in))
	e.clock.Advance(time.Second)
	text := "edited"
	_, err = e.s.InteractionResponseEdit(in, &discordgo.WebhookEdit{Content: &text})
	must(t, err)
	r, _ := e.fake.Response(in.ID)
	orig, _ := e.fake.Message(r.MessageID)
	if len(orig.Changes) != 2 || orig.Changes[1].Sub(orig.Changes[0]) != time.Second {
		t.Errorf("got the response's changes %v, want its creation and an edit a second later", orig.Changes)
	}
}

func TestUnlimitedLimitsTakeATableOfTheirOwn(t *testing.T) {
	t.Parallel()
	rows := discordtest.Limits()
	for i := range rows {
		if rows[i].Route == discordtest.RouteMessageCreate {
			rows[i].Limit, rows[i].Window = 100, time.Second
		}
	}
	e := newEnv(t, discordtest.Options{Limits: rows})
	ch := e.fake.AddChannel("general")
	for range 6 {
		e.botMessage(ch)
	}
	wantBucket(t, e.tr.last(t), e.clock.Now(), "messages", 100, 94, time.Second)
	// The other rows are Discord's.
	id := e.botMessage(ch)
	for range 5 {
		_, err := e.s.ChannelMessageEdit(ch, id, "x")
		must(t, err)
	}
	_, err := e.s.ChannelMessageEdit(ch, id, "x")
	rateLimited(t, err)
}

func TestScaledWindowScalesEveryWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, discordtest.Options{Window: 500 * time.Millisecond, ChannelLimit: 1000})
	ch := e.fake.AddChannel("general")
	e.botMessage(ch)
	wantBucket(t, e.tr.last(t), e.clock.Now(), "messages", 1000, 999, 500*time.Millisecond)
	m := e.fake.Post(ch, e.fake.AddUser("ann"), "a question", "")
	_, err := e.s.MessageThreadStartComplex(ch, m.ID, &discordgo.ThreadStart{Name: "q"})
	must(t, err)
	wantBucket(t, e.tr.last(t), e.clock.Now(), "threads-create", 1000, 999, 30*time.Second)
}

// nameTB is a testing.TB under another name that records Fatalf.
type nameTB struct {
	testing.TB
	name  string
	fatal string
}

func (tb *nameTB) Name() string { return tb.name }
func (tb *nameTB) Fatalf(format string, args ...any) {
	if tb.fatal == "" {
		tb.fatal = fmt.Sprintf(format, args...)
	}
}

func TestRelaxingNeedsName(t *testing.T) {
	for _, tc := range []struct {
		name     string
		testName string
		opts     discordtest.Options
		fails    bool
	}{
		{"default", "TestX", discordtest.Options{}, false},
		{"tighter global", "TestX", discordtest.Options{GlobalLimit: 30, GlobalWindow: time.Minute}, false},
		{"looser global", "TestX", discordtest.Options{GlobalLimit: 1000}, true},
		{"looser global named", "TestXUnlimited", discordtest.Options{GlobalLimit: 1000}, false},
		{"bigger buckets", "TestX", discordtest.Options{ChannelLimit: 100}, true},
		{"no route limits", "TestX", discordtest.Options{Limits: []discordtest.Limit{}}, true},
		{"faster windows", "TestX", discordtest.Options{Window: time.Second}, true},
		{"faster windows named", "TestXScaled/case", discordtest.Options{Window: time.Second}, false},
		{"bigger uploads", "TestX", discordtest.Options{UploadLimit: 100 << 20}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := &nameTB{TB: t, name: tc.testName}
			discordtest.New(tb, tc.opts)
			if got := tb.fatal != ""; got != tc.fails {
				t.Errorf("got failed %v (%q), want %v", got, tb.fatal, tc.fails)
			}
		})
	}
}
