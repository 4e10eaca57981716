package metrics

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

// samples gathers m's family name and returns its sample lines that contain
// every one of substrs, in exposition order.
func samples(t *testing.T, m *Metrics, name string, substrs ...string) []string {
	t.Helper()
	b, err := testutil.GatherAndFormat(m.reg, expfmt.TypeTextPlain, name)
	if err != nil {
		t.Fatalf("gather %s: %v", name, err)
	}
	var out []string
lines:
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		for _, s := range substrs {
			if !strings.Contains(l, s) {
				continue lines
			}
		}
		out = append(out, l)
	}
	return out
}

func TestDecision(t *testing.T) {
	tests := []struct {
		name  string
		calls []string
		want  string
	}{
		{
			name: "none: every outcome shows 0",
			want: `
# HELP tollgate_decisions_total Data-plane admission decisions by outcome: allowed, or the kind of rejection.
# TYPE tollgate_decisions_total counter
tollgate_decisions_total{outcome="allowed"} 0
tollgate_decisions_total{outcome="bad_request"} 0
tollgate_decisions_total{outcome="blocked"} 0
tollgate_decisions_total{outcome="budget_exceeded"} 0
tollgate_decisions_total{outcome="model_budget_exceeded"} 0
tollgate_decisions_total{outcome="parallel_limited"} 0
tollgate_decisions_total{outcome="rate_limited"} 0
tollgate_decisions_total{outcome="unauthenticated"} 0
tollgate_decisions_total{outcome="unavailable"} 0
`,
		},
		{
			name: "each outcome, and a mistake counted as other",
			calls: []string{
				OutcomeAllowed, OutcomeAllowed, OutcomeAllowed, OutcomeUnauthenticated, OutcomeBadRequest,
				OutcomeBlocked, OutcomeBudgetExceeded, OutcomeBudgetExceeded, OutcomeModelBudgetExceeded,
				OutcomeRateLimited, OutcomeParallelLimited, OutcomeUnavailable, "budget_exceded", "",
			},
			want: `
# HELP tollgate_decisions_total Data-plane admission decisions by outcome: allowed, or the kind of rejection.
# TYPE tollgate_decisions_total counter
tollgate_decisions_total{outcome="allowed"} 3
tollgate_decisions_total{outcome="bad_request"} 1
tollgate_decisions_total{outcome="blocked"} 1
tollgate_decisions_total{outcome="budget_exceeded"} 2
tollgate_decisions_total{outcome="model_budget_exceeded"} 1
tollgate_decisions_total{outcome="other"} 2
tollgate_decisions_total{outcome="parallel_limited"} 1
tollgate_decisions_total{outcome="rate_limited"} 1
tollgate_decisions_total{outcome="unauthenticated"} 1
tollgate_decisions_total{outcome="unavailable"} 1
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(Config{})
			for _, o := range tt.calls {
				m.Decision(o)
			}
			if err := testutil.CollectAndCompare(m.decisions, strings.NewReader(tt.want), "tollgate_decisions_total"); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestObservePhase(t *testing.T) {
	m := New(Config{})
	m.ObservePhase(PhaseRequestBody, 30*time.Microsecond)
	m.ObservePhase(PhaseRequestBody, 4*time.Millisecond)
	m.ObservePhase(PhaseResponseBody, 2*time.Second)
	m.ObservePhase("response_bdy", time.Millisecond)

	tests := []struct {
		name   string
		phase  string
		substr []string
		want   []string
	}{
		{
			name:  "buckets of two observations",
			phase: `phase="request_body"`,
			want: []string{
				`tollgate_extproc_message_duration_seconds_bucket{phase="request_body",le="1e-05"} 0`,
				`tollgate_extproc_message_duration_seconds_bucket{phase="request_body",le="2.5e-05"} 0`,
				`tollgate_extproc_message_duration_seconds_bucket{phase="request_body",le="5e-05"} 1`,
				`tollgate_extproc_message_duration_seconds_bucket{phase="request_body",le="0.0001"} 1`,
				`tollgate_extproc_message_duration_seconds_bucket{phase="request_body",le="0.00025"} 1`,
				`tollgate_extproc_message_duration_seconds_bucket{phase="request_body",le="0.0005"} 1`,
				`tollgate_extproc_message_duration_seconds_bucket{phase="request_body",le="0.001"} 1`,
				`tollgate_extproc_message_duration_seconds_bucket{phase="request_body",le="0.0025"} 1`,
				`tollgate_extproc_message_duration_seconds_bucket{phase="request_body",le="0.005"} 2`,
				`tollgate_extproc_message_duration_seconds_bucket{phase="request_body",le="0.01"} 2`,
				`tollgate_extproc_message_duration_seconds_bucket{phase="request_body",le="0.025"} 2`,
				`tollgate_extproc_message_duration_seconds_bucket{phase="request_body",le="0.05"} 2`,
				`tollgate_extproc_message_duration_seconds_bucket{phase="request_body",le="0.1"} 2`,
				`tollgate_extproc_message_duration_seconds_bucket{phase="request_body",le="0.25"} 2`,
				`tollgate_extproc_message_duration_seconds_bucket{phase="request_body",le="0.5"} 2`,
				`tollgate_extproc_message_duration_seconds_bucket{phase="request_body",le="1"} 2`,
				`tollgate_extproc_message_duration_seconds_bucket{phase="request_body",le="+Inf"} 2`,
				`tollgate_extproc_message_duration_seconds_sum{phase="request_body"} 0.00403`,
				`tollgate_extproc_message_duration_seconds_count{phase="request_body"} 2`,
			},
		},
		{
			name:   "slower than the last bucket",
			phase:  `phase="response_body"`,
			substr: []string{`le="1"`},
			want:   []string{`tollgate_extproc_message_duration_seconds_bucket{phase="response_body",le="1"} 0`},
		},
		{
			name:   "counted past the last bucket",
			phase:  `phase="response_body"`,
			substr: []string{"_count"},
			want:   []string{`tollgate_extproc_message_duration_seconds_count{phase="response_body"} 1`},
		},
		{
			name:   "unobserved phases show 0",
			phase:  "_count",
			substr: []string{"trailers"},
			want: []string{
				`tollgate_extproc_message_duration_seconds_count{phase="request_trailers"} 0`,
				`tollgate_extproc_message_duration_seconds_count{phase="response_trailers"} 0`,
			},
		},
		{
			name:   "a mistaken phase is other",
			phase:  `phase="other"`,
			substr: []string{"_sum"},
			want:   []string{`tollgate_extproc_message_duration_seconds_sum{phase="other"} 0.001`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := samples(t, m, "tollgate_extproc_message_duration_seconds", append([]string{tt.phase}, tt.substr...)...)
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("samples (-want +got):\n%s", d)
			}
		})
	}
}

// TestNilMetrics: a nil *Metrics is a no-op, so a caller without metrics
// needs no checks.
func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.Decision(OutcomeAllowed)
	m.ObservePhase(PhaseRequestHeaders, time.Millisecond)
	s := &storeOnly{}
	if got := InstrumentStore(s, nil); got != s {
		t.Errorf("InstrumentStore(s, nil) = %T, want s itself", got)
	}
}

// TestHotPathAllocs: the calls made on every request allocate nothing.
func TestHotPathAllocs(t *testing.T) {
	m := New(Config{})
	m.models.stats("gpt-4o") // a model is added once; later records only count
	log := spendLog("r1", "gpt-4o", 1500, 10, 20)
	tests := []struct {
		name string
		fn   func()
	}{
		{"Decision", func() { m.Decision(OutcomeRateLimited) }},
		{"ObservePhase", func() { m.ObservePhase(PhaseResponseBody, time.Millisecond) }},
		{"record a known model", func() { m.models.record(log) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
				t.Errorf("%v allocations per call, want 0", n)
			}
		})
	}
}

// TestHandler: the scrape is Prometheus text with the Go and process
// collectors beside tollgate's families.
func TestHandler(t *testing.T) {
	m := New(Config{})
	m.Decision(OutcomeBlocked)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q, want Prometheus text 0.0.4", ct)
	}
	body := rec.Body.Bytes()
	for _, want := range []string{
		`tollgate_decisions_total{outcome="blocked"} 1`,
		`tollgate_extproc_message_duration_seconds_count{phase="request_headers"} 0`,
		"# TYPE go_goroutines gauge",
		"# TYPE process_cpu_seconds_total counter",
	} {
		if !bytes.Contains(body, []byte("\n"+want+"\n")) {
			t.Errorf("scrape lacks line %q", want)
		}
	}
}
