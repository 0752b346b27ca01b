package discordtest_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/adapters/discord/discordtest"
)

func TestUploadsCountedAndLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, discordtest.Options{UploadLimit: 100})
	ch := e.fake.AddChannel("general")
	m, err := e.s.ChannelMessageSendComplex(ch, &discordgo.MessageSend{Content: "a file",
		Files: []*discordgo.File{{Name: "notes.txt", ContentType: "text/plain", Reader: strings.NewReader("some notes")}}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := e.fake.Message(m.ID)
	if len(got.Attachments) != 1 || got.Attachments[0].Filename != "notes.txt" || got.Attachments[0].Size != 10 || got.Content != "a file" {
		t.Errorf("message %+v, want notes.txt of 10 bytes", got)
	}
	// A file over the limit is refused at the edge, with 413 and 40005,
	// and nothing is posted.
	_, err = e.s.ChannelMessageSendComplex(ch, &discordgo.MessageSend{Content: "too big",
		Files: []*discordgo.File{{Name: "big.bin", Reader: bytes.NewReader(make([]byte, 101))}}})
	if c, status := restCode(t, err); c != 40005 || status != 413 {
		t.Errorf("a file over the limit: got code %d (HTTP %d), want 40005 (413)", c, status)
	}
	if st := e.fake.Stats(); st.Uploads != 1 || st.TooLarge != 1 || len(e.fake.BotMessages(ch)) != 1 {
		t.Errorf("got %d uploads, %d refused, %d messages; want 1, 1, 1", st.Uploads, st.TooLarge, len(e.fake.BotMessages(ch)))
	}
}

func TestInteractionRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, discordtest.Options{})
	ch := e.fake.AddChannel("general")
	in := e.interaction(ch)
	// Before any response there is no original message and no followup.
	if _, err := e.s.InteractionResponse(in); err == nil {
		t.Error("the original response before any: got no error")
	} else if c, _ := restCode(t, err); c != 10008 {
		t.Errorf("the original response before any: got code %d, want 10008", c)
	}
	if _, err := e.s.FollowupMessageCreate(in, true, &discordgo.WebhookParams{Content: "x"}); err == nil {
		t.Error("a followup before the response: got no error")
	} else if c, _ := restCode(t, err); c != 10015 {
		t.Errorf("a followup before the response: got code %d, want 10015", c)
	}
	must(t, respond(e, in))
	// An interaction is answered once.
	if c, _ := restCode(t, respond(e, in)); c != 40060 {
		t.Errorf("a second response: got code %d, want 40060", c)
	}
	forged := *in
	forged.Token = "wrong"
	if c, _ := restCode(t, respond(e, &forged)); c != 10062 {
		t.Errorf("a response with a wrong token: got code %d, want 10062", c)
	}
	long := strings.Repeat("x", 2001)
	if _, err := e.s.InteractionResponseEdit(in, &discordgo.WebhookEdit{Content: &long}); err == nil {
		t.Error("an edit to 2,001 characters: got no error")
	} else if c, _ := restCode(t, err); c != 50035 {
		t.Errorf("an edit to 2,001 characters: got code %d, want 50035", c)
	}
	orig, err := e.s.InteractionResponse(in)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := e.fake.Response(in.ID); orig.Content != "an answer" || r.Content != "an answer" || r.Edits != 0 || len(r.Followups) != 0 {
		t.Errorf("original %q, response %+v; want \"an answer\" unedited", orig.Content, r)
	}
}

func TestDirectMessagesAndChannels(t *testing.T) {
	t.Parallel()
	e := newEnv(t, discordtest.Options{})
	g := openGateway(t, e)
	dm := e.fake.AddDM()
	ann := e.fake.AddUser("ann")
	m := e.fake.Post(dm, ann, "hello", "")
	got := awaitEvents(t, e, g, "the DM", func(s seen) bool { return len(s.created) == 1 })
	if c := got.created[0]; c.ID != m.ID || c.GuildID != "" || c.Member != nil {
		t.Errorf("DM %+v, want no guild and no member", c)
	}
	c, ok := e.fake.Channel(dm)
	if !ok || c.Type != discordtest.ChannelDM || c.GuildID != "" {
		t.Errorf("channel %+v (%v), want a DM", c, ok)
	}
	dc, err := e.s.Channel(dm)
	if err != nil || dc.Type != discordgo.ChannelTypeDM {
		t.Errorf("discordgo sees %+v, %v; want a DM", dc, err)
	}
	if _, ok := e.fake.Channel("404"); ok {
		t.Error("an unknown channel exists")
	}
	// Any event, raw JSON included, reaches the client.
	e.fake.Dispatch("MESSAGE_DELETE", map[string]any{"id": m.ID, "channel_id": dm})
	got = awaitEvents(t, e, g, "the dispatched delete", func(s seen) bool { return len(s.deleted) == 1 })
	if got.deleted[0] != m.ID {
		t.Errorf("deleted %v, want %s", got.deleted, m.ID)
	}
}

func TestGatewayRefusesAWrongToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, discordtest.Options{})
	// discordgo asks REST for the gateway with the same token (and is
	// refused there first): speak to the gateway directly.
	d := websocket.Dialer{NetDialContext: loopbackDial, HandshakeTimeout: 10 * time.Second}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(e.fake.URL, "http")+"/gateway", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hello struct{ Op int }
	if err := ws.ReadJSON(&hello); err != nil || hello.Op != 10 {
		t.Fatalf("got op %d (%v), want HELLO", hello.Op, err)
	}
	must(t, ws.WriteJSON(map[string]any{"op": 2, "d": map[string]any{"token": "Bot wrong", "intents": 0}}))
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4004 {
		t.Errorf("IDENTIFY with a wrong token: got %v, want close 4004", err)
	}
	if st := e.fake.Stats(); st.Identifies != 0 || e.fake.Connected() {
		t.Errorf("got %d identifies (connected %v), want none", st.Identifies, e.fake.Connected())
	}
}
