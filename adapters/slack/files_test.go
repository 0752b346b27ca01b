package slack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/adapters/slack/slacktest"
	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/conversation"
)

// pngBytes is the start of a PNG: enough for a test that the bytes arrive.
var pngBytes = append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte("pixels"), 1000)...)

func TestFilesReachTheEngine(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	eng := &fakeEngine{}
	startAdapter(t, fake, eng, Options{}, nil)

	cat := fake.AddFile("cat.png", "image/png", pngBytes)
	mention := fake.UserFiles("C1", "", "U1", "<@U0BOT> what is in this picture?", cat)
	notes := fake.AddFile("notes.txt", "text/plain", []byte("remember the milk"))
	dm := fake.UserFiles("D1", "", "U1", "", notes)
	waitFor(t, fake, 5*time.Second, "every event handled", func() bool { return len(eng.incoming()) == 3 })

	got := byTS(eng.incoming())
	want := conversation.Attachment{
		Name: "cat.png", MIME: "image/png", Size: int64(len(pngBytes)),
		URL: cat["url_private_download"].(string), PlatformID: cat["id"].(string),
	}
	for i, in := range got[:2] {
		if in.MessageID != mention.TS || in.Text != "what is in this picture?" {
			t.Errorf("mention event %d: got id %s text %q, want %s and the text", i, in.MessageID, in.Text, mention.TS)
		}
		if len(in.Attachments) != 1 || in.Attachments[0] != want {
			t.Errorf("mention event %d: attachments %+v, want [%+v]", i, in.Attachments, want)
		}
	}
	if in := got[2]; in.MessageID != dm.TS || !in.DM || in.Text != "" || len(in.Attachments) != 1 || in.Attachments[0].Name != "notes.txt" {
		t.Errorf("a DM with a file and no text: got %+v", in)
	}
}

func TestAttachmentsOfFiles(t *testing.T) {
	fake := slacktest.New(t, slacktest.Config{})
	obj := fake.AddFile("", "image/jpeg", []byte("jpeg"))
	obj["title"] = "Holiday"
	delete(obj, "url_private_download")
	fake.SendEvent(map[string]any{"type": "message", "subtype": "file_share", "channel": "D1", "channel_type": "im", "user": "U1", "ts": "1.000001", "files": []any{obj, map[string]any{"name": "no id"}}})
	eng := &fakeEngine{}
	startAdapter(t, fake, eng, Options{}, nil)
	waitFor(t, fake, 5*time.Second, "the message", func() bool { return len(eng.incoming()) == 1 })
	got := eng.incoming()[0].Attachments
	if len(got) != 1 || got[0].Name != "Holiday" || got[0].URL != obj["url_private"] {
		t.Errorf("attachments %+v, want one named by its title, at url_private", got)
	}
}

// fileAdapter returns an adapter on fake, not running: Download and Upload
// need no socket.
func fileAdapter(t testing.TB, cfg slacktest.Config) (*Adapter, *slacktest.Server) {
	fake := slacktest.New(t, cfg)
	return newTestAdapter(t, fake, &fakeEngine{}, Options{}, nil), fake
}

