package discord

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/parleyhq/parley/adapters/discord/discordtest"
	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/conversation"
)

func TestNewRejectsMoreBadOptions(t *testing.T) {
	if _, err := New(Options{Token: "x"}, nil, nil); err == nil || !strings.Contains(err.Error(), "no engine") {
		t.Errorf("no engine: got %v", err)
	}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"negative shard count", Options{Token: "x", ShardCount: -1}, "shard id must be below"},
		{"shard without a count", Options{Token: "x", ShardID: 1}, "shard id must be below"},
		{"negative upload limit", Options{Token: "x", MaxUploadBytes: -1}, "upload limit -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newAdapter(tt.opts, newRecorder(), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestRunGatewayUnreachable(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	a := newReplica(t, fake, Options{})
	a.s.Dialer.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, errors.New("connection refused")
	}
	err := a.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "discord: open the gateway") || strings.Contains(err.Error(), fake.Token()) {
		t.Fatalf("got %v, want an error saying the gateway did not open, without the token", err)
	}
	select {
	case <-a.Authenticated():
		t.Error("Authenticated is closed though the gateway never accepted the token")
	default:
	}
	if a.Ready() {
		t.Error("ready without a gateway")
	}
	if err := a.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "Run called twice") {
		t.Errorf("a second Run: got %v", err)
	}
	if st := fake.Stats(); st.Identifies != 0 {
		t.Errorf("got %d identifies, want none", st.Identifies)
	}
}

func TestRunStoppedWhileStarting(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	a := newReplica(t, fake, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := a.Run(ctx); err != nil {
		t.Errorf("Run stopped before it started: got %v, want nil", err)
	}
}

func TestDownloadFailures(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	a := newReplica(t, fake, Options{})
	ctx := t.Context()

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream trouble", http.StatusBadGateway)
	}))
	t.Cleanup(srv.Close)
	_, err := a.Download(ctx, conversation.Attachment{Name: "x.png", URL: srv.URL + "/x.png?ex=1&hm=secret"}, 1<<20)
	if err == nil || errors.Is(err, bots.ErrGone) || !strings.Contains(err.Error(), "HTTP 502") {
		t.Errorf("a CDN error: got %v, want HTTP 502, not ErrGone", err)
	}

	// A CDN that cannot be reached: the error does not show the link's
	// signature.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = a.Download(ctx, conversation.Attachment{Name: "x.png", URL: "http://" + addr + "/x.png?ex=1&hm=secret"}, 1<<20)
	if err == nil || strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), addr+"/x.png") {
		t.Errorf("an unreachable CDN: got %v, want an error naming the link without its query", err)
	}
}

func TestUploadFromADeletedMention(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	rec := newRecorder()
	a := run(t, fake, rec, Options{})
	ch := fake.AddChannel("general")
	dest := mentionDest(t, fake, rec, ch, fake.AddUser("ann"), "a video please")
	fake.Delete(dest.Thread)
	_, err := a.Upload(t.Context(), dest, bots.File{Name: "v.mp4", MIME: "video/mp4", Size: 3, Body: strings.NewReader("abc")})
	if !errors.Is(err, bots.ErrGone) {
		t.Fatalf("got %v, want ErrGone", err)
	}
	if st := fake.Stats(); st.Uploads != 0 || st.Threads != 0 {
		t.Errorf("got %d uploads and %d threads, want none", st.Uploads, st.Threads)
	}
	if _, err := a.Upload(t.Context(), dest, bots.File{Name: "v.mp4", Size: 3}); err == nil {
		t.Error("an upload without a body: got no error")
	}
}

func TestEmptyTextsAndGoneTargets(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	a := newReplica(t, fake, Options{})
	ch := fake.AddChannel("general")
	dest := bots.Destination{Channel: ch}
	ctx := t.Context()
	// Discord refuses an empty message: a blank answer shows "…".
	id, err := a.Post(ctx, dest, "  \n ")
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := fake.Message(id); m.Content != "…" {
		t.Errorf("a blank post shows %q, want \"…\"", m.Content)
	}
	if err := a.Edit(ctx, dest, id, "", true); err != nil {
		t.Fatal(err)
	}
	if m, _ := fake.Message(id); m.Content != "…" || m.Edits != 1 {
		t.Errorf("a blank edit: %+v, want \"…\" after one edit", m)
	}
	// An empty status cannot clear the typing indicator: nothing is sent.
	if err := a.Progress(ctx, dest, ""); err != nil || fake.TypingIn(ch) != 0 {
		t.Errorf("an empty status: %v, %d typing; want nothing sent", err, fake.TypingIn(ch))
	}
	gone := bots.Destination{Channel: "404"}
	if err := a.Progress(ctx, gone, "thinking"); !errors.Is(err, bots.ErrGone) {
		t.Errorf("typing in an unknown channel: got %v, want ErrGone", err)
	}
	if err := a.Delete(ctx, dest, "1"); !errors.Is(err, bots.ErrGone) {
		t.Errorf("deleting an unknown message: got %v, want ErrGone", err)
	}
	if _, ok := fake.Message(id); !ok || len(fake.BotMessages(ch)) != 1 {
		t.Error("the bot's message is gone")
	}
}
