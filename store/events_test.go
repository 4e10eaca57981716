package store

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func ptr[T any](v T) *T { return &v }

func TestSpendEvents(t *testing.T) {
	now := time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)
	resetAt := now.Add(9 * 24 * time.Hour) // a 10-day window that began a day ago
	window := Window{Start: now.Add(-24 * time.Hour), End: resetAt, Reset: true}
	windowID := resetAt.Format(time.RFC3339Nano)
	policy := Alerting{Enabled: true, Token: "tok", BudgetAlertTTL: time.Hour}
	max100 := &Budget{MaxBudget: ptr[Nano](100)}
	tracked := func(spend Nano, msg string, b *Budget) Event {
		e := Event{Type: EventSpendTracked, CustomerID: "alice", RequestID: "r", Spend: spend, Token: ptr("tok"), Message: msg}
		if b != nil {
			e.MaxBudget, e.SoftBudget = b.MaxBudget, b.SoftBudget
		}
		return e
	}
	budgetEvent := func(typ EventType, total Nano, msg string, b *Budget) Event {
		e := tracked(total, msg, b)
		e.Type = typ
		return e
	}
	tests := []struct {
		name      string
		policy    Alerting
		log       SpendLog
		spend     Nano // the customer's spend after the request
		budget    *Budget
		marks     AlertMarks
		want      []Event
		wantMarks AlertMarks
	}{
		{
			name:   "alerting off",
			policy: Alerting{Token: "tok"},
			log:    SpendLog{RequestID: "r", CustomerID: "alice", Cost: 100}, spend: 100, budget: max100, marks: AlertMarks{},
			wantMarks: AlertMarks{},
		},
		{
			name: "no customer",
			log:  SpendLog{RequestID: "r", Cost: 100},
		},
		{
			name:   "spend_tracked without a budget, null token",
			policy: Alerting{Enabled: true},
			log:    SpendLog{RequestID: "r", CustomerID: "alice", Cost: 1_112_000}, spend: 5_000_000,
			want: []Event{{Type: EventSpendTracked, CustomerID: "alice", RequestID: "r", Spend: 1_112_000,
				Message: "Customer spend tracked. Customer=alice, spend=0.001112"}},
		},
		{
			name: "below 85%: only spend_tracked",
			log:  SpendLog{RequestID: "r", CustomerID: "alice", Cost: 84}, spend: 84, budget: max100, marks: AlertMarks{},
			want:      []Event{tracked(84, "Customer spend tracked. Customer=alice, spend=8.4e-08", max100)},
			wantMarks: AlertMarks{},
		},
		{
			name: "exactly 85%",
			log:  SpendLog{RequestID: "r", CustomerID: "alice", Cost: 1}, spend: 85, budget: max100, marks: AlertMarks{},
			want: []Event{
				tracked(1, "Customer spend tracked. Customer=alice, spend=1e-09", max100),
				budgetEvent(EventThresholdCrossed, 85, "Customer Budget: 15% Threshold Crossed", max100),
			},
			wantMarks: AlertMarks{"threshold_crossed:85": {Window: "none", At: now}},
		},
		{
			name: "one request past every boundary fires each, lowest first",
			log:  SpendLog{RequestID: "r", CustomerID: "alice", Cost: 150}, spend: 150, budget: &Budget{MaxBudget: ptr[Nano](100), SoftBudget: ptr[Nano](50)}, marks: AlertMarks{},
			want: []Event{
				tracked(150, "Customer spend tracked. Customer=alice, spend=1.5e-07", &Budget{MaxBudget: ptr[Nano](100), SoftBudget: ptr[Nano](50)}),
				budgetEvent(EventSoftBudgetCrossed, 150, "Customer Budget: Soft Budget Crossed\n Total Soft Budget:`5e-08`", &Budget{MaxBudget: ptr[Nano](100), SoftBudget: ptr[Nano](50)}),
				budgetEvent(EventThresholdCrossed, 150, "Customer Budget: 15% Threshold Crossed", &Budget{MaxBudget: ptr[Nano](100), SoftBudget: ptr[Nano](50)}),
				budgetEvent(EventThresholdCrossed, 150, "Customer Budget: 5% Threshold Crossed ", &Budget{MaxBudget: ptr[Nano](100), SoftBudget: ptr[Nano](50)}),
				budgetEvent(EventBudgetCrossed, 150, "Customer Budget: Budget Crossed\n Total Budget:`1e-07`", &Budget{MaxBudget: ptr[Nano](100), SoftBudget: ptr[Nano](50)}),
			},
			wantMarks: AlertMarks{
				"soft_budget_crossed": {Window: "none", At: now}, "threshold_crossed:85": {Window: "none", At: now},
				"threshold_crossed:95": {Window: "none", At: now}, "budget_crossed": {Window: "none", At: now},
			},
		},
		{
			name: "a budget of 0 is crossed, without thresholds; unpriced sends no spend_tracked",
			log:  SpendLog{RequestID: "r", CustomerID: "alice", Unpriced: true}, budget: &Budget{MaxBudget: ptr[Nano](0)}, marks: AlertMarks{},
			want:      []Event{budgetEvent(EventBudgetCrossed, 0, "Customer Budget: Budget Crossed\n Total Budget:`0.0`", &Budget{MaxBudget: ptr[Nano](0)})},
			wantMarks: AlertMarks{"budget_crossed": {Window: "none", At: now}},
		},
		{
			name: "USD limits in the message",
			log:  SpendLog{RequestID: "r", CustomerID: "alice", Cost: 1}, spend: 4_000_000_000, budget: &Budget{MaxBudget: ptr[Nano](4_000_000_000)},
			marks: AlertMarks{"threshold_crossed:85": {Window: "none", At: now}, "threshold_crossed:95": {Window: "none", At: now}},
			want: []Event{
				tracked(1, "Customer spend tracked. Customer=alice, spend=1e-09", &Budget{MaxBudget: ptr[Nano](4_000_000_000)}),
				budgetEvent(EventBudgetCrossed, 4_000_000_000, "Customer Budget: Budget Crossed\n Total Budget:`4.0`", &Budget{MaxBudget: ptr[Nano](4_000_000_000)}),
			},
			wantMarks: AlertMarks{
				"threshold_crossed:85": {Window: "none", At: now}, "threshold_crossed:95": {Window: "none", At: now},
				"budget_crossed": {Window: "none", At: now},
			},
		},
		{
			name: "negative spend reaches no threshold",
			log:  SpendLog{RequestID: "r", CustomerID: "alice", Cost: 1}, spend: -5, budget: max100, marks: AlertMarks{},
			want:      []Event{tracked(1, "Customer spend tracked. Customer=alice, spend=1e-09", max100)},
			wantMarks: AlertMarks{},
		},
		{
			name: "sent in this window long ago: not again",
			log:  SpendLog{RequestID: "r", CustomerID: "alice", Cost: 1, Window: window}, spend: 100, budget: &Budget{MaxBudget: ptr[Nano](100), BudgetResetAt: &resetAt},
			marks:     AlertMarks{"budget_crossed": {Window: windowID, At: now.Add(-100 * time.Hour)}, "threshold_crossed:85": {Window: windowID, At: now}, "threshold_crossed:95": {Window: windowID, At: now}},
			want:      []Event{tracked(1, "Customer spend tracked. Customer=alice, spend=1e-09", &Budget{MaxBudget: ptr[Nano](100), BudgetResetAt: &resetAt})},
			wantMarks: AlertMarks{"budget_crossed": {Window: windowID, At: now.Add(-100 * time.Hour)}, "threshold_crossed:85": {Window: windowID, At: now}, "threshold_crossed:95": {Window: windowID, At: now}},
		},
		{
			name: "sent in another window within the TTL: not again",
			log:  SpendLog{RequestID: "r", CustomerID: "alice", Cost: 1, Unpriced: true}, spend: 90, budget: max100,
			marks:     AlertMarks{"threshold_crossed:85": {Window: windowID, At: now.Add(-59 * time.Minute)}},
			wantMarks: AlertMarks{"threshold_crossed:85": {Window: windowID, At: now.Add(-59 * time.Minute)}},
		},
		{
			name: "sent in another window before the TTL: again",
			log:  SpendLog{RequestID: "r", CustomerID: "alice", Unpriced: true}, spend: 90, budget: max100,
			marks:     AlertMarks{"threshold_crossed:85": {Window: windowID, At: now.Add(-time.Hour)}},
			want:      []Event{budgetEvent(EventThresholdCrossed, 90, "Customer Budget: 15% Threshold Crossed", max100)},
			wantMarks: AlertMarks{"threshold_crossed:85": {Window: "none", At: now}},
		},
		{
			name: "projected past the limit",
			log:  SpendLog{RequestID: "r", CustomerID: "alice", Unpriced: true, Window: window}, spend: 20, budget: &Budget{MaxBudget: ptr[Nano](100), BudgetDuration: ptr("10d"), BudgetResetAt: &resetAt}, marks: AlertMarks{},
			want: []Event{func() Event {
				e := budgetEvent(EventProjectedLimitExceeded, 20, "Customer Budget: Projected Limit Exceeded", &Budget{MaxBudget: ptr[Nano](100)})
				e.ProjectedSpend = ptr[Nano](200)
				e.ProjectedExceededDate = ptr(now.Add(4 * 24 * time.Hour)) // 5 days after the start
				return e
			}()},
			wantMarks: AlertMarks{"projected_limit_exceeded": {Window: windowID, At: now}},
		},
		{
			name:  "a first window projects from the start its schedule gives it",
			log:   SpendLog{RequestID: "r", CustomerID: "alice", Unpriced: true, Window: Window{Start: window.Start, End: resetAt}},
			spend: 20, budget: &Budget{MaxBudget: ptr[Nano](100), BudgetDuration: ptr("10d"), BudgetResetAt: &resetAt}, marks: AlertMarks{},
			want: []Event{func() Event {
				e := budgetEvent(EventProjectedLimitExceeded, 20, "Customer Budget: Projected Limit Exceeded", &Budget{MaxBudget: ptr[Nano](100)})
				e.ProjectedSpend = ptr[Nano](200)
				e.ProjectedExceededDate = ptr(now.Add(4 * 24 * time.Hour))
				return e
			}()},
			wantMarks: AlertMarks{"projected_limit_exceeded": {Window: windowID, At: now}},
		},
		{
			name: "projected within the limit",
			log:  SpendLog{RequestID: "r", CustomerID: "alice", Unpriced: true, Window: window}, spend: 9, budget: &Budget{MaxBudget: ptr[Nano](100), BudgetDuration: ptr("10d"), BudgetResetAt: &resetAt}, marks: AlertMarks{},
			wantMarks: AlertMarks{},
		},
		{
			name: "no projection once the window has ended",
			log: SpendLog{RequestID: "r", CustomerID: "alice", Unpriced: true,
				Window: Window{Start: now.Add(-24*time.Hour - time.Second), End: now.Add(-time.Second), Reset: true}},
			spend: 50, budget: &Budget{MaxBudget: ptr[Nano](100), BudgetDuration: ptr("1d"), BudgetResetAt: ptr(now.Add(-time.Second))}, marks: AlertMarks{},
			wantMarks: AlertMarks{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := policy
			if tt.policy != (Alerting{}) {
				p = tt.policy
			}
			c := Customer{UserID: "alice", Spend: tt.spend}
			got := p.SpendEvents(tt.log, c, tt.budget, tt.marks, now)
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("events (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.wantMarks, tt.marks); d != "" {
				t.Errorf("marks (-want +got):\n%s", d)
			}
		})
	}
}

