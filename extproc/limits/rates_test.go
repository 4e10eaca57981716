package limits

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// clock is a settable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(s string) *clock {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return &clock{t: t}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(s string) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func ptr(n int64) *int64 { return &n }

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func mustAdmit(t *testing.T, r *Rates, key string, lim Limits, tokens int64) *Ticket {
	t.Helper()
	tk, rej := r.Admit(key, lim, tokens)
	if rej != nil {
		t.Fatalf("Admit(%q, %d tokens) refused: %+v", key, tokens, rej)
	}
	if tk == nil {
		t.Fatalf("Admit(%q) returned no ticket", key)
	}
	return tk
}

func mustRefuse(t *testing.T, r *Rates, key string, lim Limits, tokens int64) *Rejection {
	t.Helper()
	tk, rej := r.Admit(key, lim, tokens)
	if rej == nil {
		tk.Cancel()
		t.Fatalf("Admit(%q, %d tokens) admitted, want a refusal", key, tokens)
	}
	return rej
}

func TestRPMFixedWindow(t *testing.T) {
	clk := newClock("2026-05-14T10:00:00.7Z")
	r := NewRates(Config{Now: clk.Now})
	lim := Limits{RPM: ptr(3)}
	var remaining []int64
	for range 3 {
		tk := mustAdmit(t, r, "alice", lim, 0)
		remaining = append(remaining, tk.RemainingRequests)
		tk.Done(0)
	}
	if diff := cmp.Diff([]int64{2, 1, 0}, remaining); diff != "" {
		t.Errorf("remaining requests after each admission (-want +got):\n%s", diff)
	}
	want := &Rejection{Kind: Requests, Limit: 3, Usage: Usage{RemainingRequests: 0, RemainingTokens: -1, ResetAt: at("2026-05-14T10:01:00Z")}}
	if diff := cmp.Diff(want, mustRefuse(t, r, "alice", lim, 0)); diff != "" {
		t.Errorf("fourth request (-want +got):\n%s", diff)
	}
	// Another customer has its own window.
	mustAdmit(t, r, "bob", lim, 0).Done(0)

	clk.Set("2026-05-14T10:00:59.999Z")
	mustRefuse(t, r, "alice", lim, 0)
	clk.Set("2026-05-14T10:01:00Z")
	tk := mustAdmit(t, r, "alice", lim, 0)
	if got, want := tk.ResetAt, at("2026-05-14T10:02:00Z"); !got.Equal(want) {
		t.Errorf("new window resets at %v, want %v", got, want)
	}
}

func TestTPMAllowWhileUnderThenReserve(t *testing.T) {
	clk := newClock("2026-05-14T10:00:00Z")
	r := NewRates(Config{Now: clk.Now})
	lim := Limits{TPM: ptr(100)}
	first := mustAdmit(t, r, "c", lim, 80)  // 0 < 100
	second := mustAdmit(t, r, "c", lim, 10) // 80 < 100
	third := mustAdmit(t, r, "c", lim, 10)  // 90 < 100
	rej := mustRefuse(t, r, "c", lim, 1)    // 100 is not < 100
	want := &Rejection{Kind: Tokens, Limit: 100, InFlight: 3, Usage: Usage{RemainingRequests: -1, RemainingTokens: 0, ResetAt: at("2026-05-14T10:01:00Z")}}
	if diff := cmp.Diff(want, rej); diff != "" {
		t.Errorf("refusal (-want +got):\n%s", diff)
	}
	first.Done(5) // the reservation of 80 becomes the 5 tokens used: 5+10+10
	tk := mustAdmit(t, r, "c", lim, 0)
	if got := tk.RemainingTokens; got != 75 {
		t.Errorf("remaining tokens after settling = %d, want 75", got)
	}
	tk.Done(0)
	second.Done(10)
	third.Done(10)
}

func TestTPMOfTwoLetsOneOfTenThrough(t *testing.T) {
	clk := newClock("2026-05-14T10:00:00Z")
	r := NewRates(Config{Now: clk.Now})
	lim := Limits{TPM: ptr(2)}
	var admitted []*Ticket
	for range 10 {
		if tk, rej := r.Admit("c", lim, 12); rej == nil {
			admitted = append(admitted, tk)
		}
	}
	if len(admitted) != 1 {
		t.Fatalf("%d of 10 admitted, want 1", len(admitted))
	}
	admitted[0].Done(20)
	mustRefuse(t, r, "c", lim, 12) // 20 used in this window
	clk.Advance(time.Minute)
	mustAdmit(t, r, "c", lim, 12).Done(20)
}

