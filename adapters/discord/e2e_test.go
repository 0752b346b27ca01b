package discord

// End-to-end: the real discordgo session against the fake Discord, the real
// engine, the real llm client against a fake OpenAI endpoint, and a real
// SQLite store.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/parleyhq/parley/adapters/discord/discordtest"
	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/conversation/sqlite"
	"github.com/parleyhq/parley/llm"
)

// chatRequest is what the fake endpoint received.
type chatRequest struct {
	Model    string
	Messages []chatMessage
	Images   map[int][]string // image parts' URLs, by message index
}

type chatMessage struct {
	Role    string
	Content string
}

func (r chatRequest) last() string {
	if len(r.Messages) == 0 {
		return ""
	}
	return r.Messages[len(r.Messages)-1].Content
}

// sse writes a streamed answer.
type sse struct {
	w     http.ResponseWriter
	model string
	ctx   context.Context
}

func (s *sse) chunk(delta map[string]any, finish any) {
	b, _ := json.Marshal(map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": s.model,
		"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}},
	})
	fmt.Fprintf(s.w, "data: %s\n\n", b)
	s.w.(http.Flusher).Flush()
}

func (s *sse) send(text string) { s.chunk(map[string]any{"content": text}, nil) }

// comment writes an SSE comment, as gateways keep a long stream alive.
func (s *sse) comment(text string) {
	fmt.Fprintf(s.w, ": %s\n\n", text)
	s.w.(http.Flusher).Flush()
}

func (s *sse) done() {
	s.chunk(map[string]any{}, "stop")
	fmt.Fprint(s.w, "data: [DONE]\n\n")
	s.w.(http.Flusher).Flush()
}

// fakeLLM is an OpenAI-compatible endpoint whose answers a test scripts.
type fakeLLM struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []chatRequest
	answer func(s *sse, req chatRequest) // default: echo the question
}

func newFakeLLM(t *testing.T) *fakeLLM {
	f := &fakeLLM{}
	f.answer = func(s *sse, req chatRequest) {
		s.send("You said: ")
		s.send(req.last())
		s.done()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"object":"list","data":[{"id":"gpt-a","object":"model","owned_by":"t"},`+
			`{"id":"gpt-b","object":"model","owned_by":"t"},{"id":"claude-c","object":"model","owned_by":"t"}]}`)
	})
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Model    string `json:"model"`
			Messages []struct {
				Role    string          `json:"role"`
				Content json.RawMessage `json:"content"`
			} `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, `{"error":{"message":"bad json"}}`, 400)
			return
		}
		req := chatRequest{Model: body.Model}
		for i, m := range body.Messages {
			var text string
			if json.Unmarshal(m.Content, &text) != nil {
				var parts []struct {
					Text     string `json:"text"`
					ImageURL struct {
						URL string `json:"url"`
					} `json:"image_url"`
				}
				json.Unmarshal(m.Content, &parts)
				for _, p := range parts {
					text += p.Text
					if p.ImageURL.URL != "" {
						if req.Images == nil {
							req.Images = make(map[int][]string)
						}
						req.Images[i] = append(req.Images[i], p.ImageURL.URL)
					}
				}
			}
			req.Messages = append(req.Messages, chatMessage{Role: m.Role, Content: text})
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, req)
		answer := f.answer
		f.mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		answer(&sse{w: w, model: body.Model, ctx: r.Context()}, req)
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

func (f *fakeLLM) requests() []chatRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

func (f *fakeLLM) setAnswer(a func(s *sse, req chatRequest)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = a
}

// watchedStore tells waiters when a message is updated (an answer is
// stored with its platform id once it is fully shown).
type watchedStore struct {
	conversation.Store
	mu      sync.Mutex
	changed chan struct{}
}

func (s *watchedStore) UpdateMessage(ctx context.Context, m conversation.Message) error {
	err := s.Store.UpdateMessage(ctx, m)
	s.notify()
	return err
}

