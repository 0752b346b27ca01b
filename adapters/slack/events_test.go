package slack

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/parleyhq/parley/adapters/slack/slacktest"
	"github.com/parleyhq/parley/bots"
)

func TestEventsReachTheEngine(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	eng := &fakeEngine{}
	logs := &logBuffer{}
	a := startAdapter(t, fake, eng, Options{}, logs)
	bot := fake.Config().BotUserID

	mention := fake.UserMessage("C1", "", "U1", "<@"+bot+"> what is &lt;Go&gt;?\n```\nx &amp;&amp; y\n```")
	inThread := fake.UserMessage("C1", mention.TS, "U2", "and <https://go.dev|its site>?")
	dm := fake.UserMessage("D1", "", "U1", "hello in a DM")
	dmThread := fake.UserMessage("D1", dm.TS, "U1", "a DM thread")
	all := append(append(append(mention.Envelopes, inThread.Envelopes...), dm.Envelopes...), dmThread.Envelopes...)
	waitFor(t, fake, 5*time.Second, "every event acknowledged", func() bool {
		for _, e := range all {
			if _, ok := fake.Ack(e); !ok {
				return false
			}
		}
		return true
	})
	waitFor(t, fake, 5*time.Second, "every event handled", settled(a))

	got := byTS(eng.incoming())
	if len(got) != 5 {
		t.Fatalf("the engine got %d messages, want 5 (a mention arrives twice): %+v", len(got), got)
	}
	for i, in := range got[:2] {
		if in.MessageID != mention.TS || in.Thread != mention.TS || !in.Mentioned || in.DM || in.Text != "what is <Go>?\n```\nx && y\n```" {
			t.Errorf("mention event %d: got %+v, want id and thread %s, mentioned, the text unescaped", i, in, mention.TS)
		}
		if in.Workspace != "T0TEAM" || in.Author != "U1" || in.AuthorTeam != "T0TEAM" || in.EventID == "" {
			t.Errorf("mention event %d: workspace %q author %q team %q event %q", i, in.Workspace, in.Author, in.AuthorTeam, in.EventID)
		}
	}
	if got[0].EventID == got[1].EventID {
		t.Errorf("app_mention and message share event id %q", got[0].EventID)
	}
	if in := got[2]; in.Thread != mention.TS || in.MessageID != inThread.TS || in.Mentioned || in.Text != "and [its site](https://go.dev)?" {
		t.Errorf("thread reply: got %+v", in)
	}
	if in := got[3]; !in.DM || in.Thread != "" || in.Text != "hello in a DM" {
		t.Errorf("top-level DM: got %+v, want DM without thread", in)
	}
	if in := got[4]; !in.DM || in.Thread != dm.TS {
		t.Errorf("DM thread: got %+v, want thread %s", in, dm.TS)
	}
	checkNoSecrets(t, logs.String(), fake.Config().BotToken, fake.Config().AppToken)
}

func TestEventsOfBotsDeletionsReactions(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	eng := &fakeEngine{}
	a := startAdapter(t, fake, eng, Options{}, nil)
	bot := fake.Config().BotUserID

	for _, ev := range []map[string]any{
		{"type": "message", "subtype": "bot_message", "bot_id": "B9", "channel": "C1", "text": "beep", "ts": "1.000001", "channel_type": "channel"},
		{"type": "message", "user": bot, "bot_id": "B0BOT", "channel": "C1", "text": "my own answer", "ts": "1.000002", "channel_type": "channel"},
		{"type": "message", "subtype": "message_changed", "channel": "C1", "ts": "1.000003", "message": map[string]any{"text": "edited", "ts": "1.000001"}},
		{"type": "message", "subtype": "channel_join", "user": "U3", "channel": "C1", "ts": "1.000004"},
		{"type": "message", "subtype": "message_deleted", "channel": "C1", "ts": "1.000005", "deleted_ts": "1.000000"},
		{"type": "reaction_added", "user": "U1", "reaction": "octagonal_sign", "item": map[string]any{"type": "message", "channel": "C1", "ts": "1.000002"}},
		{"type": "team_join", "user": map[string]any{"id": "U5"}},
	} {
		fake.SendEvent(ev)
	}
	waitFor(t, fake, 5*time.Second, "every event acknowledged", func() bool { return fake.Unacked() == 0 })
	waitFor(t, fake, 5*time.Second, "every event handled", settled(a))

	got := eng.incoming()
	if len(got) != 2 || !got[0].AuthorIsBot || !got[1].AuthorIsBot {
		t.Errorf("bot messages: got %+v, want two, both from bots", got)
	}
	eng.mu.Lock()
	defer eng.mu.Unlock()
	if want := [3]string{"T0TEAM", "C1", "1.000000"}; len(eng.deleted) != 1 || eng.deleted[0] != want {
		t.Errorf("deleted: got %v, want [%v]", eng.deleted, want)
	}
	if want := [5]string{"T0TEAM", "C1", "1.000002", "U1", "octagonal_sign"}; len(eng.reacted) != 1 || eng.reacted[0] != want {
		t.Errorf("reacted: got %v, want [%v]", eng.reacted, want)
	}
}

