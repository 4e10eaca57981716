package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tollgate-dev/tollgate/store"
)

func testCreateCustomer(t *testing.T, open opener) {
	tests := []struct {
		name       string
		setup      func(t *testing.T, s store.Store)
		c          store.Customer
		inline     *store.Budget
		wantErr    error
		want       store.Customer
		wantBudget *store.Budget // the customer's budget afterwards, stamps ignored
	}{
		{
			name: "all fields and initial spend kept",
			c: store.Customer{
				UserID: "alice", Alias: ptr("Alice"), Spend: 1500,
				AllowedModelRegion: ptr("eu"), DefaultModel: ptr("gpt-4o"), Blocked: true,
			},
			want: store.Customer{
				UserID: "alice", Alias: ptr("Alice"), Spend: 1500,
				AllowedModelRegion: ptr("eu"), DefaultModel: ptr("gpt-4o"), Blocked: true,
			},
		},
		{
			name: "links an existing budget",
			setup: func(t *testing.T, s store.Store) {
				mustCreateBudget(t, s, store.Budget{BudgetID: "pro", MaxBudget: ptr[store.Nano](5)})
			},
			c:    store.Customer{UserID: "alice", BudgetID: ptr("pro")},
			want: store.Customer{UserID: "alice", BudgetID: ptr("pro")},
			wantBudget: &store.Budget{
				BudgetID: "pro", MaxBudget: ptr[store.Nano](5),
			},
		},
		{
			name:    "unknown budget",
			c:       store.Customer{UserID: "alice", BudgetID: ptr("nope")},
			wantErr: store.ErrBudgetNotFound,
		},
		{
			name: "already exists",
			setup: func(t *testing.T, s store.Store) {
				mustCreateCustomer(t, s, store.Customer{UserID: "alice", Alias: ptr("first")}, nil)
			},
			c:       store.Customer{UserID: "alice", Alias: ptr("second")},
			wantErr: store.ErrExists,
		},
		{
			name:    "empty user id",
			c:       store.Customer{UserID: ""},
			wantErr: errAny,
		},
		{
			name: "inline budget with its own id",
			c:    store.Customer{UserID: "alice", Spend: 7},
			inline: &store.Budget{
				BudgetID: "alice-budget", MaxBudget: ptr[store.Nano](10_000_000_000), TPMLimit: ptr[int64](100),
				BudgetDuration: ptr("30d"), CreatedBy: "admin", UpdatedBy: "admin",
			},
			want: store.Customer{UserID: "alice", Spend: 7, BudgetID: ptr("alice-budget")},
			wantBudget: &store.Budget{
				BudgetID: "alice-budget", MaxBudget: ptr[store.Nano](10_000_000_000), TPMLimit: ptr[int64](100),
				BudgetDuration: ptr("30d"), Owner: "alice", CreatedBy: "admin", UpdatedBy: "admin",
			},
		},
		{
			name:    "inline budget id taken",
			setup:   func(t *testing.T, s store.Store) { mustCreateBudget(t, s, store.Budget{BudgetID: "taken"}) },
			c:       store.Customer{UserID: "alice"},
			inline:  &store.Budget{BudgetID: "taken", MaxBudget: ptr[store.Nano](1)},
			wantErr: store.ErrExists,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			if tt.setup != nil {
				tt.setup(t, s)
			}
			before := snapshot(t, s)
			got, err := s.CreateCustomer(t.Context(), tt.c, tt.inline)
			checkErr(t, "CreateCustomer", err, tt.wantErr)
			if tt.wantErr != nil {
				unchanged(t, s, before)
				return
			}
			diff(t, "created customer", tt.want, got, ignoreCustomerStamps)
			checkStamps(t, "created customer", got.CreatedAt, got.UpdatedAt)
			diff(t, "stored customer", got, mustGetCustomer(t, s, tt.c.UserID))
			if tt.wantBudget != nil {
				b := mustGetBudget(t, s, *got.BudgetID)
				diff(t, "budget", *tt.wantBudget, b, ignoreBudgetStamps)
				checkStamps(t, "budget", b.CreatedAt, b.UpdatedAt)
			}
		})
	}
}

func testCreateCustomerInlineGeneratedID(t *testing.T, open opener) {
	s := open(t)
	got := mustCreateCustomer(t, s, store.Customer{UserID: "alice"}, &store.Budget{MaxBudget: ptr[store.Nano](42), RPMLimit: ptr[int64](3)})
	if got.BudgetID == nil || *got.BudgetID == "" {
		t.Fatalf("BudgetID = %v, want a generated id", got.BudgetID)
	}
	want := []store.Budget{{BudgetID: *got.BudgetID, MaxBudget: ptr[store.Nano](42), RPMLimit: ptr[int64](3), Owner: "alice"}}
	diff(t, "budgets", want, snapshot(t, s).Budgets, ignoreBudgetStamps)
}

