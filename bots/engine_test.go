package bots_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/bots/botstest"
	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/conversation/sqlite"
	"github.com/parleyhq/parley/llm"
	"github.com/parleyhq/parley/llm/llmtest"
)

type harness struct {
	engine *bots.Engine
	llm    *llmtest.Server
	store  conversation.Store
	p      *botstest.Platform
}

func newHarness(t *testing.T, enforced botstest.Enforced, cfg bots.Config) *harness {
	t.Helper()
	srv := llmtest.NewServer()
	t.Cleanup(srv.Close)
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "parley.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	client, err := llm.New(llm.Config{BaseURL: srv.BaseURL(), APIKey: "test-key", DefaultModel: "fake-small", RetryBudget: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DefaultModel == "" {
		cfg.DefaultModel = "fake-small"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := bots.New(cfg, store, client)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		store.Close()
	})
	h := &harness{engine: e, llm: srv, store: store, p: botstest.New("fake", enforced)}
	<-e.Started()
	return h
}

// handle gives in to the harness's engine and fails the test if the engine
// refuses it.
func (h *harness) handle(t *testing.T, in bots.Incoming) {
	t.Helper()
	handle(t, h.engine, h.p, in)
}

// handle gives in to e and fails the test if e refuses it.
func handle(t *testing.T, e *bots.Engine, p bots.Platform, in bots.Incoming) {
	t.Helper()
	if err := e.Handle(context.Background(), p, in); err != nil {
		t.Fatalf("handle message %s: %v", in.MessageID, err)
	}
}

// waitText waits until the platform's messages, joined, read want.
func (h *harness) waitMessages(t *testing.T, what string, cond func(ms []botstest.Message) bool) []botstest.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var ms []botstest.Message
	if !h.p.WaitFor(ctx, func(p *botstest.Platform) bool {
		ms = p.Messages()
		return cond(ms)
	}) {
		t.Fatalf("timed out waiting for %s; messages: %+v", what, ms)
	}
	return ms
}

// waitStored waits until the conversation's newest answer has left the
// streaming state, and returns the history.
func (h *harness) waitStored(t *testing.T, key conversation.Key, answers int) []conversation.Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var done int
		var hist []conversation.Message
		conv, err := h.store.FindConversation(context.Background(), key)
		if err == nil {
			hist, err = h.store.History(context.Background(), conv.ID, conversation.HistoryQuery{})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range hist {
				if m.Role == conversation.RoleAssistant && m.Status != conversation.StatusStreaming {
					done++
				}
			}
		}
		if done >= answers {
			return hist
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d stored answers; history: %+v", answers, hist)
		}
		<-time.After(5 * time.Millisecond)
	}
}

func mention(id, thread, text string) bots.Incoming {
	return bots.Incoming{Workspace: "W1", Channel: "C1", Thread: thread, MessageID: id, Author: "U1", Mentioned: true, Text: text}
}

func joined(ms []botstest.Message) string {
	var b strings.Builder
	for _, m := range ms {
		b.WriteString(m.Text)
	}
	return b.String()
}

func TestMentionStreamsExactAnswer(t *testing.T) {
	h := newHarness(t, botstest.DiscordLike, bots.Config{SystemPrompt: "Be brief."})
	answer := "Hello there! This answer streams in **several** chunks, with `code` and a [link](https://example.com)."
	h.llm.Answer = func(llmtest.Request) llmtest.Reply { return llmtest.Reply{Chunks: llmtest.Words(answer, 2)} }
	if err := h.engine.Handle(context.Background(), h.p, mention("m1", "m1", "hi")); err != nil {
		t.Fatal(err)
	}
	h.waitMessages(t, "the whole answer", func(ms []botstest.Message) bool { return len(ms) == 1 && ms[0].Text == answer })
	hist := h.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m1"}, 1)
	if len(hist) != 2 || hist[1].Text != answer || hist[1].Status != conversation.StatusComplete || hist[1].Model != "fake-small" {
		t.Fatalf("stored history %+v, want the question and the complete answer", hist)
	}
	reqs := h.llm.Requests()
	if len(reqs) != 1 || reqs[0].Messages[0].Role != "system" || reqs[0].Messages[0].Text() != "Be brief." || reqs[0].Messages[1].Text() != "hi" {
		t.Fatalf("request messages %+v, want the system prompt then the question", reqs)
	}
	if got := h.p.Messages()[0].Dest.Thread; got != "m1" {
		t.Errorf("reply went to thread %q, want m1", got)
	}
	// The new thread shows progress: it is made while the model thinks,
	// and a typing indicator only follows if the first text is late.
	if s := h.p.Stats(); s.RateLimited != 0 || s.ByCall[bots.CallPrepare] != 1 || s.Threads != 1 {
		t.Errorf("stats %+v: want the thread prepared once and no 429", s)
	}
}

