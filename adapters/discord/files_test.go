package discord

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/parleyhq/parley/adapters/discord/discordtest"
	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/conversation"
)

// randomBytes returns n reproducible bytes that do not compress.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestIncomingAttachments(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	rec := newRecorder()
	run(t, fake, rec, Options{})
	ch := fake.AddChannel("general")
	ann := fake.AddUser("ann")
	png := randomBytes(3000)

	t.Run("an image with a question", func(t *testing.T) {
		att := fake.AddAttachment(ch, "cat.png", "image/png", png)
		m := fake.PostFiles(ch, ann, "<@"+fake.BotID+"> what is this?", att)
		got := rec.incoming(t, m.ID)
		want := []conversation.Attachment{{Name: "cat.png", MIME: "image/png", Size: 3000, URL: att.URL, PlatformID: att.ID}}
		if got.Text != "what is this?" || !got.Mentioned || fmt.Sprint(got.Attachments) != fmt.Sprint(want) {
			t.Errorf("got text %q mentioned %v attachments %+v, want %+v", got.Text, got.Mentioned, got.Attachments, want)
		}
	})
	t.Run("files without text", func(t *testing.T) {
		// Discord leaves out the type of files it does not recognise.
		a1 := fake.AddAttachment(ch, "photo.WEBP", "", []byte("RIFF"))
		a2 := fake.AddAttachment(ch, "clip.zzqx", "", []byte{1, 2})
		m := fake.PostFiles(ch, ann, "", a1, a2)
		got := rec.incoming(t, m.ID)
		if got.Text != "" || len(got.Attachments) != 2 {
			t.Fatalf("got text %q and %d attachments, want none and 2", got.Text, len(got.Attachments))
		}
		if got.Attachments[0].MIME != "image/webp" || got.Attachments[1].MIME != "" {
			t.Errorf("got types %q and %q, want image/webp (from the name) and none", got.Attachments[0].MIME, got.Attachments[1].MIME)
		}
	})
}

func TestDownload(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	a := run(t, fake, newRecorder(), Options{})
	ch := fake.AddChannel("general")
	data := randomBytes(200_000)
	att := fake.AddAttachment(ch, "photo.jpg", "image/jpeg", data)
	in := conversation.Attachment{Name: att.Filename, MIME: att.ContentType, Size: att.Size, URL: att.URL, PlatformID: att.ID}
	ctx := t.Context()

	t.Run("the file's bytes, without the token", func(t *testing.T) {
		rc, err := a.Download(ctx, in, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("got %d bytes (%v), want the %d attached", len(got), err, len(data))
		}
		if st := fake.Stats(); st.CDNRequests != 1 || st.CDNWithToken != 0 {
			t.Errorf("CDN saw %d requests, %d with a token; want 1 and none", st.CDNRequests, st.CDNWithToken)
		}
	})
	t.Run("refused when the length is over max", func(t *testing.T) {
		_, err := a.Download(ctx, in, int64(len(data)-1))
		if !errors.Is(err, bots.ErrTooLarge) {
			t.Errorf("got %v, want ErrTooLarge", err)
		}
	})
	t.Run("exactly max", func(t *testing.T) {
		rc, err := a.Download(ctx, in, int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if got, err := io.ReadAll(rc); err != nil || len(got) != len(data) {
			t.Errorf("got %d bytes, %v; want all %d", len(got), err, len(data))
		}
	})
	t.Run("cut past max when the length is not announced", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write(data[:1000])
			w.(http.Flusher).Flush() // chunked: no Content-Length
			w.Write(data[1000:])
		}))
		t.Cleanup(srv.Close)
		rc, err := a.Download(ctx, conversation.Attachment{Name: "x.jpg", URL: srv.URL + "/x.jpg"}, 150_000)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		got, err := io.ReadAll(rc)
		if !errors.Is(err, bots.ErrTooLarge) || len(got) > 150_000 {
			t.Errorf("got %d bytes and %v, want at most 150000 and ErrTooLarge", len(got), err)
		}
	})
	t.Run("gone", func(t *testing.T) {
		gone := in
		gone.URL = strings.Replace(in.URL, att.ID, "1", 1)
		if _, err := a.Download(ctx, gone, 1<<20); !errors.Is(err, bots.ErrGone) {
			t.Errorf("got %v, want ErrGone", err)
		}
	})
	t.Run("not http", func(t *testing.T) {
		for _, u := range []string{"", "file:///etc/passwd", "attachment://x.png", "https://"} {
			if _, err := a.Download(ctx, conversation.Attachment{Name: "x", URL: u}, 10); err == nil {
				t.Errorf("URL %q: downloaded, want an error", u)
			}
		}
	})
}

