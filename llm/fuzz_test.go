package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// bodyTransport answers every request with 200 and the same SSE body, in
// memory: the fuzzer feeds the real client path from the response body on.
type bodyTransport []byte

func (b bodyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"text/event-stream"}},
		Body:       io.NopCloser(bytes.NewReader(b)),
		Request:    req,
	}, nil
}

func fuzzClient(t *testing.T, body []byte) *Client {
	c, err := New(Config{
		BaseURL:    "http://127.0.0.1:1/v1",
		HTTPClient: &http.Client{Transport: bodyTransport(body)},
		Logger:     discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	c.sleep = newFakeClock().Sleep
	return c
}

// drain reads a stream to its end; it fails if the stream does not end.
func drain(t *testing.T, c *Client, limit int) (string, error) {
	s, err := c.Stream(t.Context(), userRequest("m", "hi"))
	if err != nil {
		return "", err
	}
	defer s.Close()
	var text strings.Builder
	for range limit {
		d, err := s.Recv()
		if err != nil {
			return text.String(), err
		}
		text.WriteString(d.Text)
	}
	t.Fatalf("the stream did not end after %d deltas", limit)
	return "", nil
}

// FuzzStream feeds arbitrary bytes as the SSE body (it must end without a
// panic), and a well-formed stream built from text (its deltas must add up
// to text exactly).
func FuzzStream(f *testing.F) {
	for _, name := range []string{"openai.sse", "reasoning.sse", "keepalive.sse", "nofinish.sse", "usage_last.sse", "error_instream.sse", "crlf.sse", "sora2.sse", "toolcalls.sse"} {
		f.Add(capture(f, name), "")
	}
	f.Fuzz(func(t *testing.T, raw []byte, text string) {
		// Every event yields at most one delta.
		if _, err := drain(t, fuzzClient(t, raw), bytes.Count(raw, []byte("\n"))+2); err == nil {
			t.Fatal("Recv ended without an error or io.EOF")
		}

		text = strings.ToValidUTF8(text, "\uFFFD")
		var body bytes.Buffer
		body.WriteString(": keep-alive\n\n")
		for rest := text; rest != ""; {
			// Pieces of up to 3 runes, as tokens come.
			n := 0
			for i := 0; i < 3 && n < len(rest); i++ {
				_, size := utf8.DecodeRuneInString(rest[n:])
				n += size
			}
			piece, _ := json.Marshal(rest[:n])
			rest = rest[n:]
			body.WriteString(`data: {"choices":[{"index":0,"delta":{"content":`)
			body.Write(piece)
			body.WriteString("}}]}\n\n")
		}
		body.WriteString(finishChunk + "data: [DONE]\n\n")
		got, err := drain(t, fuzzClient(t, body.Bytes()), len(text)+3)
		if !errors.Is(err, io.EOF) {
			t.Fatalf("well-formed stream ended with %v", err)
		}
		if got != text {
			t.Fatalf("got %q, want %q", got, text)
		}
	})
}
