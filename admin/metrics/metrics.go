// Package metrics exposes tollgate's Prometheus metrics: data-plane decisions,
// recorded spend and tokens by model, ext_proc message latency, store
// operation latency and errors, and the webhook outbox. Labels are kept to
// small fixed sets (and a capped set of model names); per-customer numbers
// belong to the admin API, never to metric labels.
package metrics

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Outcomes of a data-plane decision: the values of tollgate_decisions_total's
// outcome label. Each rejection's error type maps to one of them.
const (
	// OutcomeAllowed: the request was forwarded to the upstream.
	OutcomeAllowed = "allowed"
	// OutcomeUnauthenticated: auth_error (no or wrong proxy key).
	OutcomeUnauthenticated = "unauthenticated"
	// OutcomeBadRequest: invalid_request_error (body not a JSON object, or too large).
	OutcomeBadRequest = "bad_request"
	// OutcomeBlocked: customer_blocked.
	OutcomeBlocked = "blocked"
	// OutcomeBudgetExceeded: budget_exceeded, with or without requests in flight.
	OutcomeBudgetExceeded = "budget_exceeded"
	// OutcomeModelBudgetExceeded: model_budget_exceeded (a model_max_budget entry).
	OutcomeModelBudgetExceeded = "model_budget_exceeded"
	// OutcomeRateLimited: rate_limit_exceeded (rpm_limit or tpm_limit).
	OutcomeRateLimited = "rate_limited"
	// OutcomeParallelLimited: parallel_request_limit_exceeded (max_parallel_requests).
	OutcomeParallelLimited = "parallel_limited"
	// OutcomeUnavailable: service_unavailable (the store could not answer the admission check).
	OutcomeUnavailable = "unavailable"
)

// outcomes are the outcome label values a scrape always shows.
var outcomes = [...]string{
	OutcomeAllowed, OutcomeUnauthenticated, OutcomeBadRequest, OutcomeBlocked, OutcomeBudgetExceeded,
	OutcomeModelBudgetExceeded, OutcomeRateLimited, OutcomeParallelLimited, OutcomeUnavailable,
}

// Phases of an ext_proc stream: the values of
// tollgate_extproc_message_duration_seconds's phase label, one per
// ProcessingRequest message type.
const (
	// PhaseRequestHeaders: a ProcessingRequest_RequestHeaders message.
	PhaseRequestHeaders = "request_headers"
	// PhaseRequestBody: a ProcessingRequest_RequestBody message.
	PhaseRequestBody = "request_body"
	// PhaseRequestTrailers: a ProcessingRequest_RequestTrailers message.
	PhaseRequestTrailers = "request_trailers"
	// PhaseResponseHeaders: a ProcessingRequest_ResponseHeaders message.
	PhaseResponseHeaders = "response_headers"
	// PhaseResponseBody: a ProcessingRequest_ResponseBody message (each chunk of a stream).
	PhaseResponseBody = "response_body"
	// PhaseResponseTrailers: a ProcessingRequest_ResponseTrailers message.
	PhaseResponseTrailers = "response_trailers"
)

var phases = [...]string{
	PhaseRequestHeaders, PhaseRequestBody, PhaseRequestTrailers,
	PhaseResponseHeaders, PhaseResponseBody, PhaseResponseTrailers,
}

// other is the label value of a caller's mistake (an outcome or phase not
// listed above): counted where a dashboard shows it rather than dropped. Its
// series exists only once such a call was made.
const other = "other"

// latencyBuckets suit both an ext_proc message and a store operation: from
// tens of microseconds (a header check, a cached read) to a second (Envoy's
// message_timeout is 2 s and the store timeout 1 s).
var latencyBuckets = []float64{
	10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1,
}

// Config configures Metrics.
type Config struct {
	// Outbox, when set, is counted at every scrape for the tollgate_webhook_* families.
	Outbox Outbox
	// Logger receives scrape errors; nil discards them.
	Logger *slog.Logger
	// Now times store operations; nil means time.Now.
	Now func() time.Time
}

// Metrics holds every tollgate metric in its own registry (with the Go
// runtime and process collectors). Its methods are safe for concurrent use;
// Decision and ObservePhase, called for every request, do not allocate. A
// nil *Metrics is valid for them (they do nothing), so the data plane can
// run without metrics and without checks.
type Metrics struct {
	reg *prometheus.Registry
	log *slog.Logger
	now func() time.Time

	decisions    *prometheus.CounterVec
	decisionsBy  [len(outcomes)]prometheus.Counter
	phaseLatency *prometheus.HistogramVec
	phasesBy     [len(phases)]prometheus.Observer

	models *models

	storeLatency *prometheus.HistogramVec
	storeErrors  *prometheus.CounterVec
}

// New returns Metrics registered in a fresh registry.
func New(cfg Config) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		log: cfg.Logger,
		now: cfg.Now,
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_decisions_total",
			Help: "Data-plane admission decisions by outcome: allowed, or the kind of rejection.",
		}, []string{"outcome"}),
		phaseLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tollgate_extproc_message_duration_seconds",
			Help:    "Time tollgate took to answer one ext_proc message, by phase.",
			Buckets: latencyBuckets,
		}, []string{"phase"}),
		models: newModels(),
		storeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tollgate_store_operation_duration_seconds",
			Help:    "Time one store operation took, by operation.",
			Buckets: latencyBuckets,
		}, []string{"op"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_store_operation_errors_total",
			Help: "Store operations that failed, by operation. Answers such as not found or already exists are not failures.",
		}, []string{"op"}),
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	for i, o := range outcomes {
		m.decisionsBy[i] = m.decisions.WithLabelValues(o)
	}
	for i, p := range phases {
		m.phasesBy[i] = m.phaseLatency.WithLabelValues(p)
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.decisions, m.phaseLatency, m.models, m.storeLatency, m.storeErrors,
	)
	if cfg.Outbox != nil {
		m.reg.MustRegister(newOutboxCollector(cfg.Outbox))
	}
	return m
}

// Handler serves the registry in Prometheus's text format. A collector that
// fails (the outbox count) is logged and left out; the rest is still served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// Decision counts one data-plane decision; outcome is one of the Outcome
// constants (anything else is counted as "other").
func (m *Metrics) Decision(outcome string) {
	if m == nil {
		return
	}
	for i, o := range outcomes {
		if o == outcome {
			m.decisionsBy[i].Inc()
			return
		}
	}
	m.decisions.WithLabelValues(other).Inc()
}

// ObservePhase records how long tollgate took to answer one ext_proc
// message; phase is one of the Phase constants (anything else is recorded
// as "other").
func (m *Metrics) ObservePhase(phase string, d time.Duration) {
	if m == nil {
		return
	}
	for i, p := range phases {
		if p == phase {
			m.phasesBy[i].Observe(d.Seconds())
			return
		}
	}
	m.phaseLatency.WithLabelValues(other).Observe(d.Seconds())
}
