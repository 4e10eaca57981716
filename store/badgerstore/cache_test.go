package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/store"
)

// snapshot is what the store holds for some customers and budgets: a record,
// or nil for an id that does not exist.
type snapshot struct {
	Customers map[string]*store.Customer
	Budgets   map[string]*store.Budget
}

// fromBadger reads ids straight from the database, past the caches.
func fromBadger(t *testing.T, s *Store, customers, budgets []string) snapshot {
	t.Helper()
	snap := snapshot{Customers: map[string]*store.Customer{}, Budgets: map[string]*store.Budget{}}
	err := s.db.View(func(txn *badger.Txn) error {
		for _, id := range customers {
			var rec customerRec
			switch err := get(txn, key(prefixCustomer, id), &rec); {
			case errors.Is(err, store.ErrNotFound):
				snap.Customers[id] = nil
			case err != nil:
				return err
			default:
				c := rec.customer(id)
				snap.Customers[id] = &c
			}
		}
		for _, id := range budgets {
			var rec budgetRec
			switch err := get(txn, key(prefixBudget, id), &rec); {
			case errors.Is(err, store.ErrNotFound):
				snap.Budgets[id] = nil
			case err != nil:
				return err
			default:
				b := rec.budget(id)
				snap.Budgets[id] = &b
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read Badger: %v", err)
	}
	return snap
}

// throughStore reads ids with GetCustomer and GetBudget, which use the caches.
func throughStore(t *testing.T, s *Store, customers, budgets []string) snapshot {
	t.Helper()
	ctx := context.Background()
	snap := snapshot{Customers: map[string]*store.Customer{}, Budgets: map[string]*store.Budget{}}
	for _, id := range customers {
		c, err := s.GetCustomer(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			snap.Customers[id] = nil
		case err != nil:
			t.Fatalf("GetCustomer(%q): %v", id, err)
		default:
			snap.Customers[id] = &c
		}
	}
	for _, id := range budgets {
		b, err := s.GetBudget(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			snap.Budgets[id] = nil
		case err != nil:
			t.Fatalf("GetBudget(%q): %v", id, err)
		default:
			snap.Budgets[id] = &b
		}
	}
	return snap
}

// TestCacheNeverStale runs every write path on customers and budgets that
// are cached (or cached as missing) and checks that what GetCustomer and
// GetBudget return afterwards is what Badger holds, and that the write
// changed something the cache held, so a cache that kept it would fail.
func TestCacheNeverStale(t *testing.T) {
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	customers := []string{"alice", "bob", "carol", "nobody"}
	budgets := []string{"tier", "alice-own", "new-budget", "missing"}
	tests := []struct {
		name  string
		write func(ctx context.Context, s *Store) error
	}{
		{"RecordSpend increments", func(ctx context.Context, s *Store) error {
			_, err := s.RecordSpend(ctx, store.SpendLog{RequestID: "r1", CustomerID: "alice", Cost: 7})
			return err
		}},
		{"RecordSpend creates a customer", func(ctx context.Context, s *Store) error {
			_, err := s.RecordSpend(ctx, store.SpendLog{RequestID: "r1", CustomerID: "nobody", Cost: 7})
			return err
		}},
		{"RecordSpend rolls the window over", func(ctx context.Context, s *Store) error {
			w1 := store.Window{Start: day, End: day.AddDate(0, 0, 1)}
			w2 := store.Window{Start: w1.End, End: w1.End.AddDate(0, 0, 1), Reset: true}
			if _, err := s.RecordSpend(ctx, store.SpendLog{RequestID: "r1", CustomerID: "bob", Cost: 50, Window: w1, EndTime: day.Add(time.Hour)}); err != nil {
				return err
			}
			if _, err := s.GetCustomer(ctx, "bob"); err != nil { // cache the first window's spend
				return err
			}
			_, err := s.RecordSpend(ctx, store.SpendLog{RequestID: "r2", CustomerID: "bob", Cost: 3, Window: w2, EndTime: w2.Start.Add(time.Hour)})
			return err
		}},
		{"RecordSpend on a model budget", func(ctx context.Context, s *Store) error {
			_, err := s.RecordSpend(ctx, store.SpendLog{RequestID: "r1", CustomerID: "alice", Cost: 7, ModelBudget: "gpt-4o"})
			return err
		}},
		{"UpdateCustomer alias", func(ctx context.Context, s *Store) error {
			_, err := s.UpdateCustomer(ctx, "alice", store.CustomerPatch{Alias: ptr("Al")})
			return err
		}},
		{"UpdateCustomer blocks", func(ctx context.Context, s *Store) error {
			_, err := s.UpdateCustomer(ctx, "alice", store.CustomerPatch{Blocked: ptr(true)})
			return err
		}},
		{"UpdateCustomer relinks", func(ctx context.Context, s *Store) error {
			_, err := s.UpdateCustomer(ctx, "bob", store.CustomerPatch{BudgetID: ptr("alice-own")})
			return err
		}},
		{"UpdateCustomer max budget in place", func(ctx context.Context, s *Store) error {
			_, err := s.UpdateCustomer(ctx, "alice", store.CustomerPatch{MaxBudget: ptr(store.Nano(5))})
			return err
		}},
		{"UpdateCustomer max budget off a tier", func(ctx context.Context, s *Store) error {
			_, err := s.UpdateCustomer(ctx, "bob", store.CustomerPatch{MaxBudget: ptr(store.Nano(5))})
			return err
		}},
		{"SetBlocked", func(ctx context.Context, s *Store) error {
			_, err := s.SetBlocked(ctx, []string{"alice", "bob"}, true)
			return err
		}},
		{"SetBlocked creates a customer", func(ctx context.Context, s *Store) error {
			_, err := s.SetBlocked(ctx, []string{"nobody"}, true)
			return err
		}},
		{"SetBlocked unblocks", func(ctx context.Context, s *Store) error {
			_, err := s.SetBlocked(ctx, []string{"carol"}, false)
			return err
		}},
		{"DeleteCustomers, with an owned budget others use", func(ctx context.Context, s *Store) error {
			_, err := s.DeleteCustomers(ctx, []string{"alice"})
			return err
		}},
		{"CreateCustomer", func(ctx context.Context, s *Store) error {
			_, err := s.CreateCustomer(ctx, store.Customer{UserID: "nobody", BudgetID: ptr("tier")}, nil)
			return err
		}},
		{"CreateCustomer with an inline budget", func(ctx context.Context, s *Store) error {
			_, err := s.CreateCustomer(ctx, store.Customer{UserID: "nobody"}, &store.Budget{BudgetID: "new-budget", MaxBudget: ptr(store.Nano(9))})
			return err
		}},
		{"CreateBudget", func(ctx context.Context, s *Store) error {
			_, err := s.CreateBudget(ctx, store.Budget{BudgetID: "new-budget"})
			return err
		}},
		{"UpdateBudget", func(ctx context.Context, s *Store) error {
			_, err := s.UpdateBudget(ctx, "tier", func(b *store.Budget) error {
				b.MaxBudget = ptr(store.Nano(1))
				return nil
			})
			return err
		}},
		{"DeleteBudget", func(ctx context.Context, s *Store) error {
			_, err := s.DeleteBudget(ctx, "tier")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := mustOpen(t, Options{InMemory: true})
			closeAtEnd(t, s)
			if _, err := s.CreateBudget(ctx, store.Budget{BudgetID: "tier", MaxBudget: ptr(store.Nano(100))}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateCustomer(ctx, store.Customer{UserID: "alice", Spend: 10}, &store.Budget{BudgetID: "alice-own", MaxBudget: ptr(store.Nano(20))}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateCustomer(ctx, store.Customer{UserID: "bob", BudgetID: ptr("tier")}, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateCustomer(ctx, store.Customer{UserID: "carol", BudgetID: ptr("alice-own"), Blocked: true}, nil); err != nil {
				t.Fatal(err)
			}
			before := throughStore(t, s, customers, budgets) // fills the caches
			if diff := cmp.Diff(fromBadger(t, s, customers, budgets), before); diff != "" {
				t.Fatalf("before the write (-badger +store):\n%s", diff)
			}
			if err := tt.write(ctx, s); err != nil {
				t.Fatalf("write: %v", err)
			}
			want := fromBadger(t, s, customers, budgets)
			if cmp.Equal(before, want) {
				t.Fatal("the write changed nothing the cache held")
			}
			if diff := cmp.Diff(want, throughStore(t, s, customers, budgets)); diff != "" {
				t.Errorf("after the write (-badger +store):\n%s", diff)
			}
		})
	}
}

// TestCacheConcurrentWrites races spend records, admin writes and reads on
// a few customers. Each admin writer reads its own write back at once, and
// at the end every read agrees with Badger.
func TestCacheConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, Options{InMemory: true, CacheSize: 3}) // evictions too
	closeAtEnd(t, s)
	ids := []string{"c0", "c1", "c2", "c3", "c4"}
	for _, id := range ids {
		if _, err := s.CreateCustomer(ctx, store.Customer{UserID: id}, &store.Budget{BudgetID: "b-" + id}); err != nil {
			t.Fatal(err)
		}
	}
	const rounds = 200
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	for w := range 4 { // spend writers: many in one batch, as under load
		wg.Go(func() {
			for i := range rounds {
				l := store.SpendLog{RequestID: fmt.Sprintf("w%d-%d", w, i), CustomerID: ids[i%len(ids)], Cost: 1}
				if _, err := s.RecordSpend(ctx, l); err != nil {
					report(err)
					return
				}
			}
		})
	}
	for _, id := range ids[:3] { // admin writers, each on its own customer
		wg.Go(func() {
			for i := range rounds {
				blocked := i%2 == 0
				if _, err := s.SetBlocked(ctx, []string{id}, blocked); err != nil {
					report(err)
					return
				}
				c, err := s.GetCustomer(ctx, id)
				if err != nil {
					report(err)
					return
				}
				if c.Blocked != blocked {
					report(fmt.Errorf("%s: Blocked = %v right after SetBlocked(%v)", id, c.Blocked, blocked))
					return
				}
				limit := store.Nano(i)
				if _, err := s.UpdateBudget(ctx, "b-"+id, func(b *store.Budget) error {
					b.MaxBudget = &limit
					return nil
				}); err != nil {
					report(err)
					return
				}
				b, err := s.GetBudget(ctx, "b-"+id)
				if err != nil {
					report(err)
					return
				}
				if b.MaxBudget == nil || *b.MaxBudget != limit {
					report(fmt.Errorf("b-%s: MaxBudget = %v right after setting %d", id, b.MaxBudget, limit))
					return
				}
			}
		})
	}
	for range 2 { // readers
		wg.Go(func() {
			for i := range rounds * 5 {
				if _, err := s.GetCustomer(ctx, ids[i%len(ids)]); err != nil {
					report(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	budgets := []string{"b-c0", "b-c1", "b-c2", "b-c3", "b-c4"}
	want := fromBadger(t, s, ids, budgets)
	if diff := cmp.Diff(want, throughStore(t, s, ids, budgets)); diff != "" {
		t.Errorf("after the writes (-badger +store):\n%s", diff)
	}
	var total store.Nano
	for _, c := range want.Customers {
		total += c.Spend
	}
	if total != 4*rounds {
		t.Errorf("total spend %d, want %d", total, 4*rounds)
	}
}

// TestCacheRaces plays the interleavings the cache protocol exists for,
// step by step on the cache itself.
func TestCacheRaces(t *testing.T) {
	v1, v2 := ptr(1), ptr(2)
	tests := []struct {
		name string
		play func(c *cache[int])
		want *int // what a lookup finds at the end; nil: a miss
	}{
		{"a read fills its placeholder", func(c *cache[int]) {
			_, _, ph := c.lookup("k")
			c.fill("k", ph, v1)
		}, v1},
		{"a read that raced an invalidation does not fill", func(c *cache[int]) {
			_, _, ph := c.lookup("k") // the read starts
			c.invalidate("k")         // a write commits and drops k
			c.fill("k", ph, v1)       // the read found the old record
		}, nil},
		{"a read that raced an install does not fill", func(c *cache[int]) {
			gen := c.generation()
			_, _, ph := c.lookup("k")
			c.install(gen, map[string]*int{"k": v2})
			c.fill("k", ph, v1)
		}, v2},
		{"an install that raced an invalidation drops", func(c *cache[int]) {
			gen := c.generation() // the spend batch starts
			c.invalidate("k")     // an admin write commits after it
			c.install(gen, map[string]*int{"k": v1})
		}, nil},
		{"an install replaces", func(c *cache[int]) {
			_, _, ph := c.lookup("k")
			c.fill("k", ph, v1)
			c.install(c.generation(), map[string]*int{"k": v2})
		}, v2},
		{"a cached miss", func(c *cache[int]) {
			_, _, ph := c.lookup("k")
			c.fill("k", ph, nil)
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache[int](8)
			tt.play(c)
			got, hit, _ := c.lookup("k")
			if tt.want == nil {
				if got != nil {
					t.Errorf("lookup = %d, want none", *got)
				}
				return
			}
			if !hit || got != tt.want {
				t.Errorf("lookup = %v, %v; want %d, hit", got, hit, *tt.want)
			}
		})
	}
}

func TestCacheSizeBound(t *testing.T) {
	ctx := context.Background()
	const size = 4
	s := mustOpen(t, Options{InMemory: true, CacheSize: size})
	closeAtEnd(t, s)
	for i := range 3 * size {
		id := fmt.Sprintf("c%02d", i)
		if _, err := s.CreateCustomer(ctx, store.Customer{UserID: id, Spend: store.Nano(i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 2 {
		for i := range 3 * size {
			id := fmt.Sprintf("c%02d", i)
			c, err := s.GetCustomer(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if c.Spend != store.Nano(i) {
				t.Errorf("round %d: %s spend %d, want %d", round, id, c.Spend, i)
			}
			s.customers.mu.RLock()
			n := len(s.customers.m)
			s.customers.mu.RUnlock()
			if n > size {
				t.Fatalf("%d customers cached, want at most %d", n, size)
			}
		}
	}
}

// TestCacheCopies checks that a caller changing what a read returned
// changes nothing another read sees.
func TestCacheCopies(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, Options{InMemory: true})
	closeAtEnd(t, s)
	mb := &store.Budget{BudgetID: "b", MaxBudget: ptr(store.Nano(5)), ModelMaxBudget: map[string]store.ModelBudget{"m": {MaxBudget: ptr(store.Nano(1))}}}
	if _, err := s.CreateCustomer(ctx, store.Customer{UserID: "c", Alias: ptr("a")}, mb); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordSpend(ctx, store.SpendLog{RequestID: "r", CustomerID: "c", Cost: 1, ModelBudget: "m"}); err != nil {
		t.Fatal(err)
	}
	want := throughStore(t, s, []string{"c"}, []string{"b"})
	got := throughStore(t, s, []string{"c"}, []string{"b"})
	c, b := got.Customers["c"], got.Budgets["b"]
	*c.Alias, *c.BudgetID = "changed", "changed"
	c.ModelSpend["m"] = store.ModelSpend{Spend: 99}
	*b.MaxBudget = 99
	*b.ModelMaxBudget["m"].MaxBudget = 99
	if diff := cmp.Diff(want, throughStore(t, s, []string{"c"}, []string{"b"})); diff != "" {
		t.Errorf("after changing a read's result (-before +after):\n%s", diff)
	}
}

func TestCacheAfterClose(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, Options{InMemory: true})
	if _, err := s.CreateCustomer(ctx, store.Customer{UserID: "c"}, &store.Budget{BudgetID: "b"}); err != nil {
		t.Fatal(err)
	}
	throughStore(t, s, []string{"c"}, []string{"b"}) // cached
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetCustomer(ctx, "c"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("GetCustomer after Close: %v, want ErrClosed", err)
	}
	if _, err := s.GetBudget(ctx, "b"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("GetBudget after Close: %v, want ErrClosed", err)
	}
}