// UpdateAnswer is how the engine writes an answer under its claim.
func (s *watchedStore) UpdateAnswer(ctx context.Context, convID int64, m conversation.Message, owner string, token int64) error {
	err := s.Store.UpdateAnswer(ctx, convID, m, owner, token)
	s.notify()
	return err
}

func (s *watchedStore) notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// awaitAnswerStored waits until the engine stored the answer posted as
// message id: a reply to it finds its conversation from then on.
func (s *watchedStore) awaitAnswerStored(t *testing.T, workspace, id string) {
	t.Helper()
	s.awaitStored(t, workspace, id, func(m conversation.Message) bool { return m.Role == conversation.RoleAssistant })
}

// awaitStored waits until the message posted as id is stored and
// satisfies cond, and returns it.
func (s *watchedStore) awaitStored(t *testing.T, workspace, id string, cond func(conversation.Message) bool) conversation.Message {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		_, m, err := s.MessageByPlatformID(t.Context(), "discord", workspace, id)
		if err == nil && cond(m) {
			return m
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("message %s not stored as expected", id)
		}
	}
}

// world is Parley on the fake Discord.
type world struct {
	fake  *discordtest.Server
	llm   *fakeLLM
	store *watchedStore
	a     *Adapter
	ann   discordtest.User
	ch    string
	bot   string // the bot's mention
}

func newWorld(t *testing.T, fopts discordtest.Options, opts Options, tweaks ...func(*Adapter)) *world {
	t.Helper()
	return newWorldConfig(t, fopts, opts, nil, tweaks...)
}