func TestTokenReservationsOutliveTheirWindow(t *testing.T) {
	clk := newClock("2026-05-14T10:00:00Z")
	r := NewRates(Config{Now: clk.Now})
	lim := Limits{TPM: ptr(50)}
	long := mustAdmit(t, r, "c", lim, 100)
	clk.Advance(90 * time.Second) // a new window, the request still in flight
	rej := mustRefuse(t, r, "c", lim, 1)
	if !rej.ResetAt.Equal(at("2026-05-14T10:02:30Z")) {
		t.Errorf("refusal resets at %v, want the new window's end 10:02:30", rej.ResetAt)
	}
	long.Done(3) // settles into the current window
	if tk := mustAdmit(t, r, "c", lim, 1); tk.RemainingTokens != 46 {
		t.Errorf("remaining = %d, want 50-3-1 = 46", tk.RemainingTokens)
	}
}

func TestDoneAfterTheWindowCountsInTheNextOne(t *testing.T) {
	clk := newClock("2026-05-14T10:00:00Z")
	r := NewRates(Config{Now: clk.Now})
	lim := Limits{TPM: ptr(7)}
	tk := mustAdmit(t, r, "c", lim, 0)
	clk.Advance(2 * time.Minute)
	tk.Done(7)
	rej := mustRefuse(t, r, "c", lim, 0)
	if !rej.ResetAt.Equal(at("2026-05-14T10:03:00Z")) {
		t.Errorf("window opened by Done resets at %v, want 10:03:00", rej.ResetAt)
	}
}

func TestParallel(t *testing.T) {
	clk := newClock("2026-05-14T10:00:00Z")
	r := NewRates(Config{Now: clk.Now})
	lim := Limits{MaxParallel: ptr(2)}
	a := mustAdmit(t, r, "c", lim, 0)
	b := mustAdmit(t, r, "c", lim, 0)
	rej := mustRefuse(t, r, "c", lim, 0)
	want := &Rejection{Kind: Parallel, Limit: 2, InFlight: 2, Usage: Usage{RemainingRequests: -1, RemainingTokens: -1, ResetAt: at("2026-05-14T10:01:00Z")}}
	if diff := cmp.Diff(want, rej); diff != "" {
		t.Errorf("third request (-want +got):\n%s", diff)
	}
	a.Done(0)
	a.Done(0) // finishing twice does not free a second slot
	a.Cancel()
	if got := r.InFlight("c"); got != 1 {
		t.Fatalf("in flight after finishing a three times = %d, want 1", got)
	}
	c := mustAdmit(t, r, "c", lim, 0)
	mustRefuse(t, r, "c", lim, 0)
	b.Cancel()
	c.Done(0)
	if got := r.InFlight("c"); got != 0 {
		t.Errorf("in flight at the end = %d, want 0", got)
	}
}

func TestCancelGivesBackTheRequest(t *testing.T) {
	clk := newClock("2026-05-14T10:00:00Z")
	r := NewRates(Config{Now: clk.Now})
	lim := Limits{RPM: ptr(1), TPM: ptr(10)}
	tk := mustAdmit(t, r, "c", lim, 10)
	mustRefuse(t, r, "c", lim, 0)
	tk.Cancel()
	mustAdmit(t, r, "c", lim, 10).Done(0) // request and tokens were given back

	clk.Advance(time.Minute)
	old := mustAdmit(t, r, "c", lim, 0)
	clk.Advance(time.Minute)
	cur := mustAdmit(t, r, "c", lim, 0)
	old.Cancel() // its window is gone: it must not free the new window's request
	rej := mustRefuse(t, r, "c", lim, 0)
	if rej.Kind != Requests {
		t.Errorf("refused by %v, want requests", rej.Kind)
	}
	cur.Done(0)
}

func TestRefusalChangesNothing(t *testing.T) {
	clk := newClock("2026-05-14T10:00:00Z")
	r := NewRates(Config{Now: clk.Now})
	lim := Limits{RPM: ptr(5), TPM: ptr(10)}
	tk := mustAdmit(t, r, "c", lim, 20)
	for range 3 {
		if rej := mustRefuse(t, r, "c", lim, 1); rej.Kind != Tokens || rej.RemainingRequests != 4 {
			t.Fatalf("refusal = %+v, want tokens with 4 requests left", rej)
		}
	}
	tk.Done(0)
	if next := mustAdmit(t, r, "c", lim, 0); next.RemainingRequests != 3 {
		t.Errorf("remaining requests = %d, want 3 (refused requests do not count)", next.RemainingRequests)
	}
}

func TestCheckOrder(t *testing.T) {
	clk := newClock("2026-05-14T10:00:00Z")
	r := NewRates(Config{Now: clk.Now})
	lim := Limits{RPM: ptr(1), TPM: ptr(1), MaxParallel: ptr(1)}
	mustAdmit(t, r, "c", lim, 5)
	if rej := mustRefuse(t, r, "c", lim, 5); rej.Kind != Parallel {
		t.Errorf("all exhausted: refused by %v, want max_parallel_requests first", rej.Kind)
	}
	lim.MaxParallel = nil
	if rej := mustRefuse(t, r, "c", lim, 5); rej.Kind != Requests {
		t.Errorf("rpm and tpm exhausted: refused by %v, want requests", rej.Kind)
	}
}