func TestDownload(t *testing.T) {
	a, fake := fileAdapter(t, slacktest.Config{})
	ctx := context.Background()
	obj := fake.AddFile("cat.png", "image/png", pngBytes)
	att := conversation.Attachment{Name: "cat.png", MIME: "image/png", Size: int64(len(pngBytes)), URL: obj["url_private_download"].(string), PlatformID: obj["id"].(string)}

	t.Run("the bytes", func(t *testing.T) {
		got := readAll(t, a, att, int64(len(pngBytes)))
		if !bytes.Equal(got, pngBytes) {
			t.Errorf("got %d bytes, want the %d of the file", len(got), len(pngBytes))
		}
		if f, _ := fake.File(att.PlatformID); f.Downloads != 1 {
			t.Errorf("the fake served %d downloads with the token, want 1", f.Downloads)
		}
	})
	t.Run("url_private too", func(t *testing.T) {
		att := att
		att.URL = obj["url_private"].(string)
		if got := readAll(t, a, att, 1<<20); !bytes.Equal(got, pngBytes) {
			t.Errorf("got %d bytes, want the file's %d", len(got), len(pngBytes))
		}
	})
	t.Run("larger than max by its size", func(t *testing.T) {
		_, err := a.Download(ctx, att, 100)
		if !errors.Is(err, bots.ErrTooLarge) {
			t.Errorf("got %v, want ErrTooLarge", err)
		}
	})
	t.Run("larger than max by its Content-Length", func(t *testing.T) {
		att := att
		att.Size = 0
		_, err := a.Download(ctx, att, 100)
		if !errors.Is(err, bots.ErrTooLarge) {
			t.Errorf("got %v, want ErrTooLarge", err)
		}
	})
	t.Run("login page", func(t *testing.T) {
		fake.SetLoginPage(true)
		defer fake.SetLoginPage(false)
		// An HTML file is told from the sign-in page by the redirect.
		page := fake.AddFile("page.html", "text/html", []byte("<p>mine</p>"))
		html := conversation.Attachment{Name: "page.html", MIME: "text/html", URL: page["url_private"].(string)}
		for _, att := range []conversation.Attachment{att, html} {
			_, err := a.Download(ctx, att, 1<<20)
			if err == nil || !strings.Contains(err.Error(), "login page: add the files:read scope and reinstall the app") {
				t.Errorf("%s: got %v, want the login page explained", att.Name, err)
			}
		}
		fake.SetLoginPage(false)
		if got := readAll(t, a, html, 1<<20); string(got) != "<p>mine</p>" {
			t.Errorf("an HTML file: got %q", got)
		}
	})
	t.Run("gone", func(t *testing.T) {
		att := att
		att.URL = strings.Replace(att.URL, att.PlatformID, "F404", 1)
		_, err := a.Download(ctx, att, 1<<20)
		if !errors.Is(err, bots.ErrGone) {
			t.Errorf("got %v, want ErrGone", err)
		}
	})
}

// readAll downloads att and reads it whole.
func readAll(t *testing.T, a *Adapter, att conversation.Attachment, max int64) []byte {
	t.Helper()
	rc, err := a.Download(context.Background(), att, max)
	if err != nil {
		t.Fatalf("Download: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

// authRecorder is a server that is not Slack: it records the Authorization
// headers it sees.
type authRecorder struct {
	srv   *httptest.Server
	mu    sync.Mutex
	hits  int
	auths []string
}

func newAuthRecorder(t *testing.T, h http.HandlerFunc) *authRecorder {
	r := &authRecorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.hits++
		if v := req.Header.Get("Authorization"); v != "" {
			r.auths = append(r.auths, v)
		}
		r.mu.Unlock()
		h(w, req)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *authRecorder) seen() (hits int, auths []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits, append([]string(nil), r.auths...)
}

func TestDownloadKeepsTheTokenAtSlack(t *testing.T) {
	foreign := newAuthRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Write(pngBytes)
	})
	a, _ := fileAdapter(t, slacktest.Config{})
	for _, u := range []string{
		foreign.srv.URL + "/files-pri/T0TEAM-F1/cat.png",
		"https://files.slack.com.evil.example/files-pri/T0TEAM-F1/cat.png",
		"http://files.slack.com/files-pri/T0TEAM-F1/cat.png", // not https
		"https://drive.example.com/remote-file",
	} {
		_, err := a.Download(context.Background(), conversation.Attachment{Name: "cat.png", MIME: "image/png", URL: u}, 1<<20)
		if err == nil || !strings.Contains(err.Error(), "not a Slack file host") {
			t.Errorf("Download of %s: got %v, want a refusal", u, err)
		}
	}
	if hits, auths := foreign.seen(); hits != 0 || len(auths) != 0 {
		t.Errorf("the foreign server saw %d requests and %d Authorization headers, want none", hits, len(auths))
	}

	// A redirect from the Web API's host to another host drops the token.
	api := newAuthRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, foreign.srv.URL+"/elsewhere.png", http.StatusFound)
	})
	b := newTestAdapterAt(t, api.srv.URL+"/api/")
	rc, err := b.Download(context.Background(), conversation.Attachment{Name: "cat.png", MIME: "image/png", URL: api.srv.URL + "/files-pri/T0TEAM-F1/cat.png"}, 1<<20)
	if err != nil {
		t.Fatalf("Download through a redirect: %v", err)
	}
	rc.Close()
	if _, auths := api.seen(); len(auths) != 1 {
		t.Errorf("the Web API host saw %d Authorization headers, want 1", len(auths))
	}
	if hits, auths := foreign.seen(); hits != 1 || len(auths) != 0 {
		t.Errorf("after a redirect the foreign server saw %d requests with %d Authorization headers, want 1 without", hits, len(auths))
	}
}

