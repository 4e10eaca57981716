package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tollgate-dev/tollgate/store"
)

// CreateBudget creates b; a "" BudgetID gets a generated id. The store stamps
// CreatedAt and UpdatedAt.
func (s *Store) CreateBudget(ctx context.Context, b store.Budget) (store.Budget, error) {
	if b.BudgetID == "" {
		b.BudgetID = s.newID()
	}
	var out store.Budget
	err := s.update(ctx, func(txn *badger.Txn) error {
		now := s.stamp()
		rec := budgetRecOf(b)
		rec.CreatedAt, rec.UpdatedAt = now, now
		if err := insertBudget(txn, b.BudgetID, rec); err != nil {
			return err
		}
		out = rec.budget(b.BudgetID)
		return nil
	})
	s.forget(nil, []string{b.BudgetID})
	if err != nil {
		return store.Budget{}, fmt.Errorf("create budget: %w", err)
	}
	return out, nil
}

// GetBudget returns the budget or store.ErrNotFound.
func (s *Store) GetBudget(ctx context.Context, id string) (store.Budget, error) {
	rec, err := readCached(ctx, s, s.budgets, prefixBudget, id)
	if err != nil {
		return store.Budget{}, fmt.Errorf("get budget %q: %w", id, err)
	}
	return detachBudget(rec.budget(id)), nil
}

// UpdateBudget runs fn on the stored budget and writes the result. CreatedAt
// is kept and UpdatedAt stamped whatever fn does to them.
func (s *Store) UpdateBudget(ctx context.Context, id string, fn func(*store.Budget) error) (store.Budget, error) {
	var out store.Budget
	err := s.update(ctx, func(txn *badger.Txn) error {
		bk := key(prefixBudget, id)
		var old budgetRec
		if err := get(txn, bk, &old); err != nil {
			return err
		}
		b := old.budget(id)
		if err := fn(&b); err != nil {
			return err
		}
		if b.BudgetID != id {
			return fmt.Errorf("fn changed the budget id to %q", b.BudgetID)
		}
		rec := budgetRecOf(b)
		rec.CreatedAt = old.CreatedAt
		rec.UpdatedAt = s.stamp()
		if rec.Owner != old.Owner {
			if old.Owner != "" {
				if err := txn.Delete(pairKey(prefixOwner, old.Owner, id)); err != nil {
					return err
				}
			}
			if rec.Owner != "" {
				if err := txn.Set(pairKey(prefixOwner, rec.Owner, id), nil); err != nil {
					return err
				}
			}
		}
		out = rec.budget(id)
		return put(txn, bk, rec)
	})
	s.forget(nil, []string{id})
	if err != nil {
		return store.Budget{}, fmt.Errorf("update budget %q: %w", id, err)
	}
	return out, nil
}

// ListBudgets returns every budget ordered by BudgetID.
func (s *Store) ListBudgets(ctx context.Context) ([]store.Budget, error) {
	out := []store.Budget{}
	err := s.view(ctx, func(txn *badger.Txn) error {
		return scanValues(txn, []byte{prefixBudget}, func(rest, v []byte) error {
			var rec budgetRec
			if err := rec.UnmarshalBinary(v); err != nil {
				return err
			}
			out = append(out, rec.budget(string(rest)))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list budgets: %w", err)
	}
	return out, nil
}

// unlinkChunk bounds the customers DeleteBudget unlinks per transaction: a
// tier may have more customers than one Badger transaction can rewrite.
const unlinkChunk = 1000

// DeleteBudget unlinks every customer on the budget, a chunk per transaction,
// and deletes the budget in the transaction that unlinks the last ones, so no
// customer ever points at a missing budget.
func (s *Store) DeleteBudget(ctx context.Context, id string) (store.Budget, error) {
	for {
		var out store.Budget
		var deleted bool
		var unlinked []string
		err := s.update(ctx, func(txn *badger.Txn) error {
			rec, uids, done, err := deleteBudget(txn, id, s.stamp(), unlinkChunk)
			out, unlinked, deleted = rec.budget(id), uids, done
			return err
		})
		s.forget(unlinked, []string{id})
		if err != nil {
			return store.Budget{}, fmt.Errorf("delete budget %q: %w", id, err)
		}
		if deleted {
			return out, nil
		}
	}
}

// insertBudget writes a new budget and its owner index entry; store.ErrExists
// when the id is taken.
func insertBudget(txn *badger.Txn, id string, rec budgetRec) error {
	bk := key(prefixBudget, id)
	found, err := exists(txn, bk)
	if err != nil {
		return err
	}
	if found {
		return fmt.Errorf("budget %q: %w", id, store.ErrExists)
	}
	if rec.Owner != "" {
		if err := txn.Set(pairKey(prefixOwner, rec.Owner, id), nil); err != nil {
			return err
		}
	}
	return put(txn, bk, rec)
}

// deleteBudget unlinks up to limit customers (0: all) from budget id and,
// when none is left, deletes the budget and its owner entry; done reports that
// it did. unlinked lists the customers whose rows it rewrote.
func deleteBudget(txn *badger.Txn, id string, now time.Time, limit int) (rec budgetRec, unlinked []string, done bool, err error) {
	bk := key(prefixBudget, id)
	if err := get(txn, bk, &rec); err != nil {
		return budgetRec{}, nil, false, err
	}
	var links [][]byte
	more := false
	if limit == 0 {
		links = scanKeys(txn, pairPrefix(prefixBudgetLink, id, 0), 0)
	} else {
		links = scanKeys(txn, pairPrefix(prefixBudgetLink, id, 0), limit+1)
		if more = len(links) > limit; more {
			links = links[:limit]
		}
	}
	for _, rest := range links {
		uid := string(rest)
		ck := key(prefixCustomer, uid)
		var c customerRec
		err := get(txn, ck, &c)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return budgetRec{}, nil, false, err
		}
		if err == nil && c.BudgetID != nil && *c.BudgetID == id {
			c.BudgetID = nil
			c.UpdatedAt = now
			if err := put(txn, ck, c); err != nil {
				return budgetRec{}, nil, false, err
			}
			unlinked = append(unlinked, uid)
		}
		if err := txn.Delete(pairKey(prefixBudgetLink, id, uid)); err != nil {
			return budgetRec{}, nil, false, err
		}
	}
	if more {
		return rec, unlinked, false, nil
	}
	if rec.Owner != "" {
		if err := txn.Delete(pairKey(prefixOwner, rec.Owner, id)); err != nil {
			return budgetRec{}, nil, false, err
		}
	}
	return rec, unlinked, true, txn.Delete(bk)
}
