package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tollgate-dev/tollgate/store"
)

// OutboxStore is a backend with the webhook outbox.
type OutboxStore interface {
	store.Store
	store.Outbox
}

// outboxOpener opens a fresh store with the alerting policy a and clock now.
type outboxOpener func(t *testing.T, a store.Alerting, now func() time.Time) OutboxStore

// RunOutbox runs the behaviour tests of the outbox and of the events
// RecordSpend writes. open must return a fresh, empty store that uses a as its
// alerting policy and now as its clock; the suite closes it.
func RunOutbox(t *testing.T, open func(t *testing.T, a store.Alerting, now func() time.Time) OutboxStore) {
	newStore := func(t *testing.T, a store.Alerting, now func() time.Time) OutboxStore {
		t.Helper()
		s := open(t, a, now)
		t.Cleanup(func() {
			if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, open outboxOpener)
	}{
		{"EventsOff", testEventsOff},
		{"SpendTracked", testSpendTracked},
		{"EventsInSpendTransaction", testEventsInSpendTransaction},
		{"BudgetEventsOnceUnderConcurrency", testBudgetEventsOnce},
		{"EventOrder", testEventOrder},
		{"OutboxHeads", testOutboxHeads},
		{"DeliveriesAndReplay", testDeliveriesAndReplay},
		{"AlertWindowsAndTTL", testAlertWindowsAndTTL},
		{"ProjectedLimit", testProjectedLimit},
		{"EventsReady", testEventsReady},
		{"OutboxClosed", testOutboxClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newStore)
		})
	}
}

// eventTime is the clock of the outbox tests unless a test moves it.
var eventTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testToken is the hashed proxy key the tests configure.
const testToken = "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b"

func on() store.Alerting {
	return store.Alerting{Enabled: true, Token: testToken, BudgetAlertTTL: 24 * time.Hour}
}

func fixed(t time.Time) func() time.Time { return func() time.Time { return t } }

// clock is a settable clock safe to read from a backend's writer goroutine.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// bySeq compares event lists as sets: delivery order across customers is the
// backend's.
var bySeq = cmpopts.SortSlices(func(x, y store.Event) bool { return x.Seq < y.Seq })

// ignoreIDs leaves out what the backend assigns (ID, Seq), checked apart.
var ignoreIDs = cmpopts.IgnoreFields(store.Event{}, "ID", "Seq")

// drain delivers every pending event, head by head as a worker would, and
// returns them in delivery order.
func drain(t *testing.T, s OutboxStore) []store.Event {
	t.Helper()
	var out []store.Event
	for {
		heads, err := s.OutboxHeads(t.Context(), "", 1000)
		if err != nil {
			t.Fatalf("OutboxHeads: %v", err)
		}
		if len(heads) == 0 {
			return out
		}
		ds := make([]store.Delivery, len(heads))
		for i, h := range heads {
			ds[i] = store.Delivery{Event: h, Attempts: 1}
		}
		if err := s.RecordDeliveries(t.Context(), ds); err != nil {
			t.Fatalf("RecordDeliveries: %v", err)
		}
		out = append(out, heads...)
	}
}

func mustStats(t *testing.T, s OutboxStore) store.OutboxStats {
	t.Helper()
	st, err := s.OutboxStats(t.Context())
	if err != nil {
		t.Fatalf("OutboxStats: %v", err)
	}
	return st
}

func testEventsOff(t *testing.T, open outboxOpener) {
	s := open(t, store.Alerting{Token: testToken}, fixed(eventTime))
	mustCreateCustomer(t, s, store.Customer{UserID: "alice"}, &store.Budget{MaxBudget: ptr[store.Nano](1)})
	res := mustRecordSpend(t, s, store.SpendLog{RequestID: "r1", CustomerID: "alice", Cost: 5})
	if len(res.Events) != 0 {
		t.Errorf("Events = %+v, want none with alerting off", res.Events)
	}
	diff(t, "stats", store.OutboxStats{}, mustStats(t, s))
	if heads, err := s.OutboxHeads(t.Context(), "", 10); err != nil || len(heads) != 0 {
		t.Errorf("OutboxHeads = %+v, %v; want none", heads, err)
	}
}

