package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tollgate-dev/tollgate/store"
)

// CreateCustomer creates c, and its inline budget when inline is non-nil (that
// budget wins over c.BudgetID). The store stamps CreatedAt and UpdatedAt;
// c.Spend is kept as the initial spend.
func (s *Store) CreateCustomer(ctx context.Context, c store.Customer, inline *store.Budget) (store.Customer, error) {
	if c.UserID == "" {
		return store.Customer{}, errors.New("create customer: empty user id")
	}
	var out store.Customer
	var budgets []string // inline budgets created, one per attempt
	err := s.update(ctx, func(txn *badger.Txn) error {
		now := s.stamp()
		ck := key(prefixCustomer, c.UserID)
		found, err := exists(txn, ck)
		if err != nil {
			return err
		}
		if found {
			return store.ErrExists
		}
		rec := customerRecOf(c)
		rec.CreatedAt, rec.UpdatedAt = now, now
		switch {
		case inline != nil:
			b := *inline
			if b.BudgetID == "" {
				b.BudgetID = s.newID()
			}
			b.Owner = c.UserID
			b.CreatedAt, b.UpdatedAt = now, now
			budgets = append(budgets, b.BudgetID)
			if err := insertBudget(txn, b.BudgetID, budgetRecOf(b)); err != nil {
				return err
			}
			rec.BudgetID = &b.BudgetID
			if err := txn.Set(pairKey(prefixBudgetLink, b.BudgetID, c.UserID), nil); err != nil {
				return err
			}
		case c.BudgetID != nil:
			if err := linkBudget(txn, *c.BudgetID, c.UserID); err != nil {
				return err
			}
		}
		out = rec.customer(c.UserID)
		return put(txn, ck, rec)
	})
	s.forget([]string{c.UserID}, budgets)
	if err != nil {
		return store.Customer{}, fmt.Errorf("create customer %q: %w", c.UserID, err)
	}
	return out, nil
}

// GetCustomer returns the customer or store.ErrNotFound.
func (s *Store) GetCustomer(ctx context.Context, id string) (store.Customer, error) {
	rec, err := readCached(ctx, s, s.customers, prefixCustomer, id)
	if err != nil {
		return store.Customer{}, fmt.Errorf("get customer %q: %w", id, err)
	}
	return detachCustomer(rec.customer(id)), nil
}

// UpdateCustomer applies p in one transaction: BudgetID first, then MaxBudget
// (so a patch with both sets the limit on the newly linked budget).
func (s *Store) UpdateCustomer(ctx context.Context, id string, p store.CustomerPatch) (store.Customer, error) {
	var out store.Customer
	var budgets []string // budgets setMaxBudget wrote
	err := s.update(ctx, func(txn *badger.Txn) error {
		now := s.stamp()
		ck := key(prefixCustomer, id)
		var rec customerRec
		if err := get(txn, ck, &rec); err != nil {
			return err
		}
		if p.Alias != nil {
			rec.Alias = copyPtr(p.Alias)
		}
		if p.Blocked != nil {
			rec.Blocked = *p.Blocked
		}
		if p.AllowedModelRegion != nil {
			rec.AllowedModelRegion = copyPtr(p.AllowedModelRegion)
		}
		if p.DefaultModel != nil {
			rec.DefaultModel = copyPtr(p.DefaultModel)
		}
		if p.BudgetID != nil {
			if err := linkBudget(txn, *p.BudgetID, id); err != nil {
				return err
			}
			if rec.BudgetID != nil && *rec.BudgetID != *p.BudgetID {
				if err := txn.Delete(pairKey(prefixBudgetLink, *rec.BudgetID, id)); err != nil {
					return err
				}
			}
			rec.BudgetID = copyPtr(p.BudgetID)
		}
		if p.MaxBudget != nil {
			if err := s.setMaxBudget(txn, id, &rec, *p.MaxBudget, now); err != nil {
				return err
			}
			budgets = append(budgets, *rec.BudgetID)
		}
		rec.UpdatedAt = now
		out = rec.customer(id)
		return put(txn, ck, rec)
	})
	s.forget([]string{id}, budgets)
	if err != nil {
		return store.Customer{}, fmt.Errorf("update customer %q: %w", id, err)
	}
	return out, nil
}

// setMaxBudget gives customer id the limit max: in place on a budget the
// customer owns, otherwise on a new inline budget that copies the current
// tier's other limits, so the tier and everyone else on it are untouched.
func (s *Store) setMaxBudget(txn *badger.Txn, id string, rec *customerRec, limit store.Nano, now time.Time) error {
	var cur budgetRec
	if rec.BudgetID != nil {
		bk := key(prefixBudget, *rec.BudgetID)
		err := get(txn, bk, &cur)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err == nil && cur.Owner == id {
			cur.MaxBudget = &limit
			cur.UpdatedAt = now
			return put(txn, bk, cur)
		}
		if err := txn.Delete(pairKey(prefixBudgetLink, *rec.BudgetID, id)); err != nil {
			return err
		}
	}
	nb := cur
	nb.MaxBudget = &limit
	nb.Owner = id
	nb.CreatedAt, nb.UpdatedAt = now, now
	// The tier's authors did not write this budget, and the patch names none.
	nb.CreatedBy, nb.UpdatedBy = "", ""
	bid := s.newID()
	if err := insertBudget(txn, bid, nb); err != nil {
		return err
	}
	rec.BudgetID = &bid
	return txn.Set(pairKey(prefixBudgetLink, bid, id), nil)
}

