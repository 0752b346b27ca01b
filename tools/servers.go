package tools

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Server states, as Status reports them.
const (
	StateConnecting = "connecting"
	StateConnected  = "connected"
	StateDown       = "down"
)

// ServersConfig configures Servers. Zero values are documented defaults.
type ServersConfig struct {
	Servers []ServerConfig
	// Version is Parley's version, sent to servers as the client's.
	Version string
	// HTTPClient carries the HTTP servers' requests (their headers are
	// added to it); default a client with a 30 s dial and header timeout.
	HTTPClient *http.Client
	// PingEvery is how often a connected server is pinged; a server that
	// does not answer is reconnected. Default 30 s.
	PingEvery time.Duration
	// Backoff is the first wait before reconnecting a server that failed;
	// it doubles up to MaxBackoff (default 1 s and 1 min). A server that
	// stayed connected for MaxBackoff starts again from Backoff.
	Backoff, MaxBackoff time.Duration
	Logger              *slog.Logger
}

// Servers connects to the configured MCP servers and keeps them connected:
// it starts stdio servers and restarts them with backoff when they exit,
// reconnects HTTP servers, and re-lists a server's tools when it says its
// list changed. It is a Source.
type Servers struct {
	cfg ServersConfig
	log *slog.Logger
	srv []*server

	mu    sync.Mutex
	tools []Tool // of the connected servers, sorted by name
}

// server is one configured server and its connection.
type server struct {
	cfg     ServerConfig
	changed chan struct{} // the tool list changed

	mu      sync.Mutex
	state   string
	err     string // the last failure, redacted
	session *mcp.ClientSession
	tools   []Tool
	since   time.Time
	tried   chan struct{} // closed after the first attempt
	once    sync.Once
}

// NewServers returns Servers for cfg; Run connects them.
func NewServers(cfg ServersConfig) *Servers {
	if cfg.PingEvery <= 0 {
		cfg.PingEvery = 30 * time.Second
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			ResponseHeaderTimeout: 30 * time.Second,
			IdleConnTimeout:       90 * time.Second,
		}}
	}
	s := &Servers{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	for _, c := range cfg.Servers {
		s.srv = append(s.srv, &server{cfg: c, state: StateConnecting, changed: make(chan struct{}, 1), tried: make(chan struct{})})
	}
	return s
}

// Run connects every server and keeps it connected until ctx ends; then
// it closes the sessions (stopping the stdio servers) and returns once
// every goroutine it started is done.
func (s *Servers) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, sv := range s.srv {
		wg.Go(func() { s.supervise(ctx, sv) })
	}
	wg.Wait()
	return nil
}