func TestMalformedEnvelopesAreSkipped(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	eng := &fakeEngine{}
	startAdapter(t, fake, eng, Options{}, nil)

	bad := []string{
		fake.SendRaw(map[string]any{"type": "events_api", "payload": "not an object"}),
		fake.SendRaw(map[string]any{"type": "events_api", "payload": map[string]any{"type": "event_callback", "event": map[string]any{"type": "no_such_event"}}}),
		fake.SendRaw(map[string]any{"type": "events_api", "payload": map[string]any{"type": "event_callback", "event": map[string]any{"type": "message", "channel": 42}}}),
		fake.SendRaw(map[string]any{"type": "slash_commands", "payload": []int{1}}),
		fake.SendRaw(map[string]any{"type": "interactive", "payload": map[string]any{"type": "block_actions", "actions": "oops"}}),
		fake.SendRaw(map[string]any{"type": "what_is_this"}),
	}
	good := fake.UserMessage("D1", "", "U1", "still here")
	waitFor(t, fake, 5*time.Second, "the good message handled", func() bool { return len(eng.incoming()) == 1 })
	waitFor(t, fake, 5*time.Second, "the malformed envelopes acknowledged", func() bool {
		for _, e := range append(bad, good.Envelopes...) {
			if _, ok := fake.Ack(e); !ok {
				return false
			}
		}
		return true
	})
}

func TestSocketReconnectsWhenAsked(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	eng := &fakeEngine{}
	startAdapter(t, fake, eng, Options{}, nil)
	for i := range 2 {
		conns := fake.Connections()
		fake.Disconnect()
		waitFor(t, fake, 10*time.Second, "a reconnect", func() bool { return fake.Connections() > conns && fake.Connected() })
		fake.UserMessage("D1", "", "U1", fmt.Sprintf("after reconnect %d", i))
		waitFor(t, fake, 5*time.Second, "the message", func() bool { return len(eng.incoming()) == i+1 })
	}
}

