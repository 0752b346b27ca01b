package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/conversation"
)

func testAppendReturnsStored(t *testing.T, s conversation.Store) {
	now := Now(t)()
	c := mustConversation(t, s, key("C1", "1.1"))
	question := mustAppend(t, s, c.ID, userMessage("What is in the report?", "1700000000.000200"))
	in := conversation.Message{
		ReplyTo:          question.ID,
		Role:             conversation.RoleAssistant,
		Author:           "B1",
		PlatformID:       "1700000000.000300",
		Text:             "Hello *world* — ünïcode ✓\nsecond line",
		Model:            "gpt-4o-mini",
		PromptTokens:     120,
		CompletionTokens: 34,
		Status:           conversation.StatusComplete,
		Attachments: []conversation.Attachment{
			{Name: "report.pdf", MIME: "application/pdf", Size: 52311, URL: "https://files.example/report.pdf", PlatformID: "F1"},
			{Name: "chart.png", MIME: "image/png"},
		},
	}
	stored, created, err := s.Append(ctx(t), c.ID, in)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if !created {
		t.Error("Append of a new message: created false, want true")
	}
	if stored.ID == 0 {
		t.Fatal("Append returned ID 0")
	}
	want := in
	want.ID = stored.ID
	want.ConversationID = c.ID
	want.CreatedAt = now
	want.UpdatedAt = now
	if d := diffMessage(stored, want); d != "" {
		t.Errorf("Append returned a message unlike the one given:%s", d)
	}
	h := mustHistory(t, s, c.ID, conversation.HistoryQuery{})
	if len(h) != 2 {
		t.Fatalf("History: got %d messages, want 2", len(h))
	}
	if d := diffMessage(h[1], want); d != "" {
		t.Errorf("History returned a message unlike the one appended:%s", d)
	}

	// A message without attachments comes back without attachments.
	plain := mustAppend(t, s, c.ID, userMessage("no files", ""))
	if len(plain.Attachments) != 0 {
		t.Errorf("Attachments of a message without any: got %+v, want none", plain.Attachments)
	}
}

func testAppendIdempotent(t *testing.T, s conversation.Store) {
	c := mustConversation(t, s, key("C1", "1.1"))
	first, created, err := s.Append(ctx(t), c.ID, userMessage("first delivery", "1700000000.000400"))
	if err != nil || !created {
		t.Fatalf("Append: created %v, err %v; want true, nil", created, err)
	}
	clockOf(t).Advance(time.Second)
	again, created, err := s.Append(ctx(t), c.ID, userMessage("redelivered", "1700000000.000400"))
	if err != nil {
		t.Fatalf("Append of the same PlatformID: %v", err)
	}
	if created {
		t.Error("Append of the same PlatformID: created true, want false")
	}
	if d := diffMessage(again, first); d != "" {
		t.Errorf("Append of the same PlatformID returned something other than the stored message:%s", d)
	}
	if got := texts(mustHistory(t, s, c.ID, conversation.HistoryQuery{})); !slices.Equal(got, []string{"first delivery"}) {
		t.Errorf("History: got %q, want one message %q", got, "first delivery")
	}

	// Idempotency is per conversation: another conversation stores its own.
	other := mustConversation(t, s, key("C1", "2.2"))
	_, created, err = s.Append(ctx(t), other.ID, userMessage("elsewhere", "1700000000.000400"))
	if err != nil || !created {
		t.Errorf("Append of the same PlatformID in another conversation: created %v, err %v; want true, nil", created, err)
	}
}

func testAppendEmptyPlatformID(t *testing.T, s conversation.Store) {
	c := mustConversation(t, s, key("C1", "1.1"))
	var ids []int64
	for range 3 {
		m, created, err := s.Append(ctx(t), c.ID, userMessage("same text", ""))
		if err != nil || !created {
			t.Fatalf("Append without PlatformID: created %v, err %v; want true, nil", created, err)
		}
		ids = append(ids, m.ID)
	}
	if ids[0] == ids[1] || ids[1] == ids[2] || ids[0] == ids[2] {
		t.Errorf("messages without PlatformID share IDs: %v", ids)
	}
	if h := mustHistory(t, s, c.ID, conversation.HistoryQuery{}); len(h) != 3 {
		t.Errorf("History: got %d messages, want 3", len(h))
	}
}