// newTestAdapterAt builds an adapter whose Web API is at apiURL.
func newTestAdapterAt(t *testing.T, apiURL string) *Adapter {
	t.Helper()
	a, err := newAdapter(Options{BotToken: "xoxb-test-token", AppToken: "xapp-test-token", APIURL: apiURL, HTTPClient: loopbackClient()}, &fakeEngine{}, (&logBuffer{}).logger())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestDownloadCutsAtMax(t *testing.T) {
	const max = 1000
	// A body of unknown length: the cut happens while reading.
	srv := newAuthRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		n := max
		if r.URL.Path == "/big" {
			n = max + 1
		}
		w.Header().Set("Content-Type", "text/plain")
		for range n {
			w.Write([]byte("x"))
			w.(http.Flusher).Flush()
		}
	})
	a := newTestAdapterAt(t, srv.srv.URL+"/api/")
	rc, err := a.Download(context.Background(), conversation.Attachment{Name: "big.txt", MIME: "text/plain", URL: srv.srv.URL + "/big"}, max)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, bots.ErrTooLarge) || len(got) != max {
		t.Errorf("a file of max+1 bytes: got %d bytes and %v, want %d and ErrTooLarge", len(got), err, max)
	}
	rc, err = a.Download(context.Background(), conversation.Attachment{Name: "exact.txt", MIME: "text/plain", URL: srv.srv.URL + "/exact"}, max)
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(rc)
	rc.Close()
	if err != nil || len(got) != max {
		t.Errorf("a file of max bytes: got %d bytes and %v, want all of it", len(got), err)
	}
}

func TestUploadIntoThread(t *testing.T) {
	a, fake := fileAdapter(t, slacktest.Config{})
	thread := fake.AddMessage("C1", "", "U1", "<@U0BOT> make me a video")
	data := make([]byte, 5<<20)
	rand.NewChaCha8([32]byte{1}).Read(data)

	att, err := a.Upload(context.Background(), bots.Destination{Workspace: "T0TEAM", Channel: "C1", Thread: thread, User: "U1"},
		bots.File{Name: "clip.mp4", MIME: "video/mp4", Size: int64(len(data)), Body: bytes.NewReader(data)})
	if err != nil {
		t.Fatalf("Upload: %v", err)
	}
	ups := fake.Uploads("C1", thread)
	if len(ups) != 1 {
		t.Fatalf("the thread holds %d uploads, want 1", len(ups))
	}
	up := ups[0]
	if !bytes.Equal(up.Data, data) || up.Name != "clip.mp4" {
		t.Errorf("the thread holds %s with %d bytes, want clip.mp4 with the %d uploaded", up.Name, len(up.Data), len(data))
	}
	want := conversation.Attachment{Name: "clip.mp4", MIME: "video/mp4", Size: int64(len(data)), PlatformID: up.ID}
	if att != want {
		t.Errorf("Upload returned %+v, want %+v", att, want)
	}
	if m, ok := fake.Message("C1", up.MessageTS); !ok || m.ThreadTS != thread || m.User != fake.Config().BotUserID {
		t.Errorf("the file's message %+v, want the bot's, in thread %s", m, thread)
	}
}

func TestUploadErrors(t *testing.T) {
	a, fake := fileAdapter(t, slacktest.Config{MaxFileSize: 1 << 20})
	ctx := context.Background()
	dest := bots.Destination{Channel: "C1", Thread: fake.AddMessage("C1", "", "U1", "hi")}
	file := func(size int) bots.File {
		return bots.File{Name: "a.png", MIME: "image/png", Size: int64(size), Body: bytes.NewReader(make([]byte, size))}
	}

	t.Run("rate limited", func(t *testing.T) {
		fake.Inject("files.completeUploadExternal", slacktest.Fault{RetryAfter: 7})
		_, err := a.Upload(ctx, dest, file(1000))
		var rl *bots.RateLimitError
		if !errors.As(err, &rl) || rl.RetryAfter != 7*time.Second {
			t.Errorf("got %v, want a *bots.RateLimitError of 7s", err)
		}
	})
	t.Run("over the workspace's limit", func(t *testing.T) {
		_, err := a.Upload(ctx, dest, file(2<<20))
		if !errors.Is(err, bots.ErrTooLarge) {
			t.Errorf("got %v, want ErrTooLarge", err)
		}
	})
	t.Run("over Slack's limit", func(t *testing.T) {
		calls := fake.Calls("files.getUploadURLExternal")
		_, err := a.Upload(ctx, dest, bots.File{Name: "huge.mp4", Size: 2 << 30, Body: strings.NewReader("")})
		if !errors.Is(err, bots.ErrTooLarge) || fake.Calls("files.getUploadURLExternal") != calls {
			t.Errorf("got %v, want ErrTooLarge without a call", err)
		}
	})
	t.Run("body shorter than its size", func(t *testing.T) {
		f := file(1000)
		f.Size = 2000
		if _, err := a.Upload(ctx, dest, f); err == nil {
			t.Error("a short body was uploaded")
		}
	})
	t.Run("channel gone", func(t *testing.T) {
		fake.RemoveChannel("C9")
		_, err := a.Upload(ctx, bots.Destination{Channel: "C9"}, file(10))
		if !errors.Is(err, bots.ErrGone) {
			t.Errorf("got %v, want ErrGone", err)
		}
	})
	if ups := fake.Uploads("C1", dest.Thread); len(ups) != 0 {
		t.Errorf("failed uploads shared %d files", len(ups))
	}
}

