package bots_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/bots/botstest"
	"github.com/parleyhq/parley/bots/media"
	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/conversation/sqlite"
	"github.com/parleyhq/parley/llm"
	"github.com/parleyhq/parley/llm/llmtest"
)

func dm(id, user, text string) bots.Incoming {
	return bots.Incoming{Workspace: "W1", Channel: "D-" + user, MessageID: id, Author: user, DM: true, Text: text}
}

func TestAccessControl(t *testing.T) {
	h := newHarness(t, botstest.SlackLike, bots.Config{Access: bots.Access{Users: []string{"U1"}, Roles: []string{"R-ops"}}})
	ctx := context.Background()
	h.handle(t, dm("m1", "U2", "let me in"))
	h.waitMessages(t, "a polite refusal", func(ms []botstest.Message) bool {
		return len(ms) == 1 && strings.Contains(ms[0].Text, "not available to you")
	})
	// In a channel a refusal is silence; a role on the list lets one in.
	stranger := mention("m2", "m2", "hello?")
	stranger.Author = "U2"
	h.handle(t, stranger)
	in := mention("m3", "m3", "ops here")
	in.Author, in.Roles = "U3", []string{"R-ops"}
	h.handle(t, in)
	h.handle(t, dm("m4", "U1", "me too"))
	h.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "D-U1"}, 1)
	h.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m3"}, 1)
	if n := len(h.llm.Requests()); n != 2 {
		t.Errorf("the model was asked %d times, want 2 (the listed user and the role member)", n)
	}
	if r := h.engine.Command(ctx, h.p, bots.Command{Workspace: "W1", Channel: "C1", User: "U2", Name: "model"}); !strings.Contains(r.Text, "not available") {
		t.Errorf("a refused person's /model answers %q", r.Text)
	}
}

func TestUserRateAndDailyBudget(t *testing.T) {
	h := newHarness(t, botstest.SlackLike, bots.Config{UserRate: bots.Rate{Every: 30 * time.Minute, Burst: 2}, DailyTokens: 15})
	ctx := context.Background()
	h.handle(t, dm("m1", "U1", "one"))
	key := conversation.Key{Platform: "fake", Workspace: "W1", Channel: "D-U1"}
	h.waitStored(t, key, 1)
	// The fake model counts the request's tokens (7 for the first, 15 for
	// the second with its history) and one per chunk: the first answer
	// spends 8 of the 15; the second is still allowed.
	h.handle(t, dm("m2", "U1", "two"))
	h.waitStored(t, key, 2)
	h.handle(t, dm("m3", "U1", "three"))
	h.waitMessages(t, "the rate notice", func(ms []botstest.Message) bool {
		return len(ms) == 3 && strings.Contains(ms[2].Text, "faster than Parley allows")
	})
	r := h.engine.Command(ctx, h.p, bots.Command{Workspace: "W1", Channel: "D-U1", User: "U1", DM: true, Name: "usage"})
	if !strings.Contains(r.Text, "today (UTC): 2 request(s), 22 tokens in, 2 tokens out") || !strings.Contains(r.Text, "0 left today") {
		t.Errorf("/usage answers %q", r.Text)
	}
	// Another person has a budget of their own, but the spent one is
	// refused even under the rate.
	h2 := newHarness(t, botstest.SlackLike, bots.Config{DailyTokens: 5})
	h2.handle(t, dm("m1", "U1", "one"))
	h2.waitStored(t, key, 1)
	h2.handle(t, dm("m2", "U1", "two"))
	h2.waitMessages(t, "the budget notice", func(ms []botstest.Message) bool {
		return len(ms) == 2 && strings.Contains(ms[1].Text, "tokens for today")
	})
	h2.handle(t, dm("m3", "U2", "hi"))
	h2.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "D-U2"}, 1)
}

func TestMediaDeliveredAsFiles(t *testing.T) {
	video := bytes.Repeat([]byte("\x00\x00\x00\x18ftypmp42"), 4096)
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "video/mp4")
		w.Write(video)
	}))
	defer files.Close()
	fetcher := media.New(media.Config{AllowPrivate: true})
	h := newHarness(t, botstest.SlackLike, bots.Config{Media: fetcher})
	answer := "queued\nprogress 50%\nprogress 100%\n\n[Your video](" + files.URL + "/out/cat.mp4)"
	h.llm.Answer = func(llmtest.Request) llmtest.Reply { return llmtest.Reply{Chunks: llmtest.Words(answer, 1)} }
	h.handle(t, mention("m1", "m1", "a cat video"))
	hist := h.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m1"}, 1)
	ups := h.p.Uploads()
	if len(ups) != 1 || ups[0].Name != "cat.mp4" || !bytes.Equal(ups[0].Data, video) || ups[0].Dest.Thread != "m1" {
		t.Fatalf("uploads %d, want cat.mp4 with the video's bytes in thread m1", len(ups))
	}
	if a := hist[len(hist)-1]; len(a.Attachments) != 1 || a.Attachments[0].Name != "cat.mp4" {
		t.Errorf("the stored answer records %+v, want the delivered file", a.Attachments)
	}
	if got := h.p.Messages()[0].Text; got != answer {
		t.Errorf("the answer's text %q changed, want the link kept", got)
	}
	// The next question tells the model what was delivered.
	h.handle(t, bots.Incoming{Workspace: "W1", Channel: "C1", Thread: "m1", MessageID: "m2", Author: "U1", Text: "thanks"})
	h.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "C1", Thread: "m1"}, 2)
	if req := h.llm.Requests()[1]; !strings.Contains(req.Messages[1].Text(), "Parley attached to this answer: cat.mp4") {
		t.Errorf("the history does not say what was delivered: %q", req.Messages[1].Text())
	}
}

