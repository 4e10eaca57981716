package admin

import (
	"context"
	"errors"

	"github.com/tollgate-dev/tollgate/store"
)

// errDiskOnFire is the failure brokenStore injects; it must reach the log and
// never the client.
var errDiskOnFire = errors.New("disk on fire at /var/lib/tollgate")

// brokenStore fails every call, for the 500 paths Badger cannot be made to take.
type brokenStore struct{}

var _ store.Store = brokenStore{}

func (brokenStore) CreateCustomer(context.Context, store.Customer, *store.Budget) (store.Customer, error) {
	return store.Customer{}, errDiskOnFire
}

func (brokenStore) GetCustomer(context.Context, string) (store.Customer, error) {
	return store.Customer{}, errDiskOnFire
}

func (brokenStore) UpdateCustomer(context.Context, string, store.CustomerPatch) (store.Customer, error) {
	return store.Customer{}, errDiskOnFire
}

func (brokenStore) DeleteCustomers(context.Context, []string) (int, error) { return 0, errDiskOnFire }

func (brokenStore) ListCustomers(context.Context) ([]store.Customer, error) {
	return nil, errDiskOnFire
}

func (brokenStore) SetBlocked(context.Context, []string, bool) ([]store.Customer, error) {
	return nil, errDiskOnFire
}

func (brokenStore) CreateBudget(context.Context, store.Budget) (store.Budget, error) {
	return store.Budget{}, errDiskOnFire
}

func (brokenStore) GetBudget(context.Context, string) (store.Budget, error) {
	return store.Budget{}, errDiskOnFire
}

func (brokenStore) UpdateBudget(context.Context, string, func(*store.Budget) error) (store.Budget, error) {
	return store.Budget{}, errDiskOnFire
}

func (brokenStore) ListBudgets(context.Context) ([]store.Budget, error) { return nil, errDiskOnFire }

func (brokenStore) DeleteBudget(context.Context, string) (store.Budget, error) {
	return store.Budget{}, errDiskOnFire
}

func (brokenStore) RecordSpend(context.Context, store.SpendLog) (store.SpendResult, error) {
	return store.SpendResult{}, errDiskOnFire
}

func (brokenStore) SpendLogs(context.Context, string) ([]store.SpendLog, error) {
	return nil, errDiskOnFire
}

func (brokenStore) Close() error { return nil }
