package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tollgate-dev/tollgate/store"
)

func testRecordSpend(t *testing.T, open opener) {
	s := open(t)
	mustCreateBudget(t, s, store.Budget{BudgetID: "pro"})
	mustCreateCustomer(t, s, store.Customer{UserID: "bob", Alias: ptr("Bob"), Spend: 100, BudgetID: ptr("pro"), Blocked: true}, nil)
	mustCreateCustomer(t, s, store.Customer{UserID: "dave"}, nil)

	// Steps run in order on one store; each sees the effects of the ones before.
	steps := []struct {
		name string
		log  store.SpendLog
		want store.SpendResult
	}{
		{
			name: "first spend creates the customer",
			log:  store.SpendLog{RequestID: "r1", CustomerID: "alice", Cost: 1234},
			want: store.SpendResult{Customer: store.Customer{UserID: "alice", Spend: 1234}, Created: true},
		},
		{
			name: "later spend increments",
			log:  store.SpendLog{RequestID: "r2", CustomerID: "alice", Cost: 66},
			want: store.SpendResult{Customer: store.Customer{UserID: "alice", Spend: 1300}},
		},
		{
			name: "existing customer keeps its fields",
			log:  store.SpendLog{RequestID: "r3", CustomerID: "bob", Cost: 50},
			want: store.SpendResult{Customer: store.Customer{UserID: "bob", Alias: ptr("Bob"), Spend: 150, BudgetID: ptr("pro"), Blocked: true}},
		},
		{
			name: "log without customer touches no customer",
			log:  store.SpendLog{RequestID: "r4", Cost: 9},
			want: store.SpendResult{},
		},
		{
			name: "unpriced first spend creates at zero",
			log:  store.SpendLog{RequestID: "r5", CustomerID: "carol", Unpriced: true},
			want: store.SpendResult{Customer: store.Customer{UserID: "carol"}, Created: true},
		},
		{
			name: "customer created at zero spend is not created again",
			log:  store.SpendLog{RequestID: "r6", CustomerID: "carol", Cost: 5},
			want: store.SpendResult{Customer: store.Customer{UserID: "carol", Spend: 5}},
		},
		{
			name: "first spend of a customer an admin created",
			log:  store.SpendLog{RequestID: "r7", CustomerID: "dave", Cost: 8},
			want: store.SpendResult{Customer: store.Customer{UserID: "dave", Spend: 8}},
		},
	}
	var created time.Time
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got := mustRecordSpend(t, s, st.log)
			diff(t, "result", st.want, got, ignoreCustomerStamps)
			if st.log.CustomerID == "" {
				diff(t, "result", store.SpendResult{}, got)
				return
			}
			checkStamps(t, "customer", got.Customer.CreatedAt, got.Customer.UpdatedAt)
			diff(t, "stored customer", got.Customer, mustGetCustomer(t, s, st.log.CustomerID))
			switch st.log.RequestID {
			case "r1":
				created = got.Customer.CreatedAt
			case "r2":
				if !got.Customer.CreatedAt.Equal(created) {
					t.Errorf("CreatedAt changed from %v to %v", created, got.Customer.CreatedAt)
				}
			}
		})
	}

	after := snapshot(t, s)
	var ids []string
	for _, c := range after.Customers {
		ids = append(ids, c.UserID)
	}
	diff(t, "customers", []string{"alice", "bob", "carol", "dave"}, ids)
	var logs []string
	for _, l := range after.Logs {
		logs = append(logs, l.RequestID)
	}
	diff(t, "logs", []string{"r1", "r2", "r3", "r4", "r5", "r6", "r7"}, logs)
}

