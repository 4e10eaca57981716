package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tollgate-dev/tollgate/store"
)

// fullBudget sets every field a caller can set.
func fullBudget(id string) store.Budget {
	return store.Budget{
		BudgetID:            id,
		MaxBudget:           ptr[store.Nano](100_000_000_000),
		SoftBudget:          ptr[store.Nano](80_000_000_000),
		MaxParallelRequests: ptr[int64](4),
		TPMLimit:            ptr[int64](1000),
		RPMLimit:            ptr[int64](60),
		ModelMaxBudget: map[string]store.ModelBudget{
			"gpt-4o":          {MaxBudget: ptr[store.Nano](5_000_000_000), BudgetDuration: ptr("1d"), TPMLimit: ptr[int64](7), RPMLimit: ptr[int64](8)},
			"claude-sonnet-4": {MaxBudget: ptr[store.Nano](0)},
		},
		BudgetDuration: ptr("30d"),
		BudgetResetAt:  ptr(time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)),
		AllowedModels:  []string{"gpt-4o", "claude-sonnet-4"},
		CreatedBy:      "admin",
		UpdatedBy:      "ops",
	}
}

func testCreateBudget(t *testing.T, open opener) {
	tests := []struct {
		name    string
		b       store.Budget
		wantErr error
	}{
		{name: "every field", b: fullBudget("pro")},
		{name: "only an id", b: store.Budget{BudgetID: "bare"}},
		{name: "empty lists kept apart from nil", b: store.Budget{BudgetID: "empty", AllowedModels: []string{}, ModelMaxBudget: map[string]store.ModelBudget{}}},
		{name: "zero limits", b: store.Budget{BudgetID: "zero", MaxBudget: ptr[store.Nano](0), TPMLimit: ptr[int64](0), BudgetDuration: ptr("")}},
		{name: "id taken", b: store.Budget{BudgetID: "taken", MaxBudget: ptr[store.Nano](1)}, wantErr: store.ErrExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			mustCreateBudget(t, s, store.Budget{BudgetID: "taken"})
			before := snapshot(t, s)
			got, err := s.CreateBudget(t.Context(), tt.b)
			checkErr(t, "CreateBudget", err, tt.wantErr)
			if tt.wantErr != nil {
				unchanged(t, s, before)
				return
			}
			diff(t, "created budget", tt.b, got, ignoreBudgetStamps)
			checkStamps(t, "created budget", got.CreatedAt, got.UpdatedAt)
			diff(t, "stored budget", got, mustGetBudget(t, s, tt.b.BudgetID))
		})
	}
}

func testCreateBudgetGeneratedIDs(t *testing.T, open opener) {
	s := open(t)
	a := mustCreateBudget(t, s, store.Budget{MaxBudget: ptr[store.Nano](1)})
	b := mustCreateBudget(t, s, store.Budget{MaxBudget: ptr[store.Nano](2)})
	if a.BudgetID == "" || b.BudgetID == "" || a.BudgetID == b.BudgetID {
		t.Fatalf("generated ids %q and %q, want two distinct non-empty ids", a.BudgetID, b.BudgetID)
	}
	diff(t, "first", a, mustGetBudget(t, s, a.BudgetID))
	diff(t, "second", b, mustGetBudget(t, s, b.BudgetID))
}

func testGetBudgetNotFound(t *testing.T, open opener) {
	s := open(t)
	mustCreateBudget(t, s, store.Budget{BudgetID: "pro"})
	_, err := s.GetBudget(t.Context(), "basic")
	checkErr(t, "GetBudget", err, store.ErrNotFound)
}

