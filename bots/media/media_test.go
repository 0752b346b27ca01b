package media

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Bodies that sniff as what they claim to be.
var (
	mp4Body  = append([]byte("\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"), bytes.Repeat([]byte{0xAB}, 2000)...)
	movBody  = append([]byte("\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  "), bytes.Repeat([]byte{0xCD}, 2000)...)
	webmBody = append([]byte("\x1A\x45\xDF\xA3\x9F\x42\x86\x81\x01webm"), bytes.Repeat([]byte{0x11}, 2000)...)
	pngBody  = append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte{0x22}, 2000)...)
	htmlBody = []byte("<!DOCTYPE html><html><body>Access denied</body></html>")
)

// secret stands for a signed token in a link's query string; no error may
// show it.
const secret = "sig=s3cr3t-t0ken"

// serve answers every request with body and the headers given; a nil
// Content-Type value sends none (net/http would sniff one otherwise).
func serve(body []byte, header map[string][]string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header()[k] = v
		}
		w.Write(body)
	}
}

func ctype(t string) map[string][]string { return map[string][]string{"Content-Type": {t}} }

// newFetcher returns a Fetcher keeping its files in a fresh directory.
func newFetcher(t *testing.T, cfg Config) (*Fetcher, string) {
	t.Helper()
	cfg.TempDir = t.TempDir()
	return New(cfg), cfg.TempDir
}

// assertEmpty fails unless dir holds no file: no temporary file outlives
// its File, whatever went wrong.
func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind in the temp dir: %s", e.Name())
	}
}

func assertNoSecret(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error shows the query string: %v", err)
	}
}

func TestFetch(t *testing.T) {
	tests := []struct {
		name     string
		path     string
		body     []byte
		header   map[string][]string
		wantName string
		wantMIME string
	}{
		{"mp4", "/videos/clip.mp4", mp4Body, ctype("video/mp4"), "clip.mp4", "video/mp4"},
		{"type with parameters", "/a/cat.png", pngBody, ctype("image/png; charset=binary"), "cat.png", "image/png"},
		{"same family, other type", "/a/cat.jpg", pngBody, ctype("image/png"), "cat.jpg", "image/png"},
		{"octet-stream mp4 sniffed", "/v/out.mp4", mp4Body, ctype("application/octet-stream"), "out.mp4", "video/mp4"},
		{"octet-stream mov sniffed", "/v/out.MOV", movBody, ctype("application/octet-stream"), "out.MOV", "video/quicktime"},
		{"S3's binary/octet-stream sniffed", "/i/p.png", pngBody, ctype("binary/octet-stream"), "p.png", "image/png"},
		{"no type, webm sniffed", "/v/a.webm", webmBody, map[string][]string{"Content-Type": nil}, "a.webm", "video/webm"},
		{"no type, png sniffed", "/i/a.png", pngBody, map[string][]string{"Content-Type": nil}, "a.png", "image/png"},
		{"escaped name", "/v/my%20clip%2F..%2Fx.mp4", mp4Body, ctype("video/mp4"), "my clip_.._x.mp4", "video/mp4"},
		{"long name keeps its extension", "/v/" + strings.Repeat("é", 150) + ".mp4", mp4Body, ctype("video/mp4"), strings.Repeat("é", 96) + ".mp4", "video/mp4"},
		{"hidden name", "/v/.mp4", mp4Body, ctype("video/mp4"), "media.mp4", "video/mp4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(serve(tt.body, tt.header))
			t.Cleanup(srv.Close)
			f, dir := newFetcher(t, Config{AllowPrivate: true})
			link := srv.URL + tt.path + "?" + secret
			file, err := f.Fetch(t.Context(), link)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if file.Name != tt.wantName || file.MIME != tt.wantMIME || file.Size != int64(len(tt.body)) || file.URL != link {
				t.Errorf("got %q %q %d bytes from %q, want %q %q %d bytes from %q",
					file.Name, file.MIME, file.Size, file.URL, tt.wantName, tt.wantMIME, len(tt.body), link)
			}
			if runtime.GOOS != "windows" {
				// Unlinked already: a crash during the upload leaves nothing.
				assertEmpty(t, dir)
			}
			for range 2 { // an upload retried reads from the start again
				got, err := io.ReadAll(file.Reader())
				if err != nil || !bytes.Equal(got, tt.body) {
					t.Errorf("Reader: got %d bytes (%v), want the %d bytes served", len(got), err, len(tt.body))
				}
			}
			if err := file.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := file.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			assertEmpty(t, dir)
		})
	}
}

