package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate-dev/tollgate/store"
)

// op is a store operation: an index into opNames and instrumented.ops.
type op int

const (
	opCreateCustomer op = iota
	opGetCustomer
	opUpdateCustomer
	opDeleteCustomers
	opListCustomers
	opSetBlocked
	opCreateBudget
	opGetBudget
	opUpdateBudget
	opListBudgets
	opDeleteBudget
	opRecordSpend
	opSpendLogs
	opQuerySpendLogs
	// The store.Outbox operations follow the store.Store ones.
	opOutboxHeads
	opRecordDeliveries
	opDeadEvents
	opReplayDead
	opOutboxStats
	numOps
)

// numStoreOps counts the store.Store operations.
const numStoreOps = opOutboxHeads

// opNames are the values of the op label.
var opNames = [numOps]string{
	opCreateCustomer:   "create_customer",
	opGetCustomer:      "get_customer",
	opUpdateCustomer:   "update_customer",
	opDeleteCustomers:  "delete_customers",
	opListCustomers:    "list_customers",
	opSetBlocked:       "set_blocked",
	opCreateBudget:     "create_budget",
	opGetBudget:        "get_budget",
	opUpdateBudget:     "update_budget",
	opListBudgets:      "list_budgets",
	opDeleteBudget:     "delete_budget",
	opRecordSpend:      "record_spend",
	opSpendLogs:        "spend_logs",
	opQuerySpendLogs:   "query_spend_logs",
	opOutboxHeads:      "outbox_heads",
	opRecordDeliveries: "record_deliveries",
	opDeadEvents:       "dead_events",
	opReplayDead:       "replay_dead",
	opOutboxStats:      "outbox_stats",
}

// InstrumentStore returns s with every operation timed and its failures
// counted in m, and every spend log it records added to the per-model
// families. When s also implements store.Outbox, so does the result, with
// those operations timed too (EventsReady is passed through), so code that
// asks the store for its outbox still finds it. Close is passed through. A
// nil m returns s itself.
func InstrumentStore(s store.Store, m *Metrics) store.Store {
	if m == nil {
		return s
	}
	in := &instrumented{s: s, m: m}
	last := numStoreOps
	ob, isOutbox := s.(store.Outbox)
	if isOutbox {
		last = numOps
	}
	// Resolving every series now makes a scrape show them at 0 from the start.
	for o := range last {
		in.ops[o] = opMetrics{
			latency: m.storeLatency.WithLabelValues(opNames[o]),
			errors:  m.storeErrors.WithLabelValues(opNames[o]),
		}
	}
	if isOutbox {
		return &instrumentedOutbox{instrumented: in, ob: ob}
	}
	return in
}

type opMetrics struct {
	latency prometheus.Observer
	errors  prometheus.Counter
}

// instrumented is a store.Store decorated with metrics.
type instrumented struct {
	s   store.Store
	m   *Metrics
	ops [numOps]opMetrics
}

var _ store.Store = (*instrumented)(nil)

// done records one operation that started at start and returned err.
func (in *instrumented) done(o op, start time.Time, err error) {
	in.ops[o].latency.Observe(in.m.now().Sub(start).Seconds())
	if failed(err) {
		in.ops[o].errors.Inc()
	}
}

// failed reports whether err is a failure of the store rather than one of the
// contract's answers (not found, exists, duplicate request, bad cursor) or
// the caller giving up.
func failed(err error) bool {
	switch {
	case err == nil,
		errors.Is(err, store.ErrNotFound),
		errors.Is(err, store.ErrExists),
		errors.Is(err, store.ErrBudgetNotFound),
		errors.Is(err, store.ErrDuplicateRequest),
		errors.Is(err, store.ErrBadCursor),
		errors.Is(err, context.Canceled):
		return false
	}
	return true
}

func (in *instrumented) CreateCustomer(ctx context.Context, c store.Customer, inline *store.Budget) (store.Customer, error) {
	start := in.m.now()
	out, err := in.s.CreateCustomer(ctx, c, inline)
	in.done(opCreateCustomer, start, err)
	return out, err
}

func (in *instrumented) GetCustomer(ctx context.Context, id string) (store.Customer, error) {
	start := in.m.now()
	out, err := in.s.GetCustomer(ctx, id)
	in.done(opGetCustomer, start, err)
	return out, err
}

func (in *instrumented) UpdateCustomer(ctx context.Context, id string, p store.CustomerPatch) (store.Customer, error) {
	start := in.m.now()
	out, err := in.s.UpdateCustomer(ctx, id, p)
	in.done(opUpdateCustomer, start, err)
	return out, err
}

func (in *instrumented) DeleteCustomers(ctx context.Context, ids []string) (int, error) {
	start := in.m.now()
	n, err := in.s.DeleteCustomers(ctx, ids)
	in.done(opDeleteCustomers, start, err)
	return n, err
}

