package discordtest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/adapters/discord/discordtest"
)

// apiHost is the host discordgo's endpoint variables name. The client's
// transport sends its requests to the test's own fake, so that tests run
// in parallel, each against a server of its own.
const apiHost = "discord.test"

// TestMain points discordgo at the fake's API (version 10, the one it
// serves) instead of discord.com.
func TestMain(m *testing.M) {
	root := "http://" + apiHost + "/"
	discordgo.EndpointDiscord = root
	discordgo.EndpointAPI = root + "api/v10/"
	discordgo.EndpointGuilds = discordgo.EndpointAPI + "guilds/"
	discordgo.EndpointChannels = discordgo.EndpointAPI + "channels/"
	discordgo.EndpointUsers = discordgo.EndpointAPI + "users/"
	discordgo.EndpointGateway = discordgo.EndpointAPI + "gateway"
	discordgo.EndpointGatewayBot = discordgo.EndpointGateway + "/bot"
	discordgo.EndpointWebhooks = discordgo.EndpointAPI + "webhooks/"
	discordgo.EndpointApplications = discordgo.EndpointAPI + "applications"
	os.Exit(m.Run())
}

// loopbackDial refuses any dial that is not to loopback.
func loopbackDial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("test dialed %s: only loopback is allowed", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// start is where every test's clock starts.
var start = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// clock is a fake clock: time moves only when a test advances it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// exchange is one REST call as the fake answered it.
type exchange struct {
	method, path string
	status       int
	header       http.Header
	body         []byte
}

// transport sends discordgo's requests to the fake and logs the answers.
// It hides the rate-limit headers from discordgo, whose own buckets wait
// them out on the real clock with time.Sleep; the tests read them from
// the log instead.
type transport struct {
	base   *http.Transport
	target *url.URL

	mu  sync.Mutex
	log []exchange
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != apiHost {
		return nil, fmt.Errorf("test called %s: only the fake is allowed", req.URL)
	}
	out := req.Clone(req.Context())
	u := *req.URL
	u.Scheme, u.Host = tr.target.Scheme, tr.target.Host
	out.URL, out.Host = &u, ""
	resp, err := tr.base.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	tr.mu.Lock()
	tr.log = append(tr.log, exchange{method: req.Method, path: req.URL.Path, status: resp.StatusCode,
		header: resp.Header.Clone(), body: body})
	tr.mu.Unlock()
	for k := range resp.Header {
		if strings.HasPrefix(k, "X-Ratelimit-") {
			resp.Header.Del(k)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// last returns the last exchange.
func (tr *transport) last(t *testing.T) exchange {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.log) == 0 {
		t.Fatal("no call reached the fake")
	}
	return tr.log[len(tr.log)-1]
}

// env is a test's fake with its clock and a discordgo client.
type env struct {
	t     *testing.T
	fake  *discordtest.Server
	clock *clock
	s     *discordgo.Session
	tr    *transport

	// age is how old a message is when a call deletes it (see calls).
	age time.Duration

	interactions chan *discordgo.Interaction
	opened       bool
}

// newEnv starts a fake on a fake clock (opts.Now is set) and a discordgo
// session on it that returns 429s as errors rather than retrying.
func newEnv(t *testing.T, opts discordtest.Options) *env {
	t.Helper()
	clk := &clock{t: start}
	opts.Now = clk.Now
	fake := discordtest.New(t, opts)
	target, err := url.Parse(fake.URL)
	if err != nil {
		t.Fatal(err)
	}
	tr := &transport{base: &http.Transport{DialContext: loopbackDial}, target: target}
	t.Cleanup(tr.base.CloseIdleConnections)
	s, err := discordgo.New("Bot " + fake.Token())
	if err != nil {
		t.Fatal(err)
	}
	s.Client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	s.ShouldRetryOnRateLimit = false
	s.Dialer = &websocket.Dialer{NetDialContext: loopbackDial, HandshakeTimeout: 10 * time.Second}
	return &env{t: t, fake: fake, clock: clk, s: s, tr: tr}
}

// interaction opens the gateway (once), sends a slash command from a user
// and returns it as discordgo received it.
func (e *env) interaction(channel string) *discordgo.Interaction {
	e.t.Helper()
	if !e.opened {
		e.interactions = make(chan *discordgo.Interaction, 16)
		e.s.AddHandler(func(_ *discordgo.Session, ic *discordgo.InteractionCreate) {
			e.interactions <- ic.Interaction
		})
		if err := e.s.Open(); err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(func() { e.s.Close() })
		e.opened = true
	}
	id := e.fake.Interact(discordtest.Interaction{GuildID: e.fake.GuildID, ChannelID: channel,
		User: e.fake.AddUser("ann"), Name: "ask"})
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case in := <-e.interactions:
			if in.ID == id {
				return in
			}
		case <-deadline.C:
			e.t.Fatalf("interaction %s never reached discordgo", id)
		}
	}
}

// botMessage posts a message as the bot and returns its id.
func (e *env) botMessage(channel string) string {
	e.t.Helper()
	m, err := e.s.ChannelMessageSend(channel, "hello")
	if err != nil {
		e.t.Fatal(err)
	}
	return m.ID
}

// rateLimited returns the 429 discordgo reported, or fails the test.
func rateLimited(t *testing.T, err error) *discordgo.RateLimitError {
	t.Helper()
	var rle *discordgo.RateLimitError
	if !errors.As(err, &rle) {
		t.Fatalf("got %v, want a 429", err)
	}
	return rle
}

// must fails the test on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