func TestConversationRules(t *testing.T) {
	tests := []struct {
		name    string
		setup   []bots.Incoming // answered before
		in      bots.Incoming
		answers bool
	}{
		{name: "mention in a channel", in: mention("m1", "m1", "hi"), answers: true},
		{name: "DM without mention", in: bots.Incoming{Workspace: "W1", Channel: "D1", MessageID: "m1", Author: "U1", DM: true, Text: "hi"}, answers: true},
		{name: "channel message without mention", in: bots.Incoming{Workspace: "W1", Channel: "C1", Thread: "m1", MessageID: "m1", Author: "U1", Text: "hi"}, answers: false},
		{name: "bot message with mention", in: bots.Incoming{Workspace: "W1", Channel: "C1", Thread: "m1", MessageID: "m1", Author: "B1", AuthorIsBot: true, Mentioned: true, Text: "hi"}, answers: false},
		{name: "empty mention", in: mention("m1", "m1", "  "), answers: false},
		{name: "follow-up in the bot's thread", setup: []bots.Incoming{mention("m1", "m1", "hi")},
			in: bots.Incoming{Workspace: "W1", Channel: "C1", Thread: "m1", MessageID: "m2", Author: "U2", Text: "and then?"}, answers: true},
		{name: "message in another thread", setup: []bots.Incoming{mention("m1", "m1", "hi")},
			in: bots.Incoming{Workspace: "W1", Channel: "C1", Thread: "m9", MessageID: "m2", Author: "U2", Text: "unrelated"}, answers: false},
		{name: "same thread id in another workspace", setup: []bots.Incoming{mention("m1", "m1", "hi")},
			in: bots.Incoming{Workspace: "W2", Channel: "C1", Thread: "m1", MessageID: "m2", Author: "U2", Text: "other team"}, answers: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, botstest.SlackLike, bots.Config{})
			h.llm.Answer = func(llmtest.Request) llmtest.Reply { return llmtest.Reply{Chunks: []string{"answer"}} }
			ctx := context.Background()
			for _, in := range tt.setup {
				if err := h.engine.Handle(ctx, h.p, in); err != nil {
					t.Fatal(err)
				}
			}
			want := len(tt.setup)
			h.waitMessages(t, "setup answers", func(ms []botstest.Message) bool {
				return len(ms) == want && joined(ms) == strings.Repeat("answer", want)
			})
			if err := h.engine.Handle(ctx, h.p, tt.in); err != nil {
				t.Fatal(err)
			}
			if tt.answers {
				want++
			}
			// A second, always-answered message in a DM proves the first
			// was handled (messages are processed in order per engine
			// call), without waiting for a silence.
			probe := bots.Incoming{Workspace: "W9", Channel: "D9", MessageID: "probe", Author: "U9", DM: true, Text: "probe"}
			if err := h.engine.Handle(ctx, h.p, probe); err != nil {
				t.Fatal(err)
			}
			h.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W9", Channel: "D9"}, 1)
			if tt.answers {
				key := conversation.Key{Platform: "fake", Workspace: tt.in.Workspace, Channel: tt.in.Channel, Thread: tt.in.Thread}
				if tt.in.DM {
					key.Thread = ""
				}
				h.waitStored(t, key, want)
			}
			if got := len(h.llm.Requests()); got != want+1 {
				t.Errorf("the model was asked %d times, want %d", got, want+1)
			}
		})
	}
}

func TestFollowUpCarriesHistory(t *testing.T) {
	h := newHarness(t, botstest.SlackLike, bots.Config{})
	n := 0
	var mu sync.Mutex
	h.llm.Answer = func(llmtest.Request) llmtest.Reply {
		mu.Lock()
		defer mu.Unlock()
		n++
		return llmtest.Reply{Chunks: []string{fmt.Sprintf("answer %d", n)}}
	}
	h.handle(t, mention("m1", "m1", "first question"))
	key := conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m1"}
	h.waitStored(t, key, 1)
	h.handle(t, bots.Incoming{Workspace: "W1", Channel: "C1", Thread: "m1", MessageID: "m2", Author: "U1", Text: "second question"})
	h.waitStored(t, key, 2)
	reqs := h.llm.Requests()
	var got []string
	for _, m := range reqs[1].Messages {
		got = append(got, m.Role+": "+m.Text())
	}
	want := []string{"user: first question", "assistant: answer 1", "user: second question"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("second request messages %q, want %q", got, want)
	}
}

func TestQueuedMessagesAnsweredInOrder(t *testing.T) {
	h := newHarness(t, botstest.SlackLike, bots.Config{})
	hold := make(chan struct{})
	h.llm.Answer = func(r llmtest.Request) llmtest.Reply {
		q := r.Messages[len(r.Messages)-1].Text()
		if q == "one" {
			return llmtest.Reply{Chunks: []string{"first ", "answer"}, Hold: hold}
		}
		return llmtest.Reply{Chunks: []string{"answer to " + q}}
	}
	h.handle(t, bots.Incoming{Workspace: "W1", Channel: "D1", MessageID: "m1", Author: "U1", DM: true, Text: "one"})
	h.waitMessages(t, "the first answer's start", func(ms []botstest.Message) bool { return len(ms) == 1 && ms[0].Text == "first " })
	h.handle(t, bots.Incoming{Workspace: "W1", Channel: "D1", MessageID: "m2", Author: "U1", DM: true, Text: "two"})
	h.waitMessages(t, "the queued notice", func(ms []botstest.Message) bool {
		return len(ms) == 2 && strings.Contains(ms[1].Text, "Queued")
	})
	close(hold)
	h.waitMessages(t, "both answers", func(ms []botstest.Message) bool {
		return len(ms) == 2 && ms[0].Text == "first answer" && ms[1].Text == "answer to two"
	})
	reqs := h.llm.Requests()
	var got []string
	for _, m := range reqs[1].Messages {
		got = append(got, m.Text())
	}
	if strings.Join(got, "|") != "one|first answer|two" {
		t.Fatalf("second request %q: want the first exchange, then the second question", got)
	}
}

