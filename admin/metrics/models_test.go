package metrics

import (
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate-dev/tollgate/store"
)

func spendLog(id, model string, cost store.Nano, prompt, completion int64) store.SpendLog {
	return store.SpendLog{
		RequestID: id, CustomerID: "cust-1", Model: model, Cost: cost,
		PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion,
		StartTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), EndTime: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC),
	}
}

// TestRecordedSpend: the per-model families count exactly what RecordSpend
// recorded: USD summed in nano (0.1 + 0.2 is 0.3, not 0.30000000000000004),
// duplicates and failures left out.
func TestRecordedSpend(t *testing.T) {
	m := New(Config{})
	s := InstrumentStore(openBadger(t), m)
	withCache := spendLog("r1", "gpt-4o", 100_000_000, 1000, 200)
	withCache.CacheReadTokens, withCache.CacheCreationTokens, withCache.ReasoningTokens = 600, 100, 50
	unpriced := spendLog("r3", "my-local-llm", 0, 7, 3)
	unpriced.Unpriced = true
	for _, tt := range []struct {
		log     store.SpendLog
		wantErr bool
	}{
		{log: withCache},
		{log: spendLog("r2", "gpt-4o", 200_000_000, 1, 2)},
		{log: spendLog("r1", "gpt-4o", 100_000_000, 1000, 200), wantErr: true}, // duplicate request id
		{log: unpriced},
		{log: spendLog("", "claude-sonnet-4", 5, 1, 1), wantErr: true}, // no request id: refused
		{log: spendLog("r4", "claude-sonnet-4", 1_875, 3, 4)},
	} {
		if _, err := s.RecordSpend(t.Context(), tt.log); (err != nil) != tt.wantErr {
			t.Fatalf("RecordSpend(%s): error %v, want error %v", tt.log.RequestID, err, tt.wantErr)
		}
	}
	want := `
# HELP tollgate_spend_usd_total Spend recorded, in USD, by model: the sum of the spend logs written.
# TYPE tollgate_spend_usd_total counter
tollgate_spend_usd_total{model="claude-sonnet-4"} 1.875e-06
tollgate_spend_usd_total{model="gpt-4o"} 0.3
tollgate_spend_usd_total{model="my-local-llm"} 0
# HELP tollgate_tokens_total Tokens recorded by model and kind. Kinds overlap: cache_read and cache_creation are part of prompt, reasoning is part of completion.
# TYPE tollgate_tokens_total counter
tollgate_tokens_total{kind="cache_creation",model="claude-sonnet-4"} 0
tollgate_tokens_total{kind="cache_creation",model="gpt-4o"} 100
tollgate_tokens_total{kind="cache_creation",model="my-local-llm"} 0
tollgate_tokens_total{kind="cache_read",model="claude-sonnet-4"} 0
tollgate_tokens_total{kind="cache_read",model="gpt-4o"} 600
tollgate_tokens_total{kind="cache_read",model="my-local-llm"} 0
tollgate_tokens_total{kind="completion",model="claude-sonnet-4"} 4
tollgate_tokens_total{kind="completion",model="gpt-4o"} 202
tollgate_tokens_total{kind="completion",model="my-local-llm"} 3
tollgate_tokens_total{kind="prompt",model="claude-sonnet-4"} 3
tollgate_tokens_total{kind="prompt",model="gpt-4o"} 1001
tollgate_tokens_total{kind="prompt",model="my-local-llm"} 7
tollgate_tokens_total{kind="reasoning",model="claude-sonnet-4"} 0
tollgate_tokens_total{kind="reasoning",model="gpt-4o"} 50
tollgate_tokens_total{kind="reasoning",model="my-local-llm"} 0
# HELP tollgate_unpriced_requests_total Requests recorded at cost 0 because no price was known for the model.
# TYPE tollgate_unpriced_requests_total counter
tollgate_unpriced_requests_total{model="claude-sonnet-4"} 0
tollgate_unpriced_requests_total{model="gpt-4o"} 0
tollgate_unpriced_requests_total{model="my-local-llm"} 1
`
	if err := testutil.CollectAndCompare(m.models, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// TestModelLabel: model names are chosen by clients, so only short UTF-8
// names become label values.
func TestModelLabel(t *testing.T) {
	tests := []struct {
		name, model, label string
	}{
		{"a model", "gpt-4o", "gpt-4o"},
		{"provider prefix and colon", "bedrock/us.anthropic.claude-3-5-sonnet-20241022-v2:0", "bedrock/us.anthropic.claude-3-5-sonnet-20241022-v2:0"},
		{"quotes and newline escaped", "a\"b\nc", `a\"b\nc`},
		{"128 bytes", strings.Repeat("m", maxModelBytes), strings.Repeat("m", maxModelBytes)},
		{"129 bytes", strings.Repeat("m", maxModelBytes+1), "other"},
		{"empty", "", "other"},
		{"not UTF-8", "gpt-\xff", "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(Config{})
			l := spendLog("r1", tt.model, 0, 0, 0)
			l.Unpriced = true
			m.models.record(l)
			got := samples(t, m, "tollgate_unpriced_requests_total")
			want := []string{fmt.Sprintf(`tollgate_unpriced_requests_total{model="%s"} 1`, tt.label)}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("samples (-want +got):\n%s", d)
			}
		})
	}
}