func TestFetchRefused(t *testing.T) {
	const max = 1000
	big := append(append([]byte{}, mp4Body[:24]...), bytes.Repeat([]byte{0}, 5000)...)
	tests := []struct {
		name    string
		path    string
		handler http.HandlerFunc
		want    error // nil: any error
	}{
		{"html for an mp4", "/v/clip.mp4", serve(htmlBody, ctype("text/html; charset=utf-8")), ErrType},
		{"html as octet-stream for an mp4", "/v/clip.mp4", serve(htmlBody, ctype("application/octet-stream")), ErrType},
		{"html without a type for a png", "/i/a.png", serve(htmlBody, map[string][]string{"Content-Type": nil}), ErrType},
		{"a video for a png", "/i/a.png", serve(mp4Body[:max], ctype("video/mp4")), ErrType},
		{"an image sniffed for an mp4", "/v/a.mp4", serve(pngBody[:max], ctype("application/octet-stream")), ErrType},
		{"json for a link without extension", "/file", serve([]byte(`{"error":"x"}`), ctype("application/json")), ErrType},
		{"malformed type", "/v/a.mp4", serve(mp4Body[:max], ctype("/")), ErrType},
		{"Content-Length over the cap", "/v/a.mp4", serve(big, map[string][]string{
			"Content-Type": {"video/mp4"}, "Content-Length": {strconv.Itoa(len(big))}}), ErrTooLarge},
		{"no Content-Length, streamed over the cap", "/v/a.mp4", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "video/mp4")
			for i := 0; i < len(big); i += 100 {
				w.Write(big[i:min(i+100, len(big))])
				w.(http.Flusher).Flush() // chunked: no Content-Length
			}
		}, ErrTooLarge},
		{"not found", "/v/a.mp4", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, nil},
		{"empty", "/v/a.mp4", serve(nil, ctype("video/mp4")), nil},
		{"body shorter than its Content-Length", "/v/a.mp4", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "video/mp4")
			w.Header().Set("Content-Length", "900")
			w.Write(mp4Body[:600])
		}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tt.handler)
			t.Cleanup(srv.Close)
			f, dir := newFetcher(t, Config{AllowPrivate: true, MaxBytes: max})
			file, err := f.Fetch(t.Context(), srv.URL+tt.path+"?"+secret)
			if err == nil {
				file.Close()
				t.Fatalf("Fetch: got %s (%s, %d bytes), want an error", file.Name, file.MIME, file.Size)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "media: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			assertNoSecret(t, err)
			assertEmpty(t, dir)
		})
	}
}

// rawServer answers every request with response, byte for byte, then
// closes the connection: a server that lies about its Content-Length or
// delimits its body by closing.
func rawServer(t *testing.T, response string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
				io.WriteString(c, response)
			}
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

