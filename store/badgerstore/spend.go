package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/tollgate-dev/tollgate/store"
)

// maxBatch caps the spend records in one commit: large enough that a hot
// customer is read and written once per many requests, small enough that a
// batch of ordinary records stays far below Badger's transaction limit.
const maxBatch = 1024

type spendReq struct {
	log  store.SpendLog
	done chan spendResp // buffered: the writer never waits for the caller
}

type spendResp struct {
	res store.SpendResult
	err error
}

// RecordSpend queues l for the writer and waits for its commit. When ctx ends
// after l was queued, l may still be recorded; retrying with the same
// RequestID is safe (store.ErrDuplicateRequest).
func (s *Store) RecordSpend(ctx context.Context, l store.SpendLog) (store.SpendResult, error) {
	if l.RequestID == "" {
		return store.SpendResult{}, errors.New("record spend: empty request id")
	}
	req := &spendReq{log: l, done: make(chan spendResp, 1)}
	if err := s.acquire(ctx); err != nil {
		return store.SpendResult{}, fmt.Errorf("record spend %q: %w", l.RequestID, err)
	}
	select {
	case s.queue <- req:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return store.SpendResult{}, fmt.Errorf("record spend %q: %w", l.RequestID, ctx.Err())
	}
	select {
	case r := <-req.done:
		if r.err != nil {
			return store.SpendResult{}, fmt.Errorf("record spend %q: %w", l.RequestID, r.err)
		}
		return r.res, nil
	case <-ctx.Done():
		return store.SpendResult{}, fmt.Errorf("record spend %q: %w", l.RequestID, ctx.Err())
	}
}

// writeLoop is the group commit: it takes whatever is queued (up to maxBatch)
// and commits it as one transaction, so one fsync serves many callers. It ends
// when Close closes the queue, after committing what was left in it.
func (s *Store) writeLoop() {
	defer close(s.writerDone)
	batch := make([]*spendReq, 0, maxBatch)
	for req := range s.queue {
		batch = s.takeQueued(append(batch[:0], req))
		if len(batch) < maxBatch {
			// Callers about to record may be runnable but waiting for a
			// CPU, as they always are under GOMAXPROCS=1: one scheduler
			// round lets them join this commit instead of paying for the
			// next one's fsync. (+35 % request cycles per second on one
			// CPU in BenchmarkRequestCycle, no change on two.)
			runtime.Gosched()
			batch = s.takeQueued(batch)
		}
		s.commitSpend(batch)
	}
}

// takeQueued appends to batch what is queued now, up to maxBatch, without waiting.
func (s *Store) takeQueued(batch []*spendReq) []*spendReq {
	for len(batch) < maxBatch {
		select {
		case r, ok := <-s.queue:
			if !ok {
				return batch
			}
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// commitSpend commits batch and answers every caller. A batch too big for one
// transaction (very long fields) is split in halves until it fits.
func (s *Store) commitSpend(batch []*spendReq) {
	results := make([]spendResp, len(batch))
	customers := make(map[string]*customerRec)
	gen := s.customers.generation()
	// Conflicts come only from admin writes, which are few and short, so
	// retrying until the batch wins ends; the writer has no caller ctx to honour.
	err := s.retry(context.Background(), func(txn *badger.Txn) error {
		return s.applySpend(txn, batch, results, customers)
	})
	if errors.Is(err, errTxnTooBig) && len(batch) > 1 {
		half := len(batch) / 2
		s.commitSpend(batch[:half])
		s.commitSpend(batch[half:])
		return
	}
	// The rows are cached before any caller hears back, so a GetCustomer
	// after RecordSpend returns sees the spend.
	if err == nil {
		for id, c := range customers {
			customers[id] = c.detach()
		}
		s.customers.install(gen, customers)
	} else {
		s.forget(slices.Collect(maps.Keys(customers)), nil)
	}
	events := false
	for i, r := range batch {
		if err != nil {
			results[i] = spendResp{err: err}
		}
		events = events || len(results[i].res.Events) > 0
		r.done <- results[i]
	}
	if events {
		s.signalEvents()
	}
}

// applySpend writes every new record of batch in txn, fills results, and
// leaves in customers the rows it wrote. It starts from scratch on every
// call, as a conflict retry needs.
func (s *Store) applySpend(txn *badger.Txn, batch []*spendReq, results []spendResp, customers map[string]*customerRec) error {
	now := s.stamp()
	// Each customer in the batch is read once, incremented by each of its
	// records, and written once: a hot customer costs one row write per batch.
	clear(customers)
	var alerts *alertTxn
	if s.alerting.Enabled {
		alerts = s.newAlertTxn(txn)
	}
	for i, r := range batch {
		l := r.log
		results[i] = spendResp{}
		// The transaction sees its own pending writes, so this also catches a
		// request id repeated within the batch.
		lk := key(prefixLog, l.RequestID)
		found, err := exists(txn, lk)
		if err != nil {
			return err
		}
		if found {
			results[i].err = store.ErrDuplicateRequest
			continue
		}
		if err := put(txn, lk, logRecOf(l)); err != nil {
			return err
		}
		if err := txn.Set(logTimeKey(l), nil); err != nil {
			return err
		}
		if l.CustomerID == "" {
			continue
		}
		if err := txn.Set(customerLogKey(l), nil); err != nil {
			return err
		}
		c := customers[l.CustomerID]
		if c == nil {
			c = &customerRec{}
			err := get(txn, key(prefixCustomer, l.CustomerID), c)
			switch {
			case errors.Is(err, store.ErrNotFound):
				c.CreatedAt = now
				results[i].res.Created = true
			case err != nil:
				return err
			}
			customers[l.CustomerID] = c
		}
		// The rollover: a spend whose window has passed starts over here,
		// in the same transaction as the log.
		cust := c.customer(l.CustomerID)
		cust.AddSpend(l, now)
		c.Spend, c.WindowEnd, c.ModelSpend = cust.Spend, cust.WindowEnd, cust.ModelSpend
		c.UpdatedAt = now
		results[i].res.Customer = c.customer(l.CustomerID)
		if alerts != nil {
			if results[i].res.Events, err = alerts.record(l, results[i].res.Customer, now); err != nil {
				return err
			}
		}
	}
	for id, c := range customers {
		if err := put(txn, key(prefixCustomer, id), c); err != nil {
			return err
		}
	}
	if alerts != nil {
		return alerts.flush()
	}
	return nil
}

// SpendLogs returns the spend logs of one customer ("" = all) ordered by
// StartTime, then RequestID.
func (s *Store) SpendLogs(ctx context.Context, customerID string) ([]store.SpendLog, error) {
	prefix := []byte{prefixLogTime}
	if customerID != "" {
		prefix = pairPrefix(prefixCustomerLog, customerID, 0)
	}
	out := []store.SpendLog{}
	err := s.view(ctx, func(txn *badger.Txn) error {
		for _, rest := range scanKeys(txn, prefix, 0) {
			id := string(rest[timeLen:])
			var rec logRec
			if err := get(txn, key(prefixLog, id), &rec); err != nil {
				return fmt.Errorf("spend log %q: %w", id, err)
			}
			out = append(out, rec.spendLog(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("spend logs: %w", err)
	}
	return out, nil
}
