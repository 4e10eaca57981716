// Package storetest is the behaviour suite every store.Store backend must
// pass. A backend's test calls Run with a function that opens a fresh, empty
// store; the suite closes each store it opens.
package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tollgate-dev/tollgate/store"
)

// opener opens a fresh store that the suite closes when the test ends.
type opener func(t *testing.T) store.Store

// Run runs every behaviour test of the store contract. Each test opens its
// own store(s) with open, so backends need no cleanup between tests.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	newStore := func(t *testing.T) store.Store {
		t.Helper()
		s := open(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, open opener)
	}{
		{"CreateCustomer", testCreateCustomer},
		{"CreateCustomerInlineGeneratedID", testCreateCustomerInlineGeneratedID},
		{"GetCustomerNotFound", testGetCustomerNotFound},
		{"UpdateCustomer", testUpdateCustomer},
		{"UpdateCustomerRelinkMovesIndex", testUpdateCustomerRelinkMovesIndex},
		{"UpdateCustomerMaxBudgetInlineInPlace", testMaxBudgetInlineInPlace},
		{"UpdateCustomerMaxBudgetSharedTier", testMaxBudgetSharedTier},
		{"UpdateCustomerMaxBudgetNoBudget", testMaxBudgetNoBudget},
		{"DeleteCustomers", testDeleteCustomers},
		{"DeleteCustomersMissing", testDeleteCustomersMissing},
		{"DeleteCustomersOwnedBudgetSharedByOthers", testDeleteCustomersOwnedBudgetShared},
		{"ListCustomers", testListCustomers},
		{"SetBlocked", testSetBlocked},
		{"CreateBudget", testCreateBudget},
		{"CreateBudgetGeneratedIDs", testCreateBudgetGeneratedIDs},
		{"GetBudgetNotFound", testGetBudgetNotFound},
		{"UpdateBudget", testUpdateBudget},
		{"ListBudgets", testListBudgets},
		{"DeleteBudget", testDeleteBudget},
		{"RecordSpend", testRecordSpend},
		{"RecordSpendDuplicate", testRecordSpendDuplicate},
		{"RecordSpendRejectsEmptyRequestID", testRecordSpendEmptyRequestID},
		{"SpendLogs", testSpendLogs},
		{"QuerySpendLogs", testQuerySpendLogs}, {"QuerySpendLogsGrowing", testQuerySpendLogsGrowing}, {"QuerySpendLogsInvalid", testQuerySpendLogsInvalid},
		{"RecordSpendWindows", testRecordSpendWindows},
		{"RecordSpendWindowBeforeCustomer", testRecordSpendWindowBeforeCustomer},
		{"ConcurrentRollover", testConcurrentRollover},
		{"CanceledContext", testCanceledContext},
		{"Closed", testClosed},
		{"ConcurrentSpendHotCustomer", testConcurrentSpendHot},
		{"ConcurrentFirstSpend", testConcurrentFirstSpend},
		{"ConcurrentSameRequestID", testConcurrentSameRequestID},
		{"ConcurrentUpdateDuringSpend", testConcurrentUpdateDuringSpend},
		{"ConcurrentCreateCustomer", testConcurrentCreateCustomer},
		{"ConcurrentBlockAndFirstSpend", testConcurrentBlockAndFirstSpend},
		{"ConcurrentRelinkAndDeleteBudget", testConcurrentRelinkAndDeleteBudget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newStore)
		})
	}
}

// errAny in a table means "some error"; the contract names no sentinel.
var errAny = errors.New("any error")

// checkErr reports whether err matches want (nil, errAny or a sentinel).
func checkErr(t *testing.T, op string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("%s: unexpected error: %v", op, err)
	case want == errAny && err == nil, want != nil && want != errAny && !errors.Is(err, want):
		t.Fatalf("%s: error = %v, want %v", op, err, want)
	}
}

