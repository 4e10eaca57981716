package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/tollgate-dev/tollgate/admin/webhook"
	"github.com/tollgate-dev/tollgate/store"
)

// Outbox is the part of the store behind the /webhook/* routes.
type Outbox interface {
	OutboxStats(ctx context.Context) (store.OutboxStats, error)
	DeadEvents(ctx context.Context) ([]store.Event, error)
	ReplayDead(ctx context.Context, ids []string) ([]store.Event, error)
}

// WebhookSender sends one event to the configured webhook, once.
type WebhookSender interface {
	Send(ctx context.Context, id string, p webhook.Payload) (int, error)
}

// servicesList is the services /health/services can test here.
const servicesList = "['webhook']"

// healthServices handles GET /health/services?service=webhook: like LiteLLM,
// it sends the webhook a test budget alert (spend 1.0 over a max_budget of
// 0.0, on behalf of the admin user) and, unlike LiteLLM's bare null, reports
// what the webhook answered.
func (s *server) healthServices(w http.ResponseWriter, r *http.Request) error {
	service := r.URL.Query().Get("service")
	switch {
	case service == "":
		return errorEnv(http.StatusBadRequest, typeBadRequestError, "service", "Service must be specified.")
	case service != "webhook":
		return errorEnv(http.StatusBadRequest, typeBadRequestError, "service",
			fmt.Sprintf("Service must be in list. Service=%s. List=%s", service, servicesList))
	case s.webhook == nil:
		return errorEnv(http.StatusUnprocessableEntity, typeBadRequestError, "service",
			`"webhook" not in proxy config: general_settings. Unable to test this.`)
	}
	token := hex.EncodeToString(s.keyHash[:])
	user := adminName
	p := webhook.Payload{
		Spend:        store.NanoPerUSD,
		MaxBudget:    new(store.Nano),
		Token:        &token,
		UserID:       &user,
		Event:        string(store.EventBudgetCrossed),
		EventGroup:   "user",
		EventMessage: "User Budget: Budget Crossed\n Total Budget:`0.0`",
	}
	id := testEventID()
	status, err := s.webhook.Send(r.Context(), id, p)
	if err != nil {
		s.log.Warn("webhook test failed", "event_id", id, "err", err)
		return writeJSON(w, http.StatusBadGateway, serviceHealth{
			Status: "failure", Message: "Webhook test failed: " + err.Error(), EventID: id, WebhookStatusCode: status,
		})
	}
	return writeJSON(w, http.StatusOK, serviceHealth{
		Status: "success", Message: "Mock webhook alert sent, verify it was received.", EventID: id, WebhookStatusCode: status,
	})
}

type serviceHealth struct {
	Status            string `json:"status"`
	Message           string `json:"message"`
	EventID           string `json:"event_id"`
	WebhookStatusCode int    `json:"webhook_status_code"`
}

// testEventID names a test event; it never collides with an outbox event.
func testEventID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24).
	return "evt_test_" + hex.EncodeToString(b[:])
}

type webhookInfo struct {
	WebhookEnabled bool  `json:"webhook_enabled"`
	Delivered      int64 `json:"delivered"`
	Retried        int64 `json:"retried"`
	Pending        int64 `json:"pending"`
	Dead           int64 `json:"dead"`
}

// webhookInfo handles GET /webhook/info: the outbox counters.
func (s *server) webhookInfo(w http.ResponseWriter, r *http.Request) error {
	st, err := s.outbox.OutboxStats(r.Context())
	if err != nil {
		return fmt.Errorf("outbox stats: %w", err)
	}
	return writeJSON(w, http.StatusOK, webhookInfo{
		WebhookEnabled: s.webhook != nil,
		Delivered:      st.Delivered, Retried: st.Retried, Pending: st.Pending, Dead: st.Dead,
	})
}

type deadEventRow struct {
	EventID    string          `json:"event_id"`
	CustomerID string          `json:"customer_id"`
	Event      string          `json:"event"`
	Attempts   int             `json:"attempts"`
	LastError  string          `json:"last_error"`
	CreatedAt  string          `json:"created_at"`
	DeadAt     string          `json:"dead_at"`
	Payload    webhook.Payload `json:"payload"`
}

// webhookDeadList handles GET /webhook/dead/list: every dead event, oldest
// first, with the body that would be delivered.
func (s *server) webhookDeadList(w http.ResponseWriter, r *http.Request) error {
	events, err := s.outbox.DeadEvents(r.Context())
	if err != nil {
		return fmt.Errorf("dead events: %w", err)
	}
	out := make([]deadEventRow, len(events))
	for i, e := range events {
		out[i] = deadEventRow{
			EventID: e.ID, CustomerID: e.CustomerID, Event: string(e.Type), Attempts: e.Attempts, LastError: e.LastError,
			CreatedAt: timestamp(e.CreatedAt), DeadAt: timestamp(e.DeadAt), Payload: webhook.PayloadOf(e),
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

type replayResponse struct {
	Replayed int      `json:"replayed"`
	EventIDs []string `json:"event_ids"`
}

// webhookDeadReplay handles POST /webhook/dead/replay {"event_ids": [...]}:
// the events become pending again, all or none, keeping their ids.
func (s *server) webhookDeadReplay(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(w, r, envError, s.maxBody)
	if err != nil {
		return err
	}
	ids, err := b.ids("event_ids", "event_ids must list at least one dead event id")
	if err != nil {
		return err
	}
	events, err := s.outbox.ReplayDead(r.Context(), ids)
	if missing, ok := errors.AsType[*store.MissingError](err); ok {
		return errorEnv(http.StatusNotFound, typeNotFound, "event_ids",
			"No dead event with id(s) "+strings.Join(missing.IDs, ", "))
	}
	if err != nil {
		return fmt.Errorf("replay dead events: %w", err)
	}
	out := replayResponse{Replayed: len(events), EventIDs: make([]string, len(events))}
	for i, e := range events {
		out.EventIDs[i] = e.ID
	}
	return writeJSON(w, http.StatusOK, out)
}