func TestDuplicatesAnsweredOnce(t *testing.T) {
	h := newHarness(t, botstest.SlackLike, bots.Config{})
	in := mention("m1", "m1", "hi")
	in.EventID = "Ev1"
	h.handle(t, in)
	h.handle(t, in)    // a retried delivery
	in.EventID = "Ev2" // the same message as another event
	h.handle(t, in)
	h.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m1"}, 1)
	probe := bots.Incoming{Workspace: "W1", Channel: "D9", MessageID: "probe", Author: "U9", DM: true, Text: "probe"}
	h.handle(t, probe)
	h.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "D9"}, 1)
	if got := len(h.llm.Requests()); got != 2 {
		t.Fatalf("the model was asked %d times, want 2 (one answer, one probe)", got)
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name   string
		reply  llmtest.Reply
		want   string // in the final text
		prefix string // the final text starts with it
		status conversation.Status
	}{
		{name: "model not found", reply: llmtest.Reply{Status: 404, Body: `{"error":{"message":"The model does not exist","code":"model_not_found"}}`},
			want: "is not available", status: conversation.StatusFailed},
		{name: "unauthorized", reply: llmtest.Reply{Status: 401, Body: `{"error":{"message":"bad key"}}`},
			want: "LLM_API_KEY", status: conversation.StatusFailed},
		{name: "rate limited", reply: llmtest.Reply{Status: 429, Body: `{"error":{"message":"slow down"}}`},
			want: "Try again", status: conversation.StatusFailed},
		{name: "cut mid-stream", reply: llmtest.Reply{Chunks: []string{"partial ", "answer ", "lost"}, CutAfter: 2},
			prefix: "partial answer \n\n", want: "cut off", status: conversation.StatusPartial},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, botstest.SlackLike, bots.Config{})
			h.llm.Answer = func(llmtest.Request) llmtest.Reply { return tt.reply }
			h.handle(t, mention("m1", "m1", "hi"))
			hist := h.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m1"}, 1)
			if got := hist[len(hist)-1].Status; got != tt.status {
				t.Errorf("stored status %q, want %q", got, tt.status)
			}
			ms := h.waitMessages(t, "the notice", func(ms []botstest.Message) bool {
				return len(ms) == 1 && strings.Contains(ms[0].Text, tt.want)
			})
			if !strings.HasPrefix(ms[0].Text, tt.prefix) {
				t.Errorf("final text %q, want it to start with %q", ms[0].Text, tt.prefix)
			}
			if strings.Contains(ms[0].Text, "test-key") {
				t.Error("the reply shows the API key")
			}
		})
	}
}

