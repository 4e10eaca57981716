// Package admin serves tollgate's LiteLLM-compatible admin HTTP API: the
// /customer/* (alias /end_user/*) and /budget/* management routes, the
// /spend/logs and /customer/daily/activity spend views, the /health probes
// and webhook test, the /webhook/* outbox routes and the Prometheus /metrics. Field names, shapes, statuses and both of LiteLLM's error
// envelopes are kept so LiteLLM clients and docs work unchanged; LiteLLM's
// known bugs (dropped false/0 updates, 500s on bad input, an unblock that
// does not unblock) are not.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/store"
)

// defaultMaxBodyBytes is the request body limit when Config.MaxBodyBytes is unset.
const defaultMaxBodyBytes = 1 << 20

// adminName is recorded as created_by/updated_by for changes made with the
// master key: LiteLLM's litellm_proxy_admin_name.
const adminName = "default_user_id"

// Config configures the admin API.
type Config struct {
	// MasterKey is the only accepted bearer token. When empty, every
	// authenticated route is refused.
	MasterKey string
	// Logger receives one line per failed request; nil discards.
	Logger *slog.Logger
	// Now stamps created_at/updated_at; nil means time.Now.
	Now func() time.Time
	// Ready reports whether tollgate can serve traffic (/health/readiness);
	// nil means always ready.
	Ready func(context.Context) error
	// MaxBodyBytes bounds request bodies; 0 or less means 1 MiB.
	MaxBodyBytes int64
	// Outbox, when set, serves the /webhook/* routes (counts, dead events, replay).
	Outbox Outbox
	// Webhook, when set, is the configured webhook that
	// GET /health/services?service=webhook tests; nil means webhook alerting is off.
	Webhook WebhookSender
	// Location is the time zone budget windows reset in (LiteLLM's
	// litellm_settings.timezone); nil means UTC.
	Location *time.Location
	// DefaultBudgetID is litellm_settings.max_end_user_budget_id: the budget
	// whose windows the spend of customers without one is shown in.
	DefaultBudgetID string
	// Metrics, when set, is served at GET /metrics.
	Metrics http.Handler
	// RequireAuthForMetrics makes GET /metrics take the master key (LiteLLM's
	// litellm_settings.require_auth_for_metrics_endpoint); by default it is
	// open, as in LiteLLM, since Prometheus scrapers rarely hold the key.
	RequireAuthForMetrics bool
}

type server struct {
	keyHash [sha256.Size]byte
	hasKey  bool
	log     *slog.Logger
	now     func() time.Time
	ready   func(context.Context) error
	maxBody int64
	st      store.Store
	outbox  Outbox
	webhook WebhookSender
	mux     *http.ServeMux
	// loc and defaultBudgetID decide the budget windows shown (windows.go).
	loc             *time.Location
	defaultBudgetID string
}

