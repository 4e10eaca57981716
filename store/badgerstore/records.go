package badgerstore

import (
	"encoding"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tollgate-dev/tollgate/store"
)

// Key layout: one prefix byte per kind of key. Composite keys length-prefix
// their first id so that a prefix scan over one id never matches a longer id
// that starts the same way. Index keys have empty values.
const (
	prefixCustomer    = 'c' // c<user id> → customerRec
	prefixBudget      = 'b' // b<budget id> → budgetRec
	prefixBudgetLink  = 'l' // l<len><budget id><user id>: customers linked to a budget
	prefixOwner       = 'o' // o<len><user id><budget id>: inline budgets a customer owns
	prefixLog         = 'r' // r<request id> → logRec; also the at-most-once key
	prefixLogTime     = 't' // t<start><request id>: every log, ordered by time
	prefixCustomerLog = 'u' // u<len><user id><start><request id>: one customer's logs
)

// timeLen is the size of an encoded time in a key.
const timeLen = 12

func key(prefix byte, id string) []byte {
	k := make([]byte, 0, 1+len(id))
	return append(append(k, prefix), id...)
}

// pairPrefix is the scan prefix of every composite key whose first id is a.
func pairPrefix(prefix byte, a string, extra int) []byte {
	k := make([]byte, 0, 1+binary.MaxVarintLen64+len(a)+extra)
	k = append(k, prefix)
	k = binary.AppendUvarint(k, uint64(len(a)))
	return append(k, a...)
}

func pairKey(prefix byte, a, b string) []byte {
	return append(pairPrefix(prefix, a, len(b)), b...)
}

// appendTime encodes t so that byte order is time order: seconds with the
// sign bit flipped, then nanoseconds, both big-endian. It covers the zero
// time, unlike UnixNano.
func appendTime(k []byte, t time.Time) []byte {
	k = binary.BigEndian.AppendUint64(k, uint64(t.Unix())^(1<<63))
	return binary.BigEndian.AppendUint32(k, uint32(t.Nanosecond()))
}

func logTimeKey(l store.SpendLog) []byte {
	k := make([]byte, 0, 1+timeLen+len(l.RequestID))
	k = appendTime(append(k, prefixLogTime), l.StartTime)
	return append(k, l.RequestID...)
}

func customerLogKey(l store.SpendLog) []byte {
	k := pairPrefix(prefixCustomerLog, l.CustomerID, timeLen+len(l.RequestID))
	return append(appendTime(k, l.StartTime), l.RequestID...)
}