func testRecordSpendDuplicate(t *testing.T, open opener) {
	tests := []struct {
		name  string
		first store.SpendLog
		again store.SpendLog
	}{
		{
			name:  "same customer",
			first: store.SpendLog{RequestID: "r1", CustomerID: "alice", Cost: 10},
			again: store.SpendLog{RequestID: "r1", CustomerID: "alice", Cost: 10},
		},
		{
			name:  "other, new customer is not created",
			first: store.SpendLog{RequestID: "r1", CustomerID: "alice", Cost: 10},
			again: store.SpendLog{RequestID: "r1", CustomerID: "bob", Cost: 99},
		},
		{
			name:  "first had no customer",
			first: store.SpendLog{RequestID: "r1", Cost: 10},
			again: store.SpendLog{RequestID: "r1", CustomerID: "alice", Cost: 10},
		},
		{
			name:  "client request id does not count",
			first: store.SpendLog{RequestID: "r1", ClientRequestID: "x", CustomerID: "alice", Cost: 10},
			again: store.SpendLog{RequestID: "r1", ClientRequestID: "y", CustomerID: "alice", Cost: 10},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			mustRecordSpend(t, s, tt.first)
			before := snapshot(t, s)
			_, err := s.RecordSpend(t.Context(), tt.again)
			checkErr(t, "RecordSpend", err, store.ErrDuplicateRequest)
			unchanged(t, s, before)
		})
	}

	t.Run("same client request id, new request id is recorded", func(t *testing.T) {
		s := open(t)
		mustRecordSpend(t, s, store.SpendLog{RequestID: "r1", ClientRequestID: "x", CustomerID: "alice", Cost: 10})
		got := mustRecordSpend(t, s, store.SpendLog{RequestID: "r2", ClientRequestID: "x", CustomerID: "alice", Cost: 10})
		if got.Customer.Spend != 20 {
			t.Errorf("Spend = %d, want 20", got.Customer.Spend)
		}
	})
}

func testRecordSpendEmptyRequestID(t *testing.T, open opener) {
	s := open(t)
	before := snapshot(t, s)
	_, err := s.RecordSpend(t.Context(), store.SpendLog{CustomerID: "alice", Cost: 1})
	checkErr(t, "RecordSpend", err, errAny)
	unchanged(t, s, before)
}

func testSpendLogs(t *testing.T, open opener) {
	s := open(t)
	t0 := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	full := store.SpendLog{
		RequestID:           "d",
		ClientRequestID:     "client-1",
		CustomerID:          "alice",
		Model:               "gpt-4o",
		Path:                "/v1/chat/completions",
		PromptTokens:        11,
		CompletionTokens:    22,
		TotalTokens:         33,
		CacheReadTokens:     4,
		CacheCreationTokens: 5,
		ReasoningTokens:     6,
		Cost:                1_413_000,
		Unpriced:            false,
		Estimated:           true,
		// A zone other than UTC: the instant must survive, the zone need not.
		StartTime: t0.Add(2 * time.Second).In(time.FixedZone("CEST", 2*3600)),
		EndTime:   t0.Add(3*time.Second + 123456789*time.Nanosecond),
	}
	logs := []store.SpendLog{
		full,
		{RequestID: "c", CustomerID: "bob", StartTime: t0.Add(time.Second), Cost: 3},
		{RequestID: "b", CustomerID: "alice", StartTime: t0.Add(time.Second), Cost: 2, Unpriced: true},
		{RequestID: "a", CustomerID: "alice", StartTime: t0.Add(time.Second), Cost: 1},
		{RequestID: "z", StartTime: t0, Cost: 7},
		{RequestID: "y", StartTime: t0.Add(time.Nanosecond), Cost: 7},
		{RequestID: "0", CustomerID: "alice"}, // zero start time sorts first
	}
	for _, l := range logs {
		mustRecordSpend(t, s, l)
	}
	byID := map[string]store.SpendLog{}
	for _, l := range logs {
		byID[l.RequestID] = l
	}
	pick := func(ids ...string) []store.SpendLog {
		out := []store.SpendLog{}
		for _, id := range ids {
			out = append(out, byID[id])
		}
		return out
	}
	tests := []struct {
		customer string
		want     []store.SpendLog
	}{
		{"", pick("0", "z", "y", "a", "b", "c", "d")},
		{"alice", pick("0", "a", "b", "d")},
		{"bob", pick("c")},
		{"nobody", pick()},
		{"alic", pick()}, // a prefix of an id is another customer
	}
	for _, tt := range tests {
		t.Run("customer="+tt.customer, func(t *testing.T) {
			diff(t, "logs", tt.want, mustSpendLogs(t, s, tt.customer), cmpopts.EquateEmpty())
		})
	}
}