// TestModelCap: past maxModels names, new names count as "other", so a
// client inventing names cannot grow the scrape without bound.
func TestModelCap(t *testing.T) {
	m := New(Config{})
	for i := range maxModels + 3 {
		l := spendLog("r", fmt.Sprintf("model-%03d", i), 0, 0, 0)
		l.Unpriced = true
		m.models.record(l)
	}
	// A name seen before the cap keeps its own series.
	l := spendLog("r", "model-000", 0, 0, 0)
	l.Unpriced = true
	m.models.record(l)

	if n := testutil.CollectAndCount(m.models, "tollgate_unpriced_requests_total"); n != maxModels+1 {
		t.Errorf("%d unpriced series, want %d", n, maxModels+1)
	}
	for _, tt := range []struct{ model, want string }{
		{"model-000", `tollgate_unpriced_requests_total{model="model-000"} 2`},
		{"model-255", `tollgate_unpriced_requests_total{model="model-255"} 1`},
		{"other", `tollgate_unpriced_requests_total{model="other"} 3`},
	} {
		got := samples(t, m, "tollgate_unpriced_requests_total", `"`+tt.model+`"`)
		if d := cmp.Diff([]string{tt.want}, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tt.model, d)
		}
	}
}

func TestAddSat(t *testing.T) {
	tests := []struct {
		name       string
		start, add int64
		want       int64
	}{
		{"adds", 5, 7, 12},
		{"ignores zero", 5, 0, 5},
		{"ignores negative", 5, -3, 5},
		{"stops at the top", math.MaxInt64 - 2, 10, math.MaxInt64},
		{"stays at the top", math.MaxInt64, math.MaxInt64, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a atomic.Int64
			a.Store(tt.start)
			addSat(&a, tt.add)
			if got := a.Load(); got != tt.want {
				t.Errorf("addSat(%d, %d) = %d, want %d", tt.start, tt.add, got, tt.want)
			}
		})
	}
}

// FuzzModelLabel: whatever name a client sends, recording and scraping work
// (the Prometheus client panics on a label value that is not UTF-8).
func FuzzModelLabel(f *testing.F) {
	for _, s := range []string{"gpt-4o", "", "gpt-\xff", "a\"b\\c\n", strings.Repeat("é", 70), "other"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, model string) {
		m := New(Config{})
		l := spendLog("r1", model, 1, 2, 3)
		l.Unpriced = true
		m.models.record(l)
		m.models.record(l)
		if n := testutil.CollectAndCount(m.models, "tollgate_unpriced_requests_total"); n != 1 {
			t.Fatalf("%d series for one model, want 1", n)
		}
		if _, err := m.reg.Gather(); err != nil {
			t.Fatalf("gather: %v", err)
		}
	})
}
