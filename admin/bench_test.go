package admin_test

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/admin"
	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/badgerstore"
)

const (
	// fullCustomers is the dataset: /customer/info p99 ≤ 2 ms with
	// 1,000,000 customers stored.
	fullCustomers = 1_000_000
	// ciCustomers is the dataset when the benchmark runs once (-benchtime=1x,
	// as in make test), so CI stays quick. TOLLGATE_BENCH_FULL=1 forces the full one.
	ciCustomers = 10_000
	// queried customers are spread over the key space; each is on a shared
	// budget tier, so every lookup also reads the budget, as most real ones do.
	queried = 1_000
	// tollgateMemoryLimit and tollgateGCPercent mirror the soft memory limit
	// and GOGC the tollgate binary sets.
	tollgateMemoryLimit = 100 << 20
	tollgateGCPercent   = 50
)

// BenchmarkCustomerInfo measures GET /customer/info through the admin handler
// (no network) against a Badger store holding 1,000,000 customers, and
// reports p50/p99 latency and the process RSS. The dataset is 10,000 customers
// under -benchtime=1x unless TOLLGATE_BENCH_FULL=1; building the full one takes
// about a minute on 2 cores (RecordSpend from 256 goroutines, group-committed,
// sync off, which only the build needs).
func BenchmarkCustomerInfo(b *testing.B) {
	n := fullCustomers
	if bt := flag.Lookup("test.benchtime"); bt != nil && bt.Value.String() == "1x" && os.Getenv("TOLLGATE_BENCH_FULL") != "1" {
		n = ciCustomers
	}
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(tollgateMemoryLimit))
	defer debug.SetGCPercent(debug.SetGCPercent(tollgateGCPercent))

	st, err := badgerstore.Open(badgerstore.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			b.Error(err)
		}
	}()
	start := time.Now()
	ids := seedCustomers(b, st, n)
	b.Logf("stored %d customers in %s", n, time.Since(start).Round(time.Millisecond))
	runtime.GC()

	const key = "sk-bench"
	h := admin.New(admin.Config{MasterKey: key}, st)
	reqs := make([]*http.Request, len(ids))
	for i, id := range ids {
		r := httptest.NewRequest(http.MethodGet, "/customer/info?end_user_id="+id, nil)
		r.Header.Set("Authorization", "Bearer "+key)
		reqs[i] = r
	}
	var lat []time.Duration
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		t0 := time.Now()
		h.ServeHTTP(w, reqs[i%len(reqs)])
		lat = append(lat, time.Since(t0))
		if w.Code != http.StatusOK || !bytes.Contains(w.Body.Bytes(), []byte(`"litellm_budget_table":{`)) {
			b.Fatalf("customer/info: %d %s", w.Code, w.Body)
		}
		i++
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2]), "p50-ns")
	b.ReportMetric(float64(lat[(len(lat)*99+99)/100-1]), "p99-ns")
	b.ReportMetric(float64(n), "customers")
	// Badger mmaps its tables, so RSS is the Go heap and runtime (RssAnon)
	// plus table pages the kernel can drop under pressure (RssFile).
	b.ReportMetric(float64(procStatus(b, "RssAnon"))/(1<<20), "rss-anon-MiB")
	b.ReportMetric(float64(procStatus(b, "RssFile"))/(1<<20), "rss-file-MiB")
}

// seedCustomers stores n customers through RecordSpend, the path every
// customer takes on its first request, and puts queried of them, spread over
// the key space, on one budget tier. It returns the queried ids.
func seedCustomers(b *testing.B, st *badgerstore.Store, n int) []string {
	ctx := context.Background()
	t0 := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	const workers = 256
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for c := w; c < n; c += workers {
				_, err := st.RecordSpend(ctx, store.SpendLog{
					RequestID:        "seed-" + strconv.Itoa(c),
					CustomerID:       customer(c),
					Model:            "gpt-4o-mini",
					Path:             "/v1/chat/completions",
					PromptTokens:     120,
					CompletionTokens: 80,
					TotalTokens:      200,
					Cost:             66_000,
					StartTime:        t0.Add(time.Duration(c) * time.Millisecond),
					EndTime:          t0.Add(time.Duration(c)*time.Millisecond + 400*time.Millisecond),
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatalf("seed: %v", err)
	}
	maxBudget := store.Nano(10_000_000_000)
	tier, err := st.CreateBudget(ctx, store.Budget{BudgetID: "tier-pro", MaxBudget: &maxBudget})
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, 0, queried)
	for q := range min(queried, n) {
		id := customer(q * n / min(queried, n))
		if _, err := st.UpdateCustomer(ctx, id, store.CustomerPatch{BudgetID: &tier.BudgetID}); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func customer(i int) string { return fmt.Sprintf("customer-%07d", i) }

// procStatus returns a "NAME: N kB" line of /proc/self/status, in bytes.
func procStatus(b *testing.B, name string) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("%s %q: %v", name, v, err)
			}
			return kb << 10
		}
	}
	b.Fatalf("no %s in /proc/self/status", name)
	return 0
}