// storedAnswer returns the conversation's newest stored answer.
func (h *harness) storedAnswer(t *testing.T, key conversation.Key) conversation.Message {
	t.Helper()
	ctx := context.Background()
	conv, err := h.store.FindConversation(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := h.store.History(ctx, conv.ID, conversation.HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	for i := len(hist) - 1; i >= 0; i-- {
		if hist[i].Role == conversation.RoleAssistant {
			return hist[i]
		}
	}
	t.Fatalf("no stored answer; history: %+v", hist)
	return conversation.Message{}
}

func TestStopByReaction(t *testing.T) {
	h := newHarness(t, botstest.SlackLike, bots.Config{})
	key := conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m1"}
	holdFirst, holdSecond := make(chan struct{}), make(chan struct{})
	defer close(holdSecond)
	h.llm.Answer = func(r llmtest.Request) llmtest.Reply {
		if r.Messages[len(r.Messages)-1].Text() == "talk forever" {
			return llmtest.Reply{Chunks: []string{"never ", "ending"}, Hold: holdFirst}
		}
		return llmtest.Reply{Chunks: []string{"again ", "and again"}, Hold: holdSecond}
	}

	// Reactions that must not stop the answer, sent while the model
	// holds its stream open: Reacted cancels synchronously, so had either
	// stopped it, the rest of the answer released below would never show.
	h.handle(t, mention("m1", "m1", "talk forever"))
	ms := h.waitMessages(t, "the first text", func(ms []botstest.Message) bool { return len(ms) == 1 && ms[0].Text == "never " })
	h.engine.Reacted(h.p, "W1", "C1", ms[0].ID, "U2", "octagonal_sign") // not the asker
	h.engine.Reacted(h.p, "W1", "C1", ms[0].ID, "U1", "thumbsup")       // not a stop emoji
	if a := h.storedAnswer(t, key); a.Status != conversation.StatusStreaming {
		t.Fatalf("after the ignored reactions the stored answer is %q (%s), want it still streaming", a.Text, a.Status)
	}
	close(holdFirst)
	ms = h.waitMessages(t, "the first answer to go on", func(ms []botstest.Message) bool {
		return len(ms) == 1 && ms[0].Text != "never "
	})
	if ms[0].Text != "never ending" {
		t.Fatalf("after the ignored reactions the reply reads %q, want the whole answer", ms[0].Text)
	}
	hist := h.waitStored(t, key, 1)
	if a := hist[len(hist)-1]; a.Status != conversation.StatusComplete || a.Text != "never ending" {
		t.Fatalf("stored answer %q (%s), want the whole answer, complete", a.Text, a.Status)
	}

	// The asker's stop emoji stops the next answer.
	h.handle(t, bots.Incoming{Workspace: "W1", Channel: "C1", Thread: "m1", MessageID: "m2", Author: "U1", Text: "go on"})
	ms = h.waitMessages(t, "the second answer's first text", func(ms []botstest.Message) bool { return len(ms) == 2 && ms[1].Text == "again " })
	if a := h.storedAnswer(t, key); a.Status != conversation.StatusStreaming {
		t.Fatalf("before the stop the newest stored answer is %q (%s), want the second, streaming", a.Text, a.Status)
	}
	h.engine.Reacted(h.p, "W1", "C1", ms[1].ID, "U1", "octagonal_sign")
	h.waitMessages(t, "the stop notice", func(ms []botstest.Message) bool {
		return len(ms) == 2 && ms[1].Text == "again \n\n⏹️ _Stopped._"
	})
	hist = h.waitStored(t, key, 2)
	if a := hist[len(hist)-1]; a.Status != conversation.StatusPartial || a.Text != "again " {
		t.Errorf("stored answer %q (%s), want the partial text", a.Text, a.Status)
	}
	if got := h.p.Messages()[0].Text; got != "never ending" {
		t.Errorf("the stop changed the first reply to %q", got)
	}
}

func TestStopByDeletingTheQuestion(t *testing.T) {
	h := newHarness(t, botstest.SlackLike, bots.Config{})
	hold := make(chan struct{})
	defer close(hold)
	h.llm.Answer = func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Chunks: []string{"never ", "ending"}, Hold: hold}
	}
	h.handle(t, mention("m1", "m1", "talk forever"))
	h.waitMessages(t, "the first text", func(ms []botstest.Message) bool { return len(ms) == 1 && ms[0].Text == "never " })
	h.engine.Deleted(h.p, "W1", "C1", "m1")
	h.waitMessages(t, "the stop notice", func(ms []botstest.Message) bool {
		return len(ms) == 1 && strings.Contains(ms[0].Text, "question was deleted")
	})
	hist := h.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m1"}, 1)
	if a := hist[len(hist)-1]; a.Status != conversation.StatusPartial || a.Text != "never " {
		t.Errorf("stored answer %q (%s), want the partial text", a.Text, a.Status)
	}
}

func TestLongAnswerSplitsWithFences(t *testing.T) {
	enforced := botstest.DiscordLike
	h := newHarness(t, enforced, bots.Config{})
	var lines []string // the program, one line each
	var b strings.Builder
	b.WriteString("Here is the program:\n\n```go\n")
	for i := 0; b.Len() < 4500; i++ {
		l := fmt.Sprintf("fmt.Println(\"line %d of a long program\")\n", i)
		lines = append(lines, l)
		b.WriteString(l)
	}
	b.WriteString("```\n\nThat is all.")
	answer := b.String()
	h.llm.Answer = func(llmtest.Request) llmtest.Reply { return llmtest.Reply{Chunks: llmtest.Words(answer, 3)} }
	h.handle(t, mention("m1", "m1", "write code"))
	ms := h.waitMessages(t, "every part", func(ms []botstest.Message) bool {
		return len(ms) == 3 && strings.HasSuffix(ms[2].Text, "That is all.")
	})
	// Each part ends between program lines, closes the block it is in,
	// and the next reopens it with its language: 48 lines of 41 or 42
	// characters fit in Discord's 2000 with the fences.
	if len(lines) != 110 {
		t.Fatalf("the program has %d lines; the parts below assume 110", len(lines))
	}
	want := []string{
		"Here is the program:\n\n```go\n" + strings.Join(lines[:48], "") + "```",
		"```go\n" + strings.Join(lines[48:96], "") + "```",
		"```go\n" + strings.Join(lines[96:], "") + "```\n\nThat is all.",
	}
	for i, m := range ms {
		if n := len([]rune(m.Text)); n > 2000 {
			t.Errorf("message %d has %d characters, over Discord's 2000", i, n)
		}
		if m.Text != want[i] {
			first, _, _ := strings.Cut(strings.TrimPrefix(m.Text, "```go\n"), "\n")
			t.Errorf("message %d (%d characters, first line %q) is not the expected part; it reads %q, want %q", i, len(m.Text), first, m.Text, want[i])
		}
	}
	if s := h.p.Stats(); s.RateLimited != 0 {
		t.Errorf("%d 429s, want none", s.RateLimited)
	}
}

