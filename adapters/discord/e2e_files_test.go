package discord

// End-to-end media: a video model's answer ends with its file uploaded into
// the thread; a user's image reaches a vision model.

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/adapters/discord/discordtest"
	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/bots/media"
	"github.com/parleyhq/parley/conversation"
)

// videoServer serves files at /v/<name> as video/mp4.
func videoServer(t *testing.T, files map[string][]byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[strings.TrimPrefix(r.URL.Path, "/v/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "video/mp4")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// soraAnswer streams what a video model behind an OpenAI-compatible
// gateway answers: a queued line, progress lines while the video renders
// (the stream kept alive with SSE comments), then a link to the video.
func soraAnswer(link string) func(s *sse, req chatRequest) {
	return func(s *sse, req chatRequest) {
		s.send("> ⌛ Queued, waiting for a slot…\n\n")
		s.comment("PING")
		s.send("> 🏃 Progress: 36%\n")
		s.comment("PING")
		s.comment("PING")
		s.send("> 🏃 Progress: 100%\n\n")
		s.send("✅ Video ready: [clip.mp4](" + link + ")")
		s.done()
	}
}

// withMedia lets the engine fetch media from loopback test servers.
func withMedia(t *testing.T) func(*bots.Config) {
	return func(c *bots.Config) {
		c.Media = media.New(media.Config{AllowPrivate: true, TempDir: t.TempDir()})
	}
}

// withFile returns the bot's messages of channel once one carries a file.
func (w *world) withFile(t *testing.T, channel string) []discordtest.Message {
	t.Helper()
	var got []discordtest.Message
	w.fake.Await(t, wait, "a file in "+channel, func() bool {
		got = w.fake.BotMessages(channel)
		return slices.ContainsFunc(got, func(m discordtest.Message) bool { return len(m.Attachments) > 0 })
	})
	return got
}

func TestE2EVideoAnswerUploadedIntoThread(t *testing.T) {
	t.Parallel()
	video := randomBytes(5 << 20)
	srv := videoServer(t, map[string][]byte{"clip.mp4": video})
	link := srv.URL + "/v/clip.mp4"
	w := newWorldConfig(t, discordtest.Options{}, Options{}, withMedia(t))
	var lastByte atomic.Int64
	w.llm.setAnswer(func(s *sse, req chatRequest) {
		soraAnswer(link)(s, req)
		lastByte.Store(time.Now().UnixNano())
	})

	q := w.fake.Post(w.ch, w.ann, w.bot+" a cat surfing at sunset", "")
	got := w.withFile(t, q.ID)
	// The figure the media issue asks for (go test -v -run VideoAnswer).
	t.Logf("%d MiB video: last stream byte to the file in the thread: %s", len(video)>>20, time.Since(time.Unix(0, lastByte.Load())).Round(time.Millisecond))
	if len(got) != 2 {
		t.Fatalf("the thread holds %d bot messages, want the answer and the file: %+v", len(got), got)
	}
	if text := got[0].Content; !strings.Contains(text, "Progress: 100%") || !strings.Contains(text, link) {
		t.Errorf("answer %q: want the progress and the link", text)
	}
	if len(got[0].Attachments) != 0 || len(got[1].Attachments) != 1 {
		t.Fatalf("files: %d on the answer, %d after it; want 0 and 1", len(got[0].Attachments), len(got[1].Attachments))
	}
	f := got[1].Attachments[0]
	if f.Filename != "clip.mp4" || f.ContentType != "video/mp4" || f.Size != int64(len(video)) || f.SHA256 != sum(video) {
		t.Errorf("uploaded %+v, want clip.mp4, video/mp4, the %d bytes served", f, len(video))
	}
	if len(w.fake.BotMessages(w.ch)) != 0 {
		t.Error("the bot wrote in the channel, not the thread")
	}
	// The store keeps what was delivered with the answer.
	m := w.store.awaitStored(t, w.fake.GuildID, got[0].ID, func(m conversation.Message) bool { return len(m.Attachments) == 1 })
	want := conversation.Attachment{Name: "clip.mp4", MIME: "video/mp4", Size: int64(len(video)), URL: f.URL, PlatformID: f.ID}
	if m.Attachments[0] != want {
		t.Errorf("stored %+v, want %+v", m.Attachments[0], want)
	}
}

func TestE2EVideoOverLimitStaysALink(t *testing.T) {
	t.Parallel()
	video := randomBytes(2 << 20)
	srv := videoServer(t, map[string][]byte{"big.mp4": video})
	link := srv.URL + "/v/big.mp4"
	// A server without boosts, as far as this bot is told: 1 MiB.
	w := newWorldConfig(t, discordtest.Options{}, Options{MaxUploadBytes: 1 << 20}, withMedia(t))
	w.llm.setAnswer(soraAnswer(link))

	q := w.fake.Post(w.ch, w.ann, w.bot+" a long video", "")
	const note = "📎 _big.mp4 is not attached: it is larger than this chat allows. The link above still works._"
	got := w.answered(t, q.ID, 2, is(note))
	if !strings.Contains(got[0].Content, link) {
		t.Errorf("answer %q: want the link kept", got[0].Content)
	}
	for _, m := range got {
		if len(m.Attachments) != 0 {
			t.Errorf("message %s carries a file", m.ID)
		}
	}
	if st := w.fake.Stats(); st.Uploads != 0 || st.TooLarge != 0 {
		t.Errorf("Discord received %d files and refused %d; want nothing sent", st.Uploads, st.TooLarge)
	}
}

func TestE2EUserImageReachesVisionModel(t *testing.T) {
	t.Parallel()
	w := newWorldConfig(t, discordtest.Options{}, Options{}, func(c *bots.Config) { c.VisionModels = []string{"gpt-*"} })
	png := append([]byte("\x89PNG\r\n\x1a\n"), randomBytes(40_000)...)
	img := w.fake.AddAttachment(w.ch, "chart.png", "image/png", png)

	q := w.fake.PostFiles(w.ch, w.ann, w.bot+" what does this chart show?", img)
	w.answered(t, q.ID, 1, is("You said: what does this chart show?"))
	reqs := w.llm.requests()
	if len(reqs) != 1 {
		t.Fatalf("got %d requests to the model, want 1", len(reqs))
	}
	i := len(reqs[0].Messages) - 1
	images := reqs[0].Images[i]
	want := "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)
	if reqs[0].Messages[i].Role != "user" || len(images) != 1 || images[0] != want {
		t.Errorf("the model's last message: role %s with %d images (%.40q…), want the user's PNG as a data URL",
			reqs[0].Messages[i].Role, len(images), strings.Join(images, ","))
	}
	if st := w.fake.Stats(); st.CDNRequests != 1 || st.CDNWithToken != 0 {
		t.Errorf("CDN saw %d requests, %d with the bot token; want 1 and none", st.CDNRequests, st.CDNWithToken)
	}
}