func testAppendUnknownConversation(t *testing.T, s conversation.Store) {
	c := mustConversation(t, s, key("C1", ""))
	_, _, err := s.Append(ctx(t), c.ID+1000, userMessage("lost", "1.5"))
	if !errors.Is(err, conversation.ErrNotFound) {
		t.Errorf("Append to an unknown conversation: got %v, want ErrNotFound", err)
	}
}

func testUpdateMessage(t *testing.T, s conversation.Store) {
	created := Now(t)()
	c := mustConversation(t, s, key("C1", "1.1"))
	m := mustAppend(t, s, c.ID, conversation.Message{
		Role:   conversation.RoleAssistant,
		Author: "B1",
		Status: conversation.StatusStreaming,
		Attachments: []conversation.Attachment{
			{Name: "draft.txt"},
		},
	})
	clockOf(t).Advance(3 * time.Second)
	later := Now(t)()

	m.PlatformID = "1700000000.000500"
	m.Text = "The answer is 42."
	m.Model = "claude-sonnet"
	m.PromptTokens = 900
	m.CompletionTokens = 12
	m.Status = conversation.StatusComplete
	m.Attachments = []conversation.Attachment{{Name: "answer.md", MIME: "text/markdown", Size: 17}}
	// Fields UpdateMessage does not rewrite.
	changed := m
	changed.Role = conversation.RoleUser
	changed.Author = "U9"
	if err := s.UpdateMessage(ctx(t), changed); err != nil {
		t.Fatalf("UpdateMessage: %v", err)
	}
	want := m
	want.CreatedAt = created
	want.UpdatedAt = later
	h := mustHistory(t, s, c.ID, conversation.HistoryQuery{})
	if len(h) != 1 {
		t.Fatalf("History: got %d messages, want 1", len(h))
	}
	if d := diffMessage(h[0], want); d != "" {
		t.Errorf("message after UpdateMessage:%s", d)
	}

	// The new PlatformID is what idempotency and lookups use from now on.
	again, isNew, err := s.Append(ctx(t), c.ID, userMessage("echo of the bot's post", "1700000000.000500"))
	if err != nil || isNew {
		t.Errorf("Append with the PlatformID set by UpdateMessage: created %v, err %v; want false, nil", isNew, err)
	} else if again.ID != m.ID {
		t.Errorf("Append with the PlatformID set by UpdateMessage: got message %d, want %d", again.ID, m.ID)
	}
	_, found, err := s.MessageByPlatformID(ctx(t), "slack", "T1", "1700000000.000500")
	if err != nil || found.ID != m.ID {
		t.Errorf("MessageByPlatformID after UpdateMessage: got message %d, err %v; want %d", found.ID, err, m.ID)
	}

	// Clearing attachments clears them.
	m.Attachments = nil
	if err := s.UpdateMessage(ctx(t), m); err != nil {
		t.Fatalf("UpdateMessage: %v", err)
	}
	if h := mustHistory(t, s, c.ID, conversation.HistoryQuery{}); len(h[0].Attachments) != 0 {
		t.Errorf("Attachments after clearing: got %+v, want none", h[0].Attachments)
	}
}

func testUpdateMessageNotFound(t *testing.T, s conversation.Store) {
	c := mustConversation(t, s, key("C1", "1.1"))
	m := mustAppend(t, s, c.ID, userMessage("hi", ""))
	m.ID += 1000
	m.Text = "ghost"
	if err := s.UpdateMessage(ctx(t), m); !errors.Is(err, conversation.ErrNotFound) {
		t.Errorf("UpdateMessage of an unknown ID: got %v, want ErrNotFound", err)
	}
	if got := texts(mustHistory(t, s, c.ID, conversation.HistoryQuery{})); !slices.Equal(got, []string{"hi"}) {
		t.Errorf("History after a failed UpdateMessage: got %q, want [hi]", got)
	}
}

