package discord

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/adapters/discord/discordtest"
	"github.com/parleyhq/parley/bots"
)

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no token", Options{}, "token is empty"},
		{"bad url", Options{Token: "x", APIURL: "ftp://x"}, "not an http(s) URL"},
		{"bad mode", Options{Token: "x", ReplyMode: "dm"}, "reply mode"},
		{"bad shard", Options{Token: "x", ShardID: 2, ShardCount: 2}, "shard id must be below"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newAdapter(tt.opts, newRecorder(), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestRunRefusedToken(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	a, err := newAdapter(Options{Token: "wrong", APIURL: fake.APIURL()}, newRecorder(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	err = a.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "refused the bot token") || !strings.Contains(err.Error(), "DISCORD_BOT_TOKEN") || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("got %v, want a refused-token error that does not show the token", err)
	}
}

func TestIdentifyIntentsAndCommands(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{HeartbeatInterval: 20 * time.Millisecond})
	run(t, fake, newRecorder(), Options{GuildID: fake.GuildID, ShardID: 1, ShardCount: 2})

	var id struct {
		Intents int    `json:"intents"`
		Shard   [2]int `json:"shard"`
	}
	if err := json.Unmarshal(fake.Identify(), &id); err != nil {
		t.Fatal(err)
	}
	// guilds, guild messages, guild reactions, DMs, DM reactions, content
	const want = 1<<0 | 1<<9 | 1<<10 | 1<<12 | 1<<13 | 1<<15
	if id.Intents != want {
		t.Errorf("got intents %b, want %b", id.Intents, want)
	}
	if id.Shard != [2]int{1, 2} {
		t.Errorf("got shard %v, want [1 2]", id.Shard)
	}
	fake.Await(t, wait, "heartbeats", func() bool { return fake.Stats().Heartbeats >= 5 })
	if st := fake.Stats(); st.Identifies != 1 || st.Connections != 1 {
		t.Errorf("got %d identifies on %d connections, want one session kept alive", st.Identifies, st.Connections)
	}
	var cmds []struct {
		Name    string `json:"name"`
		Options []struct {
			Name         string `json:"name"`
			Autocomplete bool   `json:"autocomplete"`
		} `json:"options"`
	}
	if err := json.Unmarshal(fake.Commands(fake.GuildID), &cmds); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cmds {
		names = append(names, c.Name)
		if c.Name == "model" && (len(c.Options) != 1 || c.Options[0].Name != "name" || !c.Options[0].Autocomplete) {
			t.Errorf("/model options %+v, want one autocompleted option name", c.Options)
		}
	}
	if got := strings.Join(names, " "); got != "model models reset system help ask" {
		t.Errorf("got commands %q", got)
	}
	if fake.Commands("global") != nil {
		t.Error("commands registered globally, want only in the guild")
	}
}

func TestIncomingMapping(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	rec := newRecorder()
	a := run(t, fake, rec, Options{})
	ch := fake.AddChannel("general")
	ann := fake.AddUser("ann")
	other := fake.AddBot("otherbot")
	bot := "<@" + fake.BotID + ">"

	t.Run("mention in a channel", func(t *testing.T) {
		m := fake.Post(ch, ann, bot+" what is Go?", "")
		got := rec.incoming(t, m.ID)
		want := bots.Incoming{Workspace: fake.GuildID, Channel: ch, Thread: m.ID, MessageID: m.ID,
			Author: ann.ID, AuthorName: "ann", Mentioned: true, Text: "what is Go?", Time: got.Time}
		if got.Time.IsZero() {
			t.Error("no time")
		}
		if !equalIncoming(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
	t.Run("old-style mention in the middle", func(t *testing.T) {
		m := fake.Post(ch, ann, "hey <@!"+fake.BotID+"> there", "")
		if got := rec.incoming(t, m.ID); got.Text != "hey there" || !got.Mentioned {
			t.Errorf("got text %q mentioned %v, want %q true", got.Text, got.Mentioned, "hey there")
		}
	})
	t.Run("in a thread", func(t *testing.T) {
		root := fake.Post(ch, ann, bot+" start", "")
		rec.incoming(t, root.ID)
		fakeThread(t, fake, ch, root.ID)
		m := fake.Post(root.ID, ann, "follow-up", "")
		got := rec.incoming(t, m.ID)
		if got.Channel != ch || got.Thread != root.ID || got.Mentioned || got.DM {
			t.Errorf("got channel %s thread %s mentioned %v, want %s %s false", got.Channel, got.Thread, got.Mentioned, ch, root.ID)
		}
	})
	t.Run("reply", func(t *testing.T) {
		first := fake.Post(ch, ann, "first", "")
		m := fake.Post(ch, ann, "second", first.ID)
		if got := rec.incoming(t, m.ID); got.ReplyTo != first.ID || got.Thread != m.ID {
			t.Errorf("got reply to %q thread %q, want %q %q", got.ReplyTo, got.Thread, first.ID, m.ID)
		}
	})
	t.Run("reply to the bot without a typed mention", func(t *testing.T) {
		mine := fake.Post(ch, ann, bot+" question", "")
		rec.incoming(t, mine.ID)
		answer, err := a.Post(t.Context(), bots.Destination{Channel: ch}, "answer")
		if err != nil {
			t.Fatal(err)
		}
		m := fake.Post(ch, ann, "and then?", answer)
		if got := rec.incoming(t, m.ID); got.Mentioned || got.ReplyTo != answer {
			t.Errorf("got mentioned %v reply to %q, want false %q: the reply's ping is not a mention", got.Mentioned, got.ReplyTo, answer)
		}
		m = fake.Post(ch, ann, bot+" and then?", answer)
		if got := rec.incoming(t, m.ID); !got.Mentioned {
			t.Error("a typed mention in a reply is not a mention")
		}
	})
	t.Run("roles", func(t *testing.T) {
		bea := fake.AddUser("bea")
		fake.SetRoles(bea, "r-1", "r-2")
		m := fake.Post(ch, bea, bot+" hi", "")
		if got := rec.incoming(t, m.ID); !slices.Equal(got.Roles, []string{"r-1", "r-2"}) {
			t.Errorf("got roles %v, want the member's r-1 r-2", got.Roles)
		}
		dm := fake.AddDM()
		m = fake.Post(dm, bea, "hello", "")
		if got := rec.incoming(t, m.ID); got.Roles != nil {
			t.Errorf("got roles %v in a DM, want none", got.Roles)
		}
	})
	t.Run("DM", func(t *testing.T) {
		dm := fake.AddDM()
		m := fake.Post(dm, ann, "hello", "")
		got := rec.incoming(t, m.ID)
		if !got.DM || got.Channel != dm || got.Thread != "" || got.Workspace != "" {
			t.Errorf("got %+v, want a DM in %s without thread", got, dm)
		}
	})
	t.Run("bots and webhooks", func(t *testing.T) {
		m := fake.Post(ch, other, bot+" hi", "")
		if got := rec.incoming(t, m.ID); !got.AuthorIsBot {
			t.Error("a bot's message is not marked AuthorIsBot")
		}
		w := fake.PostWebhook(ch, bot+" hi")
		if got := rec.incoming(t, w.ID); !got.AuthorIsBot {
			t.Error("a webhook's message is not marked AuthorIsBot")
		}
	})
	t.Run("delete and reaction", func(t *testing.T) {
		m := fake.Post(ch, ann, "bye", "")
		rec.incoming(t, m.ID)
		fake.React(ch, m.ID, ann, "🛑")
		fake.Delete(m.ID)
		rec.await(t, "delete and reaction", func() bool { return len(rec.deleted) > 0 && len(rec.reacted) > 0 })
		if want := fake.GuildID + "/" + ch + "/" + m.ID; rec.deleted[len(rec.deleted)-1] != want {
			t.Errorf("got deleted %v, want %s", rec.deleted, want)
		}
		if want := fake.GuildID + "/" + ch + "/" + m.ID + "/" + ann.ID + "/🛑"; rec.reacted[len(rec.reacted)-1] != want {
			t.Errorf("got reacted %v, want %s", rec.reacted, want)
		}
	})
}

func equalIncoming(a, b bots.Incoming) bool {
	return a.Workspace == b.Workspace && a.Channel == b.Channel && a.Thread == b.Thread && a.MessageID == b.MessageID &&
		a.ReplyTo == b.ReplyTo && a.Author == b.Author && a.AuthorName == b.AuthorName && a.AuthorIsBot == b.AuthorIsBot &&
		a.DM == b.DM && a.Mentioned == b.Mentioned && a.Text == b.Text && a.Model == b.Model
}

// fakeThread starts a thread from message root as a user would.
func fakeThread(t *testing.T, fake *discordtest.Server, channel, root string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", fake.APIURL()+"/channels/"+channel+"/messages/"+root+"/threads", strings.NewReader(`{"name":"t"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bot "+fake.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("start thread: %s", resp.Status)
	}
}

func TestOwnMessagesAndMalformedPayloadsIgnored(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	rec := newRecorder()
	a := run(t, fake, rec, Options{})
	ch := fake.AddChannel("general")
	ann := fake.AddUser("ann")

	if _, err := a.Post(t.Context(), bots.Destination{Channel: ch}, "from the bot"); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []struct{ t, d string }{
		{"MESSAGE_CREATE", `null`},
		{"MESSAGE_CREATE", `{"id":"1"}`},
		{"MESSAGE_CREATE", `{"id":"2","channel_id":"3","author":null,"mentions":[null],"attachments":[null]}`},
		{"MESSAGE_CREATE", `"a string"`},
		{"MESSAGE_DELETE", `{}`},
		{"MESSAGE_DELETE_BULK", `{"ids":null}`},
		{"MESSAGE_REACTION_ADD", `{"emoji":null}`},
		{"MESSAGE_REACTION_ADD", `{"user_id":"5","message_id":"6","channel_id":"7","emoji":{"name":""}}`},
		{"INTERACTION_CREATE", `{"id":"9","token":"t","type":2,"data":"junk"}`},
		{"INTERACTION_CREATE", `{"id":"9","token":"t","type":2,"data":{"name":"model","options":[{"name":"name","type":3,"value":12}]}}`},
		{"INTERACTION_CREATE", `{"id":"9","token":"t","type":4,"data":{"name":"model","options":[null]}}`},
		{"INTERACTION_CREATE", `{"id":"9","token":"t","type":99}`},
		{"THREAD_CREATE", `null`},
		{"THREAD_LIST_SYNC", `{"threads":[null]}`},
	} {
		fake.Dispatch(ev.t, json.RawMessage(ev.d))
	}
	m := fake.Post(ch, ann, "still alive", "")
	rec.incoming(t, m.ID)
	for _, in := range rec.in {
		if in.Author == fake.BotID {
			t.Errorf("the bot's own message reached the engine: %+v", in)
		}
	}
}

func TestPostThreadMode(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	rec := newRecorder()
	a := run(t, fake, rec, Options{})
	ch := fake.AddChannel("general")
	ann := fake.AddUser("ann")
	long := "<@" + fake.BotID + "> " + strings.Repeat("explain channels and goroutines in depth ", 6)
	m := fake.Post(ch, ann, long, "")
	in := rec.incoming(t, m.ID)
	dest := bots.Destination{Workspace: in.Workspace, Channel: in.Channel, Thread: in.Thread, ReplyTo: in.MessageID, User: ann.ID}
	ctx := t.Context()

	if err := a.Progress(ctx, dest, "thinking"); err != nil {
		t.Fatal(err)
	}
	id, err := a.Post(ctx, dest, "Hello <@"+ann.ID+"> @everyone")
	if err != nil {
		t.Fatal(err)
	}
	threads := fake.Threads(ch)
	if len(threads) != 1 || threads[0].ID != m.ID {
		t.Fatalf("got threads %+v, want one started from %s", threads, m.ID)
	}
	if name := threads[0].Name; len([]rune(name)) > 100 || !strings.HasPrefix(name, "explain channels and goroutines") {
		t.Errorf("thread name %q: want the prompt's first words, at most 100 characters", name)
	}
	if err := a.Edit(ctx, dest, id, "Hello, edited", false); err != nil {
		t.Fatal(err)
	}
	id2, err := a.Post(ctx, dest, "part two")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Progress(ctx, dest, "still"); err != nil {
		t.Fatal(err)
	}
	got := fake.BotMessages(m.ID)
	if len(got) != 2 || got[0].ID != id || got[0].Content != "Hello, edited" || got[1].ID != id2 || got[1].Content != "part two" {
		t.Fatalf("thread holds %+v", got)
	}
	for _, bm := range got {
		if bm.AllowedMentions != `{"parse":[],"replied_user":false}` {
			t.Errorf("message %s allowed_mentions %s, want none", bm.ID, bm.AllowedMentions)
		}
	}
	if len(fake.Threads(ch)) != 1 {
		t.Error("a second thread was started")
	}
	if fake.TypingIn(ch) != 1 || fake.TypingIn(m.ID) != 1 {
		t.Errorf("typing in channel %d, in thread %d; want 1 and 1", fake.TypingIn(ch), fake.TypingIn(m.ID))
	}
	if err := a.Edit(ctx, dest, id, strings.Repeat("x", 2001), true); !errors.Is(err, bots.ErrTooLong) {
		t.Errorf("edit with 2001 characters: got %v, want ErrTooLong", err)
	}
	if err := a.Delete(ctx, dest, id2); err != nil {
		t.Fatal(err)
	}
	if err := a.Edit(ctx, dest, id2, "gone", true); !errors.Is(err, bots.ErrGone) {
		t.Errorf("edit of a deleted message: got %v, want ErrGone", err)
	}
	if _, err := a.Post(ctx, bots.Destination{Channel: "404"}, "x"); !errors.Is(err, bots.ErrGone) {
		t.Errorf("post in an unknown channel: got %v, want ErrGone", err)
	}
}

func TestPostReplyMode(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	rec := newRecorder()
	a := run(t, fake, rec, Options{ReplyMode: ReplyReply})
	ch := fake.AddChannel("general")
	ann := fake.AddUser("ann")
	ctx := t.Context()

	m := fake.Post(ch, ann, "<@"+fake.BotID+"> hi", "")
	in := rec.incoming(t, m.ID)
	dest := bots.Destination{Workspace: in.Workspace, Channel: in.Channel, Thread: in.Thread, ReplyTo: in.MessageID}
	id, err := a.Post(ctx, dest, "hello")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := fake.Message(id)
	if got.ChannelID != ch || got.ReplyTo != m.ID || len(fake.Threads(ch)) != 0 {
		t.Errorf("got message in %s replying to %q (threads %d), want a reply to %s in %s", got.ChannelID, got.ReplyTo, len(fake.Threads(ch)), m.ID, ch)
	}

	// Inside an existing thread, the reply goes into the thread.
	root := fake.Post(ch, ann, "root", "")
	rec.incoming(t, root.ID)
	fakeThread(t, fake, ch, root.ID)
	q := fake.Post(root.ID, ann, "<@"+fake.BotID+"> in thread", "")
	in = rec.incoming(t, q.ID)
	dest = bots.Destination{Workspace: in.Workspace, Channel: in.Channel, Thread: in.Thread, ReplyTo: in.MessageID}
	id, err = a.Post(ctx, dest, "threaded")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := fake.Message(id); got.ChannelID != root.ID || got.ReplyTo != q.ID {
		t.Errorf("got message in %s replying to %q, want a reply to %s in thread %s", got.ChannelID, got.ReplyTo, q.ID, root.ID)
	}
}

func TestPostFallsBackToReplyWithoutThreads(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	rec := newRecorder()
	a := run(t, fake, rec, Options{})
	vc := fake.AddVoiceChannel("voice")
	ann := fake.AddUser("ann")
	m := fake.Post(vc, ann, "<@"+fake.BotID+"> hi", "")
	in := rec.incoming(t, m.ID)
	dest := bots.Destination{Workspace: in.Workspace, Channel: in.Channel, Thread: in.Thread, ReplyTo: in.MessageID}
	id, err := a.Post(t.Context(), dest, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Edit(t.Context(), dest, id, "hello again", true); err != nil {
		t.Fatal(err)
	}
	if got, _ := fake.Message(id); got.ChannelID != vc || got.ReplyTo != m.ID || got.Content != "hello again" {
		t.Errorf("got %+v, want a reply to %s in the voice channel", got, m.ID)
	}
}

func TestEditsPacedByHeadersScaled(t *testing.T) {
	t.Parallel()
	// A short window keeps the test quick; the limiter knows only what the
	// headers say.
	fake := discordtest.New(t, discordtest.Options{Window: 300 * time.Millisecond})
	a := run(t, fake, newRecorder(), Options{})
	ch := fake.AddChannel("general")
	dest := bots.Destination{Channel: ch}
	ctx := t.Context()
	id, err := a.Post(ctx, dest, "0")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := a.Edit(ctx, dest, id, strings.Repeat("x", i+1), false); err != nil {
			t.Fatalf("edit %d: %v", i, err)
		}
	}
	if n := fake.Stats().RateLimited; n != 0 {
		t.Errorf("got %d 429s, want 0", n)
	}
	if got, _ := fake.Message(id); got.Edits != 20 || got.Content != strings.Repeat("x", 20) {
		t.Errorf("got %d edits and %q", got.Edits, got.Content)
	}
}

func TestRateLimitErrorReachesEngineScaled(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{Window: 2 * time.Second})
	// Two adapters share the bot's bucket but not their knowledge of it: the
	// second spends the last call the first believes it has.
	a := run(t, fake, newRecorder(), Options{})
	b, err := newAdapter(Options{Token: fake.Token(), APIURL: fake.APIURL()}, newRecorder(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ch := fake.AddChannel("general")
	dest := bots.Destination{Channel: ch}
	ctx := t.Context()
	id, err := a.Post(ctx, dest, "0")
	if err != nil {
		t.Fatal(err)
	}
	// Edits are counted apart from creates: 5 per window, the 6th refused.
	var rle *bots.RateLimitError
	for i := range 6 {
		p := a
		if i%2 == 1 {
			p = b
		}
		err = p.Edit(ctx, dest, id, "x", false)
		if errors.As(err, &rle) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if rle == nil || rle.RetryAfter <= 0 || rle.RetryAfter > 2*time.Second || rle.Global {
		t.Fatalf("got %v (%+v), want a route *bots.RateLimitError within the window", err, rle)
	}
	if n := fake.Stats().RateLimited; n != 1 {
		t.Errorf("got %d 429s, want 1", n)
	}
}

func TestGlobalRateLimit(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{GlobalLimit: 30, GlobalWindow: time.Minute})
	a := run(t, fake, newRecorder(), Options{})
	var rle *bots.RateLimitError
	for i := 0; i < 40 && rle == nil; i++ {
		// A channel each: only the global limit is reached.
		_, err := a.Post(t.Context(), bots.Destination{Channel: fake.AddChannel("c")}, "x")
		if err != nil && !errors.As(err, &rle) {
			t.Fatal(err)
		}
	}
	if rle == nil || !rle.Global || rle.RetryAfter <= 0 || rle.RetryAfter > time.Minute {
		t.Fatalf("got %+v, want a global *bots.RateLimitError", rle)
	}
	// The limiter now holds every call until the global limit lifts; a
	// call with a deadline gives up instead of sleeping past it.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := a.Post(ctx, bots.Destination{Channel: fake.AddChannel("c")}, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want the caller's deadline", err)
	}
	if n := fake.Stats().GlobalLimit; n != 1 {
		t.Errorf("got %d global 429s, want 1", n)
	}
}

func TestSlashCommands(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	rec := newRecorder()
	rec.models = []string{"gpt-4o", "gpt-4o-mini", "claude-sonnet", strings.Repeat("m", 101)}
	rec.reply = bots.CommandReply{Text: "Model set to gpt-4o-mini.", Ephemeral: true}
	a := run(t, fake, rec, Options{})
	ch := fake.AddChannel("general")
	ann := fake.AddUser("ann")
	fake.SetRoles(ann, "r-team")

	t.Run("autocomplete", func(t *testing.T) {
		id := fake.Interact(discordtest.Interaction{Type: 4, GuildID: fake.GuildID, ChannelID: ch, User: ann, Name: "model",
			Options: []discordtest.Option{{Name: "name", Value: "gpt", Focused: true}}})
		var r discordtest.Response
		fake.Await(t, wait, "autocomplete", func() (ok bool) { r, ok = fake.Response(id); return ok })
		if r.Type != 8 || strings.Join(r.Choices, ",") != "gpt-4o,gpt-4o-mini" {
			t.Errorf("got type %d choices %v", r.Type, r.Choices)
		}
	})
	t.Run("model", func(t *testing.T) {
		id := fake.Interact(discordtest.Interaction{GuildID: fake.GuildID, ChannelID: ch, User: ann, Name: "model",
			Options: []discordtest.Option{{Name: "name", Value: "gpt-4o-mini"}}})
		var r discordtest.Response
		fake.Await(t, wait, "the /model answer", func() (ok bool) { r, ok = fake.Response(id); return ok && r.Edits > 0 })
		if r.Type != 5 || !r.Ephemeral || r.Content != "Model set to gpt-4o-mini." {
			t.Errorf("got %+v, want a deferred ephemeral answer edited in", r)
		}
		cmd := rec.cmds[len(rec.cmds)-1]
		want := bots.Command{Workspace: fake.GuildID, Channel: ch, User: ann.ID, Roles: []string{"r-team"}, Name: "model", Args: "gpt-4o-mini"}
		if !reflect.DeepEqual(cmd, want) {
			t.Errorf("got %+v, want %+v", cmd, want)
		}
	})
	t.Run("long answer", func(t *testing.T) {
		rec.mu.Lock()
		rec.reply = bots.CommandReply{Text: strings.Repeat("model-name\n", 300)}
		rec.mu.Unlock()
		id := fake.Interact(discordtest.Interaction{GuildID: fake.GuildID, ChannelID: ch, User: ann, Name: "models"})
		var r discordtest.Response
		fake.Await(t, wait, "the /models answer", func() (ok bool) { r, ok = fake.Response(id); return ok && len(r.Followups) == 1 })
		if total := len(r.Content) + len(r.Followups[0]); len([]rune(r.Content)) > 2000 || total < 3299 {
			t.Errorf("answer of %d+%d characters", len(r.Content), len(r.Followups[0]))
		}
	})
	t.Run("ask", func(t *testing.T) {
		id := fake.Interact(discordtest.Interaction{GuildID: fake.GuildID, ChannelID: ch, User: ann, Name: "ask",
			Options: []discordtest.Option{{Name: "prompt", Value: "why is the sky blue?"}, {Name: "model", Value: "claude-sonnet"}}})
		var r discordtest.Response
		fake.Await(t, wait, "the /ask response", func() (ok bool) { r, ok = fake.Response(id); return ok })
		if r.Type != 4 || r.Ephemeral || !strings.HasPrefix(r.Content, "why is the sky blue?") || r.MessageID == "" {
			t.Fatalf("got %+v, want the prompt shown in public", r)
		}
		in := rec.incoming(t, r.MessageID)
		if !in.Mentioned || in.Model != "claude-sonnet" || in.Text != "why is the sky blue?" || in.Thread != r.MessageID || in.Channel != ch || in.Author != ann.ID {
			t.Errorf("got %+v", in)
		}
		dest := bots.Destination{Workspace: in.Workspace, Channel: in.Channel, Thread: in.Thread, ReplyTo: in.MessageID}
		if _, err := a.Post(t.Context(), dest, "Rayleigh scattering."); err != nil {
			t.Fatal(err)
		}
		if th := fake.Threads(ch); len(th) != 1 || th[0].ID != r.MessageID || th[0].Name != "why is the sky blue?" {
			t.Errorf("got threads %+v, want one from the /ask response", th)
		}
	})
}

func TestResumeReplaysMissedEvents(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	rec := newRecorder()
	run(t, fake, rec, Options{})
	ch := fake.AddChannel("general")
	ann := fake.AddUser("ann")

	fake.Drop()
	m := fake.Post(ch, ann, "<@"+fake.BotID+"> sent while you were away", "")
	if got := rec.incoming(t, m.ID); !got.Mentioned {
		t.Errorf("got %+v", got)
	}
	if st := fake.Stats(); st.Resumes != 1 || st.Identifies != 1 {
		t.Errorf("got %d resumes and %d identifies, want 1 and 1", st.Resumes, st.Identifies)
	}
}

func TestNewSessionFetchesMissedMessages(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	rec := newRecorder()
	run(t, fake, rec, Options{})
	ch := fake.AddChannel("general")
	ann := fake.AddUser("ann")
	first := fake.Post(ch, ann, "hello", "")
	rec.incoming(t, first.ID)

	fake.InvalidateSession()
	fake.Drop()
	missed := fake.Post(ch, ann, "<@"+fake.BotID+"> did you miss me?", "")
	got := rec.incoming(t, missed.ID)
	if !got.Mentioned || got.Workspace != fake.GuildID || got.Channel != ch || got.Thread != missed.ID || got.Text != "did you miss me?" {
		t.Errorf("got %+v", got)
	}
	if st := fake.Stats(); st.Identifies != 2 || st.Invalidated != 1 {
		t.Errorf("got %d identifies and %d invalid sessions, want 2 and 1", st.Identifies, st.Invalidated)
	}
}

func TestRunStopsWhenContextEnds(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	a, err := newAdapter(Options{Token: fake.Token(), APIURL: fake.APIURL()}, newRecorder(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	fake.Await(t, wait, "connection", fake.Connected)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return after its context ended")
	}
	fake.Await(t, wait, "disconnection", func() bool { return !fake.Connected() })
}