func TestMediaTooLargeOrPrivateStaysALink(t *testing.T) {
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Write(bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 1024))
	}))
	defer files.Close()
	tests := []struct {
		name    string
		fetcher *media.Fetcher
		max     int64
		want    string
	}{
		{name: "over the platform's limit", fetcher: media.New(media.Config{AllowPrivate: true}), max: 100, want: "larger than this chat allows"},
		{name: "private address", fetcher: media.New(media.Config{}), want: "not a public one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, botstest.SlackLike, bots.Config{Media: tt.fetcher})
			h.p.MaxUpload = tt.max
			answer := "Here: ![a cat](" + files.URL + "/cat.png)"
			h.llm.Answer = func(llmtest.Request) llmtest.Reply { return llmtest.Reply{Chunks: []string{answer}} }
			h.handle(t, mention("m1", "m1", "a cat"))
			ms := h.waitMessages(t, "the note", func(ms []botstest.Message) bool { return len(ms) == 2 })
			if ms[0].Text != answer || !strings.Contains(ms[1].Text, tt.want) || !strings.Contains(ms[1].Text, "cat.png") {
				t.Errorf("messages %q / %q, want the answer, then a note that says %q", ms[0].Text, ms[1].Text, tt.want)
			}
			if n := len(h.p.Uploads()); n != 0 {
				t.Errorf("%d uploads, want none", n)
			}
		})
	}
}

func TestImagesReachVisionModels(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\nfake image bytes")
	for _, tt := range []struct {
		model  string
		images int
		note   string
	}{
		{model: "fake-large", images: 1},
		{model: "fake-small", note: "does not take images"},
	} {
		t.Run(tt.model, func(t *testing.T) {
			h := newHarness(t, botstest.SlackLike, bots.Config{DefaultModel: tt.model, VisionModels: []string{"fake-l*"}})
			h.p.AddFile("https://files.example/shot.png", png)
			h.p.AddFile("https://files.example/main.go", []byte("package main\n"))
			in := dm("m1", "U1", "what is in this?")
			in.Attachments = []conversation.Attachment{
				{Name: "shot.png", MIME: "image/png", Size: int64(len(png)), URL: "https://files.example/shot.png"},
				{Name: "main.go", MIME: "text/x-go", Size: 13, URL: "https://files.example/main.go"},
			}
			h.handle(t, in)
			h.waitStored(t, conversation.Key{Platform: "fake", Workspace: "W1", Channel: "D-U1"}, 1)
			last := h.llm.Requests()[0].Messages
			msg := last[len(last)-1]
			imgs := msg.Images()
			if len(imgs) != tt.images {
				t.Fatalf("%d image parts, want %d", len(imgs), tt.images)
			}
			if tt.images == 1 && imgs[0] != "data:image/png;base64,"+base64.StdEncoding.EncodeToString(png) {
				t.Errorf("image part %.60q, want the file's bytes as a data URL", imgs[0])
			}
			if !strings.Contains(msg.Text(), "--- main.go ---\npackage main") {
				t.Errorf("the text file is not in the message: %q", msg.Text())
			}
			if !strings.Contains(msg.Text(), tt.note) {
				t.Errorf("message %q, want it to say %q", msg.Text(), tt.note)
			}
		})
	}
}

