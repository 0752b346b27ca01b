package tools_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/llm/llmtest"
	"github.com/parleyhq/parley/tools"
	"github.com/parleyhq/parley/tools/mcptest"
)

// BenchmarkToolRound measures what a round of tool calls adds to an
// answer beyond the tools' own time: the answer with one call (to echo,
// over streamable HTTP on loopback) against the same answer without, less
// the call's time as the loop measured it. The added time holds the second
// request to the model (instant here), the call's JSON and protocol work,
// and the loop's own.
//
//	go test ./tools -run '^$' -bench ToolRound -benchtime 200x
func BenchmarkToolRound(b *testing.B) {
	srv := mcptest.NewServer()
	h := mcptest.HTTP(srv, "")
	b.Cleanup(h.Close)
	servers := startServers(b, nil, tools.ServerConfig{Name: "t", URL: h.URL})
	waitState(b, servers, "t", tools.StateConnected)
	var toolTime atomic.Int64
	loop := tools.New(tools.Config{Source: servers, Logger: quiet(), OnCall: func(_, _, _ string, d time.Duration) { toolTime.Add(int64(d)) }})
	offered := loop.Offer(nil)
	model, _ := fakeModel(b, func(req llmtest.Request) llmtest.Reply {
		if len(req.Tools) == 0 || len(req.ToolResults()) > 0 {
			return llmtest.Reply{Chunks: []string{"The ", "answer."}}
		}
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "t__echo", Arguments: `{"text":"a result of a few words"}`}}}
	})
	ctx := context.Background()
	answer := func(offered []tools.Tool) time.Duration {
		start := time.Now()
		ans, err := loop.Answer(ctx, model, question("q"), offered, &recorder{})
		if err != nil || ans.Text != "The answer." {
			b.Fatalf("got %q, %v", ans.Text, err)
		}
		return time.Since(start)
	}
	for range 20 { // warm the connections
		answer(offered)
		answer(nil)
	}
	toolTime.Store(0)
	var with, without time.Duration
	b.ResetTimer()
	for range b.N {
		with += answer(offered)
		b.StopTimer()
		without += answer(nil)
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(float64(with)/n/1e6, "ms-with-tool/op")
	b.ReportMetric(float64(without)/n/1e6, "ms-without/op")
	b.ReportMetric(float64(toolTime.Load())/n/1e6, "ms-in-tool/op")
	b.ReportMetric(float64(with-without-time.Duration(toolTime.Load()))/n/1e6, "ms-added/op")
}

// BenchmarkServerMemory measures Parley's heap per connected MCP server:
// stdio servers (this test binary, so that the servers' own memory is in
// their processes, not here), all connected, after a GC.
//
//	go test ./tools -run '^$' -bench ServerMemory -benchtime 1x
func BenchmarkServerMemory(b *testing.B) {
	const n = 20
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()
		var cfgs []tools.ServerConfig
		for i := range n {
			cfgs = append(cfgs, stdioConfig(fmt.Sprintf("s%d", i), nil))
		}
		ctx, cancel := context.WithCancel(context.Background())
		s := tools.NewServers(tools.ServersConfig{Servers: cfgs, Logger: quiet()})
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Run(ctx)
		}()
		for i := range n {
			waitState(b, s, fmt.Sprintf("s%d", i), tools.StateConnected)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		g1 := runtime.NumGoroutine()
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n/1024, "KiB-heap/server")
		b.ReportMetric(float64(g1-g0)/n, "goroutines/server")
		cancel()
		<-done
	}
}