func TestFetchSizeCapLyingServer(t *testing.T) {
	const max = 1000
	payload := string(mp4Body[:24]) + strings.Repeat("x", 5000)
	t.Run("declares less than it sends", func(t *testing.T) {
		url := rawServer(t, "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: 500\r\n\r\n"+payload)
		f, dir := newFetcher(t, Config{AllowPrivate: true, MaxBytes: max})
		file, err := f.Fetch(t.Context(), url+"/a.mp4")
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		defer file.Close()
		if n, _ := io.Copy(io.Discard, file.Reader()); file.Size != 500 || n != 500 {
			t.Errorf("got %d bytes (Size %d), want the 500 declared: never more", n, file.Size)
		}
		file.Close()
		assertEmpty(t, dir)
	})
	t.Run("no Content-Length, ends by closing", func(t *testing.T) {
		url := rawServer(t, "HTTP/1.0 200 OK\r\nContent-Type: video/mp4\r\n\r\n"+payload)
		f, dir := newFetcher(t, Config{AllowPrivate: true, MaxBytes: max})
		file, err := f.Fetch(t.Context(), url+"/a.mp4")
		if err == nil {
			file.Close()
		}
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("got %v, want ErrTooLarge", err)
		}
		assertEmpty(t, dir)
	})
}

func TestFetchBlocked(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		serve(mp4Body, ctype("video/mp4"))(w, r)
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	tests := []struct{ name, url string }{
		{"file", "file:///etc/passwd"},
		{"file with host", "file://localhost/etc/hosts.mp4"},
		{"ftp", "ftp://example.com/a.mp4"},
		{"gopher", "gopher://example.com/a.mp4"},
		{"data", "data:video/mp4;base64,AAAA"},
		{"no host", "http:///a.mp4"},
		{"loopback", srv.URL + "/a.mp4?" + secret},
		{"loopback IPv6", "http://[::1]:" + port + "/a.mp4"},
		{"mapped loopback", "http://[::ffff:127.0.0.1]:" + port + "/a.mp4"},
		{"private", "http://10.1.2.3/a.mp4?" + secret},
		{"metadata", "http://169.254.169.254/latest/meta-data/a.png"},
		// A name is judged on the address it resolves to, when connecting.
		{"localhost by name", "http://localhost:" + port + "/a.mp4?" + secret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, dir := newFetcher(t, Config{})
			file, err := f.Fetch(t.Context(), tt.url)
			if err == nil {
				file.Close()
			}
			if !errors.Is(err, ErrBlocked) {
				t.Errorf("got %v, want ErrBlocked", err)
			}
			assertNoSecret(t, err)
			assertEmpty(t, dir)
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the loopback server got %d requests, want none", n)
	}
}

func TestFetchInvalidURL(t *testing.T) {
	f, _ := newFetcher(t, Config{AllowPrivate: true})
	_, err := f.Fetch(t.Context(), "http://example.com/\x7f.mp4?"+secret)
	if err == nil {
		t.Fatal("Fetch: got no error for a URL with a control character")
	}
	assertNoSecret(t, err)
}

func TestFetchRedirects(t *testing.T) {
	var internalHits atomic.Int32
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		internalHits.Add(1)
		serve(mp4Body, ctype("video/mp4"))(w, r)
	}))
	t.Cleanup(internal.Close)
	_, internalPort, _ := net.SplitHostPort(internal.Listener.Addr().String())

	// public stands for a public server: the only address the rule lets
	// through besides the real ones. /hop/N redirects N more times.
	public := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/to/"):
			http.Redirect(w, r, r.URL.Query().Get("u"), http.StatusFound)
		case strings.HasPrefix(r.URL.Path, "/hop/"):
			n, _ := strconv.Atoi(strings.Split(strings.TrimPrefix(r.URL.Path, "/hop/"), "/")[0])
			if n == 0 {
				serve(mp4Body, ctype("video/mp4"))(w, r)
				return
			}
			http.Redirect(w, r, "/hop/"+strconv.Itoa(n-1)+"/a.mp4?"+secret, http.StatusFound)
		}
	}))
	t.Cleanup(public.Close)
	publicAddr := netip.MustParseAddrPort(public.Listener.Addr().String())

	to := func(target string) string { return public.URL + "/to/a.mp4?u=" + url.QueryEscape(target) }
	tests := []struct {
		name string
		url  string
		want error // nil: any error; ok: success
	}{
		{"to a loopback address", to(internal.URL + "/a.mp4?" + secret), ErrBlocked},
		{"to a loopback name", to("http://localhost:" + internalPort + "/a.mp4"), ErrBlocked},
		{"to the metadata address", to("http://169.254.169.254/latest/meta-data/a.png"), ErrBlocked},
		{"to a private address", to("http://192.168.0.1/a.mp4"), ErrBlocked},
		{"to a file", to("file:///etc/passwd"), ErrBlocked},
		{"to ftp", to("ftp://example.com/a.mp4"), ErrBlocked},
		{"five redirects", public.URL + "/hop/5/a.mp4", ok},
		{"six redirects", public.URL + "/hop/6/a.mp4", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, dir := newFetcher(t, Config{})
			f.check = func(ap netip.AddrPort) error {
				if ap == publicAddr {
					return nil
				}
				return checkAddr(ap.Addr())
			}
			file, err := f.Fetch(t.Context(), tt.url)
			if err == nil {
				file.Close()
			}
			switch {
			case tt.want == ok && err != nil:
				t.Errorf("Fetch: %v", err)
			case tt.want != ok && err == nil:
				t.Errorf("Fetch: got %s, want an error", file.Name)
			case tt.want != ok && tt.want != nil && !errors.Is(err, tt.want):
				t.Errorf("got %v, want %v", err, tt.want)
			}
			assertNoSecret(t, err)
			assertEmpty(t, dir)
		})
	}
	if n := internalHits.Load(); n != 0 {
		t.Errorf("the internal server got %d requests, want none", n)
	}
}