func TestRateLimitedEditsStillDeliverFinalText(t *testing.T) {
	// The platform enforces tighter limits than it declares: 429s come,
	// are waited out, and the final text is still exact.
	tight := botstest.Rule{Name: "channel", Scope: botstest.PerThread, Limit: botstest.Limit{N: 2, Per: 300 * time.Millisecond, Window: true}}
	enforced := botstest.Enforced{MaxChars: 2000, Rules: map[bots.Call][]botstest.Rule{bots.CallPost: {tight}, bots.CallEdit: {tight}}}
	h := newHarness(t, enforced, bots.Config{})
	h.p.SetDeclared(bots.Limits{MaxChars: 2000})
	answer := strings.Repeat("tick tock ", 60)
	h.llm.Answer = func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Chunks: llmtest.Words(answer, 1), Every: time.Millisecond}
	}
	h.handle(t, mention("m1", "m1", "count"))
	h.waitMessages(t, "the whole answer", func(ms []botstest.Message) bool { return len(ms) == 1 && ms[0].Text == answer })
	if s := h.p.Stats(); s.RateLimited == 0 {
		t.Errorf("no 429 was answered: the test did not exercise Retry-After")
	}
}

func TestModelCommand(t *testing.T) {
	h := newHarness(t, botstest.SlackLike, bots.Config{Access: bots.Access{Admins: []string{"U1"}}})
	ctx := context.Background()
	cmd := bots.Command{Workspace: "W1", Channel: "C1", User: "U1", Name: "model"}
	if r := h.engine.Command(ctx, h.p, cmd); !strings.Contains(r.Text, "fake-small") || !strings.Contains(r.Text, "default") || !r.ChooseModel {
		t.Errorf("/model shows %+v, want the default model and a picker", r)
	}
	cmd.Args = "fake-lrage"
	if r := h.engine.Command(ctx, h.p, cmd); !strings.Contains(r.Text, "fake-large") {
		t.Errorf("/model fake-lrage answers %q, want a suggestion of fake-large", r.Text)
	}
	cmd.Args = "fake-large"
	if r := h.engine.Command(ctx, h.p, cmd); !strings.Contains(r.Text, "now answers with `fake-large`") {
		t.Errorf("/model fake-large answers %q", r.Text)
	}
	h.handle(t, mention("m1", "m1", "which model?"))
	h.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m1"}, 1)
	if got := h.llm.Requests()[0].Model; got != "fake-large" {
		t.Errorf("the channel's answer used %q, want fake-large", got)
	}
	// In a thread, by mention: set for the thread only.
	h.handle(t, bots.Incoming{Workspace: "W1", Channel: "C1", Thread: "m1", MessageID: "m2", Author: "U1", Mentioned: true, Text: "/model sora-2"})
	h.waitMessages(t, "the command's answer", func(ms []botstest.Message) bool {
		return len(ms) == 2 && strings.Contains(ms[1].Text, "in this thread")
	})
	cmd.Thread = "m1"
	cmd.Args = ""
	if r := h.engine.Command(ctx, h.p, cmd); !strings.Contains(r.Text, "sora-2") || !strings.Contains(r.Text, "thread") {
		t.Errorf("/model in the thread shows %q, want sora-2 set for the thread", r.Text)
	}
}

func TestResetForgets(t *testing.T) {
	h := newHarness(t, botstest.SlackLike, bots.Config{})
	ctx := context.Background()
	h.handle(t, bots.Incoming{Workspace: "W1", Channel: "D1", MessageID: "m1", Author: "U1", DM: true, Text: "remember 42"})
	key := conversation.Key{Platform: "fake", Workspace: "W1", Channel: "D1"}
	h.waitStored(t, key, 1)
	r := h.engine.Command(ctx, h.p, bots.Command{Workspace: "W1", Channel: "D1", User: "U1", DM: true, Name: "reset"})
	if !strings.Contains(r.Text, "forgot") {
		t.Fatalf("/reset answers %q", r.Text)
	}
	h.handle(t, bots.Incoming{Workspace: "W1", Channel: "D1", MessageID: "m2", Author: "U1", DM: true, Text: "what number?"})
	h.waitStored(t, key, 1)
	reqs := h.llm.Requests()
	if got := len(reqs[1].Messages); got != 1 {
		t.Fatalf("after /reset the model saw %d messages, want only the new question", got)
	}
}

func TestHandleBeforeRunFails(t *testing.T) {
	e := bots.New(bots.Config{}, nil, nil)
	err := e.Handle(context.Background(), botstest.New("fake", botstest.SlackLike), mention("m1", "m1", "hi"))
	if err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("Handle before Run returned %v, want an error", err)
	}
}