// threadDest posts a mention, answers it once (which starts the thread)
// and returns the destination of its answer.
func threadDest(t *testing.T, fake *discordtest.Server, rec *recorder, a *Adapter, ch string) bots.Destination {
	t.Helper()
	ann := fake.AddUser("ann")
	m := fake.Post(ch, ann, "<@"+fake.BotID+"> make a video", "")
	in := rec.incoming(t, m.ID)
	dest := bots.Destination{Workspace: in.Workspace, Channel: in.Channel, Thread: in.Thread, ReplyTo: in.MessageID, User: ann.ID}
	if _, err := a.Post(t.Context(), dest, "Here it is."); err != nil {
		t.Fatal(err)
	}
	return dest
}

func TestUploadInThread(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	rec := newRecorder()
	a := run(t, fake, rec, Options{})
	ch := fake.AddChannel("general")
	dest := threadDest(t, fake, rec, a, ch)
	data := randomBytes(5 << 20)

	got, err := a.Upload(t.Context(), dest, bots.File{Name: "clip.mp4", MIME: "video/mp4", Size: int64(len(data)), Body: bytes.NewReader(data)})
	if err != nil {
		t.Fatal(err)
	}
	msgs := fake.BotMessages(dest.Thread)
	if len(msgs) != 2 || len(msgs[1].Attachments) != 1 {
		t.Fatalf("the thread holds %+v, want the answer then the file", msgs)
	}
	up := msgs[1].Attachments[0]
	if up.Filename != "clip.mp4" || up.ContentType != "video/mp4" || up.Size != int64(len(data)) || up.SHA256 != sum(data) {
		t.Errorf("Discord got %+v, want clip.mp4, video/mp4, the %d bytes sent", up, len(data))
	}
	if msgs[1].AllowedMentions != `{"parse":[],"replied_user":false}` {
		t.Errorf("allowed_mentions %s, want none", msgs[1].AllowedMentions)
	}
	want := conversation.Attachment{Name: "clip.mp4", MIME: "video/mp4", Size: int64(len(data)), URL: up.URL, PlatformID: up.ID}
	if got != want {
		t.Errorf("Upload returned %+v, want %+v", got, want)
	}
	if len(fake.BotMessages(ch)) != 0 {
		t.Error("a file landed in the channel, not the thread")
	}
}