func TestReached(t *testing.T) {
	const big = Nano(1_000_000_000 * NanoPerUSD) // 1e9 USD, the largest amount accepted
	tests := []struct {
		name         string
		spend, limit Nano
		pct          uint64
		want         bool
	}{
		{"just below", 84, 100, 85, false},
		{"exactly", 85, 100, 85, true},
		{"rounding does not help", 849_999_999, 1_000_000_000, 85, false},
		{"huge amounts do not overflow", big/100*95 - 1, big, 95, false},
		{"huge amounts at the boundary", big / 100 * 95, big, 95, true},
		{"negative spend", -1, 0, 85, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reached(tt.spend, tt.limit, tt.pct); got != tt.want {
				t.Errorf("reached(%d, %d, %d) = %v, want %v", tt.spend, tt.limit, tt.pct, got, tt.want)
			}
		})
	}
}

func TestMulDiv(t *testing.T) {
	tests := []struct {
		name     string
		a, b, c  uint64
		want     uint64
		wantFits bool
	}{
		{"small", 6, 7, 4, 10, true},
		{"128-bit product", 1 << 62, 1 << 10, 1 << 12, 1 << 60, true},
		{"quotient above int64", 1 << 63, 4, 2, 0, false},
		{"quotient above uint64", 1 << 63, 1 << 63, 1, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, fits := mulDiv(tt.a, tt.b, tt.c)
			if got != tt.want || fits != tt.wantFits {
				t.Errorf("mulDiv = %d, %v; want %d, %v", got, fits, tt.want, tt.wantFits)
			}
		})
	}
}