func TestSlashCommands(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	eng := &fakeEngine{reply: bots.CommandReply{Text: "Model is `gpt-x`. **Choose**:", Ephemeral: true, ChooseModel: true}, models: []string{"gpt-x", "gpt-y", "claude"}}
	a := startAdapter(t, fake, eng, Options{CommandPrefix: "ai-"}, nil)

	env, _ := fake.SlashCommand("C1", "U1", "/ai-model", "")
	var ack struct {
		ResponseType string `json:"response_type"`
		Text         string `json:"text"`
		Blocks       []struct {
			Type     string `json:"type"`
			Elements []struct {
				Type     string `json:"type"`
				ActionID string `json:"action_id"`
			} `json:"elements"`
		} `json:"blocks"`
	}
	waitAck(t, fake, env, &ack)
	if ack.ResponseType != "ephemeral" || ack.Text != "Model is `gpt-x`. *Choose*:" {
		t.Errorf("ack: %+v", ack)
	}
	if len(ack.Blocks) != 2 || len(ack.Blocks[1].Elements) != 1 || ack.Blocks[1].Elements[0].Type != "external_select" || ack.Blocks[1].Elements[0].ActionID != modelActionID {
		t.Errorf("ack blocks: %+v, want a section and an external select", ack.Blocks)
	}
	eng.mu.Lock()
	cmd := eng.commands[0]
	eng.mu.Unlock()
	if want := (bots.Command{Workspace: "T0TEAM", Channel: "C1", User: "U1", Name: "model"}); !reflect.DeepEqual(cmd, want) {
		t.Errorf("command: got %+v, want %+v", cmd, want)
	}

	// The menu loads its options.
	env = fake.Interaction(map[string]any{
		"type": "block_suggestion", "action_id": modelActionID, "block_id": modelBlockID, "value": "gpt",
		"team": map[string]any{"id": "T0TEAM"}, "user": map[string]any{"id": "U1"},
	})
	var opts struct {
		Options []struct {
			Value string `json:"value"`
		} `json:"options"`
	}
	waitAck(t, fake, env, &opts)
	if len(opts.Options) != 2 || opts.Options[0].Value != "gpt-x" || opts.Options[1].Value != "gpt-y" {
		t.Errorf("options: %+v", opts)
	}

	// Choosing one sets it, answered through response_url.
	eng.mu.Lock()
	eng.reply = bots.CommandReply{Text: "Now `gpt-y`.", Ephemeral: true}
	eng.mu.Unlock()
	responseURL := fake.ResponseURL()
	env = fake.Interaction(map[string]any{
		"type": "block_actions", "response_url": responseURL,
		"team": map[string]any{"id": "T0TEAM"}, "user": map[string]any{"id": "U1"},
		"channel":   map[string]any{"id": "C1"},
		"container": map[string]any{"type": "message", "channel_id": "C1", "is_ephemeral": true},
		"actions":   []any{map[string]any{"type": "external_select", "action_id": modelActionID, "block_id": modelBlockID, "selected_option": map[string]any{"value": "gpt-y", "text": map[string]any{"type": "plain_text", "text": "gpt-y"}}}},
	})
	waitAck(t, fake, env, nil)
	waitFor(t, fake, 5*time.Second, "the response_url answer", func() bool { return len(fake.Responses()) == 1 })
	var resp struct {
		ResponseType    string `json:"response_type"`
		ReplaceOriginal bool   `json:"replace_original"`
		Text            string `json:"text"`
	}
	if err := json.Unmarshal(fake.Responses()[0], &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Text != "Now `gpt-y`." || resp.ResponseType != "ephemeral" || !resp.ReplaceOriginal {
		t.Errorf("choice answer: %+v", resp)
	}
	eng.mu.Lock()
	cmd = eng.commands[len(eng.commands)-1]
	eng.mu.Unlock()
	if cmd.Name != "model" || cmd.Args != "gpt-y" || cmd.Channel != "C1" {
		t.Errorf("choice command: %+v", cmd)
	}

	// A command of another app, or a typo.
	env, _ = fake.SlashCommand("C1", "U1", "/ai-nope", "")
	waitAck(t, fake, env, &ack)
	if ack.ResponseType != "ephemeral" || ack.Text == "" {
		t.Errorf("unknown command ack: %+v", ack)
	}
	_ = a
}

func TestSlowCommandAnswersThroughResponseURL(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	hold := make(chan struct{})
	eng := &fakeEngine{reply: bots.CommandReply{Text: "Forgotten.", Ephemeral: true}, hold: hold}
	a := newTestAdapter(t, fake, eng, Options{}, nil)
	a.ackWait = 50 * time.Millisecond
	runAdapter(t, a)
	waitFor(t, fake, 10*time.Second, "the socket", fake.Connected)

	env, _ := fake.SlashCommand("C1", "U1", "/reset", "")
	raw := waitAck(t, fake, env, nil)
	if string(raw) != "null" {
		t.Errorf("a slow command was acknowledged with %s, want an empty ack", raw)
	}
	close(hold)
	waitFor(t, fake, 5*time.Second, "the late answer", func() bool { return len(fake.Responses()) == 1 })
	var resp answer
	if err := json.Unmarshal(fake.Responses()[0], &resp); err != nil || resp.Text != "Forgotten." || resp.ResponseType != "ephemeral" {
		t.Errorf("late answer %s (%v)", fake.Responses()[0], err)
	}
}

// waitAck waits for envelope id's acknowledgement and decodes its payload
// into v (when not nil); it returns the raw payload.
func waitAck(t *testing.T, fake *slacktest.Server, id string, v any) json.RawMessage {
	t.Helper()
	var raw json.RawMessage
	waitFor(t, fake, 5*time.Second, "ack of "+id, func() bool {
		p, ok := fake.Ack(id)
		raw = p
		return ok
	})
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("ack payload %s: %v", raw, err)
		}
	}
	return raw
}
