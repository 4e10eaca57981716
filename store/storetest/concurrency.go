package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/tollgate-dev/tollgate/store"
)

// testConcurrentSpendHot: many requests of one customer at once lose no
// increment, and each caller sees the spend right after its own increment.
func testConcurrentSpendHot(t *testing.T, open opener) {
	const n = 200
	s := open(t)
	mustCreateCustomer(t, s, store.Customer{UserID: "alice", Spend: 1000}, nil)
	results := make([]store.SpendResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = s.RecordSpend(t.Context(), store.SpendLog{
				RequestID: fmt.Sprintf("r%03d", i), CustomerID: "alice", Cost: store.Nano(i + 1),
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("RecordSpend: %v", err)
	}
	const want = 1000 + n*(n+1)/2
	if got := mustGetCustomer(t, s, "alice").Spend; got != want {
		t.Errorf("Spend = %d, want %d", got, want)
	}
	var spends []store.Nano
	for i, r := range results {
		if r.Created {
			t.Errorf("result %d: Created = true for an existing customer", i)
		}
		spends = append(spends, r.Customer.Spend)
	}
	// Costs are positive, so the spends seen after each increment are distinct
	// and the last one is the total.
	slices.Sort(spends)
	if len(slices.Compact(slices.Clone(spends))) != n || spends[n-1] != want {
		t.Errorf("spends seen by callers are not %d distinct values ending at %d: %v", n, want, spends)
	}
	logs := mustSpendLogs(t, s, "alice")
	var ids []string
	for _, l := range logs {
		ids = append(ids, l.RequestID)
	}
	var wantIDs []string
	for i := range n {
		wantIDs = append(wantIDs, fmt.Sprintf("r%03d", i))
	}
	diff(t, "logged request ids", wantIDs, ids)
}

// testConcurrentFirstSpend: a customer's first requests racing each other
// create exactly one row and exactly one of them reports creating it.
func testConcurrentFirstSpend(t *testing.T, open opener) {
	const n = 50
	s := open(t)
	results := make([]store.SpendResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = s.RecordSpend(t.Context(), store.SpendLog{
				RequestID: fmt.Sprintf("r%02d", i), CustomerID: "newbie", Cost: store.Nano(10 * (i + 1)),
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("RecordSpend: %v", err)
	}
	var created []int
	for i, r := range results {
		if r.Created {
			created = append(created, i)
		}
	}
	if len(created) != 1 {
		t.Fatalf("Created = true for results %v, want exactly one", created)
	}
	if first := results[created[0]]; first.Customer.Spend != store.Nano(10*(created[0]+1)) {
		t.Errorf("the creating record saw Spend %d, want its own cost %d", first.Customer.Spend, 10*(created[0]+1))
	}
	customers := snapshot(t, s).Customers
	if len(customers) != 1 {
		t.Fatalf("%d customers, want 1: %+v", len(customers), customers)
	}
	if want := store.Nano(10 * n * (n + 1) / 2); customers[0].Spend != want {
		t.Errorf("Spend = %d, want %d", customers[0].Spend, want)
	}
	if got := len(mustSpendLogs(t, s, "newbie")); got != n {
		t.Errorf("%d logs, want %d", got, n)
	}
}

// testConcurrentSameRequestID: a request id replayed concurrently is charged
// once.
func testConcurrentSameRequestID(t *testing.T, open opener) {
	const n = 20
	s := open(t)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.RecordSpend(t.Context(), store.SpendLog{RequestID: "same", CustomerID: "alice", Cost: 77})
		})
	}
	wg.Wait()
	ok, dup := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrDuplicateRequest):
			dup++
		default:
			t.Errorf("RecordSpend: %v", err)
		}
	}
	if ok != 1 || dup != n-1 {
		t.Errorf("%d succeeded and %d were duplicates, want 1 and %d", ok, dup, n-1)
	}
	if got := mustGetCustomer(t, s, "alice").Spend; got != 77 {
		t.Errorf("Spend = %d, want 77", got)
	}
	if got := len(mustSpendLogs(t, s, "")); got != 1 {
		t.Errorf("%d logs, want 1", got)
	}
}

