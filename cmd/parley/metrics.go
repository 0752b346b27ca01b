package main

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parleyhq/parley/bots"
)

var (
	_ bots.Observer         = (*metrics)(nil)
	_ bots.RecoveryObserver = (*metrics)(nil)
)

// metrics exports the engine's measurements in the Prometheus format at
// /metrics, from a registry of its own (tests build several).
type metrics struct {
	reg        *prometheus.Registry
	events     *prometheus.CounterVec
	replies    *prometheus.CounterVec
	firstToken *prometheus.HistogramVec
	duration   *prometheus.HistogramVec
	tokens     *prometheus.CounterVec
	calls      *prometheus.CounterVec
	limited    *prometheus.CounterVec
	wait       *prometheus.HistogramVec
	delivery   *prometheus.CounterVec
	streams    prometheus.Gauge
	queueWait  *prometheus.HistogramVec
	takeovers  *prometheus.CounterVec
	resumed    *prometheus.CounterVec
	caughtUp   *prometheus.CounterVec
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	slow := []float64{0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900}
	m := &metrics{
		reg: reg,
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_events_total",
			Help: "Events received, by platform and kind (message, command, reaction, delete)."}, []string{"platform", "kind"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_replies_total",
			Help: "Replies finished, by platform and outcome (complete, partial, failed, stopped)."}, []string{"platform", "outcome"}),
		firstToken: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "parley_llm_first_token_seconds",
			Help: "Time from the LLM request to the first text, by model.", Buckets: slow}, []string{"model"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "parley_llm_answer_seconds",
			Help: "Duration of whole answers, by model.", Buckets: slow}, []string{"model"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_llm_tokens_total",
			Help: "Tokens in (prompt) and out (completion), by model."}, []string{"model", "direction"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_platform_calls_total",
			Help: "Platform calls by platform and op (post, edit, delete, progress, upload, start, append, stop; on Slack chat.postMessage, chat.update, chat.delete, assistant.threads.setStatus, files.*, chat.startStream, chat.appendStream, chat.stopStream)."}, []string{"platform", "op"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_platform_rate_limited_total",
			Help: "Platform calls answered with 429, by platform and op."}, []string{"platform", "op"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "parley_platform_budget_wait_seconds",
			Help: "Time calls waited for their rate budgets, by platform and op.", Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60}}, []string{"platform", "op"}),
		delivery: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_replies_delivered_total",
			Help: "Replies by delivery: native (a native stream), update (a post and edits), continuation (the end of an answer in a new message rather than wait)."}, []string{"platform", "kind"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{Name: "parley_active_streams",
			Help: "Answers being streamed now."}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "parley_queue_wait_seconds",
			Help: "Time a message waited for its turn, by platform.", Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60}}, []string{"platform"}),
		takeovers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_takeovers_total",
			Help: "Conversations taken over from an instance gone (killed, paused past its lease, or shut down), by platform."}, []string{"platform"}),
		resumed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_resumed_answers_total",
			Help: "Unfinished answers taken over, by platform and outcome (answered: written again; marked: said to be interrupted; failed: cut twice, could not answer)."}, []string{"platform", "outcome"}),
		caughtUp: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_caught_up_messages_total",
			Help: "Messages missed while disconnected, found and handed to the engine, by platform."}, []string{"platform"}),
	}
	for _, c := range []prometheus.Collector{m.events, m.replies, m.firstToken, m.duration, m.tokens, m.calls, m.limited, m.wait, m.delivery, m.streams, m.queueWait, m.takeovers, m.resumed, m.caughtUp} {
		f(c)
	}
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *metrics) Event(platform, kind string)    { m.events.WithLabelValues(platform, kind).Inc() }
func (m *metrics) Reply(platform, outcome string) { m.replies.WithLabelValues(platform, outcome).Inc() }
func (m *metrics) FirstToken(model string, d time.Duration) {
	m.firstToken.WithLabelValues(model).Observe(d.Seconds())
}
func (m *metrics) Answer(model string, d time.Duration, in, out int) {
	m.duration.WithLabelValues(model).Observe(d.Seconds())
	m.tokens.WithLabelValues(model, "in").Add(float64(in))
	m.tokens.WithLabelValues(model, "out").Add(float64(out))
}
func (m *metrics) Call(platform, op string, limited bool) {
	m.calls.WithLabelValues(platform, op).Inc()
	if limited {
		m.limited.WithLabelValues(platform, op).Inc()
	}
}
func (m *metrics) Wait(platform, op string, d time.Duration) {
	m.wait.WithLabelValues(platform, op).Observe(d.Seconds())
}
func (m *metrics) Delivery(platform, kind string) { m.delivery.WithLabelValues(platform, kind).Inc() }
func (m *metrics) Streams(delta int)              { m.streams.Add(float64(delta)) }
func (m *metrics) QueueWait(platform string, d time.Duration) {
	m.queueWait.WithLabelValues(platform).Observe(d.Seconds())
}

func (m *metrics) Takeover(platform string, n int) {
	m.takeovers.WithLabelValues(platform).Add(float64(n))
}
func (m *metrics) Resumed(platform, outcome string) {
	m.resumed.WithLabelValues(platform, outcome).Inc()
}
func (m *metrics) CaughtUp(platform string, n int) {
	m.caughtUp.WithLabelValues(platform).Add(float64(n))
}