func testCanceledContext(t *testing.T, open opener) {
	ops := []struct {
		name string
		op   func(ctx context.Context, s store.Store) error
	}{
		{"CreateCustomer", func(ctx context.Context, s store.Store) error {
			_, err := s.CreateCustomer(ctx, store.Customer{UserID: "bob"}, nil)
			return err
		}},
		{"GetCustomer", func(ctx context.Context, s store.Store) error {
			_, err := s.GetCustomer(ctx, "alice")
			return err
		}},
		{"UpdateCustomer", func(ctx context.Context, s store.Store) error {
			_, err := s.UpdateCustomer(ctx, "alice", store.CustomerPatch{Blocked: ptr(true)})
			return err
		}},
		{"DeleteCustomers", func(ctx context.Context, s store.Store) error {
			_, err := s.DeleteCustomers(ctx, []string{"alice"})
			return err
		}},
		{"ListCustomers", func(ctx context.Context, s store.Store) error {
			_, err := s.ListCustomers(ctx)
			return err
		}},
		{"SetBlocked", func(ctx context.Context, s store.Store) error {
			_, err := s.SetBlocked(ctx, []string{"alice", "bob"}, true)
			return err
		}},
		{"CreateBudget", func(ctx context.Context, s store.Store) error {
			_, err := s.CreateBudget(ctx, store.Budget{BudgetID: "basic"})
			return err
		}},
		{"GetBudget", func(ctx context.Context, s store.Store) error {
			_, err := s.GetBudget(ctx, "pro")
			return err
		}},
		{"UpdateBudget", func(ctx context.Context, s store.Store) error {
			_, err := s.UpdateBudget(ctx, "pro", func(b *store.Budget) error { b.TPMLimit = ptr[int64](1); return nil })
			return err
		}},
		{"ListBudgets", func(ctx context.Context, s store.Store) error {
			_, err := s.ListBudgets(ctx)
			return err
		}},
		{"DeleteBudget", func(ctx context.Context, s store.Store) error {
			_, err := s.DeleteBudget(ctx, "pro")
			return err
		}},
		{"RecordSpend", func(ctx context.Context, s store.Store) error {
			_, err := s.RecordSpend(ctx, store.SpendLog{RequestID: "r2", CustomerID: "alice", Cost: 5})
			return err
		}},
		{"SpendLogs", func(ctx context.Context, s store.Store) error {
			_, err := s.SpendLogs(ctx, "")
			return err
		}},
	}
	for _, tt := range ops {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			mustCreateBudget(t, s, store.Budget{BudgetID: "pro"})
			mustCreateCustomer(t, s, store.Customer{UserID: "alice", BudgetID: ptr("pro")}, nil)
			mustRecordSpend(t, s, store.SpendLog{RequestID: "r1", CustomerID: "alice", Cost: 1})
			before := snapshot(t, s)
			if err := tt.op(canceled(t), s); !errors.Is(err, context.Canceled) {
				t.Errorf("error = %v, want context.Canceled", err)
			}
			unchanged(t, s, before)
		})
	}
}