// TestReplicasAnswerInOrder runs two engines on one database, as two
// replicas would: the messages of one conversation reach both, and each is
// answered once, in order; a question a dead replica stored but never
// answered is answered by the other.
func TestReplicasAnswerInOrder(t *testing.T) {
	srv := llmtest.NewServer()
	defer srv.Close()
	hold := make(chan struct{})
	srv.Answer = func(r llmtest.Request) llmtest.Reply {
		q := r.Messages[len(r.Messages)-1].Text()
		if q == "first" {
			return llmtest.Reply{Chunks: []string{"answer to ", "first"}, Hold: hold}
		}
		return llmtest.Reply{Chunks: []string{"answer to " + q}}
	}
	path := filepath.Join(t.TempDir(), "shared.db")
	p := botstest.New("fake", botstest.SlackLike)
	start := func(owner string) (*bots.Engine, conversation.Store) {
		store, err := sqlite.Open(context.Background(), path, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		client, _ := llm.New(llm.Config{BaseURL: srv.BaseURL(), APIKey: "k", DefaultModel: "fake-small"})
		e := bots.New(bots.Config{DefaultModel: "fake-small", Owner: owner, OrderWait: 300 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}, store, client)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); e.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done; store.Close() })
		<-e.Started()
		return e, store
	}
	a, store := start("replica-a")
	b, _ := start("replica-b")
	ctx := context.Background()
	handle(t, a, p, dm("m1", "U1", "first"))
	h := &harness{p: p, store: store}
	h.waitMessages(t, "the first answer's start", func(ms []botstest.Message) bool { return len(ms) == 1 })
	handle(t, b, p, dm("m2", "U1", "second"))
	handle(t, a, p, dm("m3", "U1", "third"))
	close(hold)
	key := conversation.Key{Platform: "fake", Workspace: "W1", Channel: "D-U1"}
	hist := h.waitStored(t, key, 3)
	var got []string
	for _, m := range hist {
		got = append(got, m.Text)
	}
	want := "first|answer to first|second|answer to second|third|answer to third"
	if strings.Join(got, "|") != want {
		t.Fatalf("history %q, want %q", strings.Join(got, "|"), want)
	}
	if n := len(srv.Requests()); n != 3 {
		t.Errorf("the model was asked %d times, want 3", n)
	}

	// A question a replica stored and died before answering.
	conv, _ := store.FindConversation(ctx, key)
	store.Append(ctx, conv.ID, conversation.Message{Role: conversation.RoleUser, Author: "U1", PlatformID: "m4", Text: "orphan"})
	handle(t, b, p, dm("m5", "U1", "fifth"))
	hist = h.waitStored(t, key, 5)
	got = got[:0]
	for _, m := range hist[6:] {
		got = append(got, m.Text)
	}
	if strings.Join(got, "|") != "orphan|answer to orphan|fifth|answer to fifth" {
		t.Fatalf("after the orphan, history %q", got)
	}
}

// TestReplicasShareBudgets runs two engines on one database answering one
// workspace at once, against a platform that enforces the workspace's
// limits once for both: each takes half of every budget, so together they
// draw no 429, and every answer is exact.
func TestReplicasShareBudgets(t *testing.T) {
	srv := llmtest.NewServer()
	defer srv.Close()
	answer := strings.Repeat("many words stream here now. ", 30)
	srv.Answer = func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Chunks: llmtest.Words(answer, 1), Every: 5 * time.Millisecond}
	}
	path := filepath.Join(t.TempDir(), "shared.db")
	p := botstest.New("fake", botstest.SlackNativeLike)
	start := func(owner string) *bots.Engine {
		store, err := sqlite.Open(context.Background(), path, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		client, err := llm.New(llm.Config{BaseURL: srv.BaseURL(), APIKey: "k", DefaultModel: "fake-small"})
		if err != nil {
			t.Fatal(err)
		}
		// Beats a quarter second apart: a loaded machine (-race) may
		// miss a lease of a few tens of milliseconds, and a replica that
		// looks gone gives its share back for a moment.
		e := bots.New(bots.Config{DefaultModel: "fake-small", Owner: owner, HeartbeatEvery: 250 * time.Millisecond,
			Logger: slog.New(slog.DiscardHandler)}, store, client)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); e.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done; store.Close() })
		<-e.Started()
		return e
	}
	engines := []*bots.Engine{start("replica-a"), start("replica-b")}
	deadline := time.Now().Add(10 * time.Second)
	for engines[0].Replicas() != 2 || engines[1].Replicas() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("replicas see %d and %d of each other, want 2", engines[0].Replicas(), engines[1].Replicas())
		}
		<-time.After(5 * time.Millisecond)
	}
	const n = 30
	ctx := context.Background()
	for i := range n {
		in := bots.Incoming{Workspace: "W1", Channel: fmt.Sprintf("C%d", i), Thread: fmt.Sprintf("t%d", i),
			MessageID: fmt.Sprintf("t%d", i), Author: "U1", Mentioned: true, Text: "go"}
		if err := engines[i%2].Handle(ctx, p, in); err != nil {
			t.Fatal(err)
		}
	}
	want := strings.Join(strings.Fields(answer), " ")
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	exact := func(p *botstest.Platform) int {
		by := make(map[string]string)
		streaming := make(map[string]bool)
		for _, m := range p.Messages() {
			by[m.Dest.Thread] += m.Text + " "
			streaming[m.Dest.Thread] = streaming[m.Dest.Thread] || m.Streaming
		}
		k := 0
		for th, text := range by {
			if strings.Join(strings.Fields(text), " ") == want && !streaming[th] {
				k++
			}
		}
		return k
	}
	if !p.WaitFor(wctx, func(p *botstest.Platform) bool { return exact(p) == n }) {
		t.Fatalf("%d of %d answers exact", exact(p), n)
	}
	if st := p.Stats(); st.RateLimited != 0 {
		t.Errorf("%d 429s (%v), want none: the replicas overspent the workspace's budgets", st.RateLimited, st.LimitedByCall)
	}
}
