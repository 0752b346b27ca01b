package llm

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHTTPErrors(t *testing.T) {
	const catalogJSON = `{"object":"list","data":[{"id":"gpt-4o","object":"model","owned_by":"openai"},{"id":"gpt-4o-mini","object":"model","owned_by":"openai"}]}`
	tests := []struct {
		name    string
		status  int
		header  map[string]string
		body    string
		want    error
		message string // the provider's words, kept in the error
		check   func(t *testing.T, err error)
	}{
		{
			name: "401 openai", status: 401,
			body: `{"error":{"message":"Incorrect API key provided: ` + testKey + `. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`,
			want: ErrUnauthorized, message: "Incorrect API key provided",
		},
		{
			name: "403 plain text", status: 403, body: "Forbidden: this key may not use this model\n",
			want: ErrUnauthorized, message: "Forbidden: this key may not use this model",
		},
		{
			name: "404", status: 404,
			body: `{"error":{"message":"The model 'gpt-4p' does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}`,
			want: ErrModelNotFound, message: "does not exist",
			check: func(t *testing.T, err error) {
				var mnf *ModelNotFoundError
				if !errors.As(err, &mnf) {
					t.Fatalf("got %T, want *ModelNotFoundError", err)
				}
				if mnf.Model != "gpt-4p" || !slices.Contains(mnf.Suggestions, "gpt-4o") {
					t.Errorf("got model %q suggestions %q, want gpt-4p with gpt-4o suggested", mnf.Model, mnf.Suggestions)
				}
			},
		},
		{
			name: "model_not_found code on 503 (new-api gateways)", status: 503,
			body: `{"error":{"message":"no available channel for model gpt-4p under group default","type":"new_api_error","code":"model_not_found"}}`,
			want: ErrModelNotFound, message: "no available channel",
		},
		{
			name: "429 retry-after seconds", status: 429, header: map[string]string{"Retry-After": "120"},
			body: `{"error":{"message":"Rate limit reached for gpt-4o on tokens per min (TPM): Limit 30000.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}`,
			want: ErrRateLimited, message: "Rate limit reached",
			check: func(t *testing.T, err error) {
				var rl *RateLimitError
				if !errors.As(err, &rl) || rl.RetryAfter != 120*time.Second {
					t.Errorf("got %#v, want RetryAfter 2m", err)
				}
			},
		},
		{
			name: "429 retry-after-ms beyond budget", status: 429, header: map[string]string{"retry-after-ms": "45000"},
			body: `{"error":{"message":"slow down","type":"rate_limit_error"}}`,
			want: ErrRateLimited, message: "slow down",
			check: func(t *testing.T, err error) {
				var rl *RateLimitError
				if !errors.As(err, &rl) || rl.RetryAfter != 45*time.Second {
					t.Errorf("got %#v, want RetryAfter 45s", err)
				}
			},
		},
		{
			name: "429 insufficient quota is not retried", status: 429,
			body: `{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`,
			want: ErrRateLimited, message: "exceeded your current quota",
		},
		{
			name: "context length code", status: 400,
			body: `{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130512 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`,
			want: ErrContextLength, message: "maximum context length is 128000",
		},
		{
			name: "context length message only", status: 400,
			body: `{"error":{"message":"prompt is too long: 210000 tokens > 200000 maximum","type":"invalid_request_error"}}`,
			want: ErrContextLength, message: "prompt is too long",
		},
		{
			name: "500", status: 500, body: `{"error":{"message":"The server had an error processing your request.","type":"server_error"}}`,
			want: ErrServer, message: "The server had an error",
		},
		{
			name: "400 other", status: 400, body: `{"error":{"message":"Invalid image URL","type":"invalid_request_error","code":"invalid_image_url"}}`,
			want: ErrBadRequest, message: "Invalid image URL",
		},
		{
			name: "error as a string", status: 400, body: `{"error":"bad things"}`,
			want: ErrBadRequest, message: "bad things",
		},
		{
			name: "html page from a proxy", status: 500, body: "<html>\n<body>Internal  Server\nError</body></html>",
			want: ErrServer, message: "<html> <body>Internal Server Error</body></html>",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var chats int
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v1/models" {
					_, _ = io.WriteString(w, catalogJSON)
					return
				}
				chats++
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				if strings.HasPrefix(tt.body, "{") {
					w.Header().Set("Content-Type", "application/json")
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			c, _ := newClient(t, srv, func(cfg *Config) { cfg.RetryBudget = 10 * time.Second })
			s, err := c.Stream(t.Context(), userRequest("gpt-4p", "hi"))
			if err == nil {
				s.Close()
				t.Fatal("got a stream, want an error")
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q lost the provider's message %q", err, tt.message)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error %q contains the API key", err)
			}
			if tt.status != 429 && tt.status < 502 && chats != 1 {
				t.Errorf("got %d requests, want 1 (not retried)", chats)
			}
			if tt.name == "429 insufficient quota is not retried" && chats != 1 {
				t.Errorf("got %d requests, want 1", chats)
			}
			if tt.check != nil {
				tt.check(t, err)
			}
		})
	}
}