func testHistoryBounds(t *testing.T, s conversation.Store) {
	c := mustConversation(t, s, key("C1", "1.1"))
	var all []string
	for i := range 10 {
		text := fmt.Sprintf("m%d", i)
		mustAppend(t, s, c.ID, userMessage(text, ""))
		all = append(all, text)
	}
	// Another conversation's messages never show.
	other := mustConversation(t, s, key("C1", "2.2"))
	mustAppend(t, s, other.ID, userMessage("other", ""))

	tests := []struct {
		name string
		q    conversation.HistoryQuery
		want []string
	}{
		{"no bound", conversation.HistoryQuery{}, all},
		{"limit 3", conversation.HistoryQuery{Limit: 3}, all[7:]},
		{"limit 1", conversation.HistoryQuery{Limit: 1}, all[9:]},
		{"limit above count", conversation.HistoryQuery{Limit: 50}, all},
		{"max chars 6", conversation.HistoryQuery{MaxChars: 6}, all[7:]},
		{"max chars 7", conversation.HistoryQuery{MaxChars: 7}, all[7:]},
		{"limit tighter than max chars", conversation.HistoryQuery{Limit: 2, MaxChars: 8}, all[8:]},
		{"max chars tighter than limit", conversation.HistoryQuery{Limit: 5, MaxChars: 4}, all[8:]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := texts(mustHistory(t, s, c.ID, tc.q))
			if !slices.Equal(got, tc.want) {
				t.Errorf("History(%+v): got %q, want %q", tc.q, got, tc.want)
			}
		})
	}
}

func testHistoryMaxChars(t *testing.T, s conversation.Store) {
	c := mustConversation(t, s, key("C1", "1.1"))
	// Lengths in characters: 10, 3, 5 ("héllo" is five characters, six
	// bytes), 4 ("日本語!" is four characters, ten bytes).
	for _, text := range []string{strings.Repeat("x", 10), "abc", "héllo", "日本語!"} {
		mustAppend(t, s, c.ID, userMessage(text, ""))
	}
	tests := []struct {
		maxChars int
		want     []string
	}{
		{3, nil},
		{4, []string{"日本語!"}},
		{8, []string{"日本語!"}},
		{9, []string{"héllo", "日本語!"}},
		{12, []string{"abc", "héllo", "日本語!"}},
		{21, []string{"abc", "héllo", "日本語!"}},
		{22, []string{strings.Repeat("x", 10), "abc", "héllo", "日本語!"}},
	}
	for _, tc := range tests {
		got := texts(mustHistory(t, s, c.ID, conversation.HistoryQuery{MaxChars: tc.maxChars}))
		if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("History(MaxChars %d): got %q, want %q (lengths count characters, and the newest messages that fit are kept)", tc.maxChars, got, tc.want)
		}
	}

	// The budget keeps the newest messages that fit together: an older short
	// message behind one that does not fit is not reached for.
	c2 := mustConversation(t, s, key("C1", "2.2"))
	for _, text := range []string{"ok", strings.Repeat("y", 50), "end"} {
		mustAppend(t, s, c2.ID, userMessage(text, ""))
	}
	got := texts(mustHistory(t, s, c2.ID, conversation.HistoryQuery{MaxChars: 10}))
	if !slices.Equal(got, []string{"end"}) {
		t.Errorf("History(MaxChars 10) past a long message: got %q, want [end]", got)
	}
}

func testHistoryOrder(t *testing.T, s conversation.Store) {
	// A message appended late with an earlier CreatedAt (thread history
	// fetched after the mention) takes its place by time.
	c := mustConversation(t, s, key("C1", "1.1"))
	now := Now(t)()
	mustAppend(t, s, c.ID, userMessage("mention", "1.3"))
	older := userMessage("earlier reply", "1.2")
	older.CreatedAt = now.Add(-time.Hour)
	stored := mustAppend(t, s, c.ID, older)
	if !stored.CreatedAt.Equal(older.CreatedAt) {
		t.Errorf("Append with CreatedAt: stored %v, want %v", stored.CreatedAt, older.CreatedAt)
	}
	clockOf(t).Advance(time.Second)
	mustAppend(t, s, c.ID, userMessage("answer", ""))
	want := []string{"earlier reply", "mention", "answer"}
	if got := texts(mustHistory(t, s, c.ID, conversation.HistoryQuery{})); !slices.Equal(got, want) {
		t.Errorf("History: got %q, want %q (oldest first by CreatedAt)", got, want)
	}
	if got := texts(mustHistory(t, s, c.ID, conversation.HistoryQuery{Limit: 2})); !slices.Equal(got, want[1:]) {
		t.Errorf("History(Limit 2): got %q, want %q", got, want[1:])
	}
}

