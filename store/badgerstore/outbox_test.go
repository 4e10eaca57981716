package badgerstore

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/store"
)

func TestEventRecRoundTrip(t *testing.T) {
	date := t0.Add(48 * time.Hour).Truncate(time.Second)
	tests := []struct {
		name string
		rec  eventRec
	}{
		{"zero", eventRec{}},
		{"every field", eventRec{
			Type: "projected_limit_exceeded", CustomerID: "alice", RequestID: "r1", Spend: 200,
			MaxBudget: ptr[store.Nano](1000), SoftBudget: ptr[store.Nano](0), Token: ptr("abc"),
			ProjectedSpend: ptr[store.Nano](2000), ProjectedDate: &date, Message: "Customer Budget: Projected Limit Exceeded",
			CreatedAt: t0, Attempts: 12, LastError: "HTTP 500", DeadAt: t0.Add(time.Hour),
		}},
		{"empty token is not nil", eventRec{Type: "spend_tracked", Token: ptr(""), Spend: -1, CreatedAt: preEpoch}},
		{"only the max budget", eventRec{MaxBudget: ptr[store.Nano](1 << 60), Message: "Customer Budget: Budget Crossed\n Total Budget:`4.0`"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.rec.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got eventRec
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if d := cmp.Diff(tt.rec, got); d != "" {
				t.Errorf("round trip (-want +got):\n%s", d)
			}
		})
	}
}

func TestMarksRecRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		rec  marksRec
	}{
		{"empty", marksRec{}},
		{"several", marksRec{
			"budget_crossed":       {Window: "none", At: t0},
			"threshold_crossed:85": {Window: "2026-10-01T00:00:00Z", At: preEpoch},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.rec.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got marksRec
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if d := cmp.Diff(tt.rec, got); d != "" {
				t.Errorf("round trip (-want +got):\n%s", d)
			}
		})
	}
}

func TestOutboxDecodeRejectsCorrupt(t *testing.T) {
	good, err := eventRec{Type: "spend_tracked", Token: ptr("t"), CreatedAt: t0}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		b     []byte
		marks bool
	}{
		{"event empty", nil, false},
		{"event unknown format", append([]byte{9}, good[1:]...), false},
		{"event truncated", good[:len(good)-1], false},
		{"event trailing byte", append(append([]byte{}, good...), 0), false},
		{"event flag without its value", []byte{eventFormat, flagMaxBudget, 0, 0, 0, 0}, false},
		{"marks empty", nil, true},
		{"marks count larger than the record", []byte{marksFormat, 50, 0}, true},
		{"marks truncated", []byte{marksFormat, 1, 1, 'a'}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.marks {
				err = new(marksRec).UnmarshalBinary(tt.b)
			} else {
				err = new(eventRec).UnmarshalBinary(tt.b)
			}
			if !errors.Is(err, errCorrupt) {
				t.Errorf("error = %v, want errCorrupt", err)
			}
		})
	}
}

func FuzzEventRec(f *testing.F) {
	date := t0.Truncate(time.Second)
	for _, r := range []eventRec{{}, {
		Type: "budget_crossed", CustomerID: "c", Spend: 5, MaxBudget: ptr[store.Nano](5), Token: ptr("t"),
		ProjectedDate: &date, Attempts: 3, LastError: "e", DeadAt: t0,
	}} {
		b, _ := r.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{eventFormat, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r eventRec
		if r.UnmarshalBinary(b) != nil {
			return
		}
		again, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var r2 eventRec
		if err := r2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if d := cmp.Diff(r, r2); d != "" {
			t.Errorf("(-first +second):\n%s", d)
		}
	})
}

func FuzzMarksRec(f *testing.F) {
	b, _ := marksRec{"budget_crossed": {Window: "none", At: t0}}.MarshalBinary()
	f.Add(b)
	f.Add([]byte{marksFormat, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r marksRec
		if r.UnmarshalBinary(b) != nil {
			return
		}
		again, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var r2 marksRec
		if err := r2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if d := cmp.Diff(r, r2); d != "" {
			t.Errorf("(-first +second):\n%s", d)
		}
	})
}

func TestParseEventID(t *testing.T) {
	const db = "0123456789abcdef"
	tests := []struct {
		id      string
		wantSeq uint64
		wantOK  bool
	}{
		{eventID(db, 42), 42, true},
		{eventID(db, 1<<63), 1 << 63, true},
		{eventID("fedcba9876543210", 42), 0, false},
		{"evt_" + db + "_042", 0, false},
		{"evt_" + db + "_+42", 0, false},
		{"evt_" + db + "_", 0, false},
		{"42", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			seq, ok := parseEventID(db, tt.id)
			if seq != tt.wantSeq && ok || ok != tt.wantOK {
				t.Errorf("parseEventID(%q) = %d, %v; want %d, %v", tt.id, seq, ok, tt.wantSeq, tt.wantOK)
			}
		})
	}
}

