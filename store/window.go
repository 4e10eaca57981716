package store

import (
	"time"

	"github.com/tollgate-dev/tollgate/store/window"
)

// Window is a budget window: the period that a customer's spend counts in.
// At End the window's spend counts as zero, for enforcement at once and in
// the store at the customer's next recorded spend.
type Window struct {
	// Start is when the window began. For a budget's first window (Reset
	// false) it is where the budget's schedule puts the start.
	Start time.Time
	// End is the reset that closes the window; zero when the budget never
	// resets.
	End time.Time
	// Reset reports that a reset opened the window. It is false for the
	// window that ends at the budget's stored budget_reset_at, so spend
	// recorded before the budget had windows still counts in it.
	Reset bool
}

// noWindow is the ID of the one window of a budget that never resets.
const noWindow = "none"

// ID names the window in AlertMarks: its end, or "none" for a budget that
// never resets.
func (w Window) ID() string {
	if w.End.IsZero() {
		return noWindow
	}
	return w.End.UTC().Format(time.RFC3339Nano)
}

// Bounded reports that the window has both a start and an end.
func (w Window) Bounded() bool { return !w.Start.IsZero() && !w.End.IsZero() }

// BudgetWindow returns the window of b that contains t, with resets at
// midnights, Mondays and months' firsts in loc (nil means UTC). Windows run
// back to back from the stored budget_reset_at (window.Duration.Current), so
// a reset time long past is advanced by whole windows, exactly at each reset
// and without a job. A budget without budget_duration (or with one that does
// not parse) never resets, except once at a budget_reset_at it has, as in
// LiteLLM; one with a duration but no reset time starts its windows at its
// first reset after CreatedAt.
func BudgetWindow(b Budget, t time.Time, loc *time.Location) Window {
	d, ok := duration(b.BudgetDuration)
	switch {
	case ok && b.BudgetResetAt != nil:
		return scheduleWindow(d, *b.BudgetResetAt, t, loc)
	case ok:
		return scheduleWindow(d, d.Next(b.CreatedAt, loc), t, loc)
	case b.BudgetResetAt == nil:
		return Window{}
	case t.Before(*b.BudgetResetAt):
		return Window{End: *b.BudgetResetAt}
	default:
		return Window{Start: *b.BudgetResetAt, Reset: true}
	}
}

// ModelWindow returns the window that contains t of b's model_max_budget
// entry for model: the entry's budget_duration on its own schedule, starting
// at its first reset after the budget was created. A zero Window when the
// entry does not exist or has no duration.
func ModelWindow(b Budget, model string, t time.Time, loc *time.Location) Window {
	mb, ok := b.ModelMaxBudget[model]
	if !ok {
		return Window{}
	}
	d, ok := duration(mb.BudgetDuration)
	if !ok {
		return Window{}
	}
	return scheduleWindow(d, d.Next(b.CreatedAt, loc), t, loc)
}

func duration(s *string) (window.Duration, bool) {
	if s == nil {
		return window.Duration{}, false
	}
	d, err := window.Parse(*s)
	return d, err == nil
}

func scheduleWindow(d window.Duration, resetAt, t time.Time, loc *time.Location) Window {
	span := d.Current(resetAt, t, loc)
	if span.Start.IsZero() {
		return Window{Start: d.Prev(span.End, loc), End: span.End}
	}
	return Window{Start: span.Start, End: span.End, Reset: true}
}

// SpendIn returns the part of c's stored spend that counts at t, when the
// window of c's budget that contains t is w: all of it while the window the
// spend was recorded in (c.WindowEnd) runs, none after. Spend recorded
// without a window (zero WindowEnd: before the budget had one, or given to
// /customer/new) counts until the first reset after the customer was created.
func (c Customer) SpendIn(w Window, t time.Time) Nano {
	if counts(c.WindowEnd, c.CreatedAt, w, t) {
		return c.Spend
	}
	return 0
}

// ModelSpendIn is SpendIn for the spend on one model_max_budget entry, whose
// window at t is w.
func (c Customer) ModelSpendIn(model string, w Window, t time.Time) Nano {
	ms, ok := c.ModelSpend[model]
	if !ok || !counts(ms.WindowEnd, c.CreatedAt, w, t) {
		return 0
	}
	return ms.Spend
}

func counts(end, created time.Time, w Window, t time.Time) bool {
	if end.IsZero() {
		return !w.Reset || !created.Before(w.Start)
	}
	return t.Before(end)
}

// addSpend adds cost, recorded at t in window w, to spend recorded in the
// window that ends at end: RecordSpend's rollover. A spend whose window has
// passed is replaced (the window opens with this cost); otherwise cost is
// added and the window ends at the earlier of the two ends, so a budget
// moved to shorter windows takes effect at once.
func addSpend(spend Nano, end, created time.Time, cost Nano, w Window, t time.Time) (Nano, time.Time) {
	if !counts(end, created, w, t) {
		return cost, w.End
	}
	if end.IsZero() || !w.End.IsZero() && w.End.Before(end) {
		end = w.End
	}
	return spend + cost, end
}

// AddSpend applies a spend log to the customer it names: the rollover
// RecordSpend does in the log's transaction. The log's window (Window, and
// ModelWindow for ModelBudget) is the one its spend counts in; a window that
// has passed by the log's EndTime (or now, when EndTime is zero) starts over
// with this cost. Backends call it so that every one rolls windows alike.
func (c *Customer) AddSpend(l SpendLog, now time.Time) {
	at := l.EndTime
	if at.IsZero() {
		at = now
	}
	c.Spend, c.WindowEnd = addSpend(c.Spend, c.WindowEnd, c.CreatedAt, l.Cost, l.Window, at)
	if l.ModelBudget == "" {
		return
	}
	ms := c.ModelSpend[l.ModelBudget]
	if c.ModelSpend == nil {
		c.ModelSpend = make(map[string]ModelSpend, 1)
	}
	ms.Spend, ms.WindowEnd = addSpend(ms.Spend, ms.WindowEnd, c.CreatedAt, l.Cost, l.ModelWindow, at)
	c.ModelSpend[l.ModelBudget] = ms
}