func testSpendTracked(t *testing.T, open outboxOpener) {
	s := open(t, on(), fixed(eventTime))
	mustCreateBudget(t, s, store.Budget{BudgetID: "tier", MaxBudget: ptr[store.Nano](4_000_000_000), SoftBudget: ptr[store.Nano](3_000_000_000)})
	mustCreateCustomer(t, s, store.Customer{UserID: "tiered", BudgetID: ptr("tier")}, nil)
	tracked := func(customer, requestID string, cost store.Nano, message string) store.Event {
		return store.Event{
			Type: store.EventSpendTracked, CustomerID: customer, RequestID: requestID, Spend: cost,
			Token: ptr(testToken), Message: message, CreatedAt: eventTime,
		}
	}
	withTier := func(e store.Event) store.Event {
		e.MaxBudget, e.SoftBudget = ptr[store.Nano](4_000_000_000), ptr[store.Nano](3_000_000_000)
		return e
	}
	steps := []struct {
		name    string
		log     store.SpendLog
		want    []store.Event
		wantErr error
	}{
		{
			name: "the seed's request",
			log:  store.SpendLog{RequestID: "r1", CustomerID: "krrish12", Cost: 1_112_000},
			want: []store.Event{tracked("krrish12", "r1", 1_112_000, "Customer spend tracked. Customer=krrish12, spend=0.001112")},
		},
		{
			name: "a priced request that cost nothing",
			log:  store.SpendLog{RequestID: "r2", CustomerID: "krrish12"},
			want: []store.Event{tracked("krrish12", "r2", 0, "Customer spend tracked. Customer=krrish12, spend=0.0")},
		},
		{
			name: "tiny costs use Python's float repr",
			log:  store.SpendLog{RequestID: "r3", CustomerID: "krrish12", Cost: 10_000},
			want: []store.Event{tracked("krrish12", "r3", 10_000, "Customer spend tracked. Customer=krrish12, spend=1e-05")},
		},
		{
			name: "unpriced request: no event",
			log:  store.SpendLog{RequestID: "r4", CustomerID: "krrish12", Unpriced: true},
		},
		{
			name: "request without a customer: no event",
			log:  store.SpendLog{RequestID: "r5", Cost: 7},
		},
		{
			name:    "a repeated request id writes no event",
			log:     store.SpendLog{RequestID: "r1", CustomerID: "krrish12", Cost: 1_112_000},
			wantErr: store.ErrDuplicateRequest,
		},
		{
			name: "a customer on a tier carries its limits",
			log:  store.SpendLog{RequestID: "r6", CustomerID: "tiered", Cost: 1_000_000_000},
			want: []store.Event{withTier(tracked("tiered", "r6", 1_000_000_000, "Customer spend tracked. Customer=tiered, spend=1.0"))},
		},
	}
	var all []store.Event
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			res, err := s.RecordSpend(t.Context(), st.log)
			checkErr(t, "RecordSpend", err, st.wantErr)
			diff(t, "events", st.want, res.Events, ignoreIDs, cmpopts.EquateEmpty())
			all = append(all, res.Events...)
		})
	}
	seen := map[string]bool{}
	for i, e := range all {
		if e.ID == "" || seen[e.ID] {
			t.Errorf("event %d: ID %q is empty or repeated", i, e.ID)
		}
		seen[e.ID] = true
		if i > 0 && e.Seq <= all[i-1].Seq {
			t.Errorf("event %d: Seq %d after %d, want increasing", i, e.Seq, all[i-1].Seq)
		}
	}
	// What the outbox hands the worker is exactly what RecordSpend returned.
	diff(t, "outbox", all, drain(t, s), bySeq)
}

