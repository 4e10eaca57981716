// Package store holds tollgate's domain types (customers, budgets, spend logs,
// webhook events) and the persistence contract every backend implements.
// Badger is the first backend; storetest holds the conformance suite any
// backend must pass.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors callers branch on. Backends translate their own errors into these.
var (
	// ErrNotFound means the customer or budget does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means a customer or budget with that id already exists.
	ErrExists = errors.New("already exists")
	// ErrBudgetNotFound means a customer refers to a budget id that does not exist.
	ErrBudgetNotFound = errors.New("budget not found")
	// ErrDuplicateRequest means a spend record with that request id was already recorded.
	ErrDuplicateRequest = errors.New("request already recorded")
	// ErrClosed means the store has been closed.
	ErrClosed = errors.New("store closed")
	// ErrBadCursor means SpendLogQuery.After is not a cursor QuerySpendLogs returned.
	ErrBadCursor = errors.New("invalid spend log cursor")
)

// MissingError lists the ids that were not found by a multi-id operation
// (DeleteCustomers). It matches ErrNotFound with errors.Is.
type MissingError struct {
	IDs []string
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("%s: %s", ErrNotFound, strings.Join(e.IDs, ", "))
}

// Is reports whether target is ErrNotFound.
func (e *MissingError) Is(target error) bool { return target == ErrNotFound }