func TestRecoverCorrectsInterruptedAnswers(t *testing.T) {
	h := newHarness(t, botstest.SlackLike, bots.Config{Recovery: bots.RecoverMark})
	ctx := context.Background()
	// An answer being streamed when the process died: its message shows
	// some text, and the store holds it as streaming.
	id, err := h.p.Post(ctx, bots.Destination{Workspace: "W1", Channel: "C1", Thread: "m1"}, "half an ans")
	if err != nil {
		t.Fatal(err)
	}
	conv, _ := h.store.Conversation(ctx, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m1"})
	q, _, _ := h.store.Append(ctx, conv.ID, conversation.Message{Role: conversation.RoleUser, PlatformID: "m1", Text: "question"})
	h.store.Append(ctx, conv.ID, conversation.Message{Role: conversation.RoleAssistant, PlatformID: id, Text: "half an ans", Status: conversation.StatusStreaming, ReplyTo: q.ID})
	// One that had shown nothing yet.
	conv2, _ := h.store.Conversation(ctx, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C2", Thread: "m7"})
	h.store.Append(ctx, conv2.ID, conversation.Message{Role: conversation.RoleAssistant, Status: conversation.StatusStreaming})

	if err := h.engine.Recover(ctx, h.p); err != nil {
		t.Fatal(err)
	}
	h.waitMessages(t, "both answers corrected", func(ms []botstest.Message) bool {
		return len(ms) == 2 && strings.HasPrefix(ms[0].Text, "half an ans\n\n⚠️ _Interrupted") && strings.Contains(ms[1].Text, "Interrupted") && ms[1].Dest.Thread == "m7"
	})
	h.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C2", Thread: "m7"}, 1)
	left, err := h.store.Stranded(ctx, "fake")
	if err != nil || len(left) != 0 {
		t.Fatalf("still stranded after recovery: %v, %v", left, err)
	}
}

func TestProgressFallsBackToPlaceholder(t *testing.T) {
	h := newHarness(t, botstest.SlackLike, bots.Config{})
	h.p.ProgressErr = errors.New("status not allowed here")
	release := make(chan struct{})
	h.llm.Answer = func(llmtest.Request) llmtest.Reply {
		<-release
		return llmtest.Reply{Chunks: []string{"done"}}
	}
	h.handle(t, mention("m1", "m1", "hi"))
	h.waitMessages(t, "a placeholder", func(ms []botstest.Message) bool { return len(ms) == 1 && strings.Contains(ms[0].Text, "Thinking") })
	close(release)
	h.waitMessages(t, "the answer replacing it", func(ms []botstest.Message) bool { return len(ms) == 1 && ms[0].Text == "done" })
}

func TestDeletedReplyStopsTheStream(t *testing.T) {
	h := newHarness(t, botstest.SlackLike, bots.Config{})
	hold := make(chan struct{})
	defer close(hold)
	h.llm.Answer = func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Chunks: []string{"first ", "second"}, Hold: hold}
	}
	h.handle(t, mention("m1", "m1", "hi"))
	ms := h.waitMessages(t, "the first text", func(ms []botstest.Message) bool { return len(ms) == 1 && ms[0].Text == "first " })
	h.p.DeleteByUser(ms[0].ID)
	h.engine.Deleted(h.p, "W1", "C1", ms[0].ID)
	// The model keeps its stream open: the engine must end it itself.
	hist := h.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m1"}, 1)
	if a := hist[len(hist)-1]; a.Status != conversation.StatusPartial || a.Text != "first " {
		t.Errorf("stored answer %q (%s), want the partial text", a.Text, a.Status)
	}
}

func TestSpentEditBudgetContinuesInNewMessage(t *testing.T) {
	// One edit per 30 s for the workspace: after the first post and one
	// interim edit, the final edit would wait long; the rest of the answer
	// goes into a new message (posts have their own budget) instead.
	enforced := botstest.Enforced{MaxChars: 4000, Rules: map[bots.Call][]botstest.Rule{
		bots.CallPost: {{Name: "post", Scope: botstest.PerChannel, Limit: botstest.Limit{N: 1, Per: 200 * time.Millisecond, Burst: 1}}},
		bots.CallEdit: {{Name: "edit", Scope: botstest.PerWorkspace, Limit: botstest.Limit{N: 1, Per: 30 * time.Second, Burst: 1}}},
	}}
	h := newHarness(t, enforced, bots.Config{})
	answer := strings.Repeat("many words stream here ", 40)
	h.llm.Answer = func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Chunks: llmtest.Words(answer, 1), Every: 3 * time.Millisecond}
	}
	h.handle(t, mention("m1", "m1", "talk"))
	ms := h.waitMessages(t, "the whole answer", func(ms []botstest.Message) bool { return joined(ms) == answer })
	if len(ms) < 2 {
		t.Fatalf("%d message(s), want the answer continued in a new message", len(ms))
	}
	for i, m := range ms[:len(ms)-1] {
		if !strings.HasSuffix(m.Text, " ") {
			t.Errorf("message %d ends inside a word: %q", i, m.Text)
		}
	}
	if s := h.p.Stats(); s.RateLimited != 0 {
		t.Errorf("%d 429s, want none", s.RateLimited)
	}
}

func TestReplyToAnswerContinuesItsConversation(t *testing.T) {
	h := newHarness(t, botstest.SlackLike, bots.Config{})
	ctx := context.Background()
	h.handle(t, mention("m1", "m1", "first"))
	key := conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m1"}
	hist := h.waitStored(t, key, 1)
	answerID := hist[len(hist)-1].PlatformID
	if answerID == "" {
		t.Fatal("the answer's platform id was not stored")
	}
	// A reply to the answer, in the channel (Discord's reply mode), with a
	// mention: the same conversation, not a new one.
	h.handle(t, bots.Incoming{Workspace: "W1", Channel: "C1", Thread: "m2", MessageID: "m2", ReplyTo: answerID, Author: "U1", Mentioned: true, Text: "second"})
	h.waitStored(t, key, 2)
	if _, err := h.store.FindConversation(ctx, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m2"}); !errors.Is(err, conversation.ErrNotFound) {
		t.Errorf("a reply to the answer started a conversation of its own (err %v)", err)
	}
}