// newWorldConfig is newWorld with the engine's configuration changed by
// config.
func newWorldConfig(t *testing.T, fopts discordtest.Options, opts Options, config func(*bots.Config), tweaks ...func(*Adapter)) *world {
	t.Helper()
	fake := discordtest.New(t, fopts)
	fl := newFakeLLM(t)
	quiet := slog.New(slog.DiscardHandler)
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "parley.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store := &watchedStore{Store: db, changed: make(chan struct{})}
	client, err := llm.New(llm.Config{BaseURL: fl.URL + "/v1", APIKey: "sk-test", DefaultModel: "gpt-a", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	cfg := bots.Config{DefaultModel: "gpt-a", Logger: testLogger(t)}
	if config != nil {
		config(&cfg)
	}
	eng := bots.New(cfg, store, client)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	<-eng.Started()
	t.Cleanup(func() { // after the adapter's clean-up: clean-ups run last first
		cancel()
		<-done
		store.Close()
	})
	a := run(t, fake, eng, opts, tweaks...)
	return &world{fake: fake, llm: fl, store: store, a: a, ann: fake.AddUser("ann"), ch: fake.AddChannel("general"), bot: "<@" + fake.BotID + ">"}
}

// answered waits until channel holds n live bot messages, the last of
// which is final (satisfies done), and returns them.
func (w *world) answered(t *testing.T, channel string, n int, done func(last string) bool) []discordtest.Message {
	t.Helper()
	var got []discordtest.Message
	w.fake.Await(t, wait, fmt.Sprintf("%d bot messages in %s", n, channel), func() bool {
		got = w.fake.BotMessages(channel)
		return len(got) == n && done(got[n-1].Content)
	})
	return got
}

func is(want string) func(string) bool { return func(s string) bool { return s == want } }

func TestE2EMentionAnswersInThreadWithHistory(t *testing.T) {
	t.Parallel()
	w := newWorld(t, discordtest.Options{}, Options{})
	w.llm.setAnswer(func(s *sse, req chatRequest) {
		switch req.last() {
		case "what is Go?":
			s.send("Go is a ")
			s.send("programming language.")
		default:
			s.send(fmt.Sprintf("Seen %d messages.", len(req.Messages)))
		}
		s.done()
	})
	q := w.fake.Post(w.ch, w.ann, w.bot+" what is Go?", "")
	got := w.answered(t, q.ID, 1, is("Go is a programming language."))
	if th := w.fake.Threads(w.ch); len(th) != 1 || th[0].ID != q.ID || th[0].Name != "what is Go?" {
		t.Errorf("got threads %+v, want one named after the question", th)
	}
	if got[0].AllowedMentions != `{"parse":[],"replied_user":false}` {
		t.Errorf("allowed_mentions %s", got[0].AllowedMentions)
	}

	// A follow-up in the thread needs no mention and carries the history.
	w.fake.Post(q.ID, w.ann, "and Rust?", "")
	w.answered(t, q.ID, 2, is("Seen 3 messages."))
	reqs := w.llm.requests()
	want := []chatMessage{{"user", "what is Go?"}, {"assistant", "Go is a programming language."}, {"user", "and Rust?"}}
	if last := reqs[len(reqs)-1]; !slices.Equal(last.Messages, want) || last.Model != "gpt-a" {
		t.Errorf("got request %+v, want model gpt-a with %v", last, want)
	}
	if n := w.fake.Stats().RateLimited; n != 0 {
		t.Errorf("%d 429s", n)
	}
}

func TestE2EReplyModeChain(t *testing.T) {
	t.Parallel()
	w := newWorld(t, discordtest.Options{}, Options{ReplyMode: ReplyReply})
	w.llm.setAnswer(func(s *sse, req chatRequest) {
		var b strings.Builder
		for _, m := range req.Messages {
			b.WriteString(m.Role[:1] + ":" + m.Content + " ")
		}
		s.send(strings.TrimSpace(b.String()))
		s.done()
	})
	q := w.fake.Post(w.ch, w.ann, w.bot+" one", "")
	got := w.answered(t, w.ch, 1, is("u:one"))
	if got[0].ReplyTo != q.ID || len(w.fake.Threads(w.ch)) != 0 {
		t.Fatalf("got %+v, want a reply to %s without thread", got[0], q.ID)
	}
	// Replying to the answer (Discord pings the bot by default) continues.
	w.store.awaitAnswerStored(t, w.fake.GuildID, got[0].ID)
	r := w.fake.Post(w.ch, w.ann, "two", got[0].ID)
	got = w.answered(t, w.ch, 2, is("u:one a:u:one u:two"))
	if got[1].ReplyTo != r.ID {
		t.Errorf("second answer replies to %q, want %s", got[1].ReplyTo, r.ID)
	}
}

func TestE2EDirectMessage(t *testing.T) {
	t.Parallel()
	w := newWorld(t, discordtest.Options{}, Options{})
	dm := w.fake.AddDM()
	w.fake.Post(dm, w.ann, "hello there", "")
	w.answered(t, dm, 1, is("You said: hello there"))
	w.fake.Post(dm, w.ann, "again", "")
	w.answered(t, dm, 2, is("You said: again"))
	if reqs := w.llm.requests(); len(reqs[1].Messages) != 3 {
		t.Errorf("second DM request has %d messages, want the history of 3", len(reqs[1].Messages))
	}
}

func TestE2EModelCommandThenMention(t *testing.T) {
	t.Parallel()
	w := newWorld(t, discordtest.Options{}, Options{})
	w.fake.SetOwner(w.ann) // a channel's model is for admins
	id := w.fake.Interact(discordtest.Interaction{Type: 4, GuildID: w.fake.GuildID, ChannelID: w.ch, User: w.ann,
		Name: "model", Options: []discordtest.Option{{Name: "name", Value: "gpt", Focused: true}}})
	var r discordtest.Response
	w.fake.Await(t, wait, "autocomplete", func() (ok bool) { r, ok = w.fake.Response(id); return ok })
	if !slices.Contains(r.Choices, "gpt-b") || slices.Contains(r.Choices, "claude-c") {
		t.Fatalf("got choices %v, want the gpt models", r.Choices)
	}
	id = w.fake.Interact(discordtest.Interaction{GuildID: w.fake.GuildID, ChannelID: w.ch, User: w.ann,
		Name: "model", Options: []discordtest.Option{{Name: "name", Value: "gpt-b"}}})
	w.fake.Await(t, wait, "the /model answer", func() (ok bool) { r, ok = w.fake.Response(id); return ok && r.Edits > 0 })
	if !r.Ephemeral || !strings.Contains(r.Content, "gpt-b") {
		t.Fatalf("got %+v, want an ephemeral confirmation", r)
	}
	q := w.fake.Post(w.ch, w.ann, w.bot+" hi", "")
	w.answered(t, q.ID, 1, is("You said: hi"))
	if reqs := w.llm.requests(); reqs[len(reqs)-1].Model != "gpt-b" {
		t.Errorf("the mention used %q, want gpt-b", reqs[len(reqs)-1].Model)
	}
}

func TestE2EAskStreamsInThread(t *testing.T) {
	t.Parallel()
	w := newWorld(t, discordtest.Options{}, Options{})
	id := w.fake.Interact(discordtest.Interaction{GuildID: w.fake.GuildID, ChannelID: w.ch, User: w.ann, Name: "ask",
		Options: []discordtest.Option{{Name: "prompt", Value: "why?"}, {Name: "model", Value: "claude-c"}}})
	var r discordtest.Response
	w.fake.Await(t, wait, "the /ask response", func() (ok bool) { r, ok = w.fake.Response(id); return ok })
	w.answered(t, r.MessageID, 1, is("You said: why?"))
	if reqs := w.llm.requests(); reqs[0].Model != "claude-c" {
		t.Errorf("got model %q, want claude-c", reqs[0].Model)
	}
}

func TestE2ELongAnswerSplitsWithBalancedFences(t *testing.T) {
	t.Parallel()
	w := newWorld(t, discordtest.Options{}, Options{})
	var b strings.Builder
	b.WriteString("Here is the code:\n\n```go\n")
	for i := 0; b.Len() < 4900; i++ {
		fmt.Fprintf(&b, "fmt.Println(\"line %03d of a long listing\")\n", i)
	}
	b.WriteString("```\n\nThat is all.")
	answer := b.String()
	w.llm.setAnswer(func(s *sse, req chatRequest) {
		for rest := answer; rest != ""; {
			n := min(len(rest), 700)
			s.send(rest[:n])
			rest = rest[n:]
		}
		s.done()
	})
	q := w.fake.Post(w.ch, w.ann, w.bot+" show me a long listing", "")
	var got []discordtest.Message
	w.fake.Await(t, wait, "the whole answer", func() bool {
		got = w.fake.BotMessages(q.ID)
		return len(got) >= 3 && strings.HasSuffix(got[len(got)-1].Content, "That is all.")
	})
	var lines []string
	for i, m := range got {
		if n := utf8.RuneCountInString(m.Content); n > 2000 {
			t.Errorf("message %d has %d characters", i, n)
		}
		if n := strings.Count(m.Content, "```"); n%2 != 0 {
			t.Errorf("message %d has %d fences:\n%s", i, n, m.Content)
		}
		lines = append(lines, codeLines(m.Content)...)
	}
	if want := codeLines(answer); !slices.Equal(lines, want) {
		t.Errorf("the messages hold %d lines, want the answer's %d in order", len(lines), len(want))
	}
}

// codeLines returns the non-empty lines of s that are not fences.
func codeLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "```") {
			out = append(out, l)
		}
	}
	return out
}