// handlerFunc is a route handler. A returned *apiError is shown to the
// client; any other error becomes a 500 whose cause is only logged.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// New returns the admin API handler backed by st.
func New(cfg Config, st store.Store) http.Handler {
	s := &server{
		keyHash: sha256.Sum256([]byte(cfg.MasterKey)),
		hasKey:  cfg.MasterKey != "",
		log:     cfg.Logger,
		now:     cfg.Now,
		ready:   cfg.Ready,
		maxBody: cfg.MaxBodyBytes,
		st:      st,
		outbox:  cfg.Outbox,
		webhook: cfg.Webhook,
		mux:     http.NewServeMux(),

		loc:             utcOr(cfg.Location),
		defaultBudgetID: cfg.DefaultBudgetID,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxBody <= 0 {
		s.maxBody = defaultMaxBodyBytes
	}

	for _, prefix := range []string{"/customer", "/end_user"} {
		s.route("POST "+prefix+"/new", envError, s.customerNew)
		s.route("GET "+prefix+"/info", envError, s.customerInfo(prefix == "/end_user"))
		s.route("POST "+prefix+"/update", envError, s.customerUpdate)
		s.route("POST "+prefix+"/delete", envError, s.customerDelete)
		s.route("GET "+prefix+"/list", envError, s.customerList)
		s.route("POST "+prefix+"/block", envDetail, s.customerBlock)
		s.route("POST "+prefix+"/unblock", envDetail, s.customerUnblock)
		s.route("GET "+prefix+"/daily/activity", envDetail, s.customerDailyActivity)
	}
	s.route("POST /budget/new", envDetail, s.budgetNew)
	s.route("POST /budget/update", envDetail, s.budgetUpdate)
	s.route("POST /budget/info", envDetail, s.budgetInfo)
	s.route("GET /budget/list", envDetail, s.budgetList)
	s.route("POST /budget/delete", envDetail, s.budgetDelete)
	s.route("GET /budget/settings", envDetail, s.budgetSettings)
	s.route("GET /health/services", envError, s.healthServices)
	s.route("GET /spend/logs", envError, s.spendLogs)
	if s.outbox != nil {
		s.route("GET /webhook/info", envError, s.webhookInfo)
		s.route("GET /webhook/dead/list", envError, s.webhookDeadList)
		s.route("POST /webhook/dead/replay", envError, s.webhookDeadReplay)
	}

	if cfg.Metrics != nil {
		s.mux.Handle("GET /metrics", s.metrics(cfg.Metrics, cfg.RequireAuthForMetrics))
	}

	// The probes are unauthenticated: orchestrators call them without keys.
	s.mux.Handle("GET /health/liveliness", s.adapt(envError, s.liveliness))
	s.mux.Handle("GET /health/readiness", s.adapt(envError, s.readiness))
	return s.mux
}

// route registers an authenticated handler; env is the envelope its errors use.
func (s *server) route(pattern string, env envelope, h handlerFunc) {
	s.mux.Handle(pattern, s.adapt(env, func(w http.ResponseWriter, r *http.Request) error {
		if err := s.authenticate(r); err != nil {
			return err
		}
		return h(w, r)
	}))
}

// adapt turns a handlerFunc into an http.Handler that renders its errors.
func (s *server) adapt(env envelope, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			fail(w, s.log.With("method", r.Method, "path", r.URL.Path), env, err)
		}
	})
}

// authenticate checks the bearer token against the master key. Auth errors use
// the {"error"} envelope on every route, as LiteLLM's auth dependency does.
func (s *server) authenticate(r *http.Request) error {
	h := r.Header.Get("Authorization")
	if strings.TrimSpace(h) == "" {
		return errorEnv(http.StatusUnauthorized, typeAuth, "", "Authentication Error, No api key passed in.")
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(h), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return errorEnv(http.StatusUnauthorized, typeAuth, "",
			"Authentication Error, Malformed API Key passed in. Ensure Key has `Bearer ` prefix.")
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return errorEnv(http.StatusUnauthorized, typeAuth, "", "Authentication Error, No api key passed in.")
	}
	// Comparing digests keeps the comparison constant-time in the key's length too.
	sum := sha256.Sum256([]byte(token))
	if !s.hasKey || subtle.ConstantTimeCompare(sum[:], s.keyHash[:]) != 1 {
		return errorEnv(http.StatusUnauthorized, typeAuth, "", "Authentication Error, Invalid proxy server token passed.")
	}
	return nil
}

// liveliness answers like LiteLLM's /health/liveliness: the JSON string "I'm alive!".
func (s *server) liveliness(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, http.StatusOK, "I'm alive!")
}

type readinessBody struct {
	Status string `json:"status"`
	DB     string `json:"db,omitempty"`
}

// readiness reports cfg.Ready; the failure's text stays in the log.
func (s *server) readiness(w http.ResponseWriter, r *http.Request) error {
	if s.ready != nil {
		if err := s.ready(r.Context()); err != nil {
			s.log.Warn("not ready", "method", r.Method, "path", r.URL.Path, "err", err)
			return writeJSON(w, http.StatusServiceUnavailable, readinessBody{Status: "unhealthy"})
		}
	}
	return writeJSON(w, http.StatusOK, readinessBody{Status: "healthy", DB: "connected"})
}