func testHistoryAnswersFollowQuestions(t *testing.T, s conversation.Store) {
	// Two questions arrive before the first answer is written: History
	// still reads question, answer, question, answer.
	c := mustConversation(t, s, key("C1", "1.1"))
	answer := func(text string, q conversation.Message) conversation.Message {
		return conversation.Message{Role: conversation.RoleAssistant, Author: "B1", Text: text, ReplyTo: q.ID, Status: conversation.StatusComplete}
	}
	q1 := mustAppend(t, s, c.ID, userMessage("q1", "1.1"))
	clockOf(t).Advance(time.Second)
	q2 := mustAppend(t, s, c.ID, userMessage("q2", "1.2"))
	clockOf(t).Advance(time.Second)
	a1 := mustAppend(t, s, c.ID, answer("a1", q1))
	if a1.ReplyTo != q1.ID {
		t.Errorf("Append: ReplyTo got %d, want %d", a1.ReplyTo, q1.ID)
	}
	clockOf(t).Advance(time.Second)
	q3 := mustAppend(t, s, c.ID, userMessage("q3", "1.3"))
	mustAppend(t, s, c.ID, answer("a2", q2))
	mustAppend(t, s, c.ID, answer("a1 again", q1)) // a retry follows the first answer
	mustAppend(t, s, c.ID, answer("a3", q3))
	mustAppend(t, s, c.ID, answer("an answer to nothing here", conversation.Message{ID: q3.ID + 1000}))

	want := []string{"q1", "a1", "a1 again", "q2", "a2", "q3", "a3", "an answer to nothing here"}
	h := mustHistory(t, s, c.ID, conversation.HistoryQuery{})
	if got := texts(h); !slices.Equal(got, want) {
		t.Errorf("History: got %q, want %q (each answer right after its question)", got, want)
	}
	if got := texts(mustHistory(t, s, c.ID, conversation.HistoryQuery{Limit: 4})); !slices.Equal(got, want[4:]) {
		t.Errorf("History(Limit 4): got %q, want %q", got, want[4:])
	}
	if len(h) > 1 && h[1].ReplyTo != q1.ID {
		t.Errorf("History: ReplyTo of a1 got %d, want %d", h[1].ReplyTo, q1.ID)
	}
}

func testHistoryEmptyAndUnknown(t *testing.T, s conversation.Store) {
	c := mustConversation(t, s, key("C1", "1.1"))
	if h := mustHistory(t, s, c.ID, conversation.HistoryQuery{Limit: 10}); len(h) != 0 {
		t.Errorf("History of a new conversation: got %d messages, want 0", len(h))
	}
	if _, err := s.History(ctx(t), c.ID+1000, conversation.HistoryQuery{}); !errors.Is(err, conversation.ErrNotFound) {
		t.Errorf("History of an unknown conversation: got %v, want ErrNotFound", err)
	}
}

func testForget(t *testing.T, s conversation.Store) {
	k := key("C1", "1.1")
	c := mustConversation(t, s, k)
	keep := mustConversation(t, s, key("C1", "2.2"))
	mustAppend(t, s, c.ID, userMessage("one", "1.1"))
	mustAppend(t, s, c.ID, userMessage("two", ""))
	mustAppend(t, s, keep.ID, userMessage("kept", "1.1"))

	if err := s.Forget(ctx(t), c.ID); err != nil {
		t.Fatalf("Forget: %v", err)
	}
	if h := mustHistory(t, s, c.ID, conversation.HistoryQuery{}); len(h) != 0 {
		t.Errorf("History after Forget: got %q, want nothing", texts(h))
	}
	found, err := s.FindConversation(ctx(t), k)
	if err != nil || found.ID != c.ID {
		t.Errorf("FindConversation after Forget: got %d, %v; want the same conversation %d", found.ID, err, c.ID)
	}
	if got := texts(mustHistory(t, s, keep.ID, conversation.HistoryQuery{})); !slices.Equal(got, []string{"kept"}) {
		t.Errorf("History of another conversation after Forget: got %q, want [kept]", got)
	}
	// The conversation starts afresh, and a forgotten platform id can be
	// stored again.
	_, created, err := s.Append(ctx(t), c.ID, userMessage("one again", "1.1"))
	if err != nil || !created {
		t.Errorf("Append after Forget: created %v, err %v; want true, nil", created, err)
	}
	if got := texts(mustHistory(t, s, c.ID, conversation.HistoryQuery{})); !slices.Equal(got, []string{"one again"}) {
		t.Errorf("History after Forget and Append: got %q, want [one again]", got)
	}
	if err := s.Forget(ctx(t), c.ID+1000); !errors.Is(err, conversation.ErrNotFound) {
		t.Errorf("Forget of an unknown conversation: got %v, want ErrNotFound", err)
	}
}

