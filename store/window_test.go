package store

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func day(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestBudgetWindow(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	reset := day("2026-04-01T00:00:00Z")
	created := day("2026-03-10T15:00:00Z")
	tests := []struct {
		name   string
		budget Budget
		at     string
		loc    *time.Location
		want   Window
	}{
		{"never resets", Budget{}, "2026-03-15T00:00:00Z", nil, Window{}},
		{"reset time without a duration, before it", Budget{BudgetResetAt: &reset}, "2026-03-15T00:00:00Z", nil,
			Window{End: reset}},
		{"reset time without a duration, after it: once", Budget{BudgetResetAt: &reset}, "2026-05-15T00:00:00Z", nil,
			Window{Start: reset, Reset: true}},
		{"unparsable duration counts as none", Budget{BudgetResetAt: &reset, BudgetDuration: ptr("soon")}, "2026-05-15T00:00:00Z", nil,
			Window{Start: reset, Reset: true}},
		{"month, first window", Budget{BudgetResetAt: &reset, BudgetDuration: ptr("1mo")}, "2026-03-15T00:00:00Z", nil,
			Window{Start: day("2026-03-01T00:00:00Z"), End: reset}},
		{"month, a later window", Budget{BudgetResetAt: &reset, BudgetDuration: ptr("1mo")}, "2026-05-20T00:00:00Z", nil,
			Window{Start: day("2026-05-01T00:00:00Z"), End: day("2026-06-01T00:00:00Z"), Reset: true}},
		{"at the reset instant", Budget{BudgetResetAt: &reset, BudgetDuration: ptr("1mo")}, "2026-04-01T00:00:00Z", nil,
			Window{Start: reset, End: day("2026-05-01T00:00:00Z"), Reset: true}},
		{"duration without a reset time, before its first reset", Budget{BudgetDuration: ptr("1d"), CreatedAt: created}, "2026-03-10T20:00:00Z", nil,
			Window{Start: day("2026-03-10T00:00:00Z"), End: day("2026-03-11T00:00:00Z")}},
		{"duration without a reset time, later", Budget{BudgetDuration: ptr("1d"), CreatedAt: created}, "2026-03-12T10:00:00Z", nil,
			Window{Start: day("2026-03-12T00:00:00Z"), End: day("2026-03-13T00:00:00Z"), Reset: true}},
		{"daily in Tokyo", Budget{BudgetResetAt: ptr(day("2026-03-11T00:00:00+09:00")), BudgetDuration: ptr("1d")}, "2026-03-11T16:00:00Z", tokyo,
			Window{Start: day("2026-03-12T00:00:00+09:00"), End: day("2026-03-13T00:00:00+09:00"), Reset: true}},
		{"30s", Budget{BudgetResetAt: ptr(day("2026-03-11T00:00:30Z")), BudgetDuration: ptr("30s")}, "2026-03-11T10:17:45Z", nil,
			Window{Start: day("2026-03-11T10:17:30Z"), End: day("2026-03-11T10:18:00Z"), Reset: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := BudgetWindow(tt.budget, day(tt.at), tt.loc)
			if !got.Start.Equal(tt.want.Start) || !got.End.Equal(tt.want.End) || got.Reset != tt.want.Reset {
				t.Errorf("BudgetWindow = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestModelWindow(t *testing.T) {
	b := Budget{
		CreatedAt: day("2026-03-10T15:00:00Z"),
		ModelMaxBudget: map[string]ModelBudget{
			"gpt-4o":  {MaxBudget: ptr[Nano](5), BudgetDuration: ptr("1d")},
			"forever": {MaxBudget: ptr[Nano](5)},
		},
	}
	got := ModelWindow(b, "gpt-4o", day("2026-03-20T08:00:00Z"), nil)
	want := Window{Start: day("2026-03-20T00:00:00Z"), End: day("2026-03-21T00:00:00Z"), Reset: true}
	if !got.Start.Equal(want.Start) || !got.End.Equal(want.End) || got.Reset != want.Reset {
		t.Errorf("ModelWindow = %+v, want %+v", got, want)
	}
	for _, model := range []string{"forever", "unknown"} {
		if got := ModelWindow(b, model, day("2026-03-20T08:00:00Z"), nil); got != (Window{}) {
			t.Errorf("ModelWindow(%q) = %+v, want none", model, got)
		}
	}
}

func TestWindowID(t *testing.T) {
	if got := (Window{}).ID(); got != "none" {
		t.Errorf("ID of no window = %q", got)
	}
	w := Window{End: day("2026-04-01T00:00:00+01:00")}
	if got := w.ID(); got != "2026-03-31T23:00:00Z" {
		t.Errorf("ID = %q, want the end in UTC", got)
	}
	if w.Bounded() || !(Window{Start: w.End, End: w.End}).Bounded() {
		t.Error("Bounded wrong")
	}
}

func TestSpendIn(t *testing.T) {
	now := day("2026-03-15T12:00:00Z")
	month := Window{Start: day("2026-03-01T00:00:00Z"), End: day("2026-04-01T00:00:00Z"), Reset: true}
	first := Window{Start: day("2026-03-01T00:00:00Z"), End: day("2026-04-01T00:00:00Z")}
	tests := []struct {
		name     string
		customer Customer
		w        Window
		want     Nano
	}{
		{"no windows anywhere", Customer{Spend: 7}, Window{}, 7},
		{"recorded in the current window", Customer{Spend: 7, WindowEnd: month.End}, month, 7},
		{"recorded in a window that has ended", Customer{Spend: 7, WindowEnd: day("2026-03-01T00:00:00Z")}, month, 0},
		{"window ends exactly now", Customer{Spend: 7, WindowEnd: now}, month, 0},
		{"a budget that stopped resetting: until the old window ends", Customer{Spend: 7, WindowEnd: month.End}, Window{}, 7},
		{"recorded without a window, first window", Customer{Spend: 7, CreatedAt: day("2026-01-01T00:00:00Z")}, first, 7},
		{"recorded without a window before a reset", Customer{Spend: 7, CreatedAt: day("2026-02-10T00:00:00Z")}, month, 0},
		{"created in this window with spend", Customer{Spend: 7, CreatedAt: day("2026-03-10T00:00:00Z")}, month, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.customer.SpendIn(tt.w, now); got != tt.want {
				t.Errorf("SpendIn = %d, want %d", got, tt.want)
			}
		})
	}
	c := Customer{ModelSpend: map[string]ModelSpend{"gpt-4o": {Spend: 3, WindowEnd: month.End}, "old": {Spend: 4, WindowEnd: month.Start}}}
	got := []Nano{c.ModelSpendIn("gpt-4o", month, now), c.ModelSpendIn("old", month, now), c.ModelSpendIn("none", month, now)}
	if d := cmp.Diff([]Nano{3, 0, 0}, got); d != "" {
		t.Errorf("ModelSpendIn (-want +got):\n%s", d)
	}
}

func TestAddSpend(t *testing.T) {
	now := day("2026-03-15T12:00:00Z")
	march := Window{Start: day("2026-03-01T00:00:00Z"), End: day("2026-04-01T00:00:00Z"), Reset: true}
	firstMarch := Window{Start: march.Start, End: march.End}
	today := Window{Start: day("2026-03-15T00:00:00Z"), End: day("2026-03-16T00:00:00Z"), Reset: true}
	created := day("2026-02-01T00:00:00Z")
	tests := []struct {
		name     string
		customer Customer
		log      SpendLog
		want     Customer
	}{
		{"first spend without a window",
			Customer{CreatedAt: now}, SpendLog{Cost: 5, EndTime: now},
			Customer{CreatedAt: now, Spend: 5}},
		{"first spend in a window",
			Customer{CreatedAt: now}, SpendLog{Cost: 5, EndTime: now, Window: march},
			Customer{CreatedAt: now, Spend: 5, WindowEnd: march.End}},
		{"same window adds",
			Customer{CreatedAt: created, Spend: 5, WindowEnd: march.End}, SpendLog{Cost: 2, EndTime: now, Window: march},
			Customer{CreatedAt: created, Spend: 7, WindowEnd: march.End}},
		{"window passed: starts over with this cost",
			Customer{CreatedAt: created, Spend: 5, WindowEnd: march.Start}, SpendLog{Cost: 2, EndTime: now, Window: march},
			Customer{CreatedAt: created, Spend: 2, WindowEnd: march.End}},
		{"zero EndTime uses now",
			Customer{CreatedAt: created, Spend: 5, WindowEnd: march.Start}, SpendLog{Cost: 2, Window: march},
			Customer{CreatedAt: created, Spend: 2, WindowEnd: march.End}},
		{"recorded at the reset instant belongs to the new window",
			Customer{CreatedAt: created, Spend: 5, WindowEnd: now}, SpendLog{Cost: 2, EndTime: now, Window: march},
			Customer{CreatedAt: created, Spend: 2, WindowEnd: march.End}},
		{"spend without a window, budget reset since: starts over",
			Customer{CreatedAt: created, Spend: 5}, SpendLog{Cost: 2, EndTime: now, Window: march},
			Customer{CreatedAt: created, Spend: 2, WindowEnd: march.End}},
		{"spend without a window, first window: kept",
			Customer{CreatedAt: created, Spend: 5}, SpendLog{Cost: 2, EndTime: now, Window: firstMarch},
			Customer{CreatedAt: created, Spend: 7, WindowEnd: march.End}},
		{"budget moved to shorter windows: the earlier end wins",
			Customer{CreatedAt: created, Spend: 5, WindowEnd: march.End}, SpendLog{Cost: 2, EndTime: now, Window: today},
			Customer{CreatedAt: created, Spend: 7, WindowEnd: today.End}},
		{"budget stopped resetting: the old window still ends",
			Customer{CreatedAt: created, Spend: 5, WindowEnd: march.End}, SpendLog{Cost: 2, EndTime: now},
			Customer{CreatedAt: created, Spend: 7, WindowEnd: march.End}},
		{"budget stopped resetting, old window over: no window from now on",
			Customer{CreatedAt: created, Spend: 5, WindowEnd: march.Start}, SpendLog{Cost: 2, EndTime: now},
			Customer{CreatedAt: created, Spend: 2}},
		{"model spend opens its own window",
			Customer{CreatedAt: created, Spend: 5, WindowEnd: march.End}, SpendLog{Cost: 2, EndTime: now, Window: march, ModelBudget: "gpt-4o", ModelWindow: today},
			Customer{CreatedAt: created, Spend: 7, WindowEnd: march.End, ModelSpend: map[string]ModelSpend{"gpt-4o": {Spend: 2, WindowEnd: today.End}}}},
		{"model window passed, the budget's has not",
			Customer{CreatedAt: created, Spend: 5, WindowEnd: march.End, ModelSpend: map[string]ModelSpend{
				"gpt-4o": {Spend: 4, WindowEnd: today.Start}, "other": {Spend: 1, WindowEnd: today.End}}},
			SpendLog{Cost: 2, EndTime: now, Window: march, ModelBudget: "gpt-4o", ModelWindow: today},
			Customer{CreatedAt: created, Spend: 7, WindowEnd: march.End, ModelSpend: map[string]ModelSpend{
				"gpt-4o": {Spend: 2, WindowEnd: today.End}, "other": {Spend: 1, WindowEnd: today.End}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.customer
			c.AddSpend(tt.log, now)
			if d := cmp.Diff(tt.want, c); d != "" {
				t.Errorf("customer (-want +got):\n%s", d)
			}
		})
	}
}