func TestShutdownCutsStreamsAfterGrace(t *testing.T) {
	srv := llmtest.NewServer()
	defer srv.Close()
	hold := make(chan struct{})
	defer close(hold)
	srv.Answer = func(r llmtest.Request) llmtest.Reply {
		if r.Messages[len(r.Messages)-1].Text() == "quick" {
			return llmtest.Reply{Chunks: []string{"quick answer"}}
		}
		return llmtest.Reply{Chunks: []string{"slow ", "answer"}, Hold: hold}
	}
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "parley.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	client, _ := llm.New(llm.Config{BaseURL: srv.BaseURL(), APIKey: "k", DefaultModel: "fake-small"})
	e := bots.New(bots.Config{DefaultModel: "fake-small", ShutdownGrace: 200 * time.Millisecond, Recovery: bots.RecoverMark, Logger: slog.New(slog.DiscardHandler)}, store, client)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	<-e.Started()
	p := botstest.New("fake", botstest.SlackLike)
	handle(t, e, p, mention("m1", "m1", "slow"))
	h := &harness{p: p}
	h.waitMessages(t, "the slow answer's start", func(ms []botstest.Message) bool { return len(ms) == 1 && ms[0].Text == "slow " })
	cancel()
	<-done
	ms := p.Messages()
	if len(ms) != 1 || !strings.HasPrefix(ms[0].Text, "slow \n\n⚠️ _Interrupted") {
		t.Fatalf("after shutdown the reply shows %+v, want the partial text and a notice", ms)
	}
	if err := e.Handle(context.Background(), p, mention("m2", "m2", "quick")); err == nil {
		t.Error("Handle after shutdown accepted a message")
	}
}

func TestMentionCommandDeliveredTwiceRunsOnce(t *testing.T) {
	h := newHarness(t, botstest.SlackLike, bots.Config{UserRate: bots.Rate{Every: time.Hour, Burst: 3}})
	h.handle(t, mention("m1", "m1", "hi"))
	h.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m1"}, 1)
	// A mention in the thread, as Slack sends it: an app_mention and a
	// message event for one message.
	in := bots.Incoming{Workspace: "W1", Channel: "C1", Thread: "m1", MessageID: "m2", Author: "U1", Mentioned: true, Text: "/model fake-large", EventID: "Ev-a"}
	h.handle(t, in)
	in.EventID = "Ev-b"
	h.handle(t, in)
	// The third of the person's three requests an hour is still free:
	// the command counted once.
	h.handle(t, bots.Incoming{Workspace: "W1", Channel: "C1", Thread: "m1", MessageID: "m3", Author: "U1", Text: "and now?"})
	h.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m1"}, 2)
	var commands int
	for _, m := range h.p.Messages() {
		if strings.Contains(m.Text, "now answers with") {
			commands++
		}
	}
	if commands != 1 {
		t.Errorf("the command ran %d times, want once", commands)
	}
}

func TestLengthLimitSaysSo(t *testing.T) {
	h := newHarness(t, botstest.SlackNativeLike, bots.Config{})
	h.llm.Answer = func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Chunks: []string{"The answer ", "goes on and"}, FinishReason: "length"}
	}
	if err := h.engine.Handle(context.Background(), h.p, mention("m1", "m1", "long story")); err != nil {
		t.Fatal(err)
	}
	ms := h.waitMessages(t, "the cut answer", func(ms []botstest.Message) bool {
		return len(ms) == 1 && strings.Contains(ms[0].Text, "length limit")
	})
	if !strings.HasPrefix(ms[0].Text, "The answer goes on and\n\n") {
		t.Errorf("reply %q, want the answer then the notice", ms[0].Text)
	}
	hist := h.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m1"}, 1)
	if a := hist[len(hist)-1]; a.Status != conversation.StatusPartial || a.Text != "The answer goes on and" {
		t.Errorf("stored %q (%s), want the text as partial", a.Text, a.Status)
	}
}

