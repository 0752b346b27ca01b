package media

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// videoServer serves a size-byte MP4 from one reused buffer, so that the
// memory the fetch uses is the only thing that grows.
func videoServer(tb testing.TB, size int) *httptest.Server {
	tb.Helper()
	chunk := make([]byte, 32<<10)
	copy(chunk, mp4Body[:24])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "video/mp4")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		for n := 0; n < size; {
			k, err := w.Write(chunk[:min(len(chunk), size-n)])
			if err != nil {
				return
			}
			n += k
		}
	}))
	tb.Cleanup(srv.Close)
	return srv
}

// fetchMemory fetches a size-byte video and returns the bytes allocated
// during the fetch (client and local server together) and the peak growth
// of the heap in use, sampled every millisecond.
func fetchMemory(tb testing.TB, f *Fetcher, link string, size int) (allocated, peak uint64) {
	tb.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	var (
		wg       sync.WaitGroup
		done     = make(chan struct{})
		maxInUse = before.HeapInuse
	)
	wg.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		var m runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				runtime.ReadMemStats(&m)
				maxInUse = max(maxInUse, m.HeapInuse)
			}
		}
	})
	file, err := f.Fetch(tb.Context(), link)
	close(done)
	wg.Wait()
	runtime.ReadMemStats(&after)
	if err != nil {
		tb.Fatalf("Fetch: %v", err)
	}
	if file.Size != int64(size) {
		tb.Errorf("got %d bytes, want %d", file.Size, size)
	}
	file.Close()
	return after.TotalAlloc - before.TotalAlloc, maxInUse - before.HeapInuse
}

// TestFetchMemory checks that a file at the size cap streams to disk: the
// fetch allocates a small fraction of the file, never the file.
func TestFetchMemory(t *testing.T) {
	const size = DefaultMaxBytes
	srv := videoServer(t, size)
	f, _ := newFetcher(t, Config{AllowPrivate: true})
	allocated, peak := fetchMemory(t, f, srv.URL+"/clip.mp4", size)
	t.Logf("fetching %d MiB: %d KiB allocated, heap in use grew by at most %d KiB", size>>20, allocated>>10, peak>>10)
	if allocated > size/8 {
		t.Errorf("fetching %d MiB allocated %d KiB: the body is held in memory", size>>20, allocated>>10)
	}
}

// BenchmarkFetch25MiB fetches a file at the default size cap from a
// loopback server into a temporary file.
func BenchmarkFetch25MiB(b *testing.B) {
	const size = DefaultMaxBytes
	srv := videoServer(b, size)
	f := New(Config{AllowPrivate: true, TempDir: b.TempDir()})
	var allocated, peak uint64
	b.SetBytes(size)
	for b.Loop() {
		a, p := fetchMemory(b, f, srv.URL+"/clip.mp4", size)
		allocated, peak = max(allocated, a), max(peak, p)
	}
	b.ReportMetric(float64(allocated)/1024, "KiB-alloc/fetch")
	b.ReportMetric(float64(peak)/1024, "KiB-peak-heap")
}
