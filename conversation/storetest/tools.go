package storetest

import (
	"reflect"
	"testing"

	"github.com/parleyhq/parley/conversation"
)

// An answer's tool rounds are stored with it, by Append and by
// UpdateMessage, and come back whole (call ids, arguments, results, the
// error flag) from History and MessageByPlatformID; clearing them clears
// them. Arguments and results are kept byte for byte, odd text included.
func testToolRounds(t *testing.T, s conversation.Store) {
	c := mustConversation(t, s, key("C1", "1.1"))
	rounds := []conversation.ToolRound{
		{Text: "Let me look.", Calls: []conversation.ToolCall{
			{ID: "call_a", Name: "weather__forecast", Arguments: `{"city":"Paris"}`, Result: "sunny, 21 °C"},
			{ID: "call_b", Name: "clock__now", Arguments: `not json {`, Result: "error: the arguments are not JSON", Error: true},
		}},
		{Calls: []conversation.ToolCall{{ID: "call_c", Name: "x__y", Arguments: "{}", Result: "\x00 <script> \"quoted\" 🛑"}}},
	}
	first := mustAppend(t, s, c.ID, conversation.Message{
		Role: conversation.RoleAssistant, Text: "Let me look.\n\nSunny.", Tools: rounds[:1],
	})
	if !reflect.DeepEqual(first.Tools, rounds[:1]) {
		t.Errorf("Append: got tools %+v, want %+v", first.Tools, rounds[:1])
	}
	h := mustHistory(t, s, c.ID, conversation.HistoryQuery{})
	if len(h) != 1 || !reflect.DeepEqual(h[0].Tools, rounds[:1]) {
		t.Fatalf("History after Append: got %+v, want one message with tools %+v", h, rounds[:1])
	}

	first.Tools = rounds
	first.PlatformID = "1700000000.000900"
	if err := s.UpdateMessage(ctx(t), first); err != nil {
		t.Fatalf("UpdateMessage: %v", err)
	}
	h = mustHistory(t, s, c.ID, conversation.HistoryQuery{})
	if !reflect.DeepEqual(h[0].Tools, rounds) {
		t.Errorf("History after UpdateMessage: got tools %+v, want %+v", h[0].Tools, rounds)
	}
	_, found, err := s.MessageByPlatformID(ctx(t), "slack", "T1", "1700000000.000900")
	if err != nil || !reflect.DeepEqual(found.Tools, rounds) {
		t.Errorf("MessageByPlatformID: got tools %+v, err %v; want %+v", found.Tools, err, rounds)
	}

	plain := mustAppend(t, s, c.ID, userMessage("no tools here", ""))
	if plain.Tools != nil {
		t.Errorf("a message without tools: got %+v, want nil", plain.Tools)
	}
	first.Tools = nil
	if err := s.UpdateMessage(ctx(t), first); err != nil {
		t.Fatalf("UpdateMessage: %v", err)
	}
	for _, m := range mustHistory(t, s, c.ID, conversation.HistoryQuery{}) {
		if m.Tools != nil {
			t.Errorf("message %d after clearing: got tools %+v, want nil", m.ID, m.Tools)
		}
	}
}