// Ready waits until every server has been tried once (connected or
// failed), or ctx ends.
func (s *Servers) Ready(ctx context.Context) error {
	for _, sv := range s.srv {
		select {
		case <-sv.tried:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// supervise keeps one server connected.
func (s *Servers) supervise(ctx context.Context, sv *server) {
	defer sv.once.Do(func() { close(sv.tried) })
	log := s.log.With("mcp_server", sv.cfg.Name)
	wait := s.cfg.Backoff
	for ctx.Err() == nil {
		start := time.Now()
		err := s.serve(ctx, sv, log)
		if ctx.Err() != nil {
			return
		}
		msg := sv.cfg.redact(err.Error())
		sv.mu.Lock()
		sv.state, sv.err, sv.session, sv.tools, sv.since = StateDown, msg, nil, nil, time.Now()
		sv.mu.Unlock()
		s.rebuild()
		sv.once.Do(func() { close(sv.tried) })
		if time.Since(start) >= s.cfg.MaxBackoff {
			wait = s.cfg.Backoff // it ran well for a while
		}
		log.Warn("mcp server down; its tools are left out", "err", msg, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		wait = min(2*wait, s.cfg.MaxBackoff)
	}
}

// serve connects to the server once and serves it until the connection
// ends; it returns why.
func (s *Servers) serve(ctx context.Context, sv *server, log *slog.Logger) error {
	client := mcp.NewClient(&mcp.Implementation{Name: "parley", Version: s.cfg.Version}, &mcp.ClientOptions{
		Capabilities: &mcp.ClientCapabilities{},
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			select {
			case sv.changed <- struct{}{}:
			default:
			}
		},
	})
	transport, release := s.transport(sv.cfg, log)
	defer release()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	cs, err := client.Connect(cctx, transport, nil)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer cs.Close()
	if err := s.list(ctx, sv, cs); err != nil {
		return err
	}
	sv.mu.Lock()
	sv.state, sv.err, sv.session, sv.since = StateConnected, "", cs, time.Now()
	n := len(sv.tools)
	sv.mu.Unlock()
	s.rebuild()
	sv.once.Do(func() { close(sv.tried) })
	log.Info("mcp server connected", "tools", n)

	ended := make(chan error, 1)
	go func() { ended <- cs.Wait() }() // ends with the session, waited for below
	defer func() {
		cs.Close()
		<-ended
	}()
	ping := time.NewTicker(s.cfg.PingEvery)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-ended:
			ended <- err // for the deferred wait
			if err == nil {
				err = errors.New("the server closed the connection")
			}
			return fmt.Errorf("connection ended: %w", err)
		case <-sv.changed:
			if err := s.list(ctx, sv, cs); err != nil {
				return err
			}
			s.rebuild()
			log.Info("mcp server's tools changed", "tools", len(sv.snapshot()))
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := cs.Ping(pctx, nil)
			cancel()
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("ping: %w", err)
			}
		}
	}
}

// list reads the server's tools.
func (s *Servers) list(ctx context.Context, sv *server, cs *mcp.ClientSession) error {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var ts []Tool
	for t, err := range cs.Tools(lctx, nil) {
		if err != nil {
			return fmt.Errorf("list tools: %w", err)
		}
		if t == nil || t.Name == "" {
			continue
		}
		ts = append(ts, Tool{
			Name:        ModelName(sv.cfg.Name, t.Name),
			Server:      sv.cfg.Name,
			Remote:      t.Name,
			Description: clip(t.Description, 1024),
			Schema:      schemaOf(t.InputSchema),
			Approval:    sv.cfg.Approval,
		})
		if len(ts) >= 512 {
			break // a server with more is filtered anyway
		}
	}
	sv.mu.Lock()
	sv.tools = ts
	sv.mu.Unlock()
	return nil
}

// schemaOf returns a tool's input schema as a JSON object; a schema that
// is not one becomes an empty object schema.
func schemaOf(v any) map[string]any {
	b, err := json.Marshal(v)
	var m map[string]any
	if err != nil || json.Unmarshal(b, &m) != nil || m == nil {
		return map[string]any{"type": "object"}
	}
	return m
}

// transport returns the server's MCP transport and a func that releases
// what it holds once the session is closed (a stdio server's stderr logger).
func (s *Servers) transport(c ServerConfig, log *slog.Logger) (mcp.Transport, func()) {
	if c.Stdio() {
		cmd := exec.Command(c.Command, c.Args...)
		// Only what the config names: never Parley's own tokens.
		cmd.Env = make([]string, 0, len(c.Env))
		for k, v := range c.Env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		if len(cmd.Env) == 0 {
			cmd.Env = []string{} // nil would mean Parley's environment
		}
		pr, pw := io.Pipe()
		cmd.Stderr = pw
		done := make(chan struct{})
		go func() {
			defer close(done)
			logLines(pr, c, log)
		}()
		release := func() {
			pw.Close()
			<-done
		}
		return &mcp.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}, release
	}
	hc := *s.cfg.HTTPClient
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = headerTransport{base: base, headers: c.Headers}
	return &mcp.StreamableClientTransport{Endpoint: c.URL, HTTPClient: &hc, MaxRetries: 2}, func() {}
}

// logLines logs a stdio server's stderr, line by line, at debug level
// (servers are chatty there), cut to 500 bytes and without secrets. It ends
// when the pipe is closed.
func logLines(r io.Reader, c ServerConfig, log *slog.Logger) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		log.Debug("mcp server stderr", "line", clip(c.redact(sc.Text()), 500))
	}
	io.Copy(io.Discard, r)
}

