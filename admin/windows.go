package admin

import (
	"context"
	"time"

	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/window"
)

// Budget windows as the API shows them. LiteLLM's reset job moves a budget's
// budget_reset_at on and zeroes its customers' spend; here nothing moves in
// the store (the data plane and RecordSpend work from the windows), so the
// API shows what that job would have written: the end of the current window,
// and the spend of the current window.

// current returns b with budget_reset_at at the end of its current window
// (nil when it never resets again).
func (s *server) current(b store.Budget) store.Budget {
	w := store.BudgetWindow(b, s.now(), s.loc)
	if w.End.IsZero() {
		b.BudgetResetAt = nil
	} else {
		end := w.End.UTC()
		b.BudgetResetAt = &end
	}
	return b
}

// present returns c and its linked budget as they stand now: the spend that
// counts in the current window of the budget that limits c (its own, else the
// default one), and the linked budget with its current reset time.
func (s *server) present(c store.Customer, budgets map[string]store.Budget) (store.Customer, *store.Budget) {
	linked := lookup(budgets, c.BudgetID)
	limiting := linked
	if limiting == nil && s.defaultBudgetID != "" {
		limiting = lookup(budgets, &s.defaultBudgetID)
	}
	var w store.Window
	now := s.now()
	if limiting != nil {
		w = store.BudgetWindow(*limiting, now, s.loc)
	}
	c.Spend = c.SpendIn(w, now)
	if linked == nil {
		return c, nil
	}
	shown := s.current(*linked)
	return c, &shown
}

// presentOne is present for one customer, fetching its budgets.
func (s *server) presentOne(ctx context.Context, c store.Customer) (store.Customer, *store.Budget, error) {
	budgets, err := s.budgetsOf(ctx, []store.Customer{c})
	if err != nil {
		return store.Customer{}, nil, err
	}
	shown, b := s.present(c, budgets)
	return shown, b, nil
}

// scheduleResets gives a budget whose budget_duration is set but whose
// budget_reset_at is not its first reset: the next one after now in the
// configured time zone, as LiteLLM's /budget/new does (and /customer/new
// since PR #22009). A budget without a duration keeps the reset time it was
// given. durationChanged (by an update) moves the reset time to the new
// schedule unless the update names one.
func (s *server) scheduleResets(b *store.Budget, durationChanged, resetGiven bool) {
	if b.BudgetDuration == nil {
		if durationChanged && !resetGiven {
			b.BudgetResetAt = nil
		}
		return
	}
	if b.BudgetResetAt != nil && (!durationChanged || resetGiven) {
		return
	}
	d, err := window.Parse(*b.BudgetDuration)
	if err != nil {
		return // validated on the way in; an old unparsable one never resets
	}
	next := d.Next(s.now(), s.loc).UTC()
	b.BudgetResetAt = &next
}

// sameDuration reports whether two optional budget_durations are equal.
func sameDuration(a, b *string) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// utcOr returns loc, or UTC when it is nil.
func utcOr(loc *time.Location) *time.Location {
	if loc == nil {
		return time.UTC
	}
	return loc
}