func TestE2ELLMFailureKeepsPartialText(t *testing.T) {
	t.Parallel()
	w := newWorld(t, discordtest.Options{}, Options{})
	w.llm.setAnswer(func(s *sse, req chatRequest) {
		s.send("The first half of the answer")
		panic(http.ErrAbortHandler) // the connection breaks mid-answer
	})
	q := w.fake.Post(w.ch, w.ann, w.bot+" tell me", "")
	got := w.answered(t, q.ID, 1, func(s string) bool { return strings.Contains(s, "⚠️") })
	if !strings.HasPrefix(got[0].Content, "The first half of the answer\n\n⚠️") || !strings.Contains(got[0].Content, "cut off") {
		t.Errorf("got %q, want the partial text then a notice", got[0].Content)
	}
}

func TestE2EBotsIgnored(t *testing.T) {
	t.Parallel()
	w := newWorld(t, discordtest.Options{}, Options{})
	other := w.fake.AddBot("otherbot")
	b := w.fake.Post(w.ch, other, w.bot+" from a bot", "")
	h := w.fake.PostWebhook(w.ch, w.bot+" from a webhook")
	q := w.fake.Post(w.ch, w.ann, w.bot+" from a person", "")
	w.answered(t, q.ID, 1, is("You said: from a person"))
	if reqs := w.llm.requests(); len(reqs) != 1 {
		t.Errorf("got %d LLM requests, want only the person's", len(reqs))
	}
	if th := w.fake.Threads(w.ch); len(th) != 1 || th[0].ID == b.ID || th[0].ID == h.ID {
		t.Errorf("got threads %+v, want only the person's", th)
	}
}

