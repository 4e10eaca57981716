package limits

import (
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/tollgate-dev/tollgate/store"
)

// The admission path as extproc runs it for a customer with every limit set:
// Admit (parallel, rpm, tpm), a strict-budget reservation, then Done and
// Release. "hot" sends every request to one customer, "spread" over 100,000.
func BenchmarkAdmission(b *testing.B) {
	for _, mode := range []struct {
		name string
		keys int
	}{{"hot", 1}, {"spread", 100_000}} {
		keys := make([]string, mode.keys)
		for i := range keys {
			keys[i] = "customer-" + strconv.Itoa(i)
		}
		lim := Limits{RPM: ptr(1 << 40), TPM: ptr(1 << 50), MaxParallel: ptr(1 << 20)}
		b.Run(mode.name, func(b *testing.B) {
			r := NewRates(Config{})
			l := NewLedger()
			var next atomic.Uint64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := keys[next.Add(1)%uint64(len(keys))]
					tk, rej := r.Admit(key, lim, 1200)
					if rej != nil {
						b.Errorf("refused: %+v", rej)
						return
					}
					h := l.Reserve(key, store.Nano(5_000))
					tk.Done(900)
					h.Release()
				}
			})
		})
	}
}

func BenchmarkRatesAdmit(b *testing.B) {
	for _, mode := range []struct {
		name string
		keys int
	}{{"hot", 1}, {"spread", 100_000}} {
		keys := make([]string, mode.keys)
		for i := range keys {
			keys[i] = "customer-" + strconv.Itoa(i)
		}
		lim := Limits{RPM: ptr(1 << 40), TPM: ptr(1 << 50)}
		b.Run(mode.name, func(b *testing.B) {
			r := NewRates(Config{})
			var next atomic.Uint64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					tk, _ := r.Admit(keys[next.Add(1)%uint64(len(keys))], lim, 100)
					tk.Done(100)
				}
			})
		})
	}
}