func testUpdateBudget(t *testing.T, open opener) {
	errFn := errors.New("fn refused")
	tests := []struct {
		name    string
		id      string
		fn      func(*store.Budget) error
		wantErr error
		want    store.Budget
	}{
		{
			name: "changes limits, clears fields, writes zero",
			id:   "pro",
			fn: func(b *store.Budget) error {
				b.MaxBudget = ptr[store.Nano](0)
				b.SoftBudget = nil
				b.AllowedModels = append(b.AllowedModels, "o3")
				delete(b.ModelMaxBudget, "gpt-4o")
				b.UpdatedBy = "alice-admin"
				return nil
			},
			want: func() store.Budget {
				b := fullBudget("pro")
				b.MaxBudget = ptr[store.Nano](0)
				b.SoftBudget = nil
				b.AllowedModels = []string{"gpt-4o", "claude-sonnet-4", "o3"}
				b.ModelMaxBudget = map[string]store.ModelBudget{"claude-sonnet-4": {MaxBudget: ptr[store.Nano](0)}}
				b.UpdatedBy = "alice-admin"
				return b
			}(),
		},
		{
			name:    "unknown budget",
			id:      "basic",
			fn:      func(*store.Budget) error { return nil },
			wantErr: store.ErrNotFound,
		},
		{
			name: "fn error is returned and nothing is written",
			id:   "pro",
			fn: func(b *store.Budget) error {
				b.MaxBudget = ptr[store.Nano](1)
				return errFn
			},
			wantErr: errFn,
		},
		{
			name: "fn may not change the id",
			id:   "pro",
			fn: func(b *store.Budget) error {
				b.BudgetID = "other"
				return nil
			},
			wantErr: errAny,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			created := mustCreateBudget(t, s, fullBudget("pro"))
			before := snapshot(t, s)
			got, err := s.UpdateBudget(t.Context(), tt.id, tt.fn)
			checkErr(t, "UpdateBudget", err, tt.wantErr)
			if tt.wantErr != nil {
				unchanged(t, s, before)
				return
			}
			diff(t, "updated budget", tt.want, got, ignoreBudgetStamps)
			if !got.CreatedAt.Equal(created.CreatedAt) || got.UpdatedAt.Before(created.UpdatedAt) {
				t.Errorf("stamps after update: %v, %v; before: %v, %v", got.CreatedAt, got.UpdatedAt, created.CreatedAt, created.UpdatedAt)
			}
			diff(t, "stored budget", got, mustGetBudget(t, s, tt.id))
		})
	}
}

func testListBudgets(t *testing.T, open opener) {
	s := open(t)
	diff(t, "empty store", []store.Budget{}, snapshot(t, s).Budgets, cmpopts.EquateEmpty())
	byID := map[string]store.Budget{}
	for _, id := range []string{"pro", "basic", "Enterprise", "b"} {
		byID[id] = mustCreateBudget(t, s, store.Budget{BudgetID: id})
	}
	inline := mustCreateCustomer(t, s, store.Customer{UserID: "alice"}, &store.Budget{BudgetID: "alice-b"})
	byID["alice-b"] = mustGetBudget(t, s, *inline.BudgetID)
	var want []store.Budget
	for _, id := range []string{"Enterprise", "alice-b", "b", "basic", "pro"} {
		want = append(want, byID[id])
	}
	got, err := s.ListBudgets(t.Context())
	if err != nil {
		t.Fatalf("ListBudgets: %v", err)
	}
	diff(t, "budgets", want, got)
}

func testDeleteBudget(t *testing.T, open opener) {
	s := open(t)
	ctx := t.Context()
	pro := mustCreateBudget(t, s, fullBudget("pro"))
	basic := mustCreateBudget(t, s, store.Budget{BudgetID: "basic"})
	mustCreateCustomer(t, s, store.Customer{UserID: "a", Alias: ptr("A"), Spend: 5, BudgetID: ptr("pro")}, nil)
	mustCreateCustomer(t, s, store.Customer{UserID: "b", Blocked: true}, nil)
	mustUpdateCustomer(t, s, "b", store.CustomerPatch{BudgetID: ptr("pro")})
	c := mustCreateCustomer(t, s, store.Customer{UserID: "c", BudgetID: ptr("basic")}, nil)
	d := mustCreateCustomer(t, s, store.Customer{UserID: "d"}, nil)

	got, err := s.DeleteBudget(ctx, "pro")
	if err != nil {
		t.Fatalf("DeleteBudget: %v", err)
	}
	diff(t, "deleted budget", pro, got)
	after := snapshot(t, s)
	diff(t, "budgets left", []store.Budget{basic}, after.Budgets)
	want := []store.Customer{
		{UserID: "a", Alias: ptr("A"), Spend: 5},
		{UserID: "b", Blocked: true},
		c,
		d,
	}
	diff(t, "customers (a and b unlinked)", want, after.Customers, ignoreCustomerStamps)
	diff(t, "c untouched", c, mustGetCustomer(t, s, "c"))
	diff(t, "d untouched", d, mustGetCustomer(t, s, "d"))

	if _, err := s.GetBudget(ctx, "pro"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetBudget after delete: %v, want ErrNotFound", err)
	}
	if _, err := s.DeleteBudget(ctx, "pro"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteBudget: %v, want ErrNotFound", err)
	}
	unchanged(t, s, after)
}
