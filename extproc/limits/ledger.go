package limits

import (
	"hash/maphash"
	"sync"

	"github.com/tollgate-dev/tollgate/store"
)

// Ledger holds strict-budget reservations: money set aside, per key (a
// customer, or a customer and model), for requests that are in flight.
//
// The protocol that keeps spend within a budget, for one process:
//
//  1. h := Reserve(key, worstCase) sets the request's worst-case cost aside;
//     h.Total is everything set aside under key at that moment, this included.
//  2. Only then read the key's committed spend from the store.
//  3. Admit only if spend + h.Total <= max_budget; otherwise h.Release().
//  4. When the request ends, commit its real cost to the store first and
//     call h.Release() after; on error or disconnect just Release.
//
// Any other admitted request either still held its reservation when h was
// taken (so it is in h.Total, and its real cost is at most its reservation)
// or had released it, and so committed its cost, before the spend was read in
// step 2. So at every admission the committed spend plus the worst case of all
// requests in flight is within the budget. Reservations of requests that are
// refused only make the check stricter while they last.
//
// It is safe for concurrent use. A key's entry lives only while it holds
// reservations.
type Ledger struct {
	seed   maphash.Seed
	shards [shardCount]ledgerShard
}

type ledgerShard struct {
	mu      sync.Mutex
	entries map[string]*ledgerEntry
}

type ledgerEntry struct {
	total store.Nano
	holds int
}

// NewLedger returns an empty Ledger.
func NewLedger() *Ledger {
	l := &Ledger{seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].entries = make(map[string]*ledgerEntry)
	}
	return l
}

func (l *Ledger) shard(key string) *ledgerShard {
	return &l.shards[maphash.String(l.seed, key)%shardCount]
}

// Reserve sets amount (negative counts as 0) aside under key.
func (l *Ledger) Reserve(key string, amount store.Nano) *Hold {
	amount = max(0, amount)
	s := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[key]
	if e == nil {
		e = &ledgerEntry{}
		s.entries[key] = e
	}
	e.total += amount
	e.holds++
	return &Hold{s: s, key: key, e: e, amount: amount, total: e.total}
}

// Reserved returns everything set aside under key now.
func (l *Ledger) Reserved(key string) store.Nano {
	s := l.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[key]; e != nil {
		return e.total
	}
	return 0
}

// Len returns the number of keys holding reservations.
func (l *Ledger) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.entries)
		s.mu.Unlock()
	}
	return n
}

// Hold is one reservation. All methods accept a nil *Hold.
type Hold struct {
	s        *ledgerShard
	key      string
	e        *ledgerEntry
	amount   store.Nano
	total    store.Nano
	released bool // guarded by s.mu
}

// Amount returns the amount this hold set aside.
func (h *Hold) Amount() store.Nano {
	if h == nil {
		return 0
	}
	return h.amount
}

// Total returns everything that was set aside under the hold's key when it
// was taken, its own amount included.
func (h *Hold) Total() store.Nano {
	if h == nil {
		return 0
	}
	return h.total
}

// Release gives the amount back. Only the first call counts.
func (h *Hold) Release() {
	if h == nil {
		return
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	if h.released {
		return
	}
	h.released = true
	h.e.total -= h.amount
	h.e.holds--
	if h.e.holds == 0 {
		delete(h.s.entries, h.key)
	}
}