func TestE2EResumeKeepsEventSentDuringDrop(t *testing.T) {
	t.Parallel()
	w := newWorld(t, discordtest.Options{}, Options{})
	w.fake.Drop()
	q := w.fake.Post(w.ch, w.ann, w.bot+" are you there?", "")
	w.answered(t, q.ID, 1, is("You said: are you there?"))
	if st := w.fake.Stats(); st.Resumes != 1 || st.Identifies != 1 {
		t.Errorf("got %d resumes and %d identifies, want 1 and 1", st.Resumes, st.Identifies)
	}
}

func TestE2ENewSessionAnswersMissedMention(t *testing.T) {
	t.Parallel()
	w := newWorld(t, discordtest.Options{}, Options{})
	first := w.fake.Post(w.ch, w.ann, w.bot+" first", "")
	w.answered(t, first.ID, 1, is("You said: first"))
	w.fake.InvalidateSession()
	w.fake.Drop()
	q := w.fake.Post(w.ch, w.ann, w.bot+" missed?", "")
	w.answered(t, q.ID, 1, is("You said: missed?"))
	if st := w.fake.Stats(); st.Identifies != 2 {
		t.Errorf("got %d identifies, want 2", st.Identifies)
	}
	if n := len(w.fake.BotMessages(first.ID)); n != 1 {
		t.Errorf("the first question was answered %d times", n)
	}
}

func TestE2ESteadyStreamDrawsNo429Scaled(t *testing.T) {
	t.Parallel()
	// Discord's 5 calls per 5 s, ten times faster, on both sides.
	const window = 500 * time.Millisecond
	w := newWorld(t, discordtest.Options{Window: window}, Options{}, func(a *Adapter) {
		a.window = window
	})
	const chunks = 30
	w.llm.setAnswer(func(s *sse, req chatRequest) {
		for i := range chunks {
			word := fmt.Sprintf("w%02d ", i)
			s.send(word)
			// The model speeds up to the edits: the next word comes as
			// soon as this one is shown, so the bot edits as fast as the
			// limits allow.
			if !shown(s.ctx, w.fake, word) {
				return
			}
		}
		s.done()
	})
	q := w.fake.Post(w.ch, w.ann, w.bot+" count", "")
	var want strings.Builder
	for i := range chunks {
		fmt.Fprintf(&want, "w%02d ", i)
	}
	got := w.answered(t, q.ID, 1, func(s string) bool { return strings.TrimSpace(s) == strings.TrimSpace(want.String()) })
	if n := w.fake.Stats().RateLimited; n != 0 {
		t.Errorf("got %d 429s, want 0", n)
	}
	if got[0].Edits < chunks-2 {
		t.Errorf("got %d edits, want about one per word", got[0].Edits)
	}
}

// shown waits until a bot message contains text, or ctx ends.
func shown(ctx context.Context, fake *discordtest.Server, text string) bool {
	for {
		ch := fake.Changed()
		if anyBotMessageContains(fake, text) {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

func anyBotMessageContains(fake *discordtest.Server, text string) bool {
	for _, m := range fake.AllMessages() {
		if m.Author.ID == fake.BotID && !m.Deleted && strings.Contains(m.Content, strings.TrimSpace(text)) {
			return true
		}
	}
	return false
}