// customerRec is the stored form of store.Customer (see codec.go); the user
// id is the key.
type customerRec struct {
	Alias              *string
	Spend              store.Nano
	WindowEnd          time.Time
	ModelSpend         map[string]store.ModelSpend
	AllowedModelRegion *string
	DefaultModel       *string
	BudgetID           *string
	Blocked            bool
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

func customerRecOf(c store.Customer) customerRec {
	return customerRec{
		Alias:              c.Alias,
		Spend:              c.Spend,
		WindowEnd:          c.WindowEnd,
		ModelSpend:         maps.Clone(c.ModelSpend),
		AllowedModelRegion: c.AllowedModelRegion,
		DefaultModel:       c.DefaultModel,
		BudgetID:           c.BudgetID,
		Blocked:            c.Blocked,
		CreatedAt:          c.CreatedAt,
		UpdatedAt:          c.UpdatedAt,
	}
}

func (r customerRec) customer(id string) store.Customer {
	return store.Customer{
		UserID:             id,
		Alias:              r.Alias,
		Spend:              r.Spend,
		WindowEnd:          r.WindowEnd,
		ModelSpend:         maps.Clone(r.ModelSpend),
		AllowedModelRegion: r.AllowedModelRegion,
		DefaultModel:       r.DefaultModel,
		BudgetID:           r.BudgetID,
		Blocked:            r.Blocked,
		CreatedAt:          r.CreatedAt,
		UpdatedAt:          r.UpdatedAt,
	}
}

// detach returns a copy of r that shares nothing with it.
func (r *customerRec) detach() *customerRec {
	c := *r
	c.Alias = copyPtr(r.Alias)
	c.AllowedModelRegion = copyPtr(r.AllowedModelRegion)
	c.DefaultModel = copyPtr(r.DefaultModel)
	c.BudgetID = copyPtr(r.BudgetID)
	c.ModelSpend = maps.Clone(r.ModelSpend)
	return &c
}

// detachCustomer copies what c's pointers point at, so that a caller
// changing them cannot change a cached record.
func detachCustomer(c store.Customer) store.Customer {
	c.Alias = copyPtr(c.Alias)
	c.AllowedModelRegion = copyPtr(c.AllowedModelRegion)
	c.DefaultModel = copyPtr(c.DefaultModel)
	c.BudgetID = copyPtr(c.BudgetID)
	return c
}

// detachBudget is detachCustomer for a budget whose ModelMaxBudget map and
// AllowedModels slice are already copies (budgetRec.budget makes them).
func detachBudget(b store.Budget) store.Budget {
	b.MaxBudget = copyPtr(b.MaxBudget)
	b.SoftBudget = copyPtr(b.SoftBudget)
	b.MaxParallelRequests = copyPtr(b.MaxParallelRequests)
	b.TPMLimit = copyPtr(b.TPMLimit)
	b.RPMLimit = copyPtr(b.RPMLimit)
	b.BudgetDuration = copyPtr(b.BudgetDuration)
	b.BudgetResetAt = copyPtr(b.BudgetResetAt)
	for m, mb := range b.ModelMaxBudget {
		b.ModelMaxBudget[m] = store.ModelBudget{
			MaxBudget:      copyPtr(mb.MaxBudget),
			BudgetDuration: copyPtr(mb.BudgetDuration),
			TPMLimit:       copyPtr(mb.TPMLimit),
			RPMLimit:       copyPtr(mb.RPMLimit),
		}
	}
	return b
}

func copyPtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// budgetRec is the stored form of store.Budget; the budget id is the key.
// Slices and maps keep null apart from empty, so both round-trip.
type budgetRec struct {
	MaxBudget           *store.Nano               `json:"max_budget,omitempty"`
	SoftBudget          *store.Nano               `json:"soft_budget,omitempty"`
	MaxParallelRequests *int64                    `json:"max_parallel_requests,omitempty"`
	TPMLimit            *int64                    `json:"tpm_limit,omitempty"`
	RPMLimit            *int64                    `json:"rpm_limit,omitempty"`
	ModelMaxBudget      map[string]modelBudgetRec `json:"model_max_budget"`
	BudgetDuration      *string                   `json:"budget_duration,omitempty"`
	BudgetResetAt       *time.Time                `json:"budget_reset_at,omitempty"`
	AllowedModels       []string                  `json:"allowed_models"`
	Owner               string                    `json:"owner,omitempty"`
	CreatedAt           time.Time                 `json:"created_at"`
	CreatedBy           string                    `json:"created_by,omitempty"`
	UpdatedAt           time.Time                 `json:"updated_at"`
	UpdatedBy           string                    `json:"updated_by,omitempty"`
}

type modelBudgetRec struct {
	MaxBudget      *store.Nano `json:"max_budget,omitempty"`
	BudgetDuration *string     `json:"budget_duration,omitempty"`
	TPMLimit       *int64      `json:"tpm_limit,omitempty"`
	RPMLimit       *int64      `json:"rpm_limit,omitempty"`
}

func (r budgetRec) MarshalBinary() ([]byte, error) { return json.Marshal(r) }

func (r *budgetRec) UnmarshalBinary(b []byte) error { return json.Unmarshal(b, r) }

func budgetRecOf(b store.Budget) budgetRec {
	r := budgetRec{
		MaxBudget:           b.MaxBudget,
		SoftBudget:          b.SoftBudget,
		MaxParallelRequests: b.MaxParallelRequests,
		TPMLimit:            b.TPMLimit,
		RPMLimit:            b.RPMLimit,
		BudgetDuration:      b.BudgetDuration,
		AllowedModels:       slices.Clone(b.AllowedModels),
		Owner:               b.Owner,
		CreatedAt:           b.CreatedAt,
		CreatedBy:           b.CreatedBy,
		UpdatedAt:           b.UpdatedAt,
		UpdatedBy:           b.UpdatedBy,
	}
	if b.BudgetResetAt != nil {
		t := b.BudgetResetAt.UTC().Round(0)
		r.BudgetResetAt = &t
	}
	if b.ModelMaxBudget != nil {
		r.ModelMaxBudget = make(map[string]modelBudgetRec, len(b.ModelMaxBudget))
		for m, mb := range b.ModelMaxBudget {
			r.ModelMaxBudget[m] = modelBudgetRec(mb)
		}
	}
	return r
}

func (r budgetRec) budget(id string) store.Budget {
	b := store.Budget{
		BudgetID:            id,
		MaxBudget:           r.MaxBudget,
		SoftBudget:          r.SoftBudget,
		MaxParallelRequests: r.MaxParallelRequests,
		TPMLimit:            r.TPMLimit,
		RPMLimit:            r.RPMLimit,
		BudgetDuration:      r.BudgetDuration,
		BudgetResetAt:       r.BudgetResetAt,
		AllowedModels:       slices.Clone(r.AllowedModels),
		Owner:               r.Owner,
		CreatedAt:           r.CreatedAt,
		CreatedBy:           r.CreatedBy,
		UpdatedAt:           r.UpdatedAt,
		UpdatedBy:           r.UpdatedBy,
	}
	if r.ModelMaxBudget != nil {
		b.ModelMaxBudget = make(map[string]store.ModelBudget, len(r.ModelMaxBudget))
		for m, mb := range r.ModelMaxBudget {
			b.ModelMaxBudget[m] = store.ModelBudget(mb)
		}
	}
	return b
}

// logRec is the stored form of store.SpendLog (see codec.go); the request id
// is the key.
type logRec struct {
	ClientRequestID     string
	CustomerID          string
	Model               string
	Path                string
	PromptTokens        int64
	CompletionTokens    int64
	TotalTokens         int64
	CacheReadTokens     int64
	CacheCreationTokens int64
	ReasoningTokens     int64
	Cost                store.Nano
	Unpriced            bool
	Estimated           bool
	StartTime           time.Time
	EndTime             time.Time
	Window              store.Window
	ModelBudget         string
	ModelWindow         store.Window
}

// utcWindow drops the zone and monotonic reading, as a stored time has none.
func utcWindow(w store.Window) store.Window {
	if w == (store.Window{}) {
		return w
	}
	return store.Window{Start: w.Start.UTC().Round(0), End: w.End.UTC().Round(0), Reset: w.Reset}
}

func logRecOf(l store.SpendLog) logRec {
	return logRec{
		ClientRequestID:     l.ClientRequestID,
		CustomerID:          l.CustomerID,
		Model:               l.Model,
		Path:                l.Path,
		PromptTokens:        l.PromptTokens,
		CompletionTokens:    l.CompletionTokens,
		TotalTokens:         l.TotalTokens,
		CacheReadTokens:     l.CacheReadTokens,
		CacheCreationTokens: l.CacheCreationTokens,
		ReasoningTokens:     l.ReasoningTokens,
		Cost:                l.Cost,
		Unpriced:            l.Unpriced,
		Estimated:           l.Estimated,
		StartTime:           l.StartTime.UTC().Round(0),
		EndTime:             l.EndTime.UTC().Round(0),
		Window:              utcWindow(l.Window),
		ModelBudget:         l.ModelBudget,
		ModelWindow:         utcWindow(l.ModelWindow),
	}
}

func (r logRec) spendLog(requestID string) store.SpendLog {
	return store.SpendLog{
		RequestID:           requestID,
		ClientRequestID:     r.ClientRequestID,
		CustomerID:          r.CustomerID,
		Model:               r.Model,
		Path:                r.Path,
		PromptTokens:        r.PromptTokens,
		CompletionTokens:    r.CompletionTokens,
		TotalTokens:         r.TotalTokens,
		CacheReadTokens:     r.CacheReadTokens,
		CacheCreationTokens: r.CacheCreationTokens,
		ReasoningTokens:     r.ReasoningTokens,
		Cost:                r.Cost,
		Unpriced:            r.Unpriced,
		Estimated:           r.Estimated,
		StartTime:           r.StartTime,
		EndTime:             r.EndTime,
		Window:              r.Window,
		ModelBudget:         r.ModelBudget,
		ModelWindow:         r.ModelWindow,
	}
}

// get decodes the record at k into v; store.ErrNotFound when k is absent.
func get(txn *badger.Txn, k []byte, v encoding.BinaryUnmarshaler) error {
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return store.ErrNotFound
	}
	if err != nil {
		return err
	}
	if err := item.Value(v.UnmarshalBinary); err != nil {
		return fmt.Errorf("decode %q: %w", k, err)
	}
	return nil
}

func put(txn *badger.Txn, k []byte, v encoding.BinaryMarshaler) error {
	b, err := v.MarshalBinary()
	if err != nil {
		return fmt.Errorf("encode %q: %w", k, err)
	}
	return txn.Set(k, b)
}

func exists(txn *badger.Txn, k []byte) (bool, error) {
	_, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// scanKeys returns the rest of the first n keys under prefix (0: all), in key
// order.
func scanKeys(txn *badger.Txn, prefix []byte, n int) [][]byte {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	var rests [][]byte
	for it.Rewind(); it.Valid() && (n == 0 || len(rests) < n); it.Next() {
		rests = append(rests, it.Item().KeyCopy(nil)[len(prefix):])
	}
	return rests
}

// scanValues decodes every record under prefix, in key order, calling fn with
// the rest of the key and the raw value.
func scanValues(txn *badger.Txn, prefix []byte, fn func(rest, value []byte) error) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		rest := item.Key()[len(prefix):]
		if err := item.Value(func(v []byte) error { return fn(rest, v) }); err != nil {
			return fmt.Errorf("decode %q: %w", item.Key(), err)
		}
	}
	return nil
}