// DeleteCustomers deletes every id or none. Budgets the customers own go with
// them (customers on those are unlinked); their spend logs are kept.
func (s *Store) DeleteCustomers(ctx context.Context, ids []string) (int, error) {
	ids = dedupe(ids)
	var unlinked, budgets []string // what deleting owned budgets touched
	err := s.update(ctx, func(txn *badger.Txn) error {
		var missing []string
		for _, id := range ids {
			found, err := exists(txn, key(prefixCustomer, id))
			if err != nil {
				return err
			}
			if !found {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			return &store.MissingError{IDs: missing}
		}
		now := s.stamp()
		for _, id := range ids {
			for _, bid := range scanKeys(txn, pairPrefix(prefixOwner, id, 0), 0) {
				_, uids, _, err := deleteBudget(txn, string(bid), now, 0)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
				unlinked = append(unlinked, uids...)
				budgets = append(budgets, string(bid))
			}
			ck := key(prefixCustomer, id)
			var rec customerRec
			if err := get(txn, ck, &rec); err != nil {
				return err
			}
			if rec.BudgetID != nil {
				if err := txn.Delete(pairKey(prefixBudgetLink, *rec.BudgetID, id)); err != nil {
					return err
				}
			}
			if err := txn.Delete(ck); err != nil {
				return err
			}
			// A customer created again later starts with no alerts sent.
			if err := txn.Delete(key(prefixMarks, id)); err != nil {
				return err
			}
		}
		return nil
	})
	s.forget(append(unlinked, ids...), budgets)
	if err != nil {
		return 0, fmt.Errorf("delete customers: %w", err)
	}
	return len(ids), nil
}

// ListCustomers returns every customer ordered by UserID.
func (s *Store) ListCustomers(ctx context.Context) ([]store.Customer, error) {
	out := []store.Customer{}
	err := s.view(ctx, func(txn *badger.Txn) error {
		return scanValues(txn, []byte{prefixCustomer}, func(rest, v []byte) error {
			var rec customerRec
			if err := rec.UnmarshalBinary(v); err != nil {
				return err
			}
			out = append(out, rec.customer(string(rest)))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list customers: %w", err)
	}
	return out, nil
}

// SetBlocked sets the blocked flag on every id in one transaction; blocking
// creates missing customers, unblocking skips them.
func (s *Store) SetBlocked(ctx context.Context, ids []string, blocked bool) ([]store.Customer, error) {
	for _, id := range ids {
		if id == "" {
			return nil, errors.New("set blocked: empty user id")
		}
	}
	ids = dedupe(ids)
	var out []store.Customer
	err := s.update(ctx, func(txn *badger.Txn) error {
		now := s.stamp()
		out = make([]store.Customer, 0, len(ids))
		for _, id := range ids {
			ck := key(prefixCustomer, id)
			var rec customerRec
			err := get(txn, ck, &rec)
			switch {
			case errors.Is(err, store.ErrNotFound) && !blocked:
				continue
			case errors.Is(err, store.ErrNotFound):
				rec.CreatedAt = now
			case err != nil:
				return err
			}
			rec.Blocked = blocked
			rec.UpdatedAt = now
			if err := put(txn, ck, rec); err != nil {
				return err
			}
			out = append(out, rec.customer(id))
		}
		return nil
	})
	s.forget(ids, nil)
	if err != nil {
		return nil, fmt.Errorf("set blocked: %w", err)
	}
	return out, nil
}

// linkBudget checks that the budget exists and records userID on it. It
// rewrites the budget unchanged because Badger detects conflicts on keys, not
// ranges: without that write a concurrent DeleteBudget would not see the new
// link and would leave the customer pointing at a deleted budget.
func linkBudget(txn *badger.Txn, budgetID, userID string) error {
	bk := key(prefixBudget, budgetID)
	item, err := txn.Get(bk)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return store.ErrBudgetNotFound
	}
	if err != nil {
		return err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return err
	}
	if err := txn.Set(bk, v); err != nil {
		return err
	}
	return txn.Set(pairKey(prefixBudgetLink, budgetID, userID), nil)
}

// dedupe drops repeated ids, keeping the first of each in order.
func dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// forget drops from the caches what a write may have changed. Writes call it
// once Badger has answered, whatever the answer: a failed commit changed
// nothing, so dropping is merely wasted.
func (s *Store) forget(customers, budgets []string) {
	if len(customers) > 0 {
		s.customers.invalidate(customers...)
	}
	if len(budgets) > 0 {
		s.budgets.invalidate(budgets...)
	}
}
