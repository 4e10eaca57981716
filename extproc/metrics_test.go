package extproc

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/admin/metrics"
	"github.com/tollgate-dev/tollgate/store"
)

// recordingMetrics records what the server reports, in order.
type recordingMetrics struct {
	mu        sync.Mutex
	decisions []string
	phases    []string
}

func (r *recordingMetrics) Decision(outcome string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.decisions = append(r.decisions, outcome)
}

func (r *recordingMetrics) ObservePhase(phase string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d < 0 {
		phase += " (negative duration)"
	}
	r.phases = append(r.phases, phase)
}

func TestMetrics(t *testing.T) {
	const body = `{"model":"gpt-test","user":"bob","messages":[]}`
	buffered := []byte(`{"model":"gpt-test","usage":{"prompt_tokens":10,"completion_tokens":5}}`)
	limited := func(b store.Budget) []store.Budget { b.BudgetID = "b"; return []store.Budget{b} }
	tests := []struct {
		name          string
		budgets       []store.Budget
		blocked       bool
		getErr        error
		msgs          []*extprocv3.ProcessingRequest
		wantDecisions []string
		wantPhases    []string
	}{
		{name: "allowed, then the response",
			msgs:          []*extprocv3.ProcessingRequest{llmHeaders(), reqBody(body), respHeaders(false, ":status", "200"), respBody(buffered, true)},
			wantDecisions: []string{metrics.OutcomeAllowed},
			wantPhases: []string{metrics.PhaseRequestHeaders, metrics.PhaseRequestBody,
				metrics.PhaseResponseHeaders, metrics.PhaseResponseBody}},
		{name: "not an LLM route: no decision",
			msgs:       []*extprocv3.ProcessingRequest{reqHeaders("GET", "/v1/models", "authorization", "Bearer sk-master")},
			wantPhases: []string{metrics.PhaseRequestHeaders}},
		{name: "no key", msgs: []*extprocv3.ProcessingRequest{reqHeaders("POST", "/v1/chat/completions")},
			wantDecisions: []string{metrics.OutcomeUnauthenticated}, wantPhases: []string{metrics.PhaseRequestHeaders}},
		{name: "wrong key", msgs: []*extprocv3.ProcessingRequest{reqHeaders("POST", "/v1/chat/completions", "authorization", "Bearer sk-nope")},
			wantDecisions: []string{metrics.OutcomeUnauthenticated}, wantPhases: []string{metrics.PhaseRequestHeaders}},
		{name: "not JSON", msgs: []*extprocv3.ProcessingRequest{llmHeaders(), reqBody(`[1]`)},
			wantDecisions: []string{metrics.OutcomeBadRequest},
			wantPhases:    []string{metrics.PhaseRequestHeaders, metrics.PhaseRequestBody}},
		{name: "too large", msgs: []*extprocv3.ProcessingRequest{llmHeaders("content-length", "99999999999")},
			wantDecisions: []string{metrics.OutcomeBadRequest}, wantPhases: []string{metrics.PhaseRequestHeaders}},
		{name: "blocked", blocked: true,
			msgs:          []*extprocv3.ProcessingRequest{llmHeaders("x-litellm-customer-id", "bob")},
			wantDecisions: []string{metrics.OutcomeBlocked}, wantPhases: []string{metrics.PhaseRequestHeaders}},
		{name: "store down", getErr: errors.New("disk on fire"),
			msgs:          []*extprocv3.ProcessingRequest{llmHeaders(), reqBody(body)},
			wantDecisions: []string{metrics.OutcomeUnavailable},
			wantPhases:    []string{metrics.PhaseRequestHeaders, metrics.PhaseRequestBody}},
		{name: "over budget", budgets: limited(store.Budget{MaxBudget: nano(0)}),
			msgs:          []*extprocv3.ProcessingRequest{llmHeaders(), reqBody(body)},
			wantDecisions: []string{metrics.OutcomeBudgetExceeded},
			wantPhases:    []string{metrics.PhaseRequestHeaders, metrics.PhaseRequestBody}},
		{name: "worst case over the budget", budgets: limited(store.Budget{MaxBudget: nano(1)}),
			msgs:          []*extprocv3.ProcessingRequest{llmHeaders(), reqBody(body)},
			wantDecisions: []string{metrics.OutcomeBudgetExceeded},
			wantPhases:    []string{metrics.PhaseRequestHeaders, metrics.PhaseRequestBody}},
		{name: "model budget", budgets: limited(store.Budget{ModelMaxBudget: map[string]store.ModelBudget{"gpt-test": {MaxBudget: nano(0)}}}),
			msgs:          []*extprocv3.ProcessingRequest{llmHeaders(), reqBody(body)},
			wantDecisions: []string{metrics.OutcomeModelBudgetExceeded},
			wantPhases:    []string{metrics.PhaseRequestHeaders, metrics.PhaseRequestBody}},
		{name: "rpm", budgets: limited(store.Budget{RPMLimit: ptr[int64](0)}),
			msgs:          []*extprocv3.ProcessingRequest{llmHeaders(), reqBody(body)},
			wantDecisions: []string{metrics.OutcomeRateLimited},
			wantPhases:    []string{metrics.PhaseRequestHeaders, metrics.PhaseRequestBody}},
		{name: "parallel", budgets: limited(store.Budget{MaxParallelRequests: ptr[int64](0)}),
			msgs:          []*extprocv3.ProcessingRequest{llmHeaders(), reqBody(body)},
			wantDecisions: []string{metrics.OutcomeParallelLimited},
			wantPhases:    []string{metrics.PhaseRequestHeaders, metrics.PhaseRequestBody}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newFakeStore()
			st.getErr = tt.getErr
			st.customers["bob"] = store.Customer{UserID: "bob", Blocked: tt.blocked}
			for _, b := range tt.budgets {
				st.budgets[b.BudgetID] = b
				st.customers["bob"] = store.Customer{UserID: "bob", BudgetID: ptr(b.BudgetID)}
			}
			rec := &recordingMetrics{}
			cfg := testConfig(t)
			cfg.Metrics = rec
			exchange(t, startServer(t, cfg, st), tt.msgs...)
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if diff := cmp.Diff(tt.wantDecisions, rec.decisions); diff != "" {
				t.Errorf("decisions (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantPhases, rec.phases); diff != "" {
				t.Errorf("phases (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnpricedLogIsBounded(t *testing.T) {
	var buf bytes.Buffer
	s := NewServer(Config{Logger: slog.New(slog.NewTextHandler(&buf, nil))}, newFakeStore())
	for range 2 {
		for i := range maxUnpricedLogged + 5 {
			s.logUnpriced(fmt.Sprintf("model-%d", i))
		}
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if got, want := len(lines), maxUnpricedLogged+1; got != want {
		t.Fatalf("%d log lines, want %d", got, want)
	}
	if want := "model=model-999"; !strings.Contains(lines[maxUnpricedLogged-1], want) {
		t.Errorf("line %d = %q, want it to name %s", maxUnpricedLogged, lines[maxUnpricedLogged-1], want)
	}
	if want := "too many unpriced models"; !strings.Contains(lines[maxUnpricedLogged], want) {
		t.Errorf("last line = %q, want %q", lines[maxUnpricedLogged], want)
	}
	if len(s.unpricedLogged) != maxUnpricedLogged {
		t.Errorf("%d names remembered, want %d", len(s.unpricedLogged), maxUnpricedLogged)
	}
}
