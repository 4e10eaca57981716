package metrics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/badgerstore"
	"github.com/tollgate-dev/tollgate/store/storetest"
)

// openBadger opens an in-memory Badger store that the test closes.
func openBadger(t *testing.T) *badgerstore.Store {
	t.Helper()
	s, err := badgerstore.Open(badgerstore.Options{InMemory: true})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

// storeOnly hides every method of the store it wraps but store.Store's.
type storeOnly struct{ store.Store }

var _ store.Store = (*storeOnly)(nil)

// TestInstrumentStoreConformance: the decorated store keeps the store
// contract, run over Badger on disk.
func TestInstrumentStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := badgerstore.Open(badgerstore.Options{Dir: t.TempDir()})
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		return InstrumentStore(s, New(Config{}))
	})
}

// TestInstrumentStoreOutboxConformance: the decorated store keeps the
// outbox contract of the store it wraps.
func TestInstrumentStoreOutboxConformance(t *testing.T) {
	storetest.RunOutbox(t, func(t *testing.T, a store.Alerting, now func() time.Time) storetest.OutboxStore {
		s, err := badgerstore.Open(badgerstore.Options{Dir: t.TempDir(), Alerting: a, Now: now})
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		ob, ok := InstrumentStore(s, New(Config{})).(storetest.OutboxStore)
		if !ok {
			t.Fatal("the decorated Badger store is not a store.Outbox")
		}
		return ob
	})
}

// TestInstrumentStoreOutbox: the result is a store.Outbox exactly when the
// store it wraps is one, and shows series for the operations it has.
func TestInstrumentStoreOutbox(t *testing.T) {
	tests := []struct {
		name       string
		wrap       func(*badgerstore.Store) store.Store
		wantOutbox bool
		wantOps    int
	}{
		{"with an outbox", func(s *badgerstore.Store) store.Store { return s }, true, 19},
		{"without", func(s *badgerstore.Store) store.Store { return storeOnly{s} }, false, 14},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(Config{})
			_, isOutbox := InstrumentStore(tt.wrap(openBadger(t)), m).(store.Outbox)
			if isOutbox != tt.wantOutbox {
				t.Errorf("is a store.Outbox: %v, want %v", isOutbox, tt.wantOutbox)
			}
			if n := testutil.CollectAndCount(m.storeErrors); n != tt.wantOps {
				t.Errorf("%d error series, want %d", n, tt.wantOps)
			}
		})
	}
}

// tick is a clock that moves 1 ms at every reading, so each operation
// takes exactly 1 ms.
func tick() func() time.Time {
	var n atomic.Int64
	return func() time.Time { return time.Unix(0, n.Add(int64(time.Millisecond))) }
}

