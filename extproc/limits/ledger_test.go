package limits

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/store"
)

func TestLedgerTotals(t *testing.T) {
	l := NewLedger()
	a := l.Reserve("c", 10)
	b := l.Reserve("c", 5)
	other := l.Reserve("d", 7)
	neg := l.Reserve("c", -3)
	got := []store.Nano{a.Total(), b.Total(), other.Total(), neg.Total(), neg.Amount(), l.Reserved("c")}
	if diff := cmp.Diff([]store.Nano{10, 15, 7, 15, 0, 15}, got); diff != "" {
		t.Errorf("totals (-want +got):\n%s", diff)
	}
	a.Release()
	a.Release() // a second release gives nothing back
	if got := l.Reserved("c"); got != 5 {
		t.Errorf("after releasing a = %d, want 5", got)
	}
	b.Release()
	neg.Release()
	other.Release()
	if n, r := l.Len(), l.Reserved("c"); n != 0 || r != 0 {
		t.Errorf("after releasing all: Len %d, Reserved %d; want 0, 0", n, r)
	}
	var nilHold *Hold
	nilHold.Release()
	if nilHold.Total() != 0 || nilHold.Amount() != 0 {
		t.Error("a nil hold reports money")
	}
}

// fakeSpend is the store's committed spend for one customer.
type fakeSpend struct {
	mu    sync.Mutex
	spend store.Nano
}

func (f *fakeSpend) read() store.Nano {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.spend
}

func (f *fakeSpend) commit(c store.Nano) {
	f.mu.Lock()
	f.spend += c
	f.mu.Unlock()
}

// TestLedgerProtocolKeepsSpendWithinBudget runs the protocol in Ledger's doc
// comment with many concurrent requests whose real cost is at most their
// worst case: the committed spend never passes the budget.
func TestLedgerProtocolKeepsSpendWithinBudget(t *testing.T) {
	const (
		budget    = store.Nano(1_000)
		worstCase = store.Nano(100)
	)
	for round := range 20 {
		l := NewLedger()
		st := &fakeSpend{}
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for i := range 300 {
			wg.Go(func() {
				h := l.Reserve("c", worstCase)
				defer h.Release()
				if st.read()+h.Total() > budget {
					return
				}
				admitted.Add(1)
				runtime.Gosched() // the upstream call
				st.commit(store.Nano((i*37+round)%101) * worstCase / 100)
			})
		}
		wg.Wait()
		if got := st.read(); got > budget {
			t.Fatalf("round %d: spend %d passed the budget %d", round, got, budget)
		}
		if admitted.Load() == 0 {
			t.Fatalf("round %d: nothing admitted", round)
		}
		if l.Len() != 0 {
			t.Fatalf("round %d: %d keys still hold reservations", round, l.Len())
		}
	}
}