// Timestamps are the backend's clock, so most comparisons leave them out and
// checkStamps checks them on their own.
var (
	ignoreCustomerStamps = cmpopts.IgnoreFields(store.Customer{}, "CreatedAt", "UpdatedAt")
	ignoreBudgetStamps   = cmpopts.IgnoreFields(store.Budget{}, "CreatedAt", "UpdatedAt")
)

func checkStamps(t *testing.T, what string, created, updated time.Time) {
	t.Helper()
	if created.IsZero() || updated.Before(created) {
		t.Errorf("%s: CreatedAt %v, UpdatedAt %v: want CreatedAt set and UpdatedAt not before it", what, created, updated)
	}
}

func diff(t *testing.T, what string, want, got any, opts ...cmp.Option) {
	t.Helper()
	if d := cmp.Diff(want, got, opts...); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, d)
	}
}

func ptr[T any](v T) *T { return &v }

// state is everything a store holds, for "nothing changed" checks.
type state struct {
	Customers []store.Customer
	Budgets   []store.Budget
	Logs      []store.SpendLog
}

func snapshot(t *testing.T, s store.Store) state {
	t.Helper()
	ctx := t.Context()
	cs, err := s.ListCustomers(ctx)
	if err != nil {
		t.Fatalf("ListCustomers: %v", err)
	}
	bs, err := s.ListBudgets(ctx)
	if err != nil {
		t.Fatalf("ListBudgets: %v", err)
	}
	ls, err := s.SpendLogs(ctx, "")
	if err != nil {
		t.Fatalf("SpendLogs: %v", err)
	}
	return state{cs, bs, ls}
}

func unchanged(t *testing.T, s store.Store, before state) {
	t.Helper()
	diff(t, "store state", before, snapshot(t, s), cmpopts.EquateEmpty())
}

func mustCreateCustomer(t *testing.T, s store.Store, c store.Customer, inline *store.Budget) store.Customer {
	t.Helper()
	got, err := s.CreateCustomer(t.Context(), c, inline)
	if err != nil {
		t.Fatalf("CreateCustomer(%q): %v", c.UserID, err)
	}
	return got
}

func mustGetCustomer(t *testing.T, s store.Store, id string) store.Customer {
	t.Helper()
	got, err := s.GetCustomer(t.Context(), id)
	if err != nil {
		t.Fatalf("GetCustomer(%q): %v", id, err)
	}
	return got
}

func mustUpdateCustomer(t *testing.T, s store.Store, id string, p store.CustomerPatch) store.Customer {
	t.Helper()
	got, err := s.UpdateCustomer(t.Context(), id, p)
	if err != nil {
		t.Fatalf("UpdateCustomer(%q): %v", id, err)
	}
	return got
}

func mustCreateBudget(t *testing.T, s store.Store, b store.Budget) store.Budget {
	t.Helper()
	got, err := s.CreateBudget(t.Context(), b)
	if err != nil {
		t.Fatalf("CreateBudget(%q): %v", b.BudgetID, err)
	}
	return got
}

func mustGetBudget(t *testing.T, s store.Store, id string) store.Budget {
	t.Helper()
	got, err := s.GetBudget(t.Context(), id)
	if err != nil {
		t.Fatalf("GetBudget(%q): %v", id, err)
	}
	return got
}

func mustRecordSpend(t *testing.T, s store.Store, l store.SpendLog) store.SpendResult {
	t.Helper()
	got, err := s.RecordSpend(t.Context(), l)
	if err != nil {
		t.Fatalf("RecordSpend(%q): %v", l.RequestID, err)
	}
	return got
}

func mustSpendLogs(t *testing.T, s store.Store, customerID string) []store.SpendLog {
	t.Helper()
	got, err := s.SpendLogs(t.Context(), customerID)
	if err != nil {
		t.Fatalf("SpendLogs(%q): %v", customerID, err)
	}
	return got
}

// canceled returns a context that is already done.
func canceled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}
