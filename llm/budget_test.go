package llm

import (
	"slices"
	"strings"
	"testing"
)

func TestEstimateTokens(t *testing.T) {
	tests := []struct {
		name string
		msgs []Message
		want int
	}{
		{"nothing", nil, 0},
		{"empty message", []Message{{Role: RoleUser}}, 3 + 4},
		{"ascii", []Message{{Role: RoleUser, Content: "Hello, world"}}, 3 + 4 + 3}, // 12 bytes
		{"cjk", []Message{{Role: RoleUser, Content: "你好世界"}}, 3 + 4 + 4},           // 4 ideographs
		{"accents", []Message{{Role: RoleUser, Content: "ééé"}}, 3 + 4 + 2},        // 3 runes, 1 per 2
		{"image", []Message{{Role: RoleUser, Content: "", Images: []Image{{}, {}}}}, 3 + 4 + 2*765},
		{"two messages", []Message{{Role: RoleSystem, Content: "abcd"}, {Role: RoleUser, Content: "abcde"}}, 3 + 4 + 1 + 4 + 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EstimateTokens(tt.msgs); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

// conv builds a conversation: a system message, then user/assistant turns
// of 400 ASCII bytes (100 tokens + 4 overhead) each.
func conv(turns int) []Message {
	msgs := []Message{{Role: RoleSystem, Content: "You are Parley."}}
	for i := range turns {
		msgs = append(msgs,
			Message{Role: RoleUser, Content: strings.Repeat("u", 399) + string(rune('a'+i))},
			Message{Role: RoleAssistant, Content: strings.Repeat("a", 399) + string(rune('a'+i))},
		)
	}
	return append(msgs, Message{Role: RoleUser, Content: "and now?"})
}

func TestFit(t *testing.T) {
	full := conv(4) // system, 4 turns, last question
	tests := []struct {
		name        string
		msgs        []Message
		budget      int
		wantDropped int
	}{
		{"fits", full, 10000, 0},
		{"no budget", full, 0, 0},
		{"drop one turn", full, EstimateTokens(full) - 1, 2},
		{"drop three turns", full, EstimateTokens(full) - 5*104, 6},
		{"only system and last left", full, 10, 8},
		{"no system message", full[1:], EstimateTokens(full[1:]) - 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := slices.Clone(tt.msgs)
			kept, dropped := Fit(tt.msgs, tt.budget)
			if dropped != tt.wantDropped {
				t.Errorf("dropped %d, want %d", dropped, tt.wantDropped)
			}
			if len(kept)+dropped != len(tt.msgs) {
				t.Errorf("kept %d + dropped %d != %d", len(kept), dropped, len(tt.msgs))
			}
			if kept[len(kept)-1].Content != "and now?" {
				t.Error("the newest message was dropped")
			}
			if tt.msgs[0].Role == RoleSystem && kept[0].Content != tt.msgs[0].Content {
				t.Error("the system message was dropped")
			}
			if tt.budget > 0 && dropped > 0 && len(kept) > 2 && EstimateTokens(kept) > tt.budget {
				t.Errorf("kept %d tokens, want at most %d", EstimateTokens(kept), tt.budget)
			}
			// The newest turns survive: what is kept is the tail.
			tail := tt.msgs[len(tt.msgs)-len(kept)+1:]
			if !slices.EqualFunc(kept[1:], tail, sameMessage) {
				t.Error("kept messages are not the newest ones")
			}
			if !slices.EqualFunc(tt.msgs, orig, sameMessage) {
				t.Error("Fit modified its input")
			}
		})
	}
}

func TestFitStartsWithUserTurn(t *testing.T) {
	// Dropping the first user message must take its answer with it.
	msgs := conv(3)
	kept, dropped := Fit(msgs, EstimateTokens(msgs)-50)
	if dropped != 2 || kept[1].Role != RoleUser {
		t.Errorf("dropped %d, history starts with %s; want 2 dropped and a user turn first", dropped, kept[1].Role)
	}
}

func TestShrinkConverges(t *testing.T) {
	msgs := conv(20)
	for i := 0; ; i++ {
		kept, dropped := Shrink(msgs)
		if dropped == 0 {
			if len(msgs) != 2 {
				t.Errorf("Shrink stopped with %d messages, want system + last", len(msgs))
			}
			return
		}
		if EstimateTokens(kept) >= EstimateTokens(msgs) {
			t.Fatal("Shrink did not shrink")
		}
		if i > 10 {
			t.Fatal("Shrink did not converge")
		}
		msgs = kept
	}
}

func sameMessage(a, b Message) bool {
	return a.Role == b.Role && a.Content == b.Content && len(a.Images) == len(b.Images)
}
