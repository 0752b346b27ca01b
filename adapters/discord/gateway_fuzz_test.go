package discord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/parleyhq/parley/adapters/discord/discordtest"
	"github.com/parleyhq/parley/bots"
)

// fuzzEvents are the gateway events the adapter handles, besides READY
// and RESUMED (which a fuzzed payload would use to rename the bot).
var fuzzEvents = map[string]bool{
	"MESSAGE_CREATE": true, "MESSAGE_DELETE": true, "MESSAGE_DELETE_BULK": true,
	"MESSAGE_REACTION_ADD": true, "INTERACTION_CREATE": true, "GUILD_CREATE": true,
	"THREAD_CREATE": true, "CHANNEL_CREATE": true, "THREAD_LIST_SYNC": true,
	"THREAD_DELETE": true, "CHANNEL_DELETE": true,
}

// FuzzGatewayUnlimited sends arbitrary gateway payloads, {"t": EVENT, "d": ...}, to
// the real discordgo client over the fake's gateway, then a DM: once the
// DM reaches the engine, the payload before it was decoded and handled
// (events are handled in order), and nothing may have panicked or stopped
// the adapter. The fake's REST limits are lifted (Unlimited): fuzzed
// messages name the same few channels, whose lookups would otherwise wait
// seconds for Discord's per-channel budgets and pass for hangs. The seed
// corpus is in testdata/fuzz/FuzzGatewayUnlimited.
func FuzzGatewayUnlimited(f *testing.F) {
	fake := discordtest.New(f, discordtest.Options{Limits: []discordtest.Limit{}, GlobalLimit: 1 << 20})
	rec := newRecorder()
	a, err := newAdapter(Options{Token: fake.Token(), APIURL: fake.APIURL(), HTTPClient: &http.Client{Timeout: 10 * time.Second}}, rec, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	f.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			f.Errorf("Run: %v", err)
		}
	})
	fake.Await(f, wait, "the bot to connect", fake.Connected)
	dm, user := fake.AddDM(), fake.AddUser("fuzzer")
	n := 0
	f.Fuzz(func(t *testing.T, payload []byte) {
		var frame struct {
			T string          `json:"t"`
			D json.RawMessage `json:"d"`
		}
		if json.Unmarshal(payload, &frame) != nil || !fuzzEvents[frame.T] || !json.Valid(frame.D) || crashesDiscordgo(frame.T, frame.D) {
			return
		}
		fake.Dispatch(frame.T, frame.D)
		n++
		marker := fmt.Sprintf("marker %d", n)
		fake.Post(dm, user, marker, "")
		// Within Go's 10 s, after which the fuzzer takes an input for a
		// hang and cannot say why.
		deadline := time.NewTimer(5 * time.Second)
		defer deadline.Stop()
		for {
			rec.mu.Lock()
			seen, ch := slices.ContainsFunc(rec.in, func(in bots.Incoming) bool { return in.Text == marker }), rec.changed
			rec.mu.Unlock()
			if seen {
				break
			}
			select {
			case <-ch:
			case <-deadline.C:
				t.Fatalf("the adapter stopped handling events after %s", payload)
			}
		}
		rec.mu.Lock()
		rec.in = rec.in[:0]
		rec.mu.Unlock()
	})
}

// crashesDiscordgo reports whether discordgo v0.29.0 itself panics on the
// payload, in its own goroutine, before any handler of Parley's runs:
// setGuildIds dereferences the guild of a GUILD_CREATE that names none of
// a guild's fields ({}, null, or anything that does not decode as a
// guild), and each null entry of its channels,
// members and voice states. Discord's gateway sends neither; the fuzz
// leaves them out, as no code of Parley's can catch that panic.
func crashesDiscordgo(event string, d json.RawMessage) bool {
	if event != "GUILD_CREATE" {
		return false
	}
	// discordgo logs a decoding error, then goes on with what it decoded.
	var g discordgo.GuildCreate
	_ = json.Unmarshal(d, &g)
	return g.Guild == nil || slices.Contains(g.Channels, nil) || slices.Contains(g.Members, nil) || slices.Contains(g.VoiceStates, nil)
}