// testEventsInSpendTransaction: under concurrent load with repeated request
// ids, the outbox holds exactly the events of the spends that were recorded:
// one spend_tracked per recorded priced spend, none for refused duplicates.
func testEventsInSpendTransaction(t *testing.T, open outboxOpener) {
	const n = 60
	s := open(t, on(), fixed(eventTime))
	results := make([]store.SpendResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		// Requests 3k and 3k+1 share a request id; customers are c0..c4.
		id := i
		if i%3 == 1 {
			id = i - 1
		}
		wg.Go(func() {
			results[i], errs[i] = s.RecordSpend(t.Context(), store.SpendLog{
				RequestID: fmt.Sprintf("r%02d", id), CustomerID: fmt.Sprintf("c%d", i%5),
				Cost: store.Nano(i + 1), Unpriced: i%7 == 0,
			})
		})
	}
	wg.Wait()
	returned := map[string]store.Event{}
	recorded := 0
	for i, err := range errs {
		switch {
		case errors.Is(err, store.ErrDuplicateRequest):
			if len(results[i].Events) != 0 {
				t.Errorf("refused duplicate %d returned events %+v", i, results[i].Events)
			}
			continue
		case err != nil:
			t.Fatalf("RecordSpend %d: %v", i, err)
		}
		recorded++
		for _, e := range results[i].Events {
			returned[e.ID] = e
		}
	}
	logs := mustSpendLogs(t, s, "")
	if len(logs) != recorded {
		t.Fatalf("%d spend logs, %d successful RecordSpend calls", len(logs), recorded)
	}
	wantTracked := map[string]bool{}
	for _, l := range logs {
		if !l.Unpriced {
			wantTracked[l.RequestID] = true
		}
	}
	gotTracked := map[string]bool{}
	delivered := drain(t, s)
	for _, e := range delivered {
		if gotTracked[e.RequestID] {
			t.Errorf("two spend_tracked events for %s", e.RequestID)
		}
		gotTracked[e.RequestID] = true
		if r, ok := returned[e.ID]; !ok {
			t.Errorf("outbox event %s was not returned by RecordSpend", e.ID)
		} else {
			diff(t, "outbox event "+e.ID, r, e)
		}
	}
	diff(t, "requests with a spend_tracked event", wantTracked, gotTracked)
	if len(delivered) != len(returned) {
		t.Errorf("outbox held %d events, RecordSpend returned %d", len(delivered), len(returned))
	}
}

// testBudgetEventsOnce: 50 concurrent spends of one customer cross the soft
// budget, 85%, 95% and the max budget; each budget event is written exactly
// once, by the spend that reached its boundary. A customer on the default
// budget behaves the same.
func testBudgetEventsOnce(t *testing.T, open outboxOpener) {
	const n = 50
	a := on()
	a.DefaultBudgetID = "default-tier"
	s := open(t, a, fixed(eventTime))
	limits := store.Budget{MaxBudget: ptr[store.Nano](1000), SoftBudget: ptr[store.Nano](500)}
	mustCreateCustomer(t, s, store.Customer{UserID: "own"}, &limits)
	tier := limits
	tier.BudgetID = "default-tier"
	mustCreateBudget(t, s, tier)

	for _, customer := range []string{"own", "newcomer"} {
		t.Run(customer, func(t *testing.T) {
			results := make([]store.SpendResult, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					results[i], errs[i] = s.RecordSpend(t.Context(), store.SpendLog{
						RequestID: fmt.Sprintf("%s-%02d", customer, i), CustomerID: customer, Cost: 40,
					})
				})
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatalf("RecordSpend: %v", err)
			}
			type fired struct {
				Type    store.EventType
				Message string
				Spend   store.Nano // the customer's spend after the request that fired it
				Caller  store.Nano // what that request's caller saw
			}
			var got []fired
			tracked := 0
			for _, r := range results {
				for _, e := range r.Events {
					if e.Type == store.EventSpendTracked {
						tracked++
						continue
					}
					got = append(got, fired{e.Type, e.Message, e.Spend, r.Customer.Spend})
				}
			}
			slices.SortFunc(got, func(x, y fired) int { return int(x.Spend - y.Spend) })
			// Spend rises by 40: 520 is the first spend ≥ 500, 880 ≥ 850, 960 ≥ 950.
			want := []fired{
				{store.EventSoftBudgetCrossed, "Customer Budget: Soft Budget Crossed\n Total Soft Budget:`5e-07`", 520, 520},
				{store.EventThresholdCrossed, "Customer Budget: 15% Threshold Crossed", 880, 880},
				{store.EventThresholdCrossed, "Customer Budget: 5% Threshold Crossed ", 960, 960},
				{store.EventBudgetCrossed, "Customer Budget: Budget Crossed\n Total Budget:`1e-06`", 1000, 1000},
			}
			diff(t, "budget events", want, got)
			if tracked != n {
				t.Errorf("%d spend_tracked events, want %d", tracked, n)
			}
		})
	}
}

