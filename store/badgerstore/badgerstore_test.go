package badgerstore

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/storetest"
)

func mustOpen(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// closeAtEnd closes s when the test ends unless the test closed it already.
func closeAtEnd(t *testing.T, s *Store) {
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
}

func TestConformance(t *testing.T) {
	tests := []struct {
		name string
		opts func(t *testing.T) Options
	}{
		{"in memory", func(*testing.T) Options { return Options{InMemory: true} }},
		{"on disk, sync writes", func(t *testing.T) Options { return Options{Dir: t.TempDir(), SyncWrites: true} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Store { return mustOpen(t, tt.opts(t)) })
		})
	}
}

func TestOpenNeedsDir(t *testing.T) {
	if s, err := Open(Options{}); err == nil {
		_ = s.Close()
		t.Fatal("Open without Dir or InMemory succeeded")
	}
}

func ptr[T any](v T) *T { return &v }

// TestReopen: everything written survives Close and Open, including the
// indexes and the request ids that make RecordSpend at-most-once.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	s := mustOpen(t, Options{Dir: dir, SyncWrites: true})
	closeAtEnd(t, s)
	t0 := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	steps := []func() error{
		func() error {
			_, err := s.CreateBudget(ctx, store.Budget{BudgetID: "pro", MaxBudget: ptr[store.Nano](100), AllowedModels: []string{}})
			return err
		},
		func() error {
			_, err := s.CreateCustomer(ctx, store.Customer{UserID: "alice", Alias: ptr("A")}, &store.Budget{BudgetID: "alice-b", TPMLimit: ptr[int64](5)})
			return err
		},
		func() error {
			_, err := s.CreateCustomer(ctx, store.Customer{UserID: "bob", BudgetID: ptr("pro")}, nil)
			return err
		},
		func() error {
			_, err := s.RecordSpend(ctx, store.SpendLog{RequestID: "r1", CustomerID: "alice", Cost: 10, StartTime: t0})
			return err
		},
		func() error {
			_, err := s.RecordSpend(ctx, store.SpendLog{RequestID: "r2", Cost: 20, StartTime: t0.Add(time.Second)})
			return err
		},
		func() error {
			_, err := s.RecordSpend(ctx, store.SpendLog{RequestID: "r3", CustomerID: "carol", Cost: 30, StartTime: t0.Add(2 * time.Second)})
			return err
		},
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	want := dump(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = mustOpen(t, Options{Dir: dir, SyncWrites: true})
	closeAtEnd(t, s)
	if d := cmp.Diff(want, dump(t, s)); d != "" {
		t.Fatalf("after reopen (-before +after):\n%s", d)
	}
	if _, err := s.RecordSpend(ctx, store.SpendLog{RequestID: "r1", CustomerID: "alice", Cost: 10}); !errors.Is(err, store.ErrDuplicateRequest) {
		t.Errorf("replayed r1 after reopen: %v, want ErrDuplicateRequest", err)
	}
	// The indexes survived too: deleting the tier unlinks bob, deleting alice
	// deletes her inline budget.
	if _, err := s.DeleteBudget(ctx, "pro"); err != nil {
		t.Fatalf("DeleteBudget: %v", err)
	}
	if _, err := s.DeleteCustomers(ctx, []string{"alice"}); err != nil {
		t.Fatalf("DeleteCustomers: %v", err)
	}
	got := dump(t, s)
	if len(got.Budgets) != 0 || len(got.Customers) != 2 || got.Customers[0].BudgetID != nil {
		t.Errorf("after deletes: budgets %+v, customers %+v; want no budgets and bob unlinked", got.Budgets, got.Customers)
	}
}

type contents struct {
	Customers  []store.Customer
	Budgets    []store.Budget
	Logs       []store.SpendLog
	AliceLogs  []store.SpendLog
	CarolLogs  []store.SpendLog
	NobodyLogs []store.SpendLog
}

func dump(t *testing.T, s *Store) contents {
	t.Helper()
	ctx := t.Context()
	var c contents
	var errs [6]error
	c.Customers, errs[0] = s.ListCustomers(ctx)
	c.Budgets, errs[1] = s.ListBudgets(ctx)
	c.Logs, errs[2] = s.SpendLogs(ctx, "")
	c.AliceLogs, errs[3] = s.SpendLogs(ctx, "alice")
	c.CarolLogs, errs[4] = s.SpendLogs(ctx, "carol")
	c.NobodyLogs, errs[5] = s.SpendLogs(ctx, "nobody")
	if err := errors.Join(errs[:]...); err != nil {
		t.Fatalf("dump: %v", err)
	}
	return c
}

// fakeClock is a settable clock safe to read from the spend writer.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// TestInjectedClockAndIDs pins the exact stamps and generated ids.
func TestInjectedClockAndIDs(t *testing.T) {
	ctx := t.Context()
	clock := &fakeClock{}
	var n atomic.Int64
	s := mustOpen(t, Options{
		InMemory: true,
		Now:      clock.Now,
		NewID:    func() string { return fmt.Sprintf("id-%d", n.Add(1)) },
	})
	closeAtEnd(t, s)
	// A zone other than UTC: stamps come back as the same instants in UTC.
	zone := time.FixedZone("X", -5*3600)
	t1 := time.Date(2026, 9, 1, 8, 0, 0, 1, zone)
	t2, t3, t4, t5 := t1.Add(time.Minute), t1.Add(2*time.Minute), t1.Add(3*time.Minute), t1.Add(4*time.Minute)

	clock.Set(t1)
	alice, err := s.CreateCustomer(ctx, store.Customer{UserID: "alice"}, &store.Budget{MaxBudget: ptr[store.Nano](5)})
	if err != nil {
		t.Fatal(err)
	}
	check(t, "created alice", store.Customer{UserID: "alice", BudgetID: ptr("id-1"), CreatedAt: t1, UpdatedAt: t1}, alice)
	budget, err := s.GetBudget(ctx, "id-1")
	if err != nil {
		t.Fatal(err)
	}
	check(t, "inline budget", store.Budget{BudgetID: "id-1", MaxBudget: ptr[store.Nano](5), Owner: "alice", CreatedAt: t1, UpdatedAt: t1}, budget)

	clock.Set(t2)
	alice, err = s.UpdateCustomer(ctx, "alice", store.CustomerPatch{Alias: ptr("A"), MaxBudget: ptr[store.Nano](6)})
	if err != nil {
		t.Fatal(err)
	}
	check(t, "updated alice", store.Customer{UserID: "alice", Alias: ptr("A"), BudgetID: ptr("id-1"), CreatedAt: t1, UpdatedAt: t2}, alice)
	budget, err = s.GetBudget(ctx, "id-1")
	if err != nil {
		t.Fatal(err)
	}
	check(t, "budget updated in place", store.Budget{BudgetID: "id-1", MaxBudget: ptr[store.Nano](6), Owner: "alice", CreatedAt: t1, UpdatedAt: t2}, budget)

	clock.Set(t3)
	res, err := s.RecordSpend(ctx, store.SpendLog{RequestID: "r1", CustomerID: "bob", Cost: 9})
	if err != nil {
		t.Fatal(err)
	}
	check(t, "bob created by spend", store.SpendResult{Customer: store.Customer{UserID: "bob", Spend: 9, CreatedAt: t3, UpdatedAt: t3}, Created: true}, res)

	clock.Set(t4)
	tier, err := s.CreateBudget(ctx, store.Budget{CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	check(t, "tier", store.Budget{BudgetID: "id-2", CreatedBy: "admin", CreatedAt: t4, UpdatedAt: t4}, tier)
	res, err = s.RecordSpend(ctx, store.SpendLog{RequestID: "r2", CustomerID: "bob", Cost: 1})
	if err != nil {
		t.Fatal(err)
	}
	check(t, "bob's second spend", store.SpendResult{Customer: store.Customer{UserID: "bob", Spend: 10, CreatedAt: t3, UpdatedAt: t4}}, res)

	clock.Set(t5)
	tier, err = s.UpdateBudget(ctx, "id-2", func(b *store.Budget) error {
		b.CreatedAt, b.UpdatedAt = time.Time{}, time.Time{} // the store owns the stamps
		b.UpdatedBy = "ops"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	check(t, "updated tier", store.Budget{BudgetID: "id-2", CreatedBy: "admin", UpdatedBy: "ops", CreatedAt: t4, UpdatedAt: t5}, tier)
}

func check(t *testing.T, what string, want, got any) {
	t.Helper()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("%s (-want +got):\n%s", what, d)
	}
}

// TestCloseDrainsQueue: Close commits every record it accepted, and a record
// is either acknowledged and durable or refused with ErrClosed.
func TestCloseDrainsQueue(t *testing.T) {
	const n = 300
	dir := t.TempDir()
	s := mustOpen(t, Options{Dir: dir, SyncWrites: true})
	errs := make([]error, n)
	var wg sync.WaitGroup
	var done atomic.Int64
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.RecordSpend(t.Context(), store.SpendLog{RequestID: fmt.Sprint(i), CustomerID: "alice", Cost: 1})
			done.Add(1)
		})
	}
	// Close while records are in flight: some answered, some queued, some not sent.
	deadline := time.Now().Add(10 * time.Second)
	for done.Load() < 10 {
		if time.Now().After(deadline) {
			t.Fatal("no RecordSpend returned within 10s")
		}
		runtime.Gosched()
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	acked := 0
	for i, err := range errs {
		switch {
		case err == nil:
			acked++
		case !errors.Is(err, store.ErrClosed):
			t.Errorf("RecordSpend %d: %v", i, err)
		}
	}

	s = mustOpen(t, Options{Dir: dir})
	closeAtEnd(t, s)
	logs, err := s.SpendLogs(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	var spend store.Nano
	if c, err := s.GetCustomer(t.Context(), "alice"); err == nil {
		spend = c.Spend
	} else if !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if len(logs) != acked || spend != store.Nano(acked) {
		t.Errorf("%d acknowledged, but %d logs and Spend %d after reopen", acked, len(logs), spend)
	}
}

// TestCloseCommitsQueued: every record queued before Close is committed and
// answered without error.
func TestCloseCommitsQueued(t *testing.T) {
	const n = 300
	dir := t.TempDir()
	s := mustOpen(t, Options{Dir: dir, SyncWrites: true})
	reqs := make([]*spendReq, n)
	for i := range reqs {
		reqs[i] = &spendReq{
			log:  store.SpendLog{RequestID: fmt.Sprint(i), CustomerID: "alice", Cost: 2},
			done: make(chan spendResp, 1),
		}
		s.queue <- reqs[i]
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i, r := range reqs {
		if err := (<-r.done).err; err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	s = mustOpen(t, Options{Dir: dir})
	closeAtEnd(t, s)
	c, err := s.GetCustomer(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if c.Spend != 2*n {
		t.Errorf("Spend after reopen = %d, want %d", c.Spend, 2*n)
	}
}

// TestBatchTooBigIsSplit: a batch over Badger's transaction size is committed
// in parts, with dedup still holding across the parts.
func TestBatchTooBigIsSplit(t *testing.T) {
	s := mustOpen(t, Options{InMemory: true})
	closeAtEnd(t, s)
	const n = 40
	model := strings.Repeat("m", 100<<10) // 40 × 100 KiB is over the 2.4 MB limit.
	batch := make([]*spendReq, n)
	for i := range batch {
		id := fmt.Sprint(i)
		if i == n-1 {
			id = "0" // the same request as the first, in the other half
		}
		batch[i] = &spendReq{
			log:  store.SpendLog{RequestID: id, CustomerID: "alice", Model: model, Cost: 1},
			done: make(chan spendResp, 1),
		}
	}
	s.commitSpend(batch)
	for i, r := range batch {
		err := (<-r.done).err
		switch {
		case i == n-1 && !errors.Is(err, store.ErrDuplicateRequest):
			t.Errorf("record %d: %v, want ErrDuplicateRequest", i, err)
		case i < n-1 && err != nil:
			t.Errorf("record %d: %v", i, err)
		}
	}
	c, err := s.GetCustomer(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if c.Spend != n-1 {
		t.Errorf("Spend = %d, want %d", c.Spend, n-1)
	}
}

// TestDeleteBudgetManyCustomers: a tier with more customers than one
// transaction can unlink is still deleted whole.
func TestDeleteBudgetManyCustomers(t *testing.T) {
	const n = 2*unlinkChunk + 500
	ctx := t.Context()
	s := mustOpen(t, Options{InMemory: true})
	closeAtEnd(t, s)
	if _, err := s.CreateBudget(ctx, store.Budget{BudgetID: "pro"}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := s.CreateCustomer(ctx, store.Customer{UserID: fmt.Sprintf("c%05d", i), BudgetID: ptr("pro")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.DeleteBudget(ctx, "pro"); err != nil {
		t.Fatalf("DeleteBudget: %v", err)
	}
	got := dump(t, s)
	if len(got.Budgets) != 0 || len(got.Customers) != n {
		t.Fatalf("%d budgets and %d customers, want 0 and %d", len(got.Budgets), len(got.Customers), n)
	}
	for _, c := range got.Customers {
		if c.BudgetID != nil {
			t.Fatalf("%s still linked to %q", c.UserID, *c.BudgetID)
		}
	}
}

func TestTimeKeyOrder(t *testing.T) {
	times := []time.Time{
		{},
		time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(-1, 999_999_999),
		time.Unix(0, 0),
		time.Unix(0, 1),
		time.Unix(1, 0),
		time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 9, 1, 0, 0, 0, 1, time.UTC),
		time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i := 1; i < len(times); i++ {
		a, b := appendTime(nil, times[i-1]), appendTime(nil, times[i])
		if bytes.Compare(a, b) >= 0 || len(a) != timeLen {
			t.Errorf("key of %v (%x) does not sort before key of %v (%x)", times[i-1], a, times[i], b)
		}
	}
}

func TestBadgerLogger(t *testing.T) {
	var buf bytes.Buffer
	h := slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	l := badgerLogger{slog.New(h)}
	l.Infof("compaction %d\n", 1)
	l.Debugf("flush")
	l.Warningf("slow %s\n", "disk")
	l.Errorf("failed: %v", errors.New("boom"))
	want := "level=WARN msg=\"slow disk\" component=badger\nlevel=ERROR msg=\"failed: boom\" component=badger\n"
	if got := buf.String(); got != want {
		t.Errorf("logged:\n%s\nwant:\n%s", got, want)
	}
}

func TestOutboxConformance(t *testing.T) {
	tests := []struct {
		name string
		opts func(t *testing.T) Options
	}{
		{"in memory", func(*testing.T) Options { return Options{InMemory: true} }},
		{"on disk, sync writes", func(t *testing.T) Options { return Options{Dir: t.TempDir(), SyncWrites: true} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			storetest.RunOutbox(t, func(t *testing.T, a store.Alerting, now func() time.Time) storetest.OutboxStore {
				opts := tt.opts(t)
				opts.Alerting, opts.Now = a, now
				return mustOpen(t, opts)
			})
		})
	}
}