// ok marks a table row that expects success.
var ok = errors.New("ok")

func TestFetchTimeout(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"no headers", func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}},
		{"body stalls", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "video/mp4")
			w.Header().Set("Content-Length", "100000")
			w.Write(mp4Body[:1000])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tt.handler)
			t.Cleanup(srv.Close)
			f, dir := newFetcher(t, Config{AllowPrivate: true, Timeout: 200 * time.Millisecond})
			file, err := f.Fetch(t.Context(), srv.URL+"/a.mp4?"+secret)
			if err == nil {
				file.Close()
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("got %v, want context.DeadlineExceeded", err)
			}
			assertNoSecret(t, err)
			assertEmpty(t, dir)
		})
	}
}

func TestFetchCanceled(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(srv.Close)
	f, dir := newFetcher(t, Config{AllowPrivate: true})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := f.Fetch(ctx, srv.URL+"/a.mp4")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	assertEmpty(t, dir)
}

func TestFetchOwnClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-file.mp4":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
			return
		case "/moved.mp4":
			http.Redirect(w, r, "/a.mp4", http.StatusFound)
			return
		}
		serve(mp4Body, ctype("video/mp4"))(w, r)
	}))
	t.Cleanup(srv.Close)
	var theirs atomic.Int32
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { theirs.Add(1); return nil }
	f, dir := newFetcher(t, Config{Client: client})

	// Literal addresses and schemes are still judged ...
	if _, err := f.Fetch(t.Context(), srv.URL+"/a.mp4"); !errors.Is(err, ErrBlocked) {
		t.Errorf("loopback: got %v, want ErrBlocked", err)
	}
	f.check = func(netip.AddrPort) error { return nil }
	if _, err := f.Fetch(t.Context(), srv.URL+"/to-file.mp4"); !errors.Is(err, ErrBlocked) {
		t.Errorf("redirect to a file: got %v, want ErrBlocked", err)
	}
	// ... and the client's own redirect policy still runs after ours.
	file, err := f.Fetch(t.Context(), srv.URL+"/moved.mp4")
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	file.Close()
	assertEmpty(t, dir)
	if theirs.Load() == 0 {
		t.Errorf("the client's CheckRedirect ran %d times, want at least once", theirs.Load())
	}
}
