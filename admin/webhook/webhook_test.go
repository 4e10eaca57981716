package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/badgerstore"
)

const testSecret = "test-secret"

// hit is one request a receiver got.
type hit struct {
	id       string
	customer string
	event    string
	verified error
	at       time.Time
	header   http.Header
}

// receiver is an httptest webhook that records every request and answers
// with respond (200 when nil).
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	hits    []hit
	respond func(h hit, n int) (status int, header http.Header) // n: earlier hits with this id
}

func newReceiver(t *testing.T, respond func(h hit, n int) (int, http.Header)) *receiver {
	r := &receiver{respond: respond}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			t.Errorf("receiver: read body: %v", err)
			return
		}
		var p struct {
			CustomerID string `json:"customer_id"`
			Event      string `json:"event"`
			Message    string `json:"event_message"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("receiver: body %s: %v", body, err)
		}
		h := hit{
			id: req.Header.Get(HeaderEventID), customer: p.CustomerID, event: p.Event,
			verified: Verify(testSecret, req.Header, body, time.Now(), time.Minute),
			at:       time.Now(), header: req.Header.Clone(),
		}
		r.mu.Lock()
		n := 0
		for _, earlier := range r.hits {
			if earlier.id == h.id {
				n++
			}
		}
		r.hits = append(r.hits, h)
		r.mu.Unlock()
		status, header := http.StatusOK, http.Header(nil)
		if r.respond != nil {
			status, header = r.respond(h, n)
		}
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() []hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.hits)
}

// openStore opens an in-memory store with alerting on; the worker started by
// start is stopped before it closes.
func openStore(t *testing.T) *badgerstore.Store {
	t.Helper()
	st, err := badgerstore.Open(badgerstore.Options{InMemory: true, Alerting: store.Alerting{Enabled: true, Token: "tok"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}

// start runs a worker until the test ends.
func start(t *testing.T, cfg Config, ob Outbox) {
	t.Helper()
	if cfg.Secret == "" {
		cfg.Secret = testSecret
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	w := New(cfg, ob)
	go func() {
		w.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// spend records one priced request and returns its spend_tracked event.
func spend(t *testing.T, st *badgerstore.Store, requestID, customer string) store.Event {
	t.Helper()
	res, err := st.RecordSpend(t.Context(), store.SpendLog{RequestID: requestID, CustomerID: customer, Cost: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 1 {
		t.Fatalf("RecordSpend %s: %d events, want 1", requestID, len(res.Events))
	}
	return res.Events[0]
}

// eventually polls cond every 5 ms for at most 20 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func stats(t *testing.T, st *badgerstore.Store) store.OutboxStats {
	t.Helper()
	s, err := st.OutboxStats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func fast(url string) Config {
	return Config{URL: url, MaxAttempts: 4, BackoffMin: time.Millisecond, BackoffMax: 4 * time.Millisecond, Timeout: 5 * time.Second}
}

// TestWorkerDeliversInOrder: every event arrives once, signed, with its id,
// in order per customer.
func TestWorkerDeliversInOrder(t *testing.T) {
	st := openStore(t)
	rcv := newReceiver(t, nil)
	want := map[string][]string{}
	for i := range 5 {
		for _, c := range []string{"alice", "bob", "carol"} {
			want[c] = append(want[c], spend(t, st, fmt.Sprintf("%s-%d", c, i), c).ID)
		}
	}
	start(t, fast(rcv.srv.URL), st)
	eventually(t, "15 deliveries", func() bool { return stats(t, st).Delivered == 15 })

	got := map[string][]string{}
	for _, h := range rcv.got() {
		got[h.customer] = append(got[h.customer], h.id)
		if h.verified != nil {
			t.Errorf("event %s: signature: %v", h.id, h.verified)
		}
		if ct := h.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("event %s: Content-Type %q", h.id, ct)
		}
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("deliveries per customer (-want +got):\n%s", d)
	}
	if d := cmp.Diff(store.OutboxStats{Delivered: 15}, stats(t, st)); d != "" {
		t.Errorf("stats (-want +got):\n%s", d)
	}
}

// TestWorkerOutcomes: any 2xx delivers; anything else is retried with the
// same event id until MaxAttempts, then the event is dead.
func TestWorkerOutcomes(t *testing.T) {
	tests := []struct {
		name         string
		status       int
		wantAttempts int
		wantDead     string
	}{
		{"200", http.StatusOK, 1, ""},
		{"204 counts as delivered", http.StatusNoContent, 1, ""},
		{"500 forever", http.StatusInternalServerError, 4, "HTTP 500 Internal Server Error"},
		{"404 forever", http.StatusNotFound, 4, "HTTP 404 Not Found"},
		{"a redirect is not followed", http.StatusFound, 4, "HTTP 302 Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t)
			rcv := newReceiver(t, func(hit, int) (int, http.Header) {
				return tt.status, http.Header{"Location": {"http://127.0.0.1:1/elsewhere"}}
			})
			e := spend(t, st, "r1", "alice")
			start(t, fast(rcv.srv.URL), st)
			eventually(t, "the outcome", func() bool { s := stats(t, st); return s.Delivered+s.Dead == 1 })
			hits := rcv.got()
			if len(hits) != tt.wantAttempts {
				t.Fatalf("%d attempts, want %d", len(hits), tt.wantAttempts)
			}
			for _, h := range hits {
				if h.id != e.ID || h.verified != nil {
					t.Errorf("attempt with id %q (signature %v), want %q, verified", h.id, h.verified, e.ID)
				}
			}
			dead, err := st.DeadEvents(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			var gotDead string
			if len(dead) == 1 {
				gotDead = dead[0].LastError
				if dead[0].Attempts != tt.wantAttempts {
					t.Errorf("dead event records %d attempts, want %d", dead[0].Attempts, tt.wantAttempts)
				}
			}
			if gotDead != tt.wantDead {
				t.Errorf("dead with %q, want %q", gotDead, tt.wantDead)
			}
		})
	}
}

// TestWorkerRetriesThenDelivers: a receiver that fails twice then accepts;
// each retry is signed afresh and counted once as retried.
func TestWorkerRetriesThenDelivers(t *testing.T) {
	st := openStore(t)
	rcv := newReceiver(t, func(_ hit, n int) (int, http.Header) {
		if n < 2 {
			return http.StatusServiceUnavailable, nil
		}
		return http.StatusOK, nil
	})
	for i := range 3 {
		spend(t, st, fmt.Sprint("r", i), fmt.Sprint("c", i))
	}
	start(t, fast(rcv.srv.URL), st)
	eventually(t, "3 deliveries", func() bool { return stats(t, st).Delivered == 3 })
	if d := cmp.Diff(store.OutboxStats{Delivered: 3, Retried: 3}, stats(t, st)); d != "" {
		t.Errorf("stats (-want +got):\n%s", d)
	}
	attempts := map[string]int{}
	for _, h := range rcv.got() {
		attempts[h.id]++
		if h.verified != nil {
			t.Errorf("attempt of %s: signature: %v", h.id, h.verified)
		}
	}
	for id, n := range attempts {
		if n != 3 {
			t.Errorf("event %s: %d attempts, want 3", id, n)
		}
	}
}

// TestWorkerHonoursRetryAfter: a 1-second Retry-After beats a 1 ms backoff.
func TestWorkerHonoursRetryAfter(t *testing.T) {
	st := openStore(t)
	rcv := newReceiver(t, func(_ hit, n int) (int, http.Header) {
		if n == 0 {
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}}
		}
		return http.StatusOK, nil
	})
	spend(t, st, "r1", "alice")
	cfg := fast(rcv.srv.URL)
	cfg.BackoffMax = 10 * time.Second
	start(t, cfg, st)
	eventually(t, "the delivery", func() bool { return stats(t, st).Delivered == 1 })
	hits := rcv.got()
	if len(hits) != 2 {
		t.Fatalf("%d attempts, want 2", len(hits))
	}
	if gap := hits[1].at.Sub(hits[0].at); gap < time.Second {
		t.Errorf("retried after %v, want at least the 1s Retry-After", gap)
	}
}

// TestWorkerHeadOfLinePerCustomer: while alice's first event keeps failing,
// bob's events are delivered; alice's then follow in order.
func TestWorkerHeadOfLinePerCustomer(t *testing.T) {
	st := openStore(t)
	var bobDone atomic.Bool
	rcv := newReceiver(t, func(h hit, _ int) (int, http.Header) {
		if h.customer == "alice" && !bobDone.Load() {
			return http.StatusInternalServerError, nil
		}
		return http.StatusOK, nil
	})
	var alice, bob []string
	for i := range 3 {
		alice = append(alice, spend(t, st, fmt.Sprint("a", i), "alice").ID)
		bob = append(bob, spend(t, st, fmt.Sprint("b", i), "bob").ID)
	}
	cfg := fast(rcv.srv.URL)
	cfg.MaxAttempts = 1000 // alice's head outlives bob's three deliveries
	start(t, cfg, st)
	eventually(t, "bob's deliveries", func() bool {
		n := 0
		for _, h := range rcv.got() {
			if h.customer == "bob" {
				n++
			}
		}
		return n == 3
	})
	bobDone.Store(true)
	eventually(t, "all deliveries", func() bool { return stats(t, st).Delivered == 6 })

	var aliceGot []string
	for _, h := range rcv.got() {
		if h.customer == "alice" && (len(aliceGot) == 0 || aliceGot[len(aliceGot)-1] != h.id) {
			aliceGot = append(aliceGot, h.id)
		}
	}
	if d := cmp.Diff(alice, aliceGot); d != "" {
		t.Errorf("alice's events in arrival order, retries collapsed (-want +got):\n%s", d)
	}
}

// TestWorkerDeadAndReplay: an event a receiver refuses goes dead after the
// bounded attempts without holding up the customer's later events, and is
// delivered under the same id after a replay.
func TestWorkerDeadAndReplay(t *testing.T) {
	st := openStore(t)
	poison := spend(t, st, "r1", "alice")
	var accept atomic.Bool
	rcv := newReceiver(t, func(h hit, _ int) (int, http.Header) {
		if h.id == poison.ID && !accept.Load() {
			return http.StatusInternalServerError, nil
		}
		return http.StatusOK, nil
	})
	next := spend(t, st, "r2", "alice")
	start(t, fast(rcv.srv.URL), st)
	eventually(t, "one dead, one delivered", func() bool {
		s := stats(t, st)
		return s.Dead == 1 && s.Delivered == 1
	})
	dead, err := st.DeadEvents(t.Context())
	if err != nil || len(dead) != 1 || dead[0].ID != poison.ID || dead[0].Attempts != 4 {
		t.Fatalf("DeadEvents = %+v, %v; want %s after 4 attempts", dead, err, poison.ID)
	}

	accept.Store(true)
	if _, err := st.ReplayDead(t.Context(), []string{poison.ID}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replayed delivery", func() bool { return stats(t, st).Delivered == 2 })
	if d := cmp.Diff(store.OutboxStats{Delivered: 2, Retried: 1}, stats(t, st)); d != "" {
		t.Errorf("stats (-want +got):\n%s", d)
	}
	var order []string
	for _, h := range rcv.got() {
		order = append(order, h.id)
	}
	want := []string{poison.ID, poison.ID, poison.ID, poison.ID, next.ID, poison.ID}
	if d := cmp.Diff(want, order); d != "" {
		t.Errorf("requests (-want +got):\n%s", d)
	}
}

// TestWorkerResumes: a worker stopped while the receiver is down leaves the
// events pending; the next worker delivers them all.
func TestWorkerResumes(t *testing.T) {
	st := openStore(t)
	var up atomic.Bool
	rcv := newReceiver(t, func(hit, int) (int, http.Header) {
		if !up.Load() {
			return http.StatusBadGateway, nil
		}
		return http.StatusOK, nil
	})
	for i := range 4 {
		spend(t, st, fmt.Sprint("r", i), fmt.Sprint("c", i%2))
	}
	cfg := fast(rcv.srv.URL)
	cfg.MaxAttempts = 1_000_000
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		New(cfg, st).Run(ctx)
		close(done)
	}()
	eventually(t, "failed attempts", func() bool { return len(rcv.got()) >= 4 })
	cancel()
	<-done
	if s := stats(t, st); s.Pending != 4 || s.Delivered != 0 || s.Dead != 0 {
		t.Fatalf("after stopping: %+v, want 4 pending", s)
	}
	up.Store(true)
	start(t, fast(rcv.srv.URL), st)
	eventually(t, "4 deliveries", func() bool { return stats(t, st).Delivered == 4 })
}

// flakyOutbox fails the first RecordDeliveries call.
type flakyOutbox struct {
	Outbox
	failed atomic.Bool
}

var _ Outbox = (*flakyOutbox)(nil)

func (f *flakyOutbox) RecordDeliveries(ctx context.Context, ds []store.Delivery) error {
	if !f.failed.Swap(true) {
		return errors.New("disk on fire")
	}
	return f.Outbox.RecordDeliveries(ctx, ds)
}

// TestWorkerStoreErrorDoesNotRedeliver: an outcome the store failed to record
// is kept and recorded later, without delivering the event again meanwhile.
func TestWorkerStoreErrorDoesNotRedeliver(t *testing.T) {
	st := openStore(t)
	rcv := newReceiver(t, nil)
	spend(t, st, "r1", "alice")
	spend(t, st, "r2", "alice")
	start(t, fast(rcv.srv.URL), &flakyOutbox{Outbox: st})
	eventually(t, "2 deliveries", func() bool { return stats(t, st).Delivered == 2 })
	if n := len(rcv.got()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestSend(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		wantStatus int
		wantErr    string
	}{
		{"accepted", http.StatusOK, 200, ""},
		{"refused, not retried", http.StatusInternalServerError, 500, "HTTP 500 Internal Server Error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := newReceiver(t, func(hit, int) (int, http.Header) { return tt.status, nil })
			w := New(Config{URL: rcv.srv.URL, Secret: testSecret}, nil)
			status, err := w.Send(t.Context(), "evt_test_1", Payload{Event: "budget_crossed", EventGroup: "user"})
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if status != tt.wantStatus || gotErr != tt.wantErr {
				t.Errorf("Send = %d, %q; want %d, %q", status, gotErr, tt.wantStatus, tt.wantErr)
			}
			hits := rcv.got()
			if len(hits) != 1 || hits[0].id != "evt_test_1" || hits[0].verified != nil {
				t.Errorf("receiver got %+v, want one signed evt_test_1", hits)
			}
		})
	}
	t.Run("no receiver", func(t *testing.T) {
		w := New(Config{URL: "http://127.0.0.1:1/hook?token=secret"}, nil)
		status, err := w.Send(t.Context(), "evt_test_2", Payload{})
		if status != 0 || err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("Send = %d, %v; want 0 and an error that does not show the URL", status, err)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"120", 2 * time.Minute, true},
		{" 0 ", 0, true},
		{"Sun, 01 Mar 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Sunday, 01-Mar-26 12:01:00 GMT", time.Minute, true},
		{"Sun, 01 Mar 2026 11:00:00 GMT", 0, true},
		{"99999999999999999999", 0, false},
		{"9999999999999", maxRetryAfter * time.Second, true},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := retryAfter(tt.in, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"120", "Sun, 01 Mar 2026 12:00:30 GMT", "-1", "", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, ok := retryAfter(s, time.Unix(1_800_000_000, 0)); ok && d < 0 {
			t.Errorf("retryAfter(%q) = %v, negative", s, d)
		}
	})
}

func TestBackoff(t *testing.T) {
	w := New(Config{URL: "http://x"}, nil)
	const lo, hi = 100 * time.Millisecond, 2 * time.Second
	retryAfterResp := func(v string) *http.Response {
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Header: http.Header{"Retry-After": {v}}}
	}
	t.Run("Retry-After wins", func(t *testing.T) {
		if got := w.backoff(lo, hi, 0, retryAfterResp("1")); got != time.Second {
			t.Errorf("backoff = %v, want 1s", got)
		}
	})
	t.Run("Retry-After is capped", func(t *testing.T) {
		if got := w.backoff(lo, hi, 0, retryAfterResp("3600")); got != hi {
			t.Errorf("backoff = %v, want %v", got, hi)
		}
	})
	for attempt, ceiling := range []time.Duration{lo, 2 * lo, 4 * lo, 8 * lo, 16 * lo, hi, hi} {
		t.Run(fmt.Sprint("attempt ", attempt), func(t *testing.T) {
			seen := map[time.Duration]bool{}
			for range 100 {
				d := w.backoff(lo, hi, attempt, &http.Response{StatusCode: 500, Header: http.Header{}})
				if d < ceiling/2 || d > ceiling {
					t.Fatalf("backoff = %v, want within [%v, %v]", d, ceiling/2, ceiling)
				}
				seen[d] = true
			}
			if len(seen) < 50 {
				t.Errorf("100 waits took only %d values: no jitter", len(seen))
			}
		})
	}
	t.Run("huge attempt numbers stay at the maximum", func(t *testing.T) {
		if d := w.backoff(lo, hi, 200, nil); d < hi/2 || d > hi {
			t.Errorf("backoff = %v, want within [%v, %v]", d, hi/2, hi)
		}
	})
}