func TestUploadReplyMode(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	rec := newRecorder()
	a := run(t, fake, rec, Options{ReplyMode: ReplyReply})
	ch := fake.AddChannel("general")
	m := fake.Post(ch, fake.AddUser("ann"), "<@"+fake.BotID+"> draw a cat", "")
	in := rec.incoming(t, m.ID)
	dest := bots.Destination{Workspace: in.Workspace, Channel: in.Channel, Thread: in.Thread, ReplyTo: in.MessageID}

	data := []byte("\x89PNG not really")
	if _, err := a.Upload(t.Context(), dest, bots.File{Name: "dir/cat\r\n.png", MIME: "image/png", Size: int64(len(data)), Body: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	msgs := fake.BotMessages(ch)
	if len(msgs) != 1 || msgs[0].ReplyTo != m.ID || len(msgs[0].Attachments) != 1 || msgs[0].Attachments[0].SHA256 != sum(data) {
		t.Fatalf("the channel holds %+v, want the file as a reply to %s", msgs, m.ID)
	}
	if name := msgs[0].Attachments[0].Filename; name != "cat__.png" {
		t.Errorf("file name %q, want cat__.png (no path, no line breaks)", name)
	}
	if len(fake.Threads(ch)) != 0 {
		t.Error("a thread was started in reply mode")
	}
}

// countingReader records whether it was read.
type countingReader struct{ n int }

func (c *countingReader) Read(p []byte) (int, error) {
	c.n += len(p)
	return len(p), nil
}

func TestUploadTooLarge(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{UploadLimit: 1 << 20})
	rec := newRecorder()
	a := run(t, fake, rec, Options{})
	ch := fake.AddChannel("general")
	dest := threadDest(t, fake, rec, a, ch)
	ctx := t.Context()

	t.Run("over the configured limit: not sent", func(t *testing.T) {
		before := fake.Stats().Requests
		body := &countingReader{}
		_, err := a.Upload(ctx, dest, bots.File{Name: "big.mp4", MIME: "video/mp4", Size: 11 << 20, Body: body})
		if !errors.Is(err, bots.ErrTooLarge) {
			t.Fatalf("got %v, want ErrTooLarge", err)
		}
		if n := fake.Stats().Requests - before; n != 0 || body.n != 0 {
			t.Errorf("%d requests made, %d bytes read; want none", n, body.n)
		}
	})
	t.Run("refused by Discord", func(t *testing.T) {
		// This server's limit (1 MiB here) is below the bot's setting.
		data := randomBytes(2 << 20)
		_, err := a.Upload(ctx, dest, bots.File{Name: "big.mp4", MIME: "video/mp4", Size: int64(len(data)), Body: bytes.NewReader(data)})
		if !errors.Is(err, bots.ErrTooLarge) {
			t.Fatalf("got %v, want ErrTooLarge", err)
		}
		if st := fake.Stats(); st.TooLarge != 1 || st.Uploads != 0 {
			t.Errorf("the fake answered %d 413s and took %d files, want 1 and none", st.TooLarge, st.Uploads)
		}
	})
	t.Run("body shorter or longer than its size", func(t *testing.T) {
		for _, n := range []int{99, 101} {
			_, err := a.Upload(ctx, dest, bots.File{Name: "x.bin", Size: 100, Body: bytes.NewReader(make([]byte, n))})
			if err == nil || errors.Is(err, bots.ErrTooLarge) {
				t.Errorf("%d bytes for a size of 100: got %v, want an error", n, err)
			}
		}
	})
}

func TestUploadRateLimited(t *testing.T) {
	t.Parallel()
	fake := discordtest.New(t, discordtest.Options{})
	a := run(t, fake, newRecorder(), Options{})
	// A second adapter spends the channel's bucket behind a's back.
	b, err := newAdapter(Options{Token: fake.Token(), APIURL: fake.APIURL()}, newRecorder(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ch := fake.AddChannel("general")
	dest := bots.Destination{Channel: ch}
	ctx := t.Context()
	if _, err := a.Post(ctx, dest, "0"); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if _, err := b.Post(ctx, dest, "x"); err != nil {
			t.Fatal(err)
		}
	}
	_, err = a.Upload(ctx, dest, bots.File{Name: "a.txt", MIME: "text/plain", Size: 2, Body: strings.NewReader("hi")})
	var rle *bots.RateLimitError
	if !errors.As(err, &rle) || rle.RetryAfter <= 0 {
		t.Fatalf("got %v, want a *bots.RateLimitError", err)
	}
	if st := fake.Stats(); st.RateLimited != 1 || st.Uploads != 0 {
		t.Errorf("got %d 429s and %d files, want 1 and none", st.RateLimited, st.Uploads)
	}
}

func TestFileName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"video.mp4", "video.mp4"},
		{"a/b/c.png", "c.png"},
		{`C:\x\y.png`, "y.png"},
		{"", "file"},
		{"/", "file"},
		{"a\"b.txt", "a\"b.txt"},
		{"tab\there.txt", "tab_here.txt"},
	} {
		if got := fileName(tc.in); got != tc.want {
			t.Errorf("fileName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
