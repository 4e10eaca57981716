package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate-dev/tollgate/store"
)

// fakeOutbox answers OutboxStats with stats or err and counts the calls.
type fakeOutbox struct {
	mu    sync.Mutex
	stats store.OutboxStats
	err   error
	calls int
}

var _ Outbox = (*fakeOutbox)(nil)

func (f *fakeOutbox) OutboxStats(context.Context) (store.OutboxStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.stats, f.err
}

func TestOutboxFamilies(t *testing.T) {
	ob := &fakeOutbox{stats: store.OutboxStats{Delivered: 41, Retried: 3, Pending: 7, Dead: 2}}
	m := New(Config{Outbox: ob})
	want := `
# HELP tollgate_webhook_events Webhook events in the outbox by state: pending (waiting for delivery) or dead (every attempt failed; replayable).
# TYPE tollgate_webhook_events gauge
tollgate_webhook_events{state="dead"} 2
tollgate_webhook_events{state="pending"} 7
# HELP tollgate_webhook_events_delivered_total Webhook events delivered (any 2xx).
# TYPE tollgate_webhook_events_delivered_total counter
tollgate_webhook_events_delivered_total 41
# HELP tollgate_webhook_events_retried_total Webhook events whose delivery finished after more than one attempt, delivered or dead.
# TYPE tollgate_webhook_events_retried_total counter
tollgate_webhook_events_retried_total 3
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want),
		"tollgate_webhook_events", "tollgate_webhook_events_delivered_total", "tollgate_webhook_events_retried_total"); err != nil {
		t.Error(err)
	}
	if ob.calls != 1 {
		t.Errorf("one scrape read the outbox %d times, want 1", ob.calls)
	}
}

func TestNoOutboxNoFamilies(t *testing.T) {
	m := New(Config{})
	if n, err := testutil.GatherAndCount(m.reg, "tollgate_webhook_events", "tollgate_webhook_events_delivered_total"); err != nil || n != 0 {
		t.Errorf("GatherAndCount = %d, %v; want 0 series without an outbox", n, err)
	}
}

// TestOutboxFailure: a failed outbox count is logged and the rest of the
// scrape is still served.
func TestOutboxFailure(t *testing.T) {
	var logs strings.Builder
	m := New(Config{
		Outbox: &fakeOutbox{err: errors.New("store closed")},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	m.Decision(OutcomeAllowed)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("status %d, want 200", rec.Code)
	}
	body := rec.Body.String()
	if !strings.Contains(body, "\n"+`tollgate_decisions_total{outcome="allowed"} 1`+"\n") {
		t.Errorf("scrape lacks the decisions:\n%s", body)
	}
	if strings.Contains(body, "tollgate_webhook") {
		t.Errorf("scrape has webhook families although the count failed:\n%s", body)
	}
	if !strings.Contains(logs.String(), "outbox stats: store closed") {
		t.Errorf("log %q lacks the outbox error", logs.String())
	}
}