func testClosed(t *testing.T, open opener) {
	s := open(t)
	ctx := t.Context()
	mustCreateCustomer(t, s, store.Customer{UserID: "alice"}, nil)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ops := map[string]error{}
	_, ops["CreateCustomer"] = s.CreateCustomer(ctx, store.Customer{UserID: "bob"}, nil)
	_, ops["GetCustomer"] = s.GetCustomer(ctx, "alice")
	_, ops["UpdateCustomer"] = s.UpdateCustomer(ctx, "alice", store.CustomerPatch{})
	_, ops["DeleteCustomers"] = s.DeleteCustomers(ctx, []string{"alice"})
	_, ops["ListCustomers"] = s.ListCustomers(ctx)
	_, ops["SetBlocked"] = s.SetBlocked(ctx, []string{"alice"}, true)
	_, ops["CreateBudget"] = s.CreateBudget(ctx, store.Budget{BudgetID: "pro"})
	_, ops["GetBudget"] = s.GetBudget(ctx, "pro")
	_, ops["UpdateBudget"] = s.UpdateBudget(ctx, "pro", func(*store.Budget) error { return nil })
	_, ops["ListBudgets"] = s.ListBudgets(ctx)
	_, ops["DeleteBudget"] = s.DeleteBudget(ctx, "pro")
	_, ops["RecordSpend"] = s.RecordSpend(ctx, store.SpendLog{RequestID: "r1", CustomerID: "alice", Cost: 1})
	_, ops["SpendLogs"] = s.SpendLogs(ctx, "")
	ops["Close"] = s.Close()
	for name, err := range ops {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: error = %v, want ErrClosed", name, err)
		}
	}
}

// testRecordSpendWindows: RecordSpend rolls a customer's spend over when the
// window it belongs to has passed, in the same write, and per model budget
// too; the spend logs of past windows stay.
func testRecordSpendWindows(t *testing.T, open opener) {
	s := open(t)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	w1 := store.Window{Start: t0, End: t0.Add(30 * time.Second), Reset: true}
	w2 := store.Window{Start: w1.End, End: w1.End.Add(30 * time.Second), Reset: true}
	d1 := store.Window{Start: t0, End: t0.Add(24 * time.Hour), Reset: true}
	d2 := store.Window{Start: d1.End, End: d1.End.Add(24 * time.Hour), Reset: true}
	steps := []struct {
		name string
		log  store.SpendLog
		want store.Customer
	}{
		{
			name: "first spend opens its window",
			log:  store.SpendLog{RequestID: "r1", CustomerID: "alice", Cost: 10, EndTime: t0.Add(time.Second), Window: w1},
			want: store.Customer{UserID: "alice", Spend: 10, WindowEnd: w1.End},
		},
		{
			name: "same window adds",
			log:  store.SpendLog{RequestID: "r2", CustomerID: "alice", Cost: 5, EndTime: t0.Add(29 * time.Second), Window: w1},
			want: store.Customer{UserID: "alice", Spend: 15, WindowEnd: w1.End},
		},
		{
			name: "at the reset instant the window starts over",
			log:  store.SpendLog{RequestID: "r3", CustomerID: "alice", Cost: 7, EndTime: w1.End, Window: w2},
			want: store.Customer{UserID: "alice", Spend: 7, WindowEnd: w2.End},
		},
		{
			name: "a model budget has its own window",
			log: store.SpendLog{RequestID: "r4", CustomerID: "alice", Cost: 3, EndTime: w1.End.Add(time.Second), Window: w2,
				ModelBudget: "gpt-4o", ModelWindow: d1},
			want: store.Customer{UserID: "alice", Spend: 10, WindowEnd: w2.End,
				ModelSpend: map[string]store.ModelSpend{"gpt-4o": {Spend: 3, WindowEnd: d1.End}}},
		},
		{
			name: "the budget window passes, the model window does not",
			log: store.SpendLog{RequestID: "r5", CustomerID: "alice", Cost: 4, EndTime: w2.End, Window: store.Window{Start: w2.End, End: w2.End.Add(30 * time.Second), Reset: true},
				ModelBudget: "gpt-4o", ModelWindow: d1},
			want: store.Customer{UserID: "alice", Spend: 4, WindowEnd: w2.End.Add(30 * time.Second),
				ModelSpend: map[string]store.ModelSpend{"gpt-4o": {Spend: 7, WindowEnd: d1.End}}},
		},
		{
			name: "the model window passes",
			log: store.SpendLog{RequestID: "r6", CustomerID: "alice", Cost: 2, EndTime: d1.End, Window: store.Window{Start: d1.End, End: d1.End.Add(30 * time.Second), Reset: true},
				ModelBudget: "gpt-4o", ModelWindow: d2},
			want: store.Customer{UserID: "alice", Spend: 2, WindowEnd: d1.End.Add(30 * time.Second),
				ModelSpend: map[string]store.ModelSpend{"gpt-4o": {Spend: 2, WindowEnd: d2.End}}},
		},
		{
			name: "a budget without windows keeps adding after its last window ends",
			log:  store.SpendLog{RequestID: "r7", CustomerID: "alice", Cost: 1, EndTime: d1.End.Add(time.Minute)},
			want: store.Customer{UserID: "alice", Spend: 1,
				ModelSpend: map[string]store.ModelSpend{"gpt-4o": {Spend: 2, WindowEnd: d2.End}}},
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got := mustRecordSpend(t, s, st.log)
			diff(t, "customer", st.want, got.Customer, ignoreCustomerStamps)
			diff(t, "stored customer", got.Customer, mustGetCustomer(t, s, "alice"))
		})
	}
	var wantLogs []store.SpendLog
	for _, st := range steps {
		wantLogs = append(wantLogs, st.log)
	}
	diff(t, "spend logs keep every window", wantLogs, mustSpendLogs(t, s, "alice"),
		cmpopts.SortSlices(func(a, b store.SpendLog) bool { return a.RequestID < b.RequestID }))
}