func TestZeroLimitRefusesAll(t *testing.T) {
	for name, lim := range map[string]Limits{
		"rpm":      {RPM: ptr(0)},
		"tpm":      {TPM: ptr(0)},
		"parallel": {MaxParallel: ptr(0)},
	} {
		t.Run(name, func(t *testing.T) {
			r := NewRates(Config{Now: newClock("2026-05-14T10:00:00Z").Now})
			mustRefuse(t, r, "c", lim, 0)
			if n := r.Len(); n != 0 {
				t.Errorf("%d entries kept for a refused first request, want 0", n)
			}
		})
	}
}

func TestNoLimitsKeepNoState(t *testing.T) {
	r := NewRates(Config{})
	tk, rej := r.Admit("c", Limits{}, 100)
	if tk != nil || rej != nil {
		t.Fatalf("Admit without limits = %v, %v; want nil, nil", tk, rej)
	}
	tk.Done(5) // a nil ticket is fine to finish
	tk.Cancel()
	if n := r.Len(); n != 0 {
		t.Errorf("Len = %d, want 0", n)
	}
	if got := r.Window(); got != time.Minute {
		t.Errorf("default window = %v, want 1m", got)
	}
}

func TestIdleEntriesAreEvicted(t *testing.T) {
	clk := newClock("2026-05-14T10:00:00Z")
	r := NewRates(Config{Now: clk.Now})
	lim := Limits{RPM: ptr(10), MaxParallel: ptr(5)}
	for i := range 1000 {
		mustAdmit(t, r, fmt.Sprint("c", i), lim, 0).Done(0)
	}
	open := mustAdmit(t, r, "busy", lim, 0) // still in flight a window later
	if n := r.Len(); n != 1001 {
		t.Fatalf("Len = %d, want 1001", n)
	}
	clk.Advance(time.Minute)
	// Every shard sweeps on its next admission; touch them all.
	for i := range 1000 {
		tk, _ := r.Admit(fmt.Sprint("d", i), Limits{MaxParallel: ptr(1)}, 0)
		tk.Cancel()
	}
	if n := r.Len(); n != 1 {
		t.Errorf("Len after a window = %d, want 1 (the key with a request in flight)", n)
	}
	open.Done(0)
	if got := r.InFlight("busy"); got != 0 {
		t.Errorf("in flight = %d, want 0", got)
	}
}

func TestConcurrentBursts(t *testing.T) {
	cases := []struct {
		name   string
		lim    Limits
		tokens int64
		want   int64
	}{
		{"tpm 2", Limits{TPM: ptr(2)}, 5, 1},
		{"rpm 10", Limits{RPM: ptr(10)}, 0, 10},
		{"parallel 3, none finishing", Limits{MaxParallel: ptr(3)}, 0, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRates(Config{Now: newClock("2026-05-14T10:00:00Z").Now})
			var admitted atomic.Int64
			var wg sync.WaitGroup
			tickets := make(chan *Ticket, 200)
			for range 200 {
				wg.Go(func() {
					if tk, rej := r.Admit("hot", tc.lim, tc.tokens); rej == nil {
						admitted.Add(1)
						tickets <- tk
					}
				})
			}
			wg.Wait()
			close(tickets)
			if got := admitted.Load(); got != tc.want {
				t.Errorf("%d of 200 admitted, want %d", got, tc.want)
			}
			for tk := range tickets {
				tk.Done(0)
			}
			if got := r.InFlight("hot"); got != 0 {
				t.Errorf("in flight after all finished = %d, want 0", got)
			}
		})
	}
}

// TestParallelNeverExceeded runs admissions and completions concurrently and
// checks the in-flight count never passes the limit and ends at zero.
func TestParallelNeverExceeded(t *testing.T) {
	r := NewRates(Config{})
	lim := Limits{MaxParallel: ptr(2)}
	var cur, peak, served atomic.Int64
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			for j := range 200 {
				tk, rej := r.Admit("c", lim, 0)
				if rej != nil {
					continue
				}
				n := cur.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				served.Add(1)
				cur.Add(-1)
				if (i+j)%2 == 0 {
					tk.Done(1)
				} else {
					tk.Cancel()
				}
				tk.Done(1) // a second finish is ignored
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > 2 || p < 1 {
		t.Errorf("peak in flight = %d, want 1 or 2", p)
	}
	if served.Load() == 0 {
		t.Error("nothing was admitted")
	}
	if got := r.InFlight("c"); got != 0 {
		t.Errorf("in flight at the end = %d, want 0", got)
	}
}

func TestKindString(t *testing.T) {
	got := []string{Requests.String(), Tokens.String(), Parallel.String(), Kind(0).String()}
	if diff := cmp.Diff([]string{"requests", "tokens", "max_parallel_requests", "unknown"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