func testGetCustomerNotFound(t *testing.T, open opener) {
	s := open(t)
	mustCreateCustomer(t, s, store.Customer{UserID: "alice"}, nil)
	_, err := s.GetCustomer(t.Context(), "bob")
	checkErr(t, "GetCustomer", err, store.ErrNotFound)
}

func testUpdateCustomer(t *testing.T, open opener) {
	alice := store.Customer{
		UserID: "alice", Alias: ptr("Alice"), Spend: 700, AllowedModelRegion: ptr("eu"),
		DefaultModel: ptr("gpt-4o"), Blocked: true, BudgetID: ptr("basic"),
	}
	tests := []struct {
		name    string
		id      string
		patch   store.CustomerPatch
		wantErr error
		want    store.Customer
	}{
		{
			name:  "empty patch keeps everything",
			id:    "alice",
			patch: store.CustomerPatch{},
			want:  alice,
		},
		{
			name: "false, 0 and empty strings are written",
			id:   "alice",
			patch: store.CustomerPatch{
				Alias: ptr(""), Blocked: ptr(false), AllowedModelRegion: ptr(""), DefaultModel: ptr(""),
			},
			want: store.Customer{
				UserID: "alice", Alias: ptr(""), Spend: 700, AllowedModelRegion: ptr(""),
				DefaultModel: ptr(""), Blocked: false, BudgetID: ptr("basic"),
			},
		},
		{
			name:  "sets some fields and keeps the rest",
			id:    "alice",
			patch: store.CustomerPatch{Alias: ptr("A2"), AllowedModelRegion: ptr("us")},
			want: store.Customer{
				UserID: "alice", Alias: ptr("A2"), Spend: 700, AllowedModelRegion: ptr("us"),
				DefaultModel: ptr("gpt-4o"), Blocked: true, BudgetID: ptr("basic"),
			},
		},
		{
			name:  "relinks to another budget",
			id:    "alice",
			patch: store.CustomerPatch{BudgetID: ptr("pro")},
			want: store.Customer{
				UserID: "alice", Alias: ptr("Alice"), Spend: 700, AllowedModelRegion: ptr("eu"),
				DefaultModel: ptr("gpt-4o"), Blocked: true, BudgetID: ptr("pro"),
			},
		},
		{
			name:    "unknown customer",
			id:      "bob",
			patch:   store.CustomerPatch{Alias: ptr("Bob")},
			wantErr: store.ErrNotFound,
		},
		{
			name:    "unknown budget changes nothing",
			id:      "alice",
			patch:   store.CustomerPatch{Alias: ptr("changed"), BudgetID: ptr("nope")},
			wantErr: store.ErrBudgetNotFound,
		},
		{
			name:    "empty budget id is unknown",
			id:      "alice",
			patch:   store.CustomerPatch{BudgetID: ptr("")},
			wantErr: store.ErrBudgetNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			mustCreateBudget(t, s, store.Budget{BudgetID: "basic"})
			mustCreateBudget(t, s, store.Budget{BudgetID: "pro"})
			created := mustCreateCustomer(t, s, alice, nil)
			before := snapshot(t, s)
			got, err := s.UpdateCustomer(t.Context(), tt.id, tt.patch)
			checkErr(t, "UpdateCustomer", err, tt.wantErr)
			if tt.wantErr != nil {
				unchanged(t, s, before)
				return
			}
			diff(t, "updated customer", tt.want, got, ignoreCustomerStamps)
			if !got.CreatedAt.Equal(created.CreatedAt) || got.UpdatedAt.Before(created.UpdatedAt) {
				t.Errorf("stamps after update: CreatedAt %v, UpdatedAt %v; before: %v, %v",
					got.CreatedAt, got.UpdatedAt, created.CreatedAt, created.UpdatedAt)
			}
			diff(t, "stored customer", got, mustGetCustomer(t, s, tt.id))
		})
	}
}