// testRecordSpendWindowBeforeCustomer: spend an admin gave a customer without
// a window counts until its budget's first reset after the customer was
// created, in the store as for SpendIn.
func testRecordSpendWindowBeforeCustomer(t *testing.T, open opener) {
	s := open(t)
	c := mustCreateCustomer(t, s, store.Customer{UserID: "alice", Spend: 100}, nil)
	at := c.CreatedAt.Add(time.Second)
	first := store.Window{Start: c.CreatedAt.Add(-time.Hour), End: c.CreatedAt.Add(time.Hour)}
	got := mustRecordSpend(t, s, store.SpendLog{RequestID: "r1", CustomerID: "alice", Cost: 1, EndTime: at, Window: first})
	if got.Customer.Spend != 101 || !got.Customer.WindowEnd.Equal(first.End) {
		t.Errorf("in the first window: Spend %d, WindowEnd %v; want 101, %v", got.Customer.Spend, got.Customer.WindowEnd, first.End)
	}

	s = open(t)
	mustCreateCustomer(t, s, store.Customer{UserID: "bob", Spend: 100}, nil)
	later := store.Window{Start: time.Now().Add(time.Hour), End: time.Now().Add(2 * time.Hour), Reset: true}
	got = mustRecordSpend(t, s, store.SpendLog{RequestID: "r1", CustomerID: "bob", Cost: 1, EndTime: later.Start, Window: later})
	if got.Customer.Spend != 1 {
		t.Errorf("after a reset that followed the customer's creation: Spend %d, want 1", got.Customer.Spend)
	}
}

// testConcurrentRollover: many requests of one customer land in a new window
// at once; the old window's spend is dropped exactly once.
func testConcurrentRollover(t *testing.T, open opener) {
	const n = 100
	s := open(t)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	old := store.Window{Start: t0, End: t0.Add(time.Minute), Reset: true}
	mustRecordSpend(t, s, store.SpendLog{RequestID: "old", CustomerID: "alice", Cost: 1000, EndTime: t0, Window: old})
	next := store.Window{Start: old.End, End: old.End.Add(time.Minute), Reset: true}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.RecordSpend(t.Context(), store.SpendLog{
				RequestID: fmt.Sprintf("r%03d", i), CustomerID: "alice", Cost: 1, EndTime: old.End.Add(time.Duration(i) * time.Millisecond), Window: next,
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("RecordSpend: %v", err)
	}
	c := mustGetCustomer(t, s, "alice")
	if c.Spend != n || !c.WindowEnd.Equal(next.End) {
		t.Errorf("Spend %d, WindowEnd %v; want %d, %v", c.Spend, c.WindowEnd, n, next.End)
	}
	if logs := mustSpendLogs(t, s, "alice"); len(logs) != n+1 {
		t.Errorf("%d spend logs, want %d", len(logs), n+1)
	}
}
