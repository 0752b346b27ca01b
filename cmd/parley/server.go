package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/parleyhq/parley/cmd/parley/config"
)

// route is one HTTP endpoint with the most a request to it may carry:
// strangers cannot make Parley read megabytes of headers for /healthz.
type route struct {
	pattern   string // as http.ServeMux takes it: "POST /slack/events"
	handler   http.Handler
	maxHeader int   // bytes of the request line and headers
	maxBody   int64 // bytes of the body
}

// Limits of the routes. Slack's requests are small (a command is a form of
// a few hundred bytes; an event or an interaction a JSON document that
// Slack keeps well under 1 MiB); probes and scrapers send no body.
const (
	opsMaxHeader   = 8 << 10
	slackMaxHeader = 16 << 10
	// maxHeaderBytes is the servers' ceiling for every route: Go answers
	// 431 beyond it before any handler runs.
	maxHeaderBytes = 16 << 10
)

// shutdownTimeout bounds the HTTP servers' graceful shutdown.
const shutdownTimeout = 10 * time.Second

// limited enforces r's header and body limits before r's handler sees the
// request.
func limited(r route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		size := len(req.Method) + len(req.RequestURI) + len(req.Proto) + 4
		for k, vs := range req.Header {
			for _, v := range vs {
				size += len(k) + len(v) + 4
			}
		}
		if size > r.maxHeader {
			http.Error(w, "request headers too large", http.StatusRequestHeaderFieldsTooLarge)
			return
		}
		if req.ContentLength > r.maxBody {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		req.Body = http.MaxBytesReader(w, req.Body, r.maxBody)
		r.handler.ServeHTTP(w, req)
	})
}

// httpServer is one listening HTTP server.
type httpServer struct {
	name string // "http" or "ops"
	ln   net.Listener
	srv  *http.Server
}

// listenHTTP listens on HTTP_ADDR for the public routes and on OPS_ADDR
// for the operators' routes, one server when the addresses are the same.
// It listens before anything starts, so that a taken port is reported as a
// configuration problem.
func listenHTTP(cfg config.HTTP, public, ops []route, log *slog.Logger) ([]*httpServer, error) {
	if !cfg.SplitOps() {
		s, err := newHTTPServer("http", "HTTP_ADDR", cfg.Addr, cfg, append(public, ops...), log)
		if err != nil {
			return nil, err
		}
		return []*httpServer{s}, nil
	}
	pub, err := newHTTPServer("http", "HTTP_ADDR", cfg.Addr, cfg, public, log)
	if err != nil {
		return nil, err
	}
	op, err := newHTTPServer("ops", "OPS_ADDR", cfg.OpsAddr, cfg, ops, log)
	if err != nil {
		pub.ln.Close()
		return nil, err
	}
	return []*httpServer{pub, op}, nil
}

func newHTTPServer(name, variable, addr string, cfg config.HTTP, routes []route, log *slog.Logger) (*httpServer, error) {
	mux := http.NewServeMux()
	seen := map[string]bool{}
	for _, r := range routes {
		if seen[r.pattern] {
			continue // /healthz is on both lists
		}
		seen[r.pattern] = true
		mux.Handle(r.pattern, limited(r))
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", variable, err)
	}
	return &httpServer{
		name: name,
		ln:   capConns(ln, cfg.MaxConns, log.With("server", name)),
		srv: &http.Server{
			Handler: mux,
			// A slow client (slowloris) holds a connection at most this
			// long: reading the headers and the body, writing the answer,
			// waiting for the next request.
			ReadHeaderTimeout: cfg.ReadTimeout,
			ReadTimeout:       cfg.ReadTimeout,
			WriteTimeout:      cfg.WriteTimeout,
			IdleTimeout:       cfg.IdleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
	}, nil
}

// run serves until ctx ends, then shuts down within shutdownTimeout.
func (s *httpServer) run(ctx context.Context, g *errgroup.Group) {
	g.Go(func() error {
		if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		return s.srv.Shutdown(sctx)
	})
}

// capConns returns ln holding at most n connections at once: one more is
// closed as soon as it is accepted, so that it costs neither a goroutine
// nor a wait in the kernel's queue, and the client learns at once.
func capConns(ln net.Listener, n int, log *slog.Logger) net.Listener {
	if n <= 0 {
		return ln
	}
	return &cappedListener{Listener: ln, slots: make(chan struct{}, n), log: log}
}

type cappedListener struct {
	net.Listener
	slots   chan struct{}
	log     *slog.Logger
	refused atomic.Int64
	logged  atomic.Int64 // unix seconds of the last warning
}

func (l *cappedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &cappedConn{Conn: c, free: func() { <-l.slots }}, nil
		default:
		}
		c.Close()
		n := l.refused.Add(1)
		// At most one warning a minute: a flood must not flood the logs.
		now := time.Now().Unix()
		if last := l.logged.Load(); now-last >= 60 && l.logged.CompareAndSwap(last, now) {
			l.log.Warn("http: connection refused: HTTP_MAX_CONNS connections are open", "max", cap(l.slots), "refused_so_far", n)
		}
	}
}

// cappedConn gives its slot back when closed.
type cappedConn struct {
	net.Conn
	once sync.Once
	free func()
}

func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.free)
	return err
}