// testUpdateCustomerRelinkMovesIndex checks that a relinked customer belongs
// to its new budget only: deleting the old one leaves it alone, deleting the
// new one unlinks it.
func testUpdateCustomerRelinkMovesIndex(t *testing.T, open opener) {
	s := open(t)
	mustCreateBudget(t, s, store.Budget{BudgetID: "basic"})
	mustCreateBudget(t, s, store.Budget{BudgetID: "pro"})
	mustCreateCustomer(t, s, store.Customer{UserID: "alice", BudgetID: ptr("basic")}, nil)
	relinked := mustUpdateCustomer(t, s, "alice", store.CustomerPatch{BudgetID: ptr("pro")})

	if _, err := s.DeleteBudget(t.Context(), "basic"); err != nil {
		t.Fatalf("DeleteBudget(basic): %v", err)
	}
	diff(t, "customer after deleting its old budget", relinked, mustGetCustomer(t, s, "alice"))

	if _, err := s.DeleteBudget(t.Context(), "pro"); err != nil {
		t.Fatalf("DeleteBudget(pro): %v", err)
	}
	diff(t, "customer after deleting its budget", store.Customer{UserID: "alice"}, mustGetCustomer(t, s, "alice"), ignoreCustomerStamps)
}

func testMaxBudgetInlineInPlace(t *testing.T, open opener) {
	s := open(t)
	mustCreateCustomer(t, s, store.Customer{UserID: "alice"}, &store.Budget{
		BudgetID: "alice-b", MaxBudget: ptr[store.Nano](10_000_000_000), TPMLimit: ptr[int64](5), CreatedBy: "admin",
	})
	before := mustGetBudget(t, s, "alice-b")

	got := mustUpdateCustomer(t, s, "alice", store.CustomerPatch{MaxBudget: ptr[store.Nano](0)})
	diff(t, "customer", store.Customer{UserID: "alice", BudgetID: ptr("alice-b")}, got, ignoreCustomerStamps)

	want := []store.Budget{{
		BudgetID: "alice-b", MaxBudget: ptr[store.Nano](0), TPMLimit: ptr[int64](5), Owner: "alice", CreatedBy: "admin",
	}}
	budgets := snapshot(t, s).Budgets
	diff(t, "budgets", want, budgets, ignoreBudgetStamps)
	if len(budgets) == 1 && (!budgets[0].CreatedAt.Equal(before.CreatedAt) || budgets[0].UpdatedAt.Before(before.UpdatedAt)) {
		t.Errorf("budget stamps %v, %v; before %v, %v", budgets[0].CreatedAt, budgets[0].UpdatedAt, before.CreatedAt, before.UpdatedAt)
	}
}

func testMaxBudgetSharedTier(t *testing.T, open opener) {
	s := open(t)
	tier := mustCreateBudget(t, s, store.Budget{
		BudgetID:            "pro",
		MaxBudget:           ptr[store.Nano](100_000_000_000),
		SoftBudget:          ptr[store.Nano](80_000_000_000),
		MaxParallelRequests: ptr[int64](4),
		TPMLimit:            ptr[int64](1000),
		RPMLimit:            ptr[int64](60),
		ModelMaxBudget: map[string]store.ModelBudget{
			"gpt-4o": {MaxBudget: ptr[store.Nano](5_000_000_000), BudgetDuration: ptr("1d"), TPMLimit: ptr[int64](7), RPMLimit: ptr[int64](8)},
		},
		BudgetDuration: ptr("30d"),
		BudgetResetAt:  ptr(time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)),
		AllowedModels:  []string{"gpt-4o", "claude-sonnet-4"},
		CreatedBy:      "admin",
		UpdatedBy:      "admin",
	})
	mustCreateCustomer(t, s, store.Customer{UserID: "alice", BudgetID: ptr("pro")}, nil)
	bob := mustCreateCustomer(t, s, store.Customer{UserID: "bob", BudgetID: ptr("pro")}, nil)

	alice := mustUpdateCustomer(t, s, "alice", store.CustomerPatch{MaxBudget: ptr[store.Nano](25_000_000_000)})
	if alice.BudgetID == nil || *alice.BudgetID == "" || *alice.BudgetID == "pro" {
		t.Fatalf("alice.BudgetID = %v, want a new inline budget", alice.BudgetID)
	}
	own := *alice.BudgetID
	want := tier
	want.BudgetID = own
	want.MaxBudget = ptr[store.Nano](25_000_000_000)
	want.Owner = "alice"
	// Who created the copy is not a limit; backends may set it as they see fit.
	byAndStamps := cmpopts.IgnoreFields(store.Budget{}, "CreatedAt", "UpdatedAt", "CreatedBy", "UpdatedBy")
	diff(t, "alice's new budget", want, mustGetBudget(t, s, own), byAndStamps)
	diff(t, "tier", tier, mustGetBudget(t, s, "pro"))
	diff(t, "bob", bob, mustGetCustomer(t, s, "bob"))

	again := mustUpdateCustomer(t, s, "alice", store.CustomerPatch{MaxBudget: ptr[store.Nano](30_000_000_000)})
	diff(t, "alice after a second MaxBudget", store.Customer{UserID: "alice", BudgetID: ptr(own)}, again, ignoreCustomerStamps)
	want.MaxBudget = ptr[store.Nano](30_000_000_000)
	diff(t, "alice's budget updated in place", want, mustGetBudget(t, s, own), byAndStamps)
	if n := len(snapshot(t, s).Budgets); n != 2 {
		t.Errorf("%d budgets, want 2", n)
	}
}