func (in *instrumented) ListCustomers(ctx context.Context) ([]store.Customer, error) {
	start := in.m.now()
	out, err := in.s.ListCustomers(ctx)
	in.done(opListCustomers, start, err)
	return out, err
}

func (in *instrumented) SetBlocked(ctx context.Context, ids []string, blocked bool) ([]store.Customer, error) {
	start := in.m.now()
	out, err := in.s.SetBlocked(ctx, ids, blocked)
	in.done(opSetBlocked, start, err)
	return out, err
}

func (in *instrumented) CreateBudget(ctx context.Context, b store.Budget) (store.Budget, error) {
	start := in.m.now()
	out, err := in.s.CreateBudget(ctx, b)
	in.done(opCreateBudget, start, err)
	return out, err
}

func (in *instrumented) GetBudget(ctx context.Context, id string) (store.Budget, error) {
	start := in.m.now()
	out, err := in.s.GetBudget(ctx, id)
	in.done(opGetBudget, start, err)
	return out, err
}

// UpdateBudget does not count an error of fn's own (a caller's validation)
// as a store failure.
func (in *instrumented) UpdateBudget(ctx context.Context, id string, fn func(*store.Budget) error) (store.Budget, error) {
	var fnErr error
	start := in.m.now()
	out, err := in.s.UpdateBudget(ctx, id, func(b *store.Budget) error {
		fnErr = fn(b)
		return fnErr
	})
	if fnErr != nil {
		in.done(opUpdateBudget, start, nil)
	} else {
		in.done(opUpdateBudget, start, err)
	}
	return out, err
}

func (in *instrumented) ListBudgets(ctx context.Context) ([]store.Budget, error) {
	start := in.m.now()
	out, err := in.s.ListBudgets(ctx)
	in.done(opListBudgets, start, err)
	return out, err
}

func (in *instrumented) DeleteBudget(ctx context.Context, id string) (store.Budget, error) {
	start := in.m.now()
	out, err := in.s.DeleteBudget(ctx, id)
	in.done(opDeleteBudget, start, err)
	return out, err
}

// RecordSpend adds the log to the per-model families once it is recorded: a
// duplicate or failed record adds nothing.
func (in *instrumented) RecordSpend(ctx context.Context, l store.SpendLog) (store.SpendResult, error) {
	start := in.m.now()
	out, err := in.s.RecordSpend(ctx, l)
	in.done(opRecordSpend, start, err)
	if err == nil {
		in.m.models.record(l)
	}
	return out, err
}

func (in *instrumented) SpendLogs(ctx context.Context, customerID string) ([]store.SpendLog, error) {
	start := in.m.now()
	out, err := in.s.SpendLogs(ctx, customerID)
	in.done(opSpendLogs, start, err)
	return out, err
}

func (in *instrumented) QuerySpendLogs(ctx context.Context, q store.SpendLogQuery) ([]store.SpendLog, string, error) {
	start := in.m.now()
	logs, next, err := in.s.QuerySpendLogs(ctx, q)
	in.done(opQuerySpendLogs, start, err)
	return logs, next, err
}

func (in *instrumented) Close() error { return in.s.Close() }

// instrumentedOutbox is an instrumented store that has the webhook outbox.
type instrumentedOutbox struct {
	*instrumented
	ob store.Outbox
}

var _ store.Outbox = (*instrumentedOutbox)(nil)

func (in *instrumentedOutbox) OutboxHeads(ctx context.Context, after string, n int) ([]store.Event, error) {
	start := in.m.now()
	out, err := in.ob.OutboxHeads(ctx, after, n)
	in.done(opOutboxHeads, start, err)
	return out, err
}

func (in *instrumentedOutbox) RecordDeliveries(ctx context.Context, ds []store.Delivery) error {
	start := in.m.now()
	err := in.ob.RecordDeliveries(ctx, ds)
	in.done(opRecordDeliveries, start, err)
	return err
}

func (in *instrumentedOutbox) DeadEvents(ctx context.Context) ([]store.Event, error) {
	start := in.m.now()
	out, err := in.ob.DeadEvents(ctx)
	in.done(opDeadEvents, start, err)
	return out, err
}

func (in *instrumentedOutbox) ReplayDead(ctx context.Context, ids []string) ([]store.Event, error) {
	start := in.m.now()
	out, err := in.ob.ReplayDead(ctx, ids)
	in.done(opReplayDead, start, err)
	return out, err
}

func (in *instrumentedOutbox) OutboxStats(ctx context.Context) (store.OutboxStats, error) {
	start := in.m.now()
	out, err := in.ob.OutboxStats(ctx)
	in.done(opOutboxStats, start, err)
	return out, err
}

func (in *instrumentedOutbox) EventsReady() <-chan struct{} { return in.ob.EventsReady() }
