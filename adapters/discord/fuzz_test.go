package discord

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
)

type refuse struct{}

func (refuse) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no network in this test")
}

// FuzzMessage feeds arbitrary message payloads through the mapping and the
// dispatch to the engine: nothing may panic.
func FuzzMessage(f *testing.F) {
	for _, s := range []string{
		`{"id":"1","channel_id":"2","guild_id":"3","author":{"id":"4"},"content":"<@9> hi","mentions":[{"id":"9"}]}`,
		`{"id":"1","channel_id":"2","author":{"id":"4","bot":true},"type":19,"message_reference":{"message_id":"0"},"referenced_message":{"author":null}}`,
		`{"id":"1","channel_id":"2","author":{"id":"4"},"attachments":[null,{"id":"5","size":-1}],"member":{"nick":"n"}}`,
		`{"id":"","author":null}`,
		`null`,
	} {
		f.Add([]byte(s))
	}
	rec := newRecorder()
	a, err := newAdapter(Options{Token: "t", HTTPClient: &http.Client{Transport: refuse{}}}, rec, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	a.botID = "9"
	f.Fuzz(func(t *testing.T, data []byte) {
		var m *discordgo.Message
		if json.Unmarshal(data, &m) != nil {
			return
		}
		a.onMessage(context.Background(), m)
	})
}

func FuzzChunk(f *testing.F) {
	f.Add("line\nline\n", 5)
	f.Add(strings.Repeat("é", 30), 7)
	f.Add("\n\n\nx", 2)
	f.Fuzz(func(t *testing.T, s string, n int) {
		if !utf8.ValidString(s) || n < 2 || n > 4000 {
			return
		}
		parts := chunk(s, n)
		for _, p := range parts {
			if utf8.RuneCountInString(p) > n {
				t.Fatalf("part of %d characters, max %d", utf8.RuneCountInString(p), n)
			}
		}
		if got, want := strings.ReplaceAll(strings.Join(parts, ""), "\n", ""), strings.ReplaceAll(s, "\n", ""); got != want {
			t.Fatalf("chunks lost text: %q vs %q", got, want)
		}
	})
}

func FuzzThreadName(f *testing.F) {
	f.Add("what is Go?")
	f.Add(strings.Repeat("long ", 50))
	f.Add(strings.Repeat("x", 300))
	f.Add("   \n\t ")
	f.Fuzz(func(t *testing.T, prompt string) {
		name := threadName(prompt)
		if n := utf8.RuneCountInString(name); n < 1 || n > 100 || strings.ContainsAny(name, "\n\r") {
			t.Fatalf("name %q of %d characters", name, n)
		}
	})
}