// TestOutboxReopen: pending and dead events, ids, counters, alert marks and
// the sequence survive Close and Open.
func TestOutboxReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	alerting := store.Alerting{Enabled: true, BudgetAlertTTL: time.Hour}
	now := func() time.Time { return t0 }
	s := mustOpen(t, Options{Dir: dir, SyncWrites: true, Alerting: alerting, Now: now})
	closeAtEnd(t, s)
	if _, err := s.CreateCustomer(ctx, store.Customer{UserID: "alice"}, &store.Budget{MaxBudget: ptr[store.Nano](10)}); err != nil {
		t.Fatal(err)
	}
	first, err := s.RecordSpend(ctx, store.SpendLog{RequestID: "r1", CustomerID: "alice", Cost: 10})
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.RecordSpend(ctx, store.SpendLog{RequestID: "r2", CustomerID: "bob", Cost: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RecordDeliveries(ctx, []store.Delivery{{Event: second.Events[0], Attempts: 2, Dead: true, LastError: "timeout"}}); err != nil {
		t.Fatal(err)
	}
	before := outboxDump(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = mustOpen(t, Options{Dir: dir, Alerting: alerting, Now: now})
	closeAtEnd(t, s)
	if d := cmp.Diff(before, outboxDump(t, s)); d != "" {
		t.Errorf("outbox after reopen (-before +after):\n%s", d)
	}
	// The marks survived: alice's budget events are not sent again; the
	// sequence continues after the last one given out.
	third, err := s.RecordSpend(ctx, store.SpendLog{RequestID: "r3", CustomerID: "alice", Cost: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(third.Events) != 1 || third.Events[0].Type != store.EventSpendTracked {
		t.Fatalf("events after reopen = %+v, want one spend_tracked", third.Events)
	}
	if got, want := third.Events[0].Seq, second.Events[0].Seq+1; got != want {
		t.Errorf("Seq after reopen = %d, want %d", got, want)
	}
	if got, want := third.Events[0].ID, eventID(s.dbID, third.Events[0].Seq); got != want || s.dbID != first.Events[0].ID[4:20] {
		t.Errorf("ID after reopen = %q (database %q), want %q in the database of %q", got, s.dbID, want, first.Events[0].ID)
	}
}

type outboxContents struct {
	Heads []store.Event
	Dead  []store.Event
	Stats store.OutboxStats
}

func outboxDump(t *testing.T, s *Store) outboxContents {
	t.Helper()
	var c outboxContents
	var errs [3]error
	c.Heads, errs[0] = s.OutboxHeads(t.Context(), "", 100)
	c.Dead, errs[1] = s.DeadEvents(t.Context())
	c.Stats, errs[2] = s.OutboxStats(t.Context())
	if err := errors.Join(errs[:]...); err != nil {
		t.Fatalf("outbox dump: %v", err)
	}
	return c
}

// TestBudgetEventsOnceInOneBatch: records queued before the writer runs are
// committed as one batch; the batch sees its own alert marks, so a boundary
// crossed by the batch fires once.
func TestBudgetEventsOnceInOneBatch(t *testing.T) {
	const n = 200
	s := mustOpen(t, Options{InMemory: true, Alerting: store.Alerting{Enabled: true}})
	if _, err := s.CreateCustomer(t.Context(), store.Customer{UserID: "alice"}, &store.Budget{MaxBudget: ptr[store.Nano](100)}); err != nil {
		t.Fatal(err)
	}
	reqs := make([]*spendReq, n)
	for i := range reqs {
		reqs[i] = &spendReq{
			log:  store.SpendLog{RequestID: fmt.Sprint(i), CustomerID: "alice", Cost: 1},
			done: make(chan spendResp, 1),
		}
		s.queue <- reqs[i]
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	count := map[store.EventType]int{}
	for i, r := range reqs {
		resp := <-r.done
		if resp.err != nil {
			t.Fatalf("record %d: %v", i, resp.err)
		}
		for _, e := range resp.res.Events {
			count[e.Type]++
		}
	}
	want := map[store.EventType]int{store.EventSpendTracked: n, store.EventThresholdCrossed: 2, store.EventBudgetCrossed: 1}
	if d := cmp.Diff(want, count); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}
