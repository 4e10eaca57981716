package admin

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/store"
)

// testTime is Friday 2026-01-02 03:04:05 UTC.

func TestBudgetResetAtScheduled(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		loc      *time.Location
		duration string
		want     string
	}{
		{"30s: the next half minute", nil, "30s", "2026-01-02T03:04:30Z"},
		{"1d: next midnight", nil, "1d", "2026-01-03T00:00:00Z"},
		{"24h: next midnight", nil, "24h", "2026-01-03T00:00:00Z"},
		{"7d: next Monday", nil, "7d", "2026-01-05T00:00:00Z"},
		{"30d: the 1st of next month", nil, "30d", "2026-02-01T00:00:00Z"},
		{"1mo: the 1st of next month", nil, "1mo", "2026-02-01T00:00:00Z"},
		{"1d in Tokyo: its next midnight", tokyo, "1d", "2026-01-02T15:00:00Z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnvWith(t, Config{Location: c.loc})
			want := budgetRowJSON("b", kv{"budget_duration": `"` + c.duration + `"`, "budget_reset_at": `"` + c.want + `"`})
			code, got := e.do("POST", "/budget/new", `{"budget_id":"b","budget_duration":"`+c.duration+`"}`)
			check(t, "budget/new", code, got, 200, want)
			b, err := e.st.GetBudget(t.Context(), "b")
			if err != nil {
				t.Fatal(err)
			}
			if b.BudgetResetAt == nil || b.BudgetResetAt.UTC().Format(time.RFC3339) != c.want {
				t.Errorf("stored budget_reset_at = %v, want %s", b.BudgetResetAt, c.want)
			}
		})
	}
	t.Run("a given reset time is kept", func(t *testing.T) {
		e := newEnv(t)
		code, got := e.do("POST", "/budget/new", `{"budget_id":"b","budget_duration":"1d","budget_reset_at":"2026-01-02T12:00:00Z"}`)
		check(t, "budget/new", code, got, 200, budgetRowJSON("b", kv{"budget_duration": `"1d"`, "budget_reset_at": `"2026-01-02T12:00:00Z"`}))
	})
	t.Run("an inline customer budget gets one too (LiteLLM PR #22009)", func(t *testing.T) {
		e := newEnv(t)
		var row struct {
			Table struct {
				ResetAt *string `json:"budget_reset_at"`
			} `json:"litellm_budget_table"`
		}
		if err := json.Unmarshal([]byte(e.ok("POST", "/customer/new", `{"user_id":"c","max_budget":1,"budget_duration":"1mo"}`)), &row); err != nil {
			t.Fatal(err)
		}
		if row.Table.ResetAt == nil || *row.Table.ResetAt != "2026-02-01T00:00:00Z" {
			t.Errorf("budget_reset_at = %v, want 2026-02-01T00:00:00Z", row.Table.ResetAt)
		}
	})
	t.Run("a duration too long to schedule", func(t *testing.T) {
		e := newEnv(t)
		e.expectRejected("POST", "/budget/new", `{"budget_duration":"36526d"}`, 400,
			detailJSON("budget_duration must be at most about 100 years (36525d, 1200mo). Received: 36526d"))
	})
}

func TestBudgetUpdateReschedules(t *testing.T) {
	cases := []struct {
		name, body string
		want       kv
	}{
		{"a new duration moves the reset", `{"budget_id":"b","budget_duration":"7d"}`,
			kv{"budget_duration": `"7d"`, "budget_reset_at": `"2026-01-05T00:00:00Z"`}},
		{"a new duration with a reset time keeps that", `{"budget_id":"b","budget_duration":"7d","budget_reset_at":"2026-01-07T00:00:00Z"}`,
			kv{"budget_duration": `"7d"`, "budget_reset_at": `"2026-01-07T00:00:00Z"`}},
		{"the same duration keeps the reset", `{"budget_id":"b","budget_duration":"1d"}`,
			kv{"budget_duration": `"1d"`, "budget_reset_at": `"2026-01-03T00:00:00Z"`}},
		{"no duration, no reset", `{"budget_id":"b","budget_duration":null}`, kv{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.setup(req{"POST", "/budget/new", `{"budget_id":"b","budget_duration":"1d"}`})
			code, got := e.do("POST", "/budget/update", c.body)
			check(t, "update", code, got, 200, budgetRowJSON("b", c.want))
		})
	}
}

func TestWindowsAsShown(t *testing.T) {
	// A monthly budget whose stored reset is long past: shown at the end of
	// the current window, as LiteLLM's job would have moved it.
	e := newEnvWith(t, Config{DefaultBudgetID: "default"})
	e.setup(
		req{"POST", "/budget/new", `{"budget_id":"monthly","max_budget":10,"budget_duration":"1mo","budget_reset_at":"2025-06-01T00:00:00Z"}`},
		req{"POST", "/budget/new", `{"budget_id":"default","max_budget":1,"budget_duration":"1d","budget_reset_at":"2025-06-01T00:00:00Z"}`},
		req{"POST", "/customer/new", `{"user_id":"old","budget_id":"monthly"}`},
		req{"POST", "/customer/new", `{"user_id":"now","budget_id":"monthly"}`},
	)
	monthly := budgetRowJSON("monthly", kv{"max_budget": "10.0", "budget_duration": `"1mo"`, "budget_reset_at": `"2026-02-01T00:00:00Z"`})
	check(t, "budget/info", 200, e.ok("POST", "/budget/info", `{"budgets":["monthly"]}`), 200, "["+monthly+"]")

	record := func(id, customer string, cost store.Nano, end string) {
		t.Helper()
		windowEnd, err := time.Parse(time.RFC3339, end)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.RecordSpend(t.Context(), store.SpendLog{RequestID: id, CustomerID: customer, Cost: cost,
			EndTime: windowEnd.Add(-time.Hour), Window: store.Window{End: windowEnd, Reset: true}}); err != nil {
			t.Fatal(err)
		}
	}
	record("r1", "old", 4_000_000_000, "2026-01-01T00:00:00Z")      // December's window
	record("r2", "now", 3_000_000_000, "2026-02-01T00:00:00Z")      // this month's
	record("r3", "newcomer", 500_000_000, "2026-01-02T00:00:00Z")   // the default budget's yesterday
	record("r4", "newcomer-2", 250_000_000, "2026-01-03T00:00:00Z") // the default budget's today
	spend := func(id string) float64 {
		var c struct{ Spend float64 }
		if err := json.Unmarshal([]byte(e.ok("GET", "/customer/info?end_user_id="+id, "")), &c); err != nil {
			t.Fatal(err)
		}
		return c.Spend
	}
	for id, want := range map[string]float64{"old": 0, "now": 3, "newcomer": 0, "newcomer-2": 0.25} {
		if got := spend(id); got != want {
			t.Errorf("%s: spend shown %v, want %v", id, got, want)
		}
	}
	// The spend logs of the past window stay.
	logs, err := e.st.SpendLogs(t.Context(), "old")
	if err != nil || len(logs) != 1 || logs[0].Cost != 4_000_000_000 {
		t.Errorf("old's spend logs = %v, %v; want the December request", logs, err)
	}
}
