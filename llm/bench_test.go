package llm

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"
)

// benchChunk is a typical OpenAI chunk: one token of text.
const benchChunk = `data: {"id":"chatcmpl-AbC123","object":"chat.completion.chunk","created":1735689600,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_0aa8d3e20b","choices":[{"index":0,"delta":{"content":" token"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"q3Gx"}` + "\n\n"

const benchEnd = finishChunk + "data: [DONE]\n\n"

// recvAll reads s to io.EOF and returns the number of text deltas.
func recvAll(b *testing.B, s *Stream) int {
	n := 0
	for {
		d, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			b.Fatal(err)
		}
		if d.Text != "" {
			n++
		}
	}
}

// BenchmarkStreamChunk measures the cost of one streamed chunk from the
// bytes on the socket to the delta in the caller's hands (ns/op and
// allocs/op are per chunk), and the delivery delay of a chunk.
//
//	go test -run XXX -bench StreamChunk -benchmem ./llm/
func BenchmarkStreamChunk(b *testing.B) {
	// loopback: a server flushes every chunk to a real TCP socket. The
	// figures include the server's writes (same process).
	b.Run("loopback", func(b *testing.B) {
		var n int
		srv := newServer(b, func(w http.ResponseWriter, r *http.Request) {
			startSSE(w)
			chunk := []byte(benchChunk)
			for range n {
				writeFlush(w, chunk)
			}
			writeFlush(w, []byte(benchEnd))
		})
		c, _ := newClient(b, srv, nil)
		n = b.N
		b.ReportAllocs()
		b.ResetTimer()
		s, err := c.Stream(b.Context(), userRequest("gpt-4o-mini", "hi"))
		if err != nil {
			b.Fatal(err)
		}
		if got := recvAll(b, s); got != b.N {
			b.Fatalf("got %d deltas, want %d", got, b.N)
		}
		s.Close()
	})

	// memory: the same bytes from an in-memory body: the client path alone
	// (SSE decoding, openai-go's chunk decoding, our delta).
	b.Run("memory", func(b *testing.B) {
		body := append(bytes.Repeat([]byte(benchChunk), b.N), benchEnd...)
		c, err := New(Config{
			BaseURL:    "http://127.0.0.1:1/v1",
			HTTPClient: &http.Client{Transport: bodyTransport(body)},
			Logger:     discardLogger(),
		})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		s, err := c.Stream(b.Context(), userRequest("gpt-4o-mini", "hi"))
		if err != nil {
			b.Fatal(err)
		}
		if got := recvAll(b, s); got != b.N {
			b.Fatalf("got %d deltas, want %d", got, b.N)
		}
		s.Close()
	})

	// latency: the server writes one chunk, the client receives it, then
	// the next: the delay from the server's Write to Recv returning, with
	// nothing queued in between. p50 and p99 in µs.
	b.Run("latency", func(b *testing.B) {
		var n int
		written := make(chan time.Time, 1)
		received := make(chan struct{})
		srv := newServer(b, func(w http.ResponseWriter, r *http.Request) {
			startSSE(w)
			chunk := []byte(benchChunk)
			for range n {
				written <- time.Now()
				writeFlush(w, chunk)
				select {
				case <-received:
				case <-r.Context().Done():
					return
				}
			}
			writeFlush(w, []byte(benchEnd))
		})
		c, _ := newClient(b, srv, nil)
		n = b.N
		delays := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		s, err := c.Stream(b.Context(), userRequest("gpt-4o-mini", "hi"))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		for range b.N {
			if _, err := s.Recv(); err != nil {
				b.Fatal(err)
			}
			delays = append(delays, time.Since(<-written))
			received <- struct{}{}
		}
		b.StopTimer()
		slices.Sort(delays)
		us := func(q float64) float64 {
			return float64(delays[int(q*float64(len(delays)-1))].Nanoseconds()) / 1e3
		}
		b.ReportMetric(us(0.50), "p50-µs")
		b.ReportMetric(us(0.99), "p99-µs")
	})
}