func testMaxBudgetNoBudget(t *testing.T, open opener) {
	s := open(t)
	mustCreateCustomer(t, s, store.Customer{UserID: "alice", Spend: 3}, nil)
	got := mustUpdateCustomer(t, s, "alice", store.CustomerPatch{MaxBudget: ptr[store.Nano](0)})
	if got.BudgetID == nil || *got.BudgetID == "" {
		t.Fatalf("BudgetID = %v, want a new inline budget", got.BudgetID)
	}
	want := []store.Budget{{BudgetID: *got.BudgetID, MaxBudget: ptr[store.Nano](0), Owner: "alice"}}
	diff(t, "budgets", want, snapshot(t, s).Budgets, cmpopts.IgnoreFields(store.Budget{}, "CreatedAt", "UpdatedAt", "CreatedBy", "UpdatedBy"))
	diff(t, "customer", store.Customer{UserID: "alice", Spend: 3, BudgetID: got.BudgetID}, mustGetCustomer(t, s, "alice"), ignoreCustomerStamps)
}

func testDeleteCustomers(t *testing.T, open opener) {
	s := open(t)
	ctx := t.Context()
	pro := mustCreateBudget(t, s, store.Budget{BudgetID: "pro", MaxBudget: ptr[store.Nano](9)})
	basic := mustCreateBudget(t, s, store.Budget{BudgetID: "basic"})
	mustCreateCustomer(t, s, store.Customer{UserID: "a"}, &store.Budget{BudgetID: "a-own", MaxBudget: ptr[store.Nano](1)})
	mustCreateCustomer(t, s, store.Customer{UserID: "b", BudgetID: ptr("pro")}, nil)
	c := mustCreateCustomer(t, s, store.Customer{UserID: "c", BudgetID: ptr("pro")}, nil)
	mustRecordSpend(t, s, store.SpendLog{RequestID: "r1", CustomerID: "a", Cost: 10})

	n, err := s.DeleteCustomers(ctx, []string{"a", "b", "b"})
	if err != nil {
		t.Fatalf("DeleteCustomers: %v", err)
	}
	if n != 2 {
		t.Errorf("deleted %d, want 2", n)
	}
	got := snapshot(t, s)
	diff(t, "customers left", []store.Customer{c}, got.Customers)
	diff(t, "budgets left (owned one deleted, tiers kept)", []store.Budget{basic, pro}, got.Budgets)
	if len(got.Logs) != 1 || got.Logs[0].RequestID != "r1" {
		t.Errorf("spend logs %+v, want r1 kept", got.Logs)
	}

	// A customer created again under a deleted id must not inherit old links.
	b2 := mustCreateCustomer(t, s, store.Customer{UserID: "b", BudgetID: ptr("basic")}, nil)
	if _, err := s.DeleteBudget(ctx, "pro"); err != nil {
		t.Fatalf("DeleteBudget(pro): %v", err)
	}
	diff(t, "recreated b after deleting its old tier", b2, mustGetCustomer(t, s, "b"))
	diff(t, "c after deleting its tier", store.Customer{UserID: "c"}, mustGetCustomer(t, s, "c"), ignoreCustomerStamps)

	n, err = s.DeleteCustomers(ctx, nil)
	if err != nil || n != 0 {
		t.Errorf("DeleteCustomers(nil) = %d, %v; want 0, nil", n, err)
	}
}