// testConcurrentUpdateDuringSpend: admin patches racing spend increments on the
// same row lose neither.
func testConcurrentUpdateDuringSpend(t *testing.T, open opener) {
	const spends, patches = 200, 50
	s := open(t)
	mustCreateCustomer(t, s, store.Customer{UserID: "alice"}, nil)
	errs := make([]error, spends)
	var wg sync.WaitGroup
	for i := range spends {
		wg.Go(func() {
			_, errs[i] = s.RecordSpend(t.Context(), store.SpendLog{
				RequestID: fmt.Sprintf("r%03d", i), CustomerID: "alice", Cost: 3,
			})
		})
	}
	var last store.Nano
	for i := range patches {
		got, err := s.UpdateCustomer(t.Context(), "alice", store.CustomerPatch{
			Alias: ptr(fmt.Sprint(i)), Blocked: ptr(i%2 == 0), DefaultModel: ptr(fmt.Sprintf("m%d", i)),
		})
		if err != nil {
			t.Fatalf("UpdateCustomer %d: %v", i, err)
		}
		if *got.Alias != fmt.Sprint(i) || got.Spend < last {
			t.Errorf("patch %d returned Alias %q, Spend %d (previous Spend %d)", i, *got.Alias, got.Spend, last)
		}
		last = got.Spend
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("RecordSpend: %v", err)
	}
	want := store.Customer{
		UserID: "alice", Alias: ptr(fmt.Sprint(patches - 1)), Spend: 3 * spends,
		Blocked: (patches-1)%2 == 0, DefaultModel: ptr(fmt.Sprintf("m%d", patches-1)),
	}
	diff(t, "customer", want, mustGetCustomer(t, s, "alice"), ignoreCustomerStamps)
}

// testConcurrentCreateCustomer: one of several racing creates wins.
func testConcurrentCreateCustomer(t *testing.T, open opener) {
	const n = 10
	s := open(t)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.CreateCustomer(t.Context(), store.Customer{UserID: "alice", Spend: store.Nano(i)}, &store.Budget{MaxBudget: ptr[store.Nano](1)})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrExists):
			t.Errorf("CreateCustomer: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d creates succeeded, want 1", ok)
	}
	got := snapshot(t, s)
	if len(got.Customers) != 1 || len(got.Budgets) != 1 {
		t.Errorf("%d customers and %d budgets, want 1 and 1", len(got.Customers), len(got.Budgets))
	}
}

// testConcurrentBlockAndFirstSpend: blocking a customer before it exists, at
// the same time as its first request, keeps both the flag and the spend.
func testConcurrentBlockAndFirstSpend(t *testing.T, open opener) {
	const rounds = 20
	s := open(t)
	for i := range rounds {
		id := fmt.Sprintf("c%02d", i)
		var wg sync.WaitGroup
		var blockErr, spendErr error
		wg.Go(func() { _, blockErr = s.SetBlocked(t.Context(), []string{id}, true) })
		wg.Go(func() {
			_, spendErr = s.RecordSpend(t.Context(), store.SpendLog{RequestID: "r-" + id, CustomerID: id, Cost: 5})
		})
		wg.Wait()
		if err := errors.Join(blockErr, spendErr); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		diff(t, id, store.Customer{UserID: id, Spend: 5, Blocked: true}, mustGetCustomer(t, s, id), ignoreCustomerStamps)
	}
}

// testConcurrentRelinkAndDeleteBudget: a customer is never left linked to a
// deleted budget, however a relink and the delete interleave.
func testConcurrentRelinkAndDeleteBudget(t *testing.T, open opener) {
	const rounds = 200
	s := open(t)
	mustCreateCustomer(t, s, store.Customer{UserID: "alice"}, nil)
	for i := range rounds {
		id := fmt.Sprintf("tier%02d", i)
		mustCreateBudget(t, s, store.Budget{BudgetID: id})
		var wg sync.WaitGroup
		var relinkErr, deleteErr error
		wg.Go(func() {
			_, relinkErr = s.UpdateCustomer(t.Context(), "alice", store.CustomerPatch{BudgetID: ptr(id)})
		})
		wg.Go(func() { _, deleteErr = s.DeleteBudget(t.Context(), id) })
		wg.Wait()
		if relinkErr != nil && !errors.Is(relinkErr, store.ErrBudgetNotFound) {
			t.Fatalf("round %d: UpdateCustomer: %v", i, relinkErr)
		}
		if deleteErr != nil {
			t.Fatalf("round %d: DeleteBudget: %v", i, deleteErr)
		}
		// Relink then delete unlinks; delete then relink fails. Either way:
		if c := mustGetCustomer(t, s, "alice"); c.BudgetID != nil {
			t.Fatalf("round %d: alice linked to deleted budget %q", i, *c.BudgetID)
		}
	}
}
