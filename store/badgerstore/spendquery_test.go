package badgerstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/store"
)

// TestQuerySpendLogsScanBound checks that one call reads at most
// maxQueryScan index entries: a model filter that skips them all yields an
// empty page and a cursor, and the log past the bound comes on the next call.
func TestQuerySpendLogsScanBound(t *testing.T) {
	t.Parallel()
	s, err := Open(Options{InMemory: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	// Written straight to Badger: RecordSpend would take seconds for this many.
	t0 := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	write := func(l store.SpendLog) {
		t.Helper()
		v, err := logRecOf(l).MarshalBinary()
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		if err := wb.Set(key(prefixLog, l.RequestID), v); err != nil {
			t.Fatalf("write: %v", err)
		}
		if err := wb.Set(logTimeKey(l), nil); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	for i := range maxQueryScan {
		write(store.SpendLog{RequestID: fmt.Sprintf("common-%06d", i), Model: "common", StartTime: t0.Add(time.Duration(i) * time.Millisecond)})
	}
	rare := store.SpendLog{RequestID: "rare", Model: "rare", StartTime: t0.Add(time.Hour)}
	write(rare)
	if err := wb.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}

	type page struct {
		IDs      []string
		HasMore  bool
		LastTime time.Time
	}
	call := func(q store.SpendLogQuery) (page, string) {
		t.Helper()
		logs, next, err := s.QuerySpendLogs(t.Context(), q)
		if err != nil {
			t.Fatalf("QuerySpendLogs: %v", err)
		}
		p := page{IDs: []string{}, HasMore: next != ""}
		for _, l := range logs {
			p.IDs = append(p.IDs, l.RequestID)
			p.LastTime = l.StartTime
		}
		return p, next
	}

	got, next := call(store.SpendLogQuery{Model: "rare", Limit: 10})
	if diff := cmp.Diff(page{IDs: []string{}, HasMore: true}, got); diff != "" {
		t.Errorf("first call (-want +got):\n%s", diff)
	}
	got, _ = call(store.SpendLogQuery{Model: "rare", Limit: 10, After: next})
	if diff := cmp.Diff(page{IDs: []string{"rare"}, LastTime: rare.StartTime}, got); diff != "" {
		t.Errorf("second call (-want +got):\n%s", diff)
	}

	// Without a filter the bound caps a page too.
	got, next = call(store.SpendLogQuery{Limit: maxQueryScan + 10})
	if len(got.IDs) != maxQueryScan || !got.HasMore {
		t.Fatalf("unfiltered page: %d logs, more %v; want %d and more", len(got.IDs), got.HasMore, maxQueryScan)
	}
	if last, want := got.IDs[maxQueryScan-1], fmt.Sprintf("common-%06d", maxQueryScan-1); last != want {
		t.Errorf("unfiltered page ends with %s, want %s", last, want)
	}
	got, _ = call(store.SpendLogQuery{Limit: maxQueryScan + 10, After: next})
	if diff := cmp.Diff(page{IDs: []string{"rare"}, LastTime: rare.StartTime}, got); diff != "" {
		t.Errorf("unfiltered second page (-want +got):\n%s", diff)
	}
}