func testDeleteCustomersMissing(t *testing.T, open opener) {
	s := open(t)
	mustCreateCustomer(t, s, store.Customer{UserID: "a"}, &store.Budget{BudgetID: "a-own"})
	mustCreateCustomer(t, s, store.Customer{UserID: "b"}, nil)
	before := snapshot(t, s)

	n, err := s.DeleteCustomers(t.Context(), []string{"a", "x", "b", "y", "x"})
	if n != 0 {
		t.Errorf("deleted %d, want 0", n)
	}
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("error %v does not match ErrNotFound", err)
	}
	var missing *store.MissingError
	if !errors.As(err, &missing) {
		t.Fatalf("error %v is not a *MissingError", err)
	}
	diff(t, "missing ids", []string{"x", "y"}, missing.IDs)
	unchanged(t, s, before)
}

// testDeleteCustomersOwnedBudgetShared: another customer linked to a deleted
// customer's inline budget is unlinked, never left pointing at nothing.
func testDeleteCustomersOwnedBudgetShared(t *testing.T, open opener) {
	s := open(t)
	mustCreateCustomer(t, s, store.Customer{UserID: "alice"}, &store.Budget{BudgetID: "alice-b"})
	mustCreateCustomer(t, s, store.Customer{UserID: "bob", Alias: ptr("Bob")}, nil)
	mustUpdateCustomer(t, s, "bob", store.CustomerPatch{BudgetID: ptr("alice-b")})

	if _, err := s.DeleteCustomers(t.Context(), []string{"alice"}); err != nil {
		t.Fatalf("DeleteCustomers: %v", err)
	}
	got := snapshot(t, s)
	diff(t, "customers", []store.Customer{{UserID: "bob", Alias: ptr("Bob")}}, got.Customers, ignoreCustomerStamps)
	diff(t, "budgets", []store.Budget{}, got.Budgets, cmpopts.EquateEmpty())
}

func testListCustomers(t *testing.T, open opener) {
	s := open(t)
	diff(t, "empty store", []store.Customer{}, snapshot(t, s).Customers, cmpopts.EquateEmpty())
	var want []store.Customer
	for _, id := range []string{"carol", "alice", "bob", "Bob", "älice", "a"} {
		mustCreateCustomer(t, s, store.Customer{UserID: id}, nil)
	}
	for _, id := range []string{"Bob", "a", "alice", "bob", "carol", "älice"} {
		want = append(want, mustGetCustomer(t, s, id))
	}
	got, err := s.ListCustomers(t.Context())
	if err != nil {
		t.Fatalf("ListCustomers: %v", err)
	}
	diff(t, "customers", want, got)
}

func testSetBlocked(t *testing.T, open opener) {
	tests := []struct {
		name    string
		ids     []string
		blocked bool
		wantErr error
		want    []store.Customer
		gone    []string // ids that must still not exist
	}{
		{
			name:    "block creates missing, keeps order, drops duplicates",
			ids:     []string{"zed", "alice", "zed"},
			blocked: true,
			want: []store.Customer{
				{UserID: "zed", Blocked: true},
				{UserID: "alice", Alias: ptr("A"), Spend: 500, Blocked: true},
			},
		},
		{
			name:    "unblock skips missing",
			ids:     []string{"ghost", "carol", "alice"},
			blocked: false,
			want: []store.Customer{
				{UserID: "carol", Blocked: false},
				{UserID: "alice", Alias: ptr("A"), Spend: 500, Blocked: false},
			},
			gone: []string{"ghost"},
		},
		{
			name:    "unblock of only missing ids",
			ids:     []string{"ghost"},
			blocked: false,
			want:    []store.Customer{},
			gone:    []string{"ghost"},
		},
		{
			name:    "empty id rejected",
			ids:     []string{"zed", ""},
			blocked: true,
			wantErr: errAny,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			mustCreateCustomer(t, s, store.Customer{UserID: "alice", Alias: ptr("A"), Spend: 500}, nil)
			mustCreateCustomer(t, s, store.Customer{UserID: "carol", Blocked: true}, nil)
			before := snapshot(t, s)
			got, err := s.SetBlocked(t.Context(), tt.ids, tt.blocked)
			checkErr(t, "SetBlocked", err, tt.wantErr)
			if tt.wantErr != nil {
				unchanged(t, s, before)
				return
			}
			diff(t, "rows", tt.want, got, ignoreCustomerStamps, cmpopts.EquateEmpty())
			for _, c := range got {
				checkStamps(t, c.UserID, c.CreatedAt, c.UpdatedAt)
				diff(t, "stored "+c.UserID, c, mustGetCustomer(t, s, c.UserID))
			}
			for _, id := range tt.gone {
				if _, err := s.GetCustomer(t.Context(), id); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("GetCustomer(%q) error = %v, want ErrNotFound", id, err)
				}
			}
		})
	}
}
