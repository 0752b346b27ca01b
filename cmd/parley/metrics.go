package main

import (
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/llm"
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
	delivered  *prometheus.HistogramVec
	llmErrors  *prometheus.CounterVec
	llmRetries *prometheus.CounterVec
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
			Help: "Model time of whole answers, from the request to the end of the model's stream, by model (parley_reply_delivery_seconds is the rest).", Buckets: slow}, []string{"model"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_llm_tokens_total",
			Help: "Tokens in (prompt) and out (completion), by model."}, []string{"model", "direction"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_platform_calls_total",
			Help: "Platform calls by platform and op (post, edit, delete, progress, upload, start, append, stop, prepare: Discord's thread; on Slack chat.postMessage, chat.update, chat.delete, assistant.threads.setStatus, files.*, chat.startStream, chat.appendStream, chat.stopStream)."}, []string{"platform", "op"}),
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
		delivered: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "parley_reply_delivery_seconds",
			Help: "Time from the end of the model's answer until the reply was shown whole, by platform.", Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60}}, []string{"platform"}),
		llmErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_llm_errors_total",
			Help: "Answers the LLM endpoint failed, by kind (unauthorized, model_not_found, rate_limited, context_length, timeout, stream_cut, endpoint_not_found, unreachable, server, bad_request, other)."}, []string{"kind"}),
		llmRetries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_llm_retries_total",
			Help: "Requests to the LLM endpoint retried before the first byte, by the kind of failure (rate_limited, server, unreachable, stream_cut)."}, []string{"kind"}),
		takeovers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_takeovers_total",
			Help: "Conversations taken over from an instance gone (killed, paused past its lease, or shut down), by platform."}, []string{"platform"}),
		resumed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_resumed_answers_total",
			Help: "Unfinished answers taken over, by platform and outcome (answered: written again; marked: said to be interrupted; failed: cut twice, could not answer)."}, []string{"platform", "outcome"}),
		caughtUp: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_caught_up_messages_total",
			Help: "Messages missed while disconnected, found and handed to the engine, by platform."}, []string{"platform"}),
	}
	for _, c := range []prometheus.Collector{m.events, m.replies, m.firstToken, m.duration, m.tokens, m.calls, m.limited, m.wait, m.delivery, m.streams, m.queueWait, m.delivered, m.llmErrors, m.llmRetries, m.takeovers, m.resumed, m.caughtUp} {
		f(c)
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "parley_build_info",
		Help: "Always 1: the version of Parley and of Go it was built with."}, []string{"version", "goversion"})
	build.WithLabelValues(Version(), runtime.Version()).Set(1)
	f(build)
	for _, k := range llm.ErrorKinds {
		m.llmErrors.WithLabelValues(k)
	}
	for _, k := range llm.RetryKinds {
		m.llmRetries.WithLabelValues(k)
	}
	return m
}

// Label values the engine uses, so that every series exists from the start.
var (
	eventKinds    = []string{"message", "command", "reaction", "delete"}
	replyOutcomes = []string{"complete", "partial", "failed", "stopped"}
	deliveryKinds = []string{"native", "update", "continuation"}
)

// preset creates at zero every series of the platforms and the default
// model, so that dashboards and alerts see them before the first event
// (a rate over a series that does not exist yet is no rate at all).
// native says which platforms stream natively (the start, append and stop
// calls), prepares which prepare a first post (Discord's thread).
func (m *metrics) preset(platforms []string, native, prepares map[string]bool, model string) {
	for _, p := range platforms {
		for _, k := range eventKinds {
			m.events.WithLabelValues(p, k)
		}
		for _, o := range replyOutcomes {
			m.replies.WithLabelValues(p, o)
		}
		m.takeovers.WithLabelValues(p)
		m.caughtUp.WithLabelValues(p)
		for _, o := range []string{"answered", "marked", "failed"} {
			m.resumed.WithLabelValues(p, o)
		}
		for _, k := range deliveryKinds {
			m.delivery.WithLabelValues(p, k)
		}
		for c := bots.CallPost; c <= bots.CallPrepare; c++ {
			if c >= bots.CallStart && c <= bots.CallStop && !native[p] || c == bots.CallPrepare && !prepares[p] {
				continue
			}
			m.calls.WithLabelValues(p, c.String())
			m.limited.WithLabelValues(p, c.String())
			m.wait.WithLabelValues(p, c.String())
		}
		m.queueWait.WithLabelValues(p)
		m.delivered.WithLabelValues(p)
	}
	if model != "" {
		m.firstToken.WithLabelValues(model)
		m.duration.WithLabelValues(model)
		m.tokens.WithLabelValues(model, "in")
		m.tokens.WithLabelValues(model, "out")
	}
}

// watchPlatform exports whether platform is connected, as ready says at
// each scrape.
func (m *metrics) watchPlatform(platform string, ready func() bool) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "parley_platform_connected",
		Help:        "1 while the platform is connected (Slack: Socket Mode up, or auth.test answered in HTTP mode; Discord: gateway session up), else 0.",
		ConstLabels: prometheus.Labels{"platform": platform}}, func() float64 { return boolGauge(ready()) }))
}

// watchLLM exports whether the LLM endpoint answers, as health says.
func (m *metrics) watchLLM(health func() error) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "parley_llm_endpoint_up",
		Help: "1 while the LLM endpoint's last model listing (or a later answer) worked, else 0."}, func() float64 { return boolGauge(health() == nil) }))
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// LLMError counts an answer the endpoint failed; LLMRetry a retry.
func (m *metrics) LLMError(kind string) { m.llmErrors.WithLabelValues(kind).Inc() }
func (m *metrics) LLMRetry(kind string) { m.llmRetries.WithLabelValues(kind).Inc() }

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
func (m *metrics) Delivered(platform string, d time.Duration) {
	m.delivered.WithLabelValues(platform).Observe(d.Seconds())
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