// TestPlatformFaults drives the reply through the platform's failures, one
// kind at a time: each still ends with the whole answer shown.
func TestPlatformFaults(t *testing.T) {
	answer := strings.Repeat("one two three four five. ", 12)
	for _, tc := range []struct {
		name     string
		enforced botstest.Enforced
		call     bots.Call
		err      error
		check    func(t *testing.T, ms []botstest.Message, st botstest.Stats)
	}{
		{name: "stream closed continues in a new message", enforced: botstest.SlackNativeLike, call: bots.CallAppend, err: bots.ErrStreamClosed,
			check: func(t *testing.T, ms []botstest.Message, st botstest.Stats) {
				if len(ms) < 2 || !ms[0].Streamed || ms[0].Streaming {
					t.Errorf("messages %+v, want the closed stream then a continuation", ms)
				}
			}},
		{name: "global 429 is waited out", enforced: botstest.DiscordLike, call: bots.CallEdit, err: &bots.RateLimitError{RetryAfter: 50 * time.Millisecond, Global: true},
			check: func(t *testing.T, ms []botstest.Message, st botstest.Stats) {
				if st.LimitedByCall[bots.CallEdit] != 1 {
					t.Errorf("%d edit 429s, want the injected one", st.LimitedByCall[bots.CallEdit])
				}
			}},
		{name: "too long splits smaller", enforced: botstest.DiscordLike, call: bots.CallPost, err: bots.ErrTooLong,
			check: func(t *testing.T, ms []botstest.Message, st botstest.Stats) {
				if st.ByCall[bots.CallPost] < 2 {
					t.Errorf("%d posts, want the refused one tried again", st.ByCall[bots.CallPost])
				}
			}},
		{name: "a server error is retried", enforced: botstest.SlackLike, call: bots.CallPost, err: errors.New("fake: 500"),
			check: func(t *testing.T, ms []botstest.Message, st botstest.Stats) {
				if st.ByCall[bots.CallPost] < 2 {
					t.Errorf("%d posts, want a retry", st.ByCall[bots.CallPost])
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.enforced, bots.Config{})
			h.p.Inject(tc.call, tc.err)
			h.llm.Answer = func(llmtest.Request) llmtest.Reply {
				return llmtest.Reply{Chunks: llmtest.Words(answer, 1), Every: 2 * time.Millisecond}
			}
			if err := h.engine.Handle(context.Background(), h.p, mention("m1", "m1", "count")); err != nil {
				t.Fatal(err)
			}
			ms := h.waitMessages(t, "the whole answer", func(ms []botstest.Message) bool {
				if len(ms) == 0 || ms[len(ms)-1].Streaming {
					return false
				}
				return strings.Join(strings.Fields(joined(ms)), " ") == strings.TrimSpace(answer)
			})
			tc.check(t, ms, h.p.Stats())
		})
	}
}

func TestPlaceholderGivenUpForANewMessage(t *testing.T) {
	// Edits and posts have budgets of their own (Slack): when the edit
	// budget cannot replace the placeholder soon (a 429 pauses it for
	// 30 s), the answer goes into a new message and the placeholder's
	// message is deleted, so the reply is again exactly the answer.
	ws := func(name string) []botstest.Rule {
		return []botstest.Rule{{Name: name, Scope: botstest.PerWorkspace, Limit: botstest.Limit{N: 10, Per: time.Second, Burst: 10}}}
	}
	enforced := botstest.Enforced{MaxChars: 4000, Rules: map[bots.Call][]botstest.Rule{
		bots.CallPost: ws("post"), bots.CallEdit: ws("edit"), bots.CallDelete: ws("delete"),
	}}
	h := newHarness(t, enforced, bots.Config{})
	h.p.ProgressErr = errors.New("status not allowed here")
	h.p.Inject(bots.CallEdit, &bots.RateLimitError{RetryAfter: 30 * time.Second})
	release := make(chan struct{})
	h.llm.Answer = func(llmtest.Request) llmtest.Reply {
		<-release
		return llmtest.Reply{Chunks: []string{"the ", "whole ", "answer"}}
	}
	h.handle(t, mention("m1", "m1", "hi"))
	ms := h.waitMessages(t, "a placeholder", func(ms []botstest.Message) bool { return len(ms) == 1 && strings.Contains(ms[0].Text, "Thinking") })
	placeholder := ms[0].ID
	close(release)
	// The answer may continue in a second message (edits are paused):
	// read in order, the messages are the answer.
	ms = h.waitMessages(t, "the answer alone", func(ms []botstest.Message) bool { return joined(ms) == "the whole answer" })
	if ms[0].ID == placeholder {
		t.Fatalf("the placeholder was edited, want it given up for a new message")
	}
	hist := h.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m1"}, 1)
	if a := hist[len(hist)-1]; a.PlatformID != ms[0].ID || a.Status != conversation.StatusComplete {
		t.Errorf("stored answer in %q (%s), want in the new message %q, complete", a.PlatformID, a.Status, ms[0].ID)
	}
}

func TestSpentThreadBudgetAnswersWithoutThread(t *testing.T) {
	// One new thread per 5 minutes: the first mention gets its thread,
	// made while the model thinks; the second would wait minutes for
	// one, so it is answered without (Discord: in the channel), at once.
	enforced := botstest.DiscordLike
	enforced.ThreadRules = []botstest.Rule{{Name: "threads", Scope: botstest.PerWorkspace, Limit: botstest.Limit{N: 1, Per: 5 * time.Minute, Window: true}}}
	h := newHarness(t, enforced, bots.Config{})
	h.llm.Answer = func(r llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Chunks: []string{"answer to ", r.Messages[len(r.Messages)-1].Text()}}
	}
	h.handle(t, mention("m1", "m1", "one"))
	h.waitMessages(t, "the first answer", func(ms []botstest.Message) bool { return len(ms) == 1 && ms[0].Text == "answer to one" })
	h.handle(t, bots.Incoming{Workspace: "W1", Channel: "C2", Thread: "m2", MessageID: "m2", Author: "U1", Mentioned: true, Text: "two"})
	h.waitMessages(t, "the second answer", func(ms []botstest.Message) bool { return len(ms) == 2 && ms[1].Text == "answer to two" })
	if s := h.p.Stats(); s.Threads != 1 || s.RateLimited != 0 || s.ByCall[bots.CallPrepare] != 1 {
		t.Errorf("stats %+v: want one thread, prepared once, and no 429", s)
	}
}