// Customer is an end user of the operator's product: LiteLLM's LiteLLM_EndUserTable.
type Customer struct {
	UserID string
	Alias  *string
	// Spend is what the customer spent in the budget window that ends at
	// WindowEnd; use SpendIn for what counts now.
	Spend Nano
	// WindowEnd is the reset that ends the window Spend was recorded in; zero
	// when it was recorded without one (the budget never resets).
	WindowEnd time.Time
	// ModelSpend is the spend on each model_max_budget entry of the
	// customer's budget, each in its own window; nil when there is none.
	ModelSpend         map[string]ModelSpend
	AllowedModelRegion *string
	DefaultModel       *string
	BudgetID           *string
	Blocked            bool
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// Budget is a set of limits shared by every customer that links to it: LiteLLM's
// LiteLLM_BudgetTable. A budget created inline by /customer/new belongs to that
// one customer (Owner is set); a budget created by /budget/new is a shared tier.
type Budget struct {
	BudgetID            string
	MaxBudget           *Nano
	SoftBudget          *Nano
	MaxParallelRequests *int64
	TPMLimit            *int64
	RPMLimit            *int64
	ModelMaxBudget      map[string]ModelBudget
	BudgetDuration      *string
	BudgetResetAt       *time.Time
	AllowedModels       []string
	// Owner is the customer id an inline budget was created for, or "" for a shared tier.
	Owner     string
	CreatedAt time.Time
	CreatedBy string
	UpdatedAt time.Time
	UpdatedBy string
}

// ModelBudget is one entry of Budget.ModelMaxBudget.
type ModelBudget struct {
	MaxBudget      *Nano
	BudgetDuration *string
	TPMLimit       *int64
	RPMLimit       *int64
}

// ModelSpend is a customer's spend on one model_max_budget entry, in the
// entry's window that ends at WindowEnd (zero: the entry never resets).
type ModelSpend struct {
	Spend     Nano
	WindowEnd time.Time
}

// CustomerPatch is a partial update of a customer. Nil fields are left unchanged;
// non-nil fields are written even when they hold false, 0 or "" (LiteLLM drops
// those by mistake; we do not).
type CustomerPatch struct {
	Alias              *string
	Blocked            *bool
	AllowedModelRegion *string
	DefaultModel       *string
	// BudgetID relinks the customer to an existing budget (ErrBudgetNotFound otherwise).
	BudgetID *string
	// MaxBudget sets the customer's own limit: the customer's inline budget is
	// updated in place; a customer on a shared tier (or on none) gets a new
	// inline budget (copying the tier's other limits) so the tier is untouched.
	MaxBudget *Nano
}

// SpendLog is one priced (or unpriced) LLM request: exactly one row per request.
type SpendLog struct {
	// RequestID is the id tollgate assigned to the request: the at-most-once key.
	RequestID string
	// ClientRequestID is the x-request-id the request arrived with, for correlation only.
	ClientRequestID     string
	CustomerID          string // "" when the request named no customer
	Model               string
	Path                string
	PromptTokens        int64
	CompletionTokens    int64
	TotalTokens         int64
	CacheReadTokens     int64
	CacheCreationTokens int64
	ReasoningTokens     int64
	Cost                Nano
	Unpriced            bool // no price was known for Model; Cost is 0
	Estimated           bool // tokens were counted locally, not reported by the upstream
	StartTime           time.Time
	EndTime             time.Time
	// Window is the window of the customer's budget (its own or the default
	// one) that the spend counts in, as the caller found it at EndTime; zero
	// when the budget never resets or there is none.
	Window Window
	// ModelBudget names the model_max_budget entry of that budget the request
	// counts against, "" for none; ModelWindow is that entry's window.
	ModelBudget string
	ModelWindow Window
}

// SpendLogQuery selects the spend logs QuerySpendLogs returns. Zero-valued
// filters select everything.
type SpendLogQuery struct {
	// CustomerID keeps one customer's logs; "" keeps every log, those of
	// requests that named no customer included.
	CustomerID string
	// Model keeps the logs of exactly this model.
	Model string
	// RequestID keeps only the log with this request id.
	RequestID string
	// Start and End keep the logs whose StartTime is in [Start, End); a zero
	// bound is open.
	Start, End time.Time
	// After is the cursor the previous page returned; "" starts at the first
	// log. A cursor is a position in the order (start time, request id), so
	// any query resumes after it; paging keeps the filters the same.
	After string
	// Limit is the most logs one page holds; it must be positive.
	Limit int
}

// SpendResult is what RecordSpend did.
type SpendResult struct {
	// Customer is the customer row after the increment; zero when the log had no customer.
	Customer Customer
	// Created reports that the customer row was created by this record (first spend).
	Created bool
	// Events are the webhook events the record caused, as written to the
	// outbox; none unless the store was opened with alerting enabled.
	Events []Event
}

// Store is the persistence contract. All methods are safe for concurrent use.
// Lists are ordered by id (spend logs by start time, then request id).
type Store interface {
	// CreateCustomer creates c. When inline is non-nil, that budget is created in the
	// same transaction (with a generated id when BudgetID is "", Owner = c.UserID) and
	// linked. When c.BudgetID names a budget, it must exist (ErrBudgetNotFound).
	// ErrExists if the customer already exists.
	CreateCustomer(ctx context.Context, c Customer, inline *Budget) (Customer, error)
	// GetCustomer returns the customer or ErrNotFound.
	GetCustomer(ctx context.Context, id string) (Customer, error)
	// UpdateCustomer applies p atomically; ErrNotFound, ErrBudgetNotFound.
	UpdateCustomer(ctx context.Context, id string, p CustomerPatch) (Customer, error)
	// DeleteCustomers deletes all ids or none: a *MissingError lists absent ids.
	// Linked budgets are kept (inline budgets owned by a deleted customer are deleted).
	DeleteCustomers(ctx context.Context, ids []string) (int, error)
	// ListCustomers returns every customer ordered by UserID.
	ListCustomers(ctx context.Context) ([]Customer, error)
	// SetBlocked sets the blocked flag on every id in one transaction. Blocking
	// creates missing customers (spend 0) so a customer can be blocked before its
	// first request; unblocking skips missing ids. It returns the rows that exist
	// afterwards, in the order given, without duplicates.
	SetBlocked(ctx context.Context, ids []string, blocked bool) ([]Customer, error)

	// CreateBudget creates b (ErrExists); a "" BudgetID gets a generated id.
	CreateBudget(ctx context.Context, b Budget) (Budget, error)
	// GetBudget returns the budget or ErrNotFound.
	GetBudget(ctx context.Context, id string) (Budget, error)
	// UpdateBudget runs fn on the stored budget and writes the result atomically
	// (fn may run more than once on conflict; it must not have side effects).
	// fn must not change BudgetID. ErrNotFound.
	UpdateBudget(ctx context.Context, id string, fn func(*Budget) error) (Budget, error)
	// ListBudgets returns every budget ordered by BudgetID.
	ListBudgets(ctx context.Context) ([]Budget, error)
	// DeleteBudget deletes the budget and unlinks (BudgetID = nil) every customer on it.
	DeleteBudget(ctx context.Context, id string) (Budget, error)

	// RecordSpend atomically writes the spend log and, when l.CustomerID is set,
	// upserts the customer: created with Spend = l.Cost on first spend, incremented
	// after, and rolled over in the same transaction when the window the stored
	// spend belongs to has passed (Customer.AddSpend: Spend = l.Cost, WindowEnd =
	// l.Window.End; likewise ModelSpend[l.ModelBudget]). Spend logs are never
	// rolled over. A RequestID that was already recorded returns
	// ErrDuplicateRequest and changes nothing. With alerting enabled, the
	// events Alerting.SpendEvents decides (with the customer's budget, or the
	// default one) are written to the Outbox, with their dedup marks, in the
	// same transaction.
	RecordSpend(ctx context.Context, l SpendLog) (SpendResult, error)
	// SpendLogs returns the spend logs of one customer ("" = all) ordered by StartTime.
	SpendLogs(ctx context.Context, customerID string) ([]SpendLog, error)
	// QuerySpendLogs returns one page of the logs q selects, ordered by
	// StartTime then RequestID, and the cursor of the next page: "" when no
	// log is left. A backend may bound the work of one call, so a page can
	// hold fewer than q.Limit logs, even none, while the cursor is not "";
	// callers page until it is. ErrBadCursor when q.After is not a cursor.
	QuerySpendLogs(ctx context.Context, q SpendLogQuery) (logs []SpendLog, next string, err error)

	// Close flushes and closes the store.
	Close() error
}
