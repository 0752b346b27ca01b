package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleyhq/parley/cmd/parley/config"
	"github.com/parleyhq/parley/tools"
)

// newTools reads MCP_CONFIG and builds the MCP servers and the tool loop
// over them; both nil when MCP_CONFIG is empty (no tools). Run the servers
// with m.servers.Run.
func (m *Main) newTools(cfg config.Tools, log *slog.Logger) (*tools.Servers, *tools.Loop, error) {
	if cfg.MCPConfig == "" {
		return nil, nil, nil
	}
	lookup := func(k string) (string, bool) {
		if m.Environ == nil {
			return "", false
		}
		return m.Environ.Lookup(k)
	}
	sc, err := tools.LoadConfig(cfg.MCPConfig, lookup)
	if err != nil {
		return nil, nil, fmt.Errorf("MCP_CONFIG: %w", err)
	}
	servers := tools.NewServers(tools.ServersConfig{Servers: sc, Version: Version(), Logger: log})
	var onCall func(server, tool, outcome string, d time.Duration)
	if m.metrics != nil {
		onCall = m.metrics.watchTools(servers)
	}
	loop := tools.New(tools.Config{
		Source:         servers,
		MaxRounds:      cfg.MaxRounds,
		CallTimeout:    cfg.CallTimeout,
		MaxResultBytes: cfg.MaxResultBytes,
		OnCall:         onCall,
		Logger:         log,
	})
	return servers, loop, nil
}

// runServers runs m's MCP servers, if any, until ctx ends.
func (m *Main) runServers(ctx context.Context) error {
	if m.servers == nil {
		return nil
	}
	return m.servers.Run(ctx)
}

// serversWait bounds how long the bot and the console wait, before taking
// messages, for each MCP server's first connection attempt: the first
// questions should have the tools, but a slow server must not hold the
// bot back.
const serversWait = 15 * time.Second

// awaitServers waits until each MCP server was tried once, at most
// serversWait.
func (m *Main) awaitServers(ctx context.Context, log *slog.Logger) {
	if m.servers == nil {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, serversWait)
	defer cancel()
	if err := m.servers.Ready(wctx); err != nil && ctx.Err() == nil {
		log.Warn("MCP servers still connecting; their tools come when they do", "waited", serversWait)
	}
}

// toolsCheckTimeout bounds how long `parley tools` waits for the servers.
const toolsCheckTimeout = 30 * time.Second

// runTools lists the configured MCP servers, their state and tools, after
// trying to connect to each; it fails when one is down.
func (m *Main) runTools(ctx context.Context) error {
	cfg, err := m.loadConfig(ctx, config.ForInspect)
	if err != nil {
		return err
	}
	log := newLogger(m.Stderr, config.Log{Level: max(cfg.Log.Level, slog.LevelError), Format: cfg.Log.Format})
	servers, _, err := m.newTools(cfg.Tools, log)
	if err != nil {
		return err
	}
	if servers == nil {
		_, err := fmt.Fprintln(m.Stdout, "No tools: MCP_CONFIG is not set. Set it to a JSON file of MCP servers (see the README's Tools section).")
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		servers.Run(rctx)
	}()
	wctx, wcancel := context.WithTimeout(ctx, toolsCheckTimeout)
	servers.Ready(wctx)
	wcancel()
	status := servers.Status()
	cancel()
	<-done

	w := tabwriter.NewWriter(m.Stdout, 2, 4, 2, ' ', 0)
	down := 0
	for _, st := range status {
		line := fmt.Sprintf("%s\t%s\t%s", st.Name, st.Transport, st.State)
		switch st.State {
		case tools.StateConnected:
			line += fmt.Sprintf("\t%d tools", len(st.Tools))
		case tools.StateDown:
			down++
			line += "\t" + st.Err
		default:
			down++
			line += "\tno answer within " + toolsCheckTimeout.String()
		}
		if st.Approval {
			line += "\t(calls need approval)"
		}
		fmt.Fprintln(w, line)
		for _, t := range st.Tools {
			desc, _, _ := strings.Cut(t.Description, "\n")
			fmt.Fprintf(w, "  %s\t%s\t%s\n", t.Display(), t.Name, desc)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if down > 0 {
		return fmt.Errorf("%d of %d MCP servers are not connected", down, len(status))
	}
	return nil
}

// watchTools exports the MCP servers' state and returns the loop's OnCall,
// which counts tool calls by server, tool and outcome, and times them.
func (m *metrics) watchTools(s *tools.Servers) func(server, tool, outcome string, d time.Duration) {
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_tool_calls_total",
		Help: "Tool calls by MCP server, tool and outcome (ok, cut, error, failed, timeout, unknown, bad_arguments, not_run, denied)."}, []string{"server", "tool", "outcome"})
	seconds := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "parley_tool_call_seconds",
		Help: "Duration of tool calls, by MCP server and tool.", Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60}}, []string{"server", "tool"})
	m.reg.MustRegister(calls, seconds)
	for _, st := range s.Status() {
		name := st.Name
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "parley_mcp_server_up",
			Help:        "1 while the MCP server is connected, else 0.",
			ConstLabels: prometheus.Labels{"server": name}}, func() float64 {
			for _, x := range s.Status() {
				if x.Name == name {
					return boolGauge(x.State == tools.StateConnected)
				}
			}
			return 0
		}))
	}
	return func(server, tool, outcome string, d time.Duration) {
		calls.WithLabelValues(server, tool, outcome).Inc()
		if d > 0 {
			seconds.WithLabelValues(server, tool).Observe(d.Seconds())
		}
	}
}