func testStranded(t *testing.T, s conversation.Store) {
	k1 := key("C1", "1.1")
	k2 := key("C2", "")
	dk := conversation.Key{Platform: "discord", Workspace: "G1", Channel: "C1"}
	c1 := mustConversation(t, s, k1)
	c2 := mustConversation(t, s, k2)
	dc := mustConversation(t, s, dk)

	assistant := func(text string, st conversation.Status) conversation.Message {
		return conversation.Message{Role: conversation.RoleAssistant, Author: "B1", Text: text, Status: st}
	}
	if got, err := s.Stranded(ctx(t), "slack"); err != nil || len(got) != 0 {
		t.Fatalf("Stranded of an empty store: got %d, %v; want none", len(got), err)
	}
	a := mustAppend(t, s, c1.ID, assistant("half an ans", conversation.StatusStreaming))
	clockOf(t).Advance(time.Second)
	mustAppend(t, s, c1.ID, assistant("done", conversation.StatusComplete))
	mustAppend(t, s, c1.ID, assistant("cut", conversation.StatusPartial))
	mustAppend(t, s, c1.ID, assistant("", conversation.StatusFailed))
	mustAppend(t, s, c2.ID, userMessage("a user message is never stranded", ""))
	odd := userMessage("nor is one marked streaming", "")
	odd.Status = conversation.StatusStreaming
	mustAppend(t, s, c2.ID, odd)
	b := mustAppend(t, s, c2.ID, assistant("another", conversation.StatusStreaming))
	mustAppend(t, s, dc.ID, assistant("discord's own", conversation.StatusStreaming))

	got, err := s.Stranded(ctx(t), "slack")
	if err != nil {
		t.Fatalf("Stranded: %v", err)
	}
	want := []conversation.Stranded{{Key: k1, Message: a}, {Key: k2, Message: b}}
	if len(got) != len(want) {
		t.Fatalf("Stranded(slack): got %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Key != want[i].Key {
			t.Errorf("Stranded[%d].Key: got %+v, want %+v", i, got[i].Key, want[i].Key)
		}
		if d := diffMessage(got[i].Message, want[i].Message); d != "" {
			t.Errorf("Stranded[%d].Message:%s", i, d)
		}
	}

	// Finishing a message takes it off the list.
	a.Status = conversation.StatusPartial
	if err := s.UpdateMessage(ctx(t), a); err != nil {
		t.Fatalf("UpdateMessage: %v", err)
	}
	got, err = s.Stranded(ctx(t), "slack")
	if err != nil || len(got) != 1 || got[0].Message.ID != b.ID {
		t.Errorf("Stranded after finishing one: got %d messages, %v; want only message %d", len(got), err, b.ID)
	}
	if got, err := s.Stranded(ctx(t), "discord"); err != nil || len(got) != 1 || got[0].Key != dk {
		t.Errorf("Stranded(discord): got %+v, %v; want one message in %+v", got, err, dk)
	}
}

func testMessageByPlatformID(t *testing.T, s conversation.Store) {
	k := key("C1", "1.1")
	c := mustConversation(t, s, k)
	m := mustAppend(t, s, c.ID, userMessage("find me", "1700000000.000600"))
	mustAppend(t, s, c.ID, userMessage("no id", ""))

	gotConv, gotMsg, err := s.MessageByPlatformID(ctx(t), "slack", "T1", "1700000000.000600")
	if err != nil {
		t.Fatalf("MessageByPlatformID: %v", err)
	}
	if gotConv.ID != c.ID || gotConv.Key != k {
		t.Errorf("MessageByPlatformID conversation: got %d %+v, want %d %+v", gotConv.ID, gotConv.Key, c.ID, k)
	}
	if d := diffMessage(gotMsg, m); d != "" {
		t.Errorf("MessageByPlatformID message:%s", d)
	}
	for _, id := range []string{"1700000000.000700", ""} {
		if _, _, err := s.MessageByPlatformID(ctx(t), "slack", "T1", id); !errors.Is(err, conversation.ErrNotFound) {
			t.Errorf("MessageByPlatformID(%q): got %v, want ErrNotFound", id, err)
		}
	}
}
