package store

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Window is the budget period that spend and budget alerts belong to.
type Window struct {
	// ID names the window in AlertMarks: the budget's budget_reset_at, or
	// "none" for a budget that never resets.
	ID string
	// Bounded reports that Start and End are known: the budget has both
	// budget_duration and budget_reset_at.
	Bounded    bool
	Start, End time.Time
}

// noWindow is the ID of the one window of a budget that never resets.
const noWindow = "none"

// BudgetWindow returns b's current window: the period that ends at
// budget_reset_at and began budget_duration before it. Budget resets (which
// move budget_reset_at on) start a new window, so alerts can fire again.
func BudgetWindow(b Budget) Window {
	if b.BudgetResetAt == nil {
		return Window{ID: noWindow}
	}
	end := b.BudgetResetAt.UTC()
	w := Window{ID: end.Format(time.RFC3339Nano)}
	if b.BudgetDuration == nil {
		return w
	}
	start, err := beforeDuration(end, *b.BudgetDuration)
	if err != nil {
		return w
	}
	w.Bounded, w.Start, w.End = true, start, end
	return w
}

// maxDurationCount bounds the count in a budget_duration so the arithmetic
// below cannot overflow (100,000 days is about 270 years).
const maxDurationCount = 100_000

// beforeDuration returns t minus a budget_duration ("30s", "30m", "30h",
// "30d", "2w", "1mo"): months are calendar months, days are 24 hours.
func beforeDuration(t time.Time, duration string) (time.Time, error) {
	unit := strings.TrimLeft(duration, "0123456789")
	digits := duration[:len(duration)-len(unit)]
	n, err := strconv.Atoi(digits)
	if err != nil || n <= 0 || n > maxDurationCount || digits[0] == '0' {
		return time.Time{}, fmt.Errorf("budget duration %q: want a positive count followed by s, m, h, d, w or mo", duration)
	}
	step := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}
	switch d, ok := step[unit]; {
	case ok:
		return t.Add(-time.Duration(n) * d), nil
	case unit == "mo":
		// Calendar months, clamped to the month's last day (March 31 minus a
		// month is February 28, where AddDate would give March 3).
		y, m, d := t.Date()
		first := time.Date(y, m-time.Month(n), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
		last := first.AddDate(0, 1, -1).Day()
		return first.AddDate(0, 0, min(d, last)-1), nil
	}
	return time.Time{}, fmt.Errorf("budget duration %q: unknown unit %q", duration, unit)
}