func TestInStreamErrors(t *testing.T) {
	tests := []struct {
		name, event string
		want        error
		code, msg   string // of the *MidAnswerError
	}{
		{"context length", `{"error":{"message":"context_length_exceeded: too long","code":"context_length_exceeded"}}`, ErrContextLength,
			"context_length_exceeded", "context_length_exceeded: too long"},
		{"rate limit", `{"error":{"message":"Too many requests","code":429}}`, ErrRateLimited, "429", "Too many requests"},
		{"generic", `{"error":{"message":"upstream overloaded","type":"upstream_error"}}`, ErrServer, "", "upstream overloaded"},
		{"string", `{"error":"boom"}`, ErrServer, "", "boom"},
		{"key echoed", `{"error":{"message":"upstream refused key ` + testKey + `","type":"server_error","code":null}}`, ErrServer,
			"", "upstream refused key ***"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, replay([]byte(chunk("Some text")+"data: "+tt.event+"\n\n")))
			c, _ := newClient(t, srv, nil)
			s, err := c.Stream(t.Context(), userRequest("gpt-4o", "hi"))
			if err != nil {
				t.Fatal(err)
			}
			r := collect(t, s)
			if !errors.Is(r.err, tt.want) || !errors.Is(r.err, ErrMidAnswer) {
				t.Errorf("got %v, want %v and ErrMidAnswer", r.err, tt.want)
			}
			var me *MidAnswerError
			if !errors.As(r.err, &me) {
				t.Fatalf("got %T, want a *MidAnswerError", r.err)
			}
			if me.Code != tt.code || me.Message != tt.msg {
				t.Errorf("got code %q, message %q; want %q, %q", me.Code, me.Message, tt.code, tt.msg)
			}
			if msg := r.err.Error(); !strings.Contains(msg, "reported an error mid-answer") || !strings.Contains(msg, tt.msg) {
				t.Errorf("error %q does not say the endpoint failed mid-answer with %q", msg, tt.msg)
			}
			if strings.Contains(r.err.Error(), testKey) {
				t.Errorf("error %q contains the API key", r.err)
			}
			if r.text != "Some text" {
				t.Errorf("got text %q, want the text before the error", r.text)
			}
		})
	}
}

// A rate limit reported in the stream is still a *RateLimitError for the
// caller that looks for one.
func TestInStreamRateLimitIsARateLimitError(t *testing.T) {
	srv := newServer(t, replay([]byte(chunk("Some")+`data: {"error":{"message":"slow down","type":"rate_limit_error"}}`+"\n\n")))
	c, _ := newClient(t, srv, nil)
	s, err := c.Stream(t.Context(), userRequest("gpt-4o", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	var rl *RateLimitError
	if r := collect(t, s); !errors.As(r.err, &rl) || rl.Message != "slow down" {
		t.Errorf("got %v, want a *RateLimitError with the message", r.err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
	}{
		{"none", nil, 0},
		{"seconds", map[string]string{"Retry-After": "7"}, 7 * time.Second},
		{"fraction", map[string]string{"Retry-After": "1.5"}, 1500 * time.Millisecond},
		{"http date", map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, 90 * time.Second},
		{"date in the past", map[string]string{"Retry-After": now.Add(-time.Minute).Format(http.TimeFormat)}, 0},
		{"ms wins", map[string]string{"Retry-After": "7", "Retry-After-Ms": "250"}, 250 * time.Millisecond},
		{"garbage", map[string]string{"Retry-After": "soon"}, 0},
		{"negative", map[string]string{"Retry-After": "-3"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			if got := parseRetryAfter(h, now); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestUnreachableEndpoint(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	srv.Close() // connection refused from now on
	c, _ := newClient(t, srv, func(cfg *Config) { cfg.RetryBudget = time.Second })
	_, err := c.Stream(t.Context(), userRequest("gpt-4o", "hi"))
	if err == nil {
		t.Fatal("got no error from a closed server")
	}
	if !errors.Is(err, ErrServer) {
		t.Errorf("got %v, want ErrServer for an unreachable endpoint", err)
	}
	if strings.Contains(err.Error(), testKey) {
		t.Errorf("error %q contains the API key", err)
	}
}
