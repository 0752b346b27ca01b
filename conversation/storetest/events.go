package storetest

import (
	"testing"
	"time"

	"github.com/parleyhq/parley/conversation"
)

func testMarkEvent(t *testing.T, s conversation.Store) {
	const ttl = 10 * time.Minute
	clk := clockOf(t)
	mark := func(eventID string) bool {
		t.Helper()
		first, err := s.MarkEvent(ctx(t), "slack", "T1", eventID, ttl)
		if err != nil {
			t.Fatalf("MarkEvent(%q): %v", eventID, err)
		}
		return first
	}

	if !mark("Ev1") {
		t.Error("MarkEvent of a new event: got first false, want true")
	}
	if mark("Ev1") {
		t.Error("MarkEvent of the same event again: got first true, want false")
	}
	if !mark("Ev2") {
		t.Error("MarkEvent of another event: got first false, want true")
	}
	clk.Advance(ttl - time.Second)
	if mark("Ev1") {
		t.Error("MarkEvent of the same event within ttl: got first true, want false")
	}
	clk.Advance(2 * time.Second)
	if !mark("Ev1") {
		t.Error("MarkEvent of the same event after ttl: got first false, want true" + clockHint)
	}
	if mark("Ev1") {
		t.Error("MarkEvent right after it was marked again: got first true, want false")
	}
	clk.Advance(ttl)
	if !mark("Ev2") {
		t.Error("MarkEvent of an expired event: got first false, want true" + clockHint)
	}
}
