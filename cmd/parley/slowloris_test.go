package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The slow connections a slowloris attack holds open, each as the server
// should end it.
type slowKind int

const (
	slowHeaders slowKind = iota // headers that never end, a byte at a time: closed at HTTP_READ_TIMEOUT
	slowBody                    // a body that never ends, a byte at a time: closed at HTTP_READ_TIMEOUT
	slowIdle                    // a kept-alive connection after one request: closed at HTTP_IDLE_TIMEOUT
	numSlowKinds
)

var slowNames = [numSlowKinds]string{"headers", "body", "idle"}

// slowResult is what a slowloris run measured.
type slowResult struct {
	conns           int
	healthz, events []time.Duration // answer times while the slow connections were open
	failures        []string        // probes not answered 200
	openAtEnd       int             // slow connections still open when the probes ended
	closedAfter     [numSlowKinds][]time.Duration
	stillOpen       [numSlowKinds]int // slow connections the server had not closed by the deadline
	fdsBefore       int
	fdsPeak         int
	fdsAfter        int
}

// openFDs counts this process's file descriptors (Linux), both ends of
// every loopback connection included; -1 where it cannot be known.
func openFDs() int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(es)
}

// slowloris opens n slow connections to a bot (a third of each kind),
// sends probes /healthz requests and as many signed events while they are
// open, each on a new connection, and waits until the server has closed
// every slow connection, at most each one's timeout and grace.
func slowloris(tb testing.TB, b *httpBot, n, probes int, read, idle, drip, grace time.Duration) slowResult {
	tb.Helper()
	addr := strings.TrimPrefix(b.http, "http://")
	res := slowResult{conns: n, fdsBefore: openFDs()}
	type slow struct {
		kind   slowKind
		start  time.Time // when the timeout that should end it began
		closed chan time.Time
	}
	conns := make([]*slow, n)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for i := range conns {
		s := &slow{kind: slowKind(i % int(numSlowKinds)), closed: make(chan time.Time, 1)}
		conns[i] = s
		c, err := net.Dial("tcp", addr)
		if err != nil {
			tb.Fatalf("slow connection %d: %v", i, err)
		}
		s.start = time.Now()
		br := bufio.NewReader(c)
		switch s.kind {
		case slowHeaders:
			fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: parley\r\nX-Slow: ")
		case slowBody:
			fmt.Fprintf(c, "POST /slack/events HTTP/1.1\r\nHost: parley\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
		case slowIdle:
			fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: parley\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				tb.Fatalf("idle connection %d: %v", i, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			s.start = time.Now()
		}
		wg.Go(func() { // reads until the server closes the connection
			io.Copy(io.Discard, br)
			s.closed <- time.Now()
			c.Close()
		})
		if s.kind != slowIdle {
			wg.Go(func() { // a byte every drip, as long as the server takes them
				t := time.NewTicker(drip)
				defer t.Stop()
				for {
					select {
					case <-stop:
						c.Close()
						return
					case <-t.C:
						if _, err := c.Write([]byte("x")); err != nil {
							return
						}
					}
				}
			})
		} else {
			wg.Go(func() {
				<-stop
				c.Close()
			})
		}
	}
	res.fdsPeak = openFDs()

	for i := range probes {
		t0 := time.Now()
		resp, err := noKeepAlive.Get(b.http + "/healthz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		res.healthz = append(res.healthz, time.Since(t0))
		if err != nil || resp.StatusCode != 200 {
			res.failures = append(res.failures, fmt.Sprintf("/healthz %d: %v %v", i, statusOf(resp), err))
		}
		t0 = time.Now()
		code, err := b.event(noKeepAlive)
		res.events = append(res.events, time.Since(t0))
		if err != nil || code != 200 {
			res.failures = append(res.failures, fmt.Sprintf("event %d: %d %v", i, code, err))
		}
	}
	for _, s := range conns {
		select {
		case at := <-s.closed:
			s.closed <- at // still to be read below
		default:
			res.openAtEnd++
		}
	}

	for _, s := range conns {
		timeout := read
		if s.kind == slowIdle {
			timeout = idle
		}
		t := time.NewTimer(max(time.Until(s.start.Add(timeout+grace)), 0))
		var at time.Time
		select {
		case at = <-s.closed: // closed already: a timer also due must not win
		default:
			select {
			case at = <-s.closed:
			case <-t.C:
			}
		}
		t.Stop()
		if at.IsZero() {
			res.stillOpen[s.kind]++
			continue
		}
		res.closedAfter[s.kind] = append(res.closedAfter[s.kind], at.Sub(s.start))
	}
	res.fdsAfter = openFDs()
	return res
}

func statusOf(r *http.Response) int {
	if r == nil {
		return 0
	}
	return r.StatusCode
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// TestSlowlorisShort is the short form of BenchmarkSlowloris that CI runs,
// with timeouts of 2 s: while 500 slow connections are open, /healthz and
// signed events are answered, and each slow connection is closed by the
// server once its timeout passes, not before.
func TestSlowlorisShort(t *testing.T) {
	const read, idle = 2 * time.Second, 2 * time.Second
	b := startHTTPBot(t, map[string]string{"HTTP_READ_TIMEOUT": read.String(), "HTTP_IDLE_TIMEOUT": idle.String()})
	r := slowloris(t, b, 500, 10, read, idle, 500*time.Millisecond, 10*time.Second)
	for _, f := range r.failures {
		t.Errorf("not answered while slow connections were open: %s", f)
	}
	for k, n := range r.stillOpen {
		if n > 0 {
			t.Errorf("%d slow connections (%s) still open after their timeout", n, slowNames[k])
		}
	}
	for k, ds := range r.closedAfter {
		timeout := read
		if slowKind(k) == slowIdle {
			timeout = idle
		}
		for _, d := range ds {
			if d < timeout*9/10 {
				t.Errorf("a slow connection (%s) was closed after %s, before its timeout of %s", slowNames[k], d, timeout)
				break
			}
		}
	}
}

// BenchmarkSlowloris measures the server under a slowloris attack in the
// default settings (HTTP_READ_TIMEOUT 10s, HTTP_IDLE_TIMEOUT 60s): 500
// slow connections (slow headers, slow bodies, idle keep-alives), a byte a
// second on each; /healthz and signed events are timed while they are
// open, and each slow connection's end is timed from when its timeout
// began. It runs about a minute (the idle timeout):
//
//	go test ./cmd/parley -run '^$' -bench Slowloris -benchtime 1x
func BenchmarkSlowloris(b *testing.B) {
	for b.Loop() {
		bot := startHTTPBot(b, nil)
		r := slowloris(b, bot, 500, 100, 10*time.Second, 60*time.Second, time.Second, 10*time.Second)
		b.ReportMetric(float64(r.conns), "slow-conns")
		b.ReportMetric(ms(quantile(r.healthz, 0.5)), "healthz-p50-ms")
		b.ReportMetric(ms(quantile(r.healthz, 0.99)), "healthz-p99-ms")
		b.ReportMetric(ms(quantile(r.events, 0.5)), "event-p50-ms")
		b.ReportMetric(ms(quantile(r.events, 0.99)), "event-p99-ms")
		b.ReportMetric(float64(len(r.failures)), "failed-probes")
		b.ReportMetric(float64(r.openAtEnd), "open-after-probes")
		for k, n := range r.stillOpen {
			b.ReportMetric(float64(n), "open-past-timeout-"+slowNames[k])
		}
		b.ReportMetric(float64(r.fdsPeak-r.fdsBefore), "fds-added")
		b.ReportMetric(float64(r.fdsAfter-r.fdsBefore), "fds-left")
		for k, ds := range r.closedAfter {
			b.ReportMetric(quantile(ds, 1).Seconds(), "closed-"+slowNames[k]+"-max-s")
		}
		b.Logf("500 slow connections: /healthz p50 %.1f ms, p99 %.1f ms, max %.1f ms; signed event p50 %.1f ms, p99 %.1f ms, max %.1f ms; %d failed; closed after (max) headers %s, body %s, idle %s; open past their timeout: %v; fds %d before, %d with the connections, %d after",
			ms(quantile(r.healthz, 0.5)), ms(quantile(r.healthz, 0.99)), ms(quantile(r.healthz, 1)),
			ms(quantile(r.events, 0.5)), ms(quantile(r.events, 0.99)), ms(quantile(r.events, 1)), len(r.failures),
			quantile(r.closedAfter[slowHeaders], 1).Round(time.Millisecond), quantile(r.closedAfter[slowBody], 1).Round(time.Millisecond), quantile(r.closedAfter[slowIdle], 1).Round(time.Millisecond),
			r.stillOpen, r.fdsBefore, r.fdsPeak, r.fdsAfter)
	}
}