// headerTransport adds a server's configured headers to each request.
type headerTransport struct {
	base    http.RoundTripper
	headers map[string]string
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if len(t.headers) > 0 {
		r = r.Clone(r.Context())
		for k, v := range t.headers {
			r.Header.Set(k, v)
		}
	}
	return t.base.RoundTrip(r)
}

func (sv *server) snapshot() []Tool {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return sv.tools
}

// rebuild recomputes the tools of the connected servers.
func (s *Servers) rebuild() {
	var all []Tool
	for _, sv := range s.srv {
		sv.mu.Lock()
		if sv.state == StateConnected || sv.session != nil {
			all = append(all, sv.tools...)
		}
		sv.mu.Unlock()
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	// A cut name could collide: the first keeps it.
	out := all[:0]
	for i, t := range all {
		if i > 0 && t.Name == all[i-1].Name {
			continue
		}
		out = append(out, t)
	}
	s.mu.Lock()
	s.tools = out
	s.mu.Unlock()
}

// Tools returns the tools of the servers connected now.
func (s *Servers) Tools() []Tool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tools
}

// Call calls t on its server.
func (s *Servers) Call(ctx context.Context, t Tool, args json.RawMessage) (Result, error) {
	var sv *server
	for _, x := range s.srv {
		if x.cfg.Name == t.Server {
			sv = x
		}
	}
	if sv == nil {
		return Result{}, fmt.Errorf("no server %q", t.Server)
	}
	sv.mu.Lock()
	cs := sv.session
	sv.mu.Unlock()
	if cs == nil {
		return Result{}, fmt.Errorf("the server %s is not connected", t.Server)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: t.Remote, Arguments: args})
	if err != nil {
		return Result{}, errors.New(sv.cfg.redact(err.Error()))
	}
	return Result{Text: resultText(res), Error: res.IsError}, nil
}

// resultText turns a call's content into text for the model.
func resultText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		switch c := c.(type) {
		case *mcp.TextContent:
			b.WriteString(c.Text)
		case *mcp.ImageContent:
			fmt.Fprintf(&b, "[an image, %s, that Parley does not pass on]", c.MIMEType)
		case *mcp.AudioContent:
			fmt.Fprintf(&b, "[audio, %s, that Parley does not pass on]", c.MIMEType)
		case *mcp.ResourceLink:
			fmt.Fprintf(&b, "[resource %s: %s]", c.Name, c.URI)
		case *mcp.EmbeddedResource:
			if c.Resource != nil && c.Resource.Text != "" {
				b.WriteString(c.Resource.Text)
			} else if c.Resource != nil {
				fmt.Fprintf(&b, "[resource %s]", c.Resource.URI)
			}
		default:
			if j, err := json.Marshal(c); err == nil {
				b.Write(j)
			}
		}
	}
	if b.Len() == 0 && res.StructuredContent != nil {
		if j, err := json.Marshal(res.StructuredContent); err == nil {
			b.Write(j)
		}
	}
	return b.String()
}

// ServerStatus is what Status says of one server.
type ServerStatus struct {
	Name      string
	Transport string // "stdio" or "http"
	State     string // StateConnecting, StateConnected or StateDown
	Err       string // why it is down (secrets hidden)
	Since     time.Time
	Approval  bool
	Tools     []Tool
}

// Status returns each server's state and tools, in config order.
func (s *Servers) Status() []ServerStatus {
	out := make([]ServerStatus, 0, len(s.srv))
	for _, sv := range s.srv {
		sv.mu.Lock()
		st := ServerStatus{Name: sv.cfg.Name, Transport: "http", State: sv.state, Err: sv.err, Since: sv.since, Approval: sv.cfg.Approval, Tools: sv.tools}
		sv.mu.Unlock()
		if sv.cfg.Stdio() {
			st.Transport = "stdio"
		}
		out = append(out, st)
	}
	return out
}
