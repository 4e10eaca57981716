package admin

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/admin/metrics"
	"github.com/tollgate-dev/tollgate/internal/syncbuf"
	"github.com/tollgate-dev/tollgate/store/badgerstore"
)

// scrape GETs /metrics from a real HTTP server and returns the status, the
// content type and the body.
func scrape(t *testing.T, srv *httptest.Server, authorization string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

// TestMetricsScrape: /metrics serves the registry, and the admin API's own
// store calls show up in it when the store is instrumented.
func TestMetricsScrape(t *testing.T) {
	st, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: func() time.Time { return testTime }})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	m := metrics.New(metrics.Config{Outbox: st})
	h := newHandler(Config{Metrics: m.Handler()}, metrics.InstrumentStore(st, m), &syncbuf.Buffer{})
	srv := httptest.NewServer(h)
	defer srv.Close()

	m.Decision(metrics.OutcomeAllowed)
	m.Decision(metrics.OutcomeAllowed)
	m.Decision(metrics.OutcomeBudgetExceeded)
	code, body := send(t, h, http.MethodPost, "/customer/new", `{"user_id":"alice"}`, "Bearer "+testKey)
	if code != http.StatusOK {
		t.Fatalf("/customer/new: %d %s", code, body)
	}

	code, ct, got := scrape(t, srv, "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: status %d, body %s", code, got)
	}
	if !strings.HasPrefix(ct, "text/plain; version=0.0.4; charset=utf-8") {
		t.Errorf("Content-Type %q, want Prometheus text 0.0.4", ct)
	}
	var missing []string
	for _, line := range []string{
		"# TYPE tollgate_decisions_total counter",
		`tollgate_decisions_total{outcome="allowed"} 2`,
		`tollgate_decisions_total{outcome="budget_exceeded"} 1`,
		`tollgate_decisions_total{outcome="blocked"} 0`,
		`tollgate_store_operation_duration_seconds_count{op="create_customer"} 1`,
		`tollgate_store_operation_errors_total{op="create_customer"} 0`,
		`tollgate_webhook_events{state="pending"} 0`,
		`tollgate_webhook_events{state="dead"} 0`,
		"tollgate_webhook_events_delivered_total 0",
		`tollgate_extproc_message_duration_seconds_count{phase="request_headers"} 0`,
	} {
		if !strings.Contains(got, "\n"+line+"\n") {
			missing = append(missing, line)
		}
	}
	if len(missing) > 0 {
		t.Errorf("scrape lacks lines %q:\n%s", missing, got)
	}
}

// TestMetricsAuth: like LiteLLM, /metrics is open unless
// require_auth_for_metrics_endpoint is set; then it takes the master key and
// refuses with LiteLLM's body, a JSON string.
func TestMetricsAuth(t *testing.T) {
	refusal := func(why string) string {
		return fmt.Sprintf("%q\n", "Unauthorized access to metrics endpoint: Authentication Error, "+why)
	}
	tests := []struct {
		name          string
		requireAuth   bool
		authorization string
		wantCode      int
		wantBody      string // "" when the scrape is expected
	}{
		{"open by default", false, "", http.StatusOK, ""},
		{"open, a wrong key is ignored", false, "Bearer sk-wrong", http.StatusOK, ""},
		{"required, no key", true, "", http.StatusUnauthorized, refusal("No api key passed in.")},
		{"required, wrong key", true, "Bearer sk-wrong", http.StatusUnauthorized, refusal("Invalid proxy server token passed.")},
		{"required, not bearer", true, "Basic abc", http.StatusUnauthorized,
			refusal("Malformed API Key passed in. Ensure Key has `Bearer ` prefix.")},
		{"required, master key", true, "Bearer " + testKey, http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := metrics.New(metrics.Config{})
			m.Decision(metrics.OutcomeBlocked)
			srv := httptest.NewServer(newEnvWith(t, Config{Metrics: m.Handler(), RequireAuthForMetrics: tt.requireAuth}).h)
			defer srv.Close()
			code, ct, body := scrape(t, srv, tt.authorization)
			if code != tt.wantCode {
				t.Errorf("status %d, want %d (body %s)", code, tt.wantCode, body)
			}
			if tt.wantBody == "" {
				if !strings.Contains(body, "\n"+`tollgate_decisions_total{outcome="blocked"} 1`+"\n") {
					t.Errorf("body is not the scrape:\n%s", body)
				}
				return
			}
			if ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if d := cmp.Diff(tt.wantBody, body); d != "" {
				t.Errorf("body (-want +got):\n%s", d)
			}
		})
	}
}

// TestMetricsOff: without a metrics handler there is no /metrics route.
func TestMetricsOff(t *testing.T) {
	rec := httptest.NewRecorder()
	newEnv(t).h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /metrics without metrics: status %d, want 404", rec.Code)
	}
}