// TestStoreOperationMetrics: every operation is timed; only failures of the
// store are errors, not its answers or the caller's own errors.
func TestStoreOperationMetrics(t *testing.T) {
	m := New(Config{Now: tick()})
	db := openBadger(t)
	s := InstrumentStore(db, m)
	ob := s.(store.Outbox)
	ctx := t.Context()
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	expired, cancelExpired := context.WithDeadline(ctx, time.Unix(0, 0))
	defer cancelExpired()

	steps := []struct {
		name    string
		op      func() error
		wantErr error
	}{
		{"get a missing customer", func() error { _, err := s.GetCustomer(ctx, "nobody"); return err }, store.ErrNotFound},
		{"create", func() error { _, err := s.CreateCustomer(ctx, store.Customer{UserID: "alice"}, nil); return err }, nil},
		{"create again", func() error { _, err := s.CreateCustomer(ctx, store.Customer{UserID: "alice"}, nil); return err }, store.ErrExists},
		{"get", func() error { _, err := s.GetCustomer(ctx, "alice"); return err }, nil},
		{"get, caller gone", func() error { _, err := s.GetCustomer(canceled, "alice"); return err }, context.Canceled},
		{"get, too slow", func() error { _, err := s.GetCustomer(expired, "alice"); return err }, context.DeadlineExceeded},
		{"create budget", func() error { _, err := s.CreateBudget(ctx, store.Budget{BudgetID: "pro"}); return err }, nil},
		{"update budget, fn refuses", func() error {
			_, err := s.UpdateBudget(ctx, "pro", func(*store.Budget) error { return errFnRefuses })
			return err
		}, errFnRefuses},
		{"update a missing budget", func() error {
			_, err := s.UpdateBudget(ctx, "nope", func(*store.Budget) error { return nil })
			return err
		}, store.ErrNotFound},
		{"relink to a missing budget", func() error {
			_, err := s.UpdateCustomer(ctx, "alice", store.CustomerPatch{BudgetID: new("nope")})
			return err
		}, store.ErrBudgetNotFound},
		{"delete missing customers", func() error { _, err := s.DeleteCustomers(ctx, []string{"bob"}); return err }, store.ErrNotFound},
		{"record", func() error { _, err := s.RecordSpend(ctx, spendLog("r1", "gpt-4o", 10, 1, 1)); return err }, nil},
		{"record again", func() error { _, err := s.RecordSpend(ctx, spendLog("r1", "gpt-4o", 10, 1, 1)); return err }, store.ErrDuplicateRequest},
		{"query with a bad cursor", func() error {
			_, _, err := s.QuerySpendLogs(ctx, store.SpendLogQuery{After: "not a cursor", Limit: 10})
			return err
		}, store.ErrBadCursor},
		{"replay a missing dead event", func() error { _, err := ob.ReplayDead(ctx, []string{"evt"}); return err }, store.ErrNotFound},
		{"outbox stats", func() error { _, err := ob.OutboxStats(ctx); return err }, nil},
		{"close", s.Close, nil},
		{"get after close", func() error { _, err := s.GetCustomer(ctx, "alice"); return err }, store.ErrClosed},
		{"stats after close", func() error { _, err := ob.OutboxStats(ctx); return err }, store.ErrClosed},
	}
	for _, st := range steps {
		if err := st.op(); !errors.Is(err, st.wantErr) || (err == nil) != (st.wantErr == nil) {
			t.Fatalf("%s: error %v, want %v", st.name, err, st.wantErr)
		}
	}

	wantErrors := `
# HELP tollgate_store_operation_errors_total Store operations that failed, by operation. Answers such as not found or already exists are not failures.
# TYPE tollgate_store_operation_errors_total counter
tollgate_store_operation_errors_total{op="create_budget"} 0
tollgate_store_operation_errors_total{op="create_customer"} 0
tollgate_store_operation_errors_total{op="dead_events"} 0
tollgate_store_operation_errors_total{op="delete_budget"} 0
tollgate_store_operation_errors_total{op="delete_customers"} 0
tollgate_store_operation_errors_total{op="get_budget"} 0
tollgate_store_operation_errors_total{op="get_customer"} 2
tollgate_store_operation_errors_total{op="list_budgets"} 0
tollgate_store_operation_errors_total{op="list_customers"} 0
tollgate_store_operation_errors_total{op="outbox_heads"} 0
tollgate_store_operation_errors_total{op="outbox_stats"} 1
tollgate_store_operation_errors_total{op="query_spend_logs"} 0
tollgate_store_operation_errors_total{op="record_deliveries"} 0
tollgate_store_operation_errors_total{op="record_spend"} 0
tollgate_store_operation_errors_total{op="replay_dead"} 0
tollgate_store_operation_errors_total{op="set_blocked"} 0
tollgate_store_operation_errors_total{op="spend_logs"} 0
tollgate_store_operation_errors_total{op="update_budget"} 0
tollgate_store_operation_errors_total{op="update_customer"} 0
`
	if err := testutil.CollectAndCompare(m.storeErrors, strings.NewReader(wantErrors)); err != nil {
		t.Error(err)
	}

	var got []string
	for _, suffix := range []string{"_count", "_sum"} {
		got = append(got, samples(t, m, "tollgate_store_operation_duration_seconds", suffix+`{op="get_customer"}`)...)
		got = append(got, samples(t, m, "tollgate_store_operation_duration_seconds", suffix+`{op="update_budget"}`)...)
	}
	got = append(got, samples(t, m, "tollgate_store_operation_duration_seconds", `op="get_customer"`, `le="0.001"`)...)
	got = append(got, samples(t, m, "tollgate_store_operation_duration_seconds", `op="get_customer"`, `le="0.0005"`)...)
	want := []string{
		`tollgate_store_operation_duration_seconds_count{op="get_customer"} 5`,
		`tollgate_store_operation_duration_seconds_count{op="update_budget"} 2`,
		`tollgate_store_operation_duration_seconds_sum{op="get_customer"} 0.005`,
		`tollgate_store_operation_duration_seconds_sum{op="update_budget"} 0.002`,
		`tollgate_store_operation_duration_seconds_bucket{op="get_customer",le="0.001"} 5`,
		`tollgate_store_operation_duration_seconds_bucket{op="get_customer",le="0.0005"} 0`,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("latency samples (-want +got):\n%s", d)
	}
}

var errFnRefuses = errors.New("max_budget must not be negative")

func TestFailed(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{store.ErrNotFound, false},
		{&store.MissingError{IDs: []string{"a"}}, false},
		{fmt.Errorf("get customer: %w", store.ErrExists), false},
		{store.ErrBudgetNotFound, false},
		{store.ErrDuplicateRequest, false},
		{store.ErrBadCursor, false},
		{fmt.Errorf("read: %w", context.Canceled), false},
		{context.DeadlineExceeded, true},
		{store.ErrClosed, true},
		{errors.New("disk on fire"), true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.err), func(t *testing.T) {
			if got := failed(tt.err); got != tt.want {
				t.Errorf("failed(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
