package badgerstore

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/store"
)

// BenchmarkRecordSpend measures spend records per second through the group
// commit on disk: "hot" sends every record to one customer, "spread" over
// 100,000 customers. 64 callers per core stand for concurrent requests.
// "webhooks" also writes a spend_tracked event per record to the outbox and
// checks every customer against a default budget that is never reached.
func BenchmarkRecordSpend(b *testing.B) {
	t0 := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	for _, load := range []string{"hot", "spread"} {
		for _, mode := range []string{"sync", "nosync", "sync+webhooks"} {
			b.Run(load+"/"+mode, func(b *testing.B) {
				opts := Options{Dir: b.TempDir(), SyncWrites: mode != "nosync"}
				if mode == "sync+webhooks" {
					opts.Alerting = store.Alerting{Enabled: true, DefaultBudgetID: "tier", Token: "tok", BudgetAlertTTL: time.Hour}
				}
				s, err := Open(opts)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.CreateBudget(b.Context(), store.Budget{BudgetID: "tier", MaxBudget: ptr[store.Nano](1 << 62)}); err != nil {
					b.Fatal(err)
				}
				defer func() {
					if err := s.Close(); err != nil {
						b.Error(err)
					}
				}()
				var seq atomic.Int64
				b.SetParallelism(64)
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						n := seq.Add(1)
						customer := "hot"
						if load == "spread" {
							customer = "c" + strconv.FormatInt(n*7919%100_000, 10)
						}
						_, err := s.RecordSpend(b.Context(), store.SpendLog{
							RequestID:        "req-" + strconv.FormatInt(n, 10),
							CustomerID:       customer,
							Model:            "gpt-4o-mini",
							Path:             "/v1/chat/completions",
							PromptTokens:     120,
							CompletionTokens: 80,
							TotalTokens:      200,
							Cost:             66_000,
							StartTime:        t0.Add(time.Duration(n) * time.Millisecond),
							EndTime:          t0.Add(time.Duration(n)*time.Millisecond + 400*time.Millisecond),
						})
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			})
		}
	}
}