// testEventOrder: sequences follow commit order, within a spend and across
// concurrent spends of one customer.
func testEventOrder(t *testing.T, open outboxOpener) {
	const n = 40
	s := open(t, on(), fixed(eventTime))
	mustCreateCustomer(t, s, store.Customer{UserID: "alice"}, &store.Budget{MaxBudget: ptr[store.Nano](100)})
	results := make([]store.SpendResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = s.RecordSpend(t.Context(), store.SpendLog{
				RequestID: fmt.Sprintf("a%02d", i), CustomerID: []string{"alice", "bob"}[i%2], Cost: store.Nano(i + 1),
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("RecordSpend: %v", err)
	}
	// Each caller saw a distinct spend, so sorting by it is commit order.
	slices.SortFunc(results, func(x, y store.SpendResult) int {
		if c := strings.Compare(x.Customer.UserID, y.Customer.UserID); c != 0 {
			return c
		}
		return int(x.Customer.Spend - y.Customer.Spend)
	})
	perCustomer := map[string][]uint64{}
	for _, r := range results {
		if len(r.Events) == 0 || r.Events[0].Type != store.EventSpendTracked {
			t.Fatalf("events %+v: want spend_tracked first", r.Events)
		}
		for i, e := range r.Events {
			if i > 0 && e.Seq != r.Events[i-1].Seq+1 {
				t.Errorf("one spend's events have sequences %d then %d, want consecutive", r.Events[i-1].Seq, e.Seq)
			}
			perCustomer[e.CustomerID] = append(perCustomer[e.CustomerID], e.Seq)
		}
	}
	for customer, seqs := range perCustomer {
		if !slices.IsSorted(seqs) {
			t.Errorf("%s: sequences in commit order %v are not increasing", customer, seqs)
		}
	}
	// The worker gets each customer's events in that order.
	got := map[string][]uint64{}
	for _, e := range drain(t, s) {
		got[e.CustomerID] = append(got[e.CustomerID], e.Seq)
	}
	diff(t, "delivery order", perCustomer, got)
}

func testOutboxHeads(t *testing.T, open outboxOpener) {
	s := open(t, on(), fixed(eventTime))
	events := map[string][]store.Event{}
	for i, c := range []string{"bb", "a", "ccc", "a", "bb", "a"} {
		res := mustRecordSpend(t, s, store.SpendLog{RequestID: fmt.Sprint(i), CustomerID: c, Cost: 1})
		events[c] = append(events[c], res.Events...)
	}
	heads, err := s.OutboxHeads(t.Context(), "", 10)
	if err != nil {
		t.Fatalf("OutboxHeads: %v", err)
	}
	byCustomer := map[string]store.Event{}
	var order []string
	for _, h := range heads {
		byCustomer[h.CustomerID] = h
		order = append(order, h.CustomerID)
	}
	diff(t, "heads", map[string]store.Event{"a": events["a"][0], "bb": events["bb"][0], "ccc": events["ccc"][0]}, byCustomer)

	// Paging with after visits every customer once, in the same order.
	var paged []string
	after := ""
	for range 4 {
		page, err := s.OutboxHeads(t.Context(), after, 1)
		if err != nil {
			t.Fatalf("OutboxHeads(%q, 1): %v", after, err)
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page[0].CustomerID)
		after = page[0].CustomerID
	}
	diff(t, "paged heads", order, paged)
	if rest, err := s.OutboxHeads(t.Context(), order[len(order)-1], 10); err != nil || len(rest) != 0 {
		t.Errorf("OutboxHeads after the last customer = %+v, %v; want none", rest, err)
	}

	// A customer whose events were all delivered is still a valid cursor.
	var ds []store.Delivery
	for _, e := range events[order[1]] {
		ds = append(ds, store.Delivery{Event: e, Attempts: 1})
	}
	if err := s.RecordDeliveries(t.Context(), ds); err != nil {
		t.Fatalf("RecordDeliveries: %v", err)
	}
	rest, err := s.OutboxHeads(t.Context(), order[1], 10)
	if err != nil {
		t.Fatalf("OutboxHeads after a drained customer: %v", err)
	}
	diff(t, "heads after a drained customer", []store.Event{byCustomer[order[2]]}, rest)
}

func testDeliveriesAndReplay(t *testing.T, open outboxOpener) {
	c := &clock{t: eventTime}
	s := open(t, on(), c.now)
	var a, b []store.Event
	for i := range 2 {
		a = append(a, mustRecordSpend(t, s, store.SpendLog{RequestID: fmt.Sprint("a", i), CustomerID: "a", Cost: 1}).Events...)
		b = append(b, mustRecordSpend(t, s, store.SpendLog{RequestID: fmt.Sprint("b", i), CustomerID: "b", Cost: 2}).Events...)
	}
	died := eventTime.Add(time.Minute)
	c.set(died)
	outcomes := []store.Delivery{
		{Event: a[0], Attempts: 1},
		{Event: b[0], Attempts: 3, Dead: true, LastError: "HTTP 500 Internal Server Error"},
	}
	if err := s.RecordDeliveries(t.Context(), outcomes); err != nil {
		t.Fatalf("RecordDeliveries: %v", err)
	}
	diff(t, "stats after a delivery and a death", store.OutboxStats{Delivered: 1, Retried: 1, Pending: 2, Dead: 1}, mustStats(t, s))
	deadB := b[0]
	deadB.Attempts, deadB.LastError, deadB.DeadAt = 3, "HTTP 500 Internal Server Error", died
	dead, err := s.DeadEvents(t.Context())
	if err != nil {
		t.Fatalf("DeadEvents: %v", err)
	}
	diff(t, "dead events", []store.Event{deadB}, dead)
	heads, err := s.OutboxHeads(t.Context(), "", 10)
	if err != nil {
		t.Fatalf("OutboxHeads: %v", err)
	}
	diff(t, "heads after the dead head left", []store.Event{a[1], b[1]}, heads, bySeq)

	// Outcomes for events no longer pending change nothing.
	if err := s.RecordDeliveries(t.Context(), outcomes); err != nil {
		t.Fatalf("RecordDeliveries again: %v", err)
	}
	diff(t, "stats after repeated outcomes", store.OutboxStats{Delivered: 1, Retried: 1, Pending: 2, Dead: 1}, mustStats(t, s))

	// Replay is all or nothing.
	_, err = s.ReplayDead(t.Context(), []string{b[0].ID, "evt_nope_1", a[1].ID})
	var missing *store.MissingError
	if !errors.As(err, &missing) {
		t.Fatalf("ReplayDead with unknown ids: error = %v, want *MissingError", err)
	}
	diff(t, "missing ids", []string{"evt_nope_1", a[1].ID}, missing.IDs)
	diff(t, "stats after a refused replay", store.OutboxStats{Delivered: 1, Retried: 1, Pending: 2, Dead: 1}, mustStats(t, s))

	replayed, err := s.ReplayDead(t.Context(), []string{b[0].ID, b[0].ID})
	if err != nil {
		t.Fatalf("ReplayDead: %v", err)
	}
	diff(t, "replayed", []store.Event{b[0]}, replayed)
	diff(t, "stats after replay", store.OutboxStats{Delivered: 1, Retried: 1, Pending: 3, Dead: 0}, mustStats(t, s))
	// The replayed event keeps its id and sequence, so it is b's head again.
	diff(t, "delivery order after replay", []store.Event{a[1], b[0], b[1]}, drain(t, s), bySeq)
	if _, err := s.ReplayDead(t.Context(), []string{b[0].ID}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("replaying a delivered event: error = %v, want ErrNotFound", err)
	}
}

// testAlertWindowsAndTTL: a budget event fires once per window (the log's
// Window), and not again within budget_alert_ttl even when a new window began.
func testAlertWindowsAndTTL(t *testing.T, open outboxOpener) {
	c := &clock{t: eventTime}
	s := open(t, on(), c.now)
	window1 := store.Window{Start: eventTime.Add(-20 * 24 * time.Hour), End: eventTime.Add(10 * 24 * time.Hour), Reset: true}
	window2 := store.Window{Start: window1.End, End: window1.End.Add(30 * 24 * time.Hour), Reset: true}
	mustCreateBudget(t, s, store.Budget{BudgetID: "monthly", MaxBudget: ptr[store.Nano](100), BudgetDuration: ptr("30d"), BudgetResetAt: &window1.End})
	mustCreateCustomer(t, s, store.Customer{UserID: "alice", BudgetID: ptr("monthly")}, nil)
	steps := []struct {
		name   string
		at     time.Time
		window store.Window
		do     func()
		want   []store.EventType
	}{
		{name: "crossing fires every boundary", at: eventTime, window: window1, want: []store.EventType{"spend_tracked", "threshold_crossed", "threshold_crossed", "budget_crossed"}},
		{name: "same window: nothing again", at: eventTime.Add(time.Hour), window: window1, want: []store.EventType{"spend_tracked"}},
		{name: "new window within the TTL: nothing", at: eventTime.Add(2 * time.Hour), window: window2, want: []store.EventType{"spend_tracked"}},
		{name: "new window after the TTL: fires again", at: eventTime.Add(25 * time.Hour), window: window2, want: []store.EventType{"spend_tracked", "threshold_crossed", "threshold_crossed", "budget_crossed"}},
		{name: "same window long after the TTL: nothing", at: eventTime.Add(72 * time.Hour), window: window2, want: []store.EventType{"spend_tracked"}},
		{name: "a deleted and recreated customer starts afresh", at: eventTime.Add(73 * time.Hour), window: window2, do: func() {
			if _, err := s.DeleteCustomers(t.Context(), []string{"alice"}); err != nil {
				t.Fatalf("DeleteCustomers: %v", err)
			}
			mustCreateCustomer(t, s, store.Customer{UserID: "alice", BudgetID: ptr("monthly"), Spend: 99}, nil)
		}, want: []store.EventType{"spend_tracked", "threshold_crossed", "threshold_crossed", "budget_crossed"}},
	}
	for i, st := range steps {
		c.set(st.at)
		if st.do != nil {
			st.do()
		}
		res := mustRecordSpend(t, s, store.SpendLog{RequestID: fmt.Sprint(i), CustomerID: "alice", Cost: 100, Window: st.window})
		var got []store.EventType
		for _, e := range res.Events {
			got = append(got, e.Type)
		}
		diff(t, st.name, st.want, got)
	}
}

func testProjectedLimit(t *testing.T, open outboxOpener) {
	start := eventTime
	end := start.Add(10 * 24 * time.Hour)
	c := &clock{t: start.Add(24 * time.Hour)}
	s := open(t, on(), c.now)
	mustCreateBudget(t, s, store.Budget{BudgetID: "ten-days", MaxBudget: ptr[store.Nano](1000), BudgetDuration: ptr("10d"), BudgetResetAt: &end})
	mustCreateBudget(t, s, store.Budget{BudgetID: "no-window", MaxBudget: ptr[store.Nano](1000)})
	for _, id := range []string{"fast", "slow", "unwindowed"} {
		bid := map[string]string{"fast": "ten-days", "slow": "ten-days", "unwindowed": "no-window"}[id]
		mustCreateCustomer(t, s, store.Customer{UserID: id, BudgetID: &bid}, nil)
	}
	projected := func(requestID string, spend, proj store.Nano, date time.Time) store.Event {
		return store.Event{
			Type: store.EventProjectedLimitExceeded, CustomerID: "fast", RequestID: requestID, Spend: spend,
			MaxBudget: ptr[store.Nano](1000), Token: ptr(testToken), ProjectedSpend: &proj, ProjectedExceededDate: &date,
			Message: "Customer Budget: Projected Limit Exceeded", CreatedAt: c.now(),
		}
	}
	budgetEvents := func(res store.SpendResult) []store.Event {
		var out []store.Event
		for _, e := range res.Events {
			if e.Type != store.EventSpendTracked {
				out = append(out, e)
			}
		}
		return out
	}
	// The window the caller found the spend in.
	w := store.Window{Start: start, End: end, Reset: true}
	// One day into ten, 200 spent: 2000 by the end, 1000 reached on day 5.
	res := mustRecordSpend(t, s, store.SpendLog{RequestID: "f1", CustomerID: "fast", Cost: 200, Window: w})
	diff(t, "fast customer", []store.Event{projected("f1", 200, 2000, start.Add(5*24*time.Hour))}, budgetEvents(res), ignoreIDs)
	res = mustRecordSpend(t, s, store.SpendLog{RequestID: "f2", CustomerID: "fast", Cost: 100, Window: w})
	diff(t, "fast customer again in the same window", []store.Event(nil), budgetEvents(res))
	// 90 in a day projects 900: within the budget.
	res = mustRecordSpend(t, s, store.SpendLog{RequestID: "s1", CustomerID: "slow", Cost: 90, Window: w})
	diff(t, "slow customer", []store.Event(nil), budgetEvents(res))
	res = mustRecordSpend(t, s, store.SpendLog{RequestID: "u1", CustomerID: "unwindowed", Cost: 200})
	diff(t, "budget without a window", []store.Event(nil), budgetEvents(res))
}

func testEventsReady(t *testing.T, open outboxOpener) {
	s := open(t, on(), fixed(eventTime))
	// Drain a stale signal, if the backend sent one while opening.
	select {
	case <-s.EventsReady():
	default:
	}
	mustRecordSpend(t, s, store.SpendLog{RequestID: "r1", CustomerID: "alice", Cost: 1})
	select {
	case <-s.EventsReady():
	case <-time.After(10 * time.Second):
		t.Fatal("no EventsReady signal within 10s of a spend that wrote an event")
	}
}

func testOutboxClosed(t *testing.T, open outboxOpener) {
	s := open(t, on(), fixed(eventTime))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := t.Context()
	ops := map[string]error{}
	_, ops["OutboxHeads"] = s.OutboxHeads(ctx, "", 1)
	ops["RecordDeliveries"] = s.RecordDeliveries(ctx, nil)
	_, ops["DeadEvents"] = s.DeadEvents(ctx)
	_, ops["ReplayDead"] = s.ReplayDead(ctx, []string{"x"})
	_, ops["OutboxStats"] = s.OutboxStats(ctx)
	for name, err := range ops {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: error = %v, want ErrClosed", name, err)
		}
	}
}