// generated is a body of n pseudo-random bytes made as they are read,
// hashed on the way; every MiB it samples the heap.
type generated struct {
	src    *rand.ChaCha8
	left   int64
	h      hash.Hash
	read   int64
	sample func()
}

func newGenerated(n int64, sample func()) *generated {
	return &generated{src: rand.NewChaCha8([32]byte{7}), left: n, h: sha256.New(), sample: sample}
}

func (g *generated) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.left)]
	g.src.Read(p)
	g.h.Write(p)
	before := g.read
	g.read += int64(len(p))
	g.left -= int64(len(p))
	if g.sample != nil && g.read>>20 != before>>20 {
		g.sample()
	}
	return len(p), nil
}

// heapPeak samples the heap in use above a baseline.
type heapPeak struct {
	base, peak uint64
	total      uint64 // TotalAlloc at the start
}

func newHeapPeak() *heapPeak {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return &heapPeak{base: ms.HeapAlloc, total: ms.TotalAlloc}
}

func (h *heapPeak) sample() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc > h.base && ms.HeapAlloc-h.base > h.peak {
		h.peak = ms.HeapAlloc - h.base
	}
}

func (h *heapPeak) allocated() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc - h.total
}

// upload25MiB uploads 25 MiB made on the fly into a thread on fake and
// checks that they all arrived; it returns the heap's peak growth and the
// bytes allocated meanwhile.
func upload25MiB(tb testing.TB, a *Adapter, fake *slacktest.Server, thread string) (peak, allocated uint64) {
	const size = 25 << 20
	hp := newHeapPeak()
	body := newGenerated(size, hp.sample)
	_, err := a.Upload(context.Background(), bots.Destination{Channel: "C1", Thread: thread},
		bots.File{Name: "long.mp4", MIME: "video/mp4", Size: size, Body: body})
	hp.sample()
	allocated = hp.allocated()
	if err != nil {
		tb.Fatalf("Upload: %v", err)
	}
	ups := fake.Uploads("C1", thread)
	if len(ups) == 0 {
		tb.Fatal("nothing uploaded")
	}
	up := ups[len(ups)-1]
	var sum [32]byte
	copy(sum[:], body.h.Sum(nil))
	if up.Received != size || up.SHA256 != sum {
		tb.Fatalf("the fake received %d bytes (hash equal: %v), want the %d sent", up.Received, up.SHA256 == sum, size)
	}
	return hp.peak, allocated
}

func TestUploadStreams(t *testing.T) {
	a, fake := fileAdapter(t, slacktest.Config{})
	thread := fake.AddMessage("C1", "", "U1", "a long video please")
	peak, allocated := upload25MiB(t, a, fake, thread)
	t.Logf("25 MiB upload: heap peak +%.1f MiB, %.1f MiB allocated (adapter, slack-go and the fake together)", float64(peak)/(1<<20), float64(allocated)/(1<<20))
	// Holding the file even once would take 25 MiB.
	if peak > 8<<20 {
		t.Errorf("the heap grew by %d bytes during a 25 MiB upload: the body is buffered, not streamed", peak)
	}
}

// BenchmarkUpload25MiB measures an upload of 25 MiB through slack-go to the
// fake: -benchmem's B/op counts every allocation (client and fake), and
// peak-heap-B the heap's growth at its highest.
func BenchmarkUpload25MiB(b *testing.B) {
	a, fake := fileAdapter(b, slacktest.Config{})
	thread := fake.AddMessage("C1", "", "U1", "a long video please")
	b.SetBytes(25 << 20)
	var peak uint64
	for b.Loop() {
		p, _ := upload25MiB(b, a, fake, thread)
		peak = max(peak, p)
	}
	b.ReportMetric(float64(peak), "peak-heap-B")
}
