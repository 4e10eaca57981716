package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tollgate-dev/tollgate/store"
)

// queryLogs are the logs the QuerySpendLogs tests record, in the order the
// store must return them: by start time, then request id.
func queryLogs() []store.SpendLog {
	t0 := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	return []store.SpendLog{
		{RequestID: "zero", CustomerID: "alice", Model: "gpt-4o"}, // zero start time sorts first
		{RequestID: "n1", Model: "gpt-4o", StartTime: t0, Cost: 1},
		{
			RequestID: "a1", ClientRequestID: "client-1", CustomerID: "alice", Model: "gpt-4o", Path: "/v1/chat/completions",
			PromptTokens: 11, CompletionTokens: 22, TotalTokens: 33, CacheReadTokens: 4, CacheCreationTokens: 5, ReasoningTokens: 6,
			Cost: 1_413_000, Estimated: true,
			// Another zone: the instant must survive, the zone need not.
			StartTime: t0.Add(time.Second).In(time.FixedZone("CEST", 2*3600)),
			EndTime:   t0.Add(2*time.Second + 123456789*time.Nanosecond),
		},
		{RequestID: "a2", CustomerID: "alice", Model: "o3", StartTime: t0.Add(time.Second), Cost: 2, Unpriced: true},
		{RequestID: "b1", CustomerID: "bob", Model: "gpt-4o", StartTime: t0.Add(time.Second), Cost: 3},
		{RequestID: "x1", CustomerID: "alic", Model: "o3", StartTime: t0.Add(time.Hour - time.Nanosecond), Cost: 4},
		{RequestID: "a3", CustomerID: "alice", Model: "gpt-4o", StartTime: t0.Add(time.Hour), Cost: 5},
		{RequestID: "b2", CustomerID: "bob", Model: "o3", StartTime: t0.Add(2 * time.Hour), Cost: 6},
	}
}

// queryAll pages through q (with q.Limit) and returns every log it yields.
// Each page must respect the limit and every cursor must lead on; the
// number of pages is bounded so a cursor that never ends fails the test.
func queryAll(t *testing.T, s store.Store, q store.SpendLogQuery) []store.SpendLog {
	t.Helper()
	out := []store.SpendLog{}
	for page := 0; ; page++ {
		if page > 100 {
			t.Fatalf("QuerySpendLogs(%+v): still paging after %d pages", q, page)
		}
		logs, next, err := s.QuerySpendLogs(t.Context(), q)
		if err != nil {
			t.Fatalf("QuerySpendLogs(%+v): %v", q, err)
		}
		if len(logs) > q.Limit {
			t.Fatalf("QuerySpendLogs(%+v): %d logs, limit %d", q, len(logs), q.Limit)
		}
		out = append(out, logs...)
		if next == "" {
			return out
		}
		q.After = next
	}
}

func testQuerySpendLogs(t *testing.T, open opener) {
	s := open(t)
	logs := queryLogs()
	byID := map[string]store.SpendLog{}
	// Recorded out of order: the order returned is the store's doing.
	for i := len(logs) - 1; i >= 0; i-- {
		mustRecordSpend(t, s, logs[i])
		byID[logs[i].RequestID] = logs[i]
	}
	pick := func(ids ...string) []store.SpendLog {
		out := []store.SpendLog{}
		for _, id := range ids {
			out = append(out, byID[id])
		}
		return out
	}
	t0 := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	all := pick("zero", "n1", "a1", "a2", "b1", "x1", "a3", "b2")
	tests := []struct {
		name string
		q    store.SpendLogQuery
		want []store.SpendLog
	}{
		{"everything in one page", store.SpendLogQuery{Limit: 100}, all},
		{"everything one at a time", store.SpendLogQuery{Limit: 1}, all},
		{"everything three at a time", store.SpendLogQuery{Limit: 3}, all},
		{"one customer", store.SpendLogQuery{CustomerID: "alice", Limit: 2}, pick("zero", "a1", "a2", "a3")},
		{"a prefix of an id is another customer", store.SpendLogQuery{CustomerID: "alic", Limit: 2}, pick("x1")},
		{"customer without logs", store.SpendLogQuery{CustomerID: "carol", Limit: 2}, pick()},
		{"one model", store.SpendLogQuery{Model: "o3", Limit: 1}, pick("a2", "x1", "b2")},
		{"model and customer", store.SpendLogQuery{CustomerID: "alice", Model: "gpt-4o", Limit: 2}, pick("zero", "a1", "a3")},
		{"unknown model", store.SpendLogQuery{Model: "gpt-5", Limit: 2}, pick()},
		{"start is inclusive", store.SpendLogQuery{Start: t0.Add(time.Second), Limit: 2}, pick("a1", "a2", "b1", "x1", "a3", "b2")},
		{"end is exclusive", store.SpendLogQuery{End: t0.Add(time.Hour), Limit: 2}, pick("zero", "n1", "a1", "a2", "b1", "x1")},
		{"start and end", store.SpendLogQuery{Start: t0.Add(time.Nanosecond), End: t0.Add(2 * time.Hour), Limit: 2}, pick("a1", "a2", "b1", "x1", "a3")},
		{"bounds in another zone", store.SpendLogQuery{
			Start: t0.Add(time.Second).In(time.FixedZone("PST", -8*3600)), End: t0.Add(time.Hour).In(time.FixedZone("IST", 5*3600+1800)), Limit: 2,
		}, pick("a1", "a2", "b1", "x1")},
		{"customer in a range", store.SpendLogQuery{CustomerID: "bob", Start: t0.Add(time.Minute), Limit: 2}, pick("b2")},
		{"start equals end", store.SpendLogQuery{Start: t0, End: t0, Limit: 2}, pick()},
		{"end before start", store.SpendLogQuery{Start: t0.Add(time.Hour), End: t0, Limit: 2}, pick()},
		{"request id", store.SpendLogQuery{RequestID: "a1", Limit: 1}, pick("a1")},
		{"request id with matching filters", store.SpendLogQuery{
			RequestID: "a1", CustomerID: "alice", Model: "gpt-4o", Start: t0.Add(time.Second), End: t0.Add(time.Second + 1), Limit: 1,
		}, pick("a1")},
		{"request id of another customer", store.SpendLogQuery{RequestID: "a1", CustomerID: "bob", Limit: 1}, pick()},
		{"request id of another model", store.SpendLogQuery{RequestID: "a1", Model: "o3", Limit: 1}, pick()},
		{"request id before start", store.SpendLogQuery{RequestID: "a1", Start: t0.Add(time.Second + 1), Limit: 1}, pick()},
		{"request id at end", store.SpendLogQuery{RequestID: "a1", End: t0.Add(time.Second), Limit: 1}, pick()},
		{"unknown request id", store.SpendLogQuery{RequestID: "nope", Limit: 1}, pick()},
		{"request id without customer", store.SpendLogQuery{RequestID: "n1", Limit: 1}, pick("n1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diff(t, "logs", tt.want, queryAll(t, s, tt.q), cmpopts.EquateEmpty())
		})
	}

	t.Run("a cursor resumes after its log in any query", func(t *testing.T) {
		_, next, err := s.QuerySpendLogs(t.Context(), store.SpendLogQuery{Limit: 3}) // zero, n1, a1
		if err != nil {
			t.Fatalf("QuerySpendLogs: %v", err)
		}
		if next == "" {
			t.Fatal("no cursor after the first of several pages")
		}
		got := queryAll(t, s, store.SpendLogQuery{CustomerID: "alice", After: next, Limit: 5})
		diff(t, "alice after a1", pick("a2", "a3"), got, cmpopts.EquateEmpty())
		got = queryAll(t, s, store.SpendLogQuery{RequestID: "a1", After: next, Limit: 1})
		diff(t, "a1 after a1", pick(), got, cmpopts.EquateEmpty())
		got = queryAll(t, s, store.SpendLogQuery{RequestID: "a2", After: next, Limit: 1})
		diff(t, "a2 after a1", pick("a2"), got, cmpopts.EquateEmpty())
	})
}

func testQuerySpendLogsGrowing(t *testing.T, open opener) {
	s := open(t)
	t0 := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	for _, l := range []store.SpendLog{
		{RequestID: "r1", StartTime: t0},
		{RequestID: "r2", StartTime: t0.Add(time.Second)},
		{RequestID: "r4", StartTime: t0.Add(3 * time.Second)},
	} {
		mustRecordSpend(t, s, l)
	}
	ids := func(logs []store.SpendLog) []string {
		out := []string{}
		for _, l := range logs {
			out = append(out, l.RequestID)
		}
		return out
	}
	first, next, err := s.QuerySpendLogs(t.Context(), store.SpendLogQuery{Limit: 2})
	if err != nil {
		t.Fatalf("QuerySpendLogs: %v", err)
	}
	diff(t, "first page", []string{"r1", "r2"}, ids(first))
	// Logs recorded between pages show up when they sort after the cursor.
	mustRecordSpend(t, s, store.SpendLog{RequestID: "r0", StartTime: t0.Add(-time.Second)})
	mustRecordSpend(t, s, store.SpendLog{RequestID: "r3", StartTime: t0.Add(2 * time.Second)})
	mustRecordSpend(t, s, store.SpendLog{RequestID: "r5", StartTime: t0.Add(4 * time.Second)})
	rest := queryAll(t, s, store.SpendLogQuery{After: next, Limit: 2})
	diff(t, "later pages", []string{"r3", "r4", "r5"}, ids(rest))
}

func testQuerySpendLogsInvalid(t *testing.T, open opener) {
	s := open(t)
	mustRecordSpend(t, s, store.SpendLog{RequestID: "r1", CustomerID: "alice"})
	tests := []struct {
		name string
		q    store.SpendLogQuery
		want error
	}{
		{"cursor not base64", store.SpendLogQuery{After: "!!", Limit: 1}, store.ErrBadCursor},
		{"cursor too short", store.SpendLogQuery{After: "AAAA", Limit: 1}, store.ErrBadCursor},
		{"cursor with padding", store.SpendLogQuery{After: "AAAAAAAAAAAAAAAAAA==", Limit: 1}, store.ErrBadCursor},
		{"bad cursor with a request id", store.SpendLogQuery{RequestID: "r1", After: "!!", Limit: 1}, store.ErrBadCursor},
		{"zero limit", store.SpendLogQuery{}, errAny},
		{"negative limit", store.SpendLogQuery{Limit: -1}, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs, next, err := s.QuerySpendLogs(t.Context(), tt.q)
			checkErr(t, "QuerySpendLogs", err, tt.want)
			if logs != nil || next != "" {
				t.Errorf("QuerySpendLogs = %v, %q with an error, want nothing", logs, next)
			}
		})
	}
	t.Run("canceled context", func(t *testing.T) {
		_, _, err := s.QuerySpendLogs(canceled(t), store.SpendLogQuery{Limit: 1})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error = %v, want context.Canceled", err)
		}
	})
	t.Run("closed store", func(t *testing.T) {
		closed := open(t)
		if err := closed.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		_, _, err := closed.QuerySpendLogs(t.Context(), store.SpendLogQuery{Limit: 1})
		checkErr(t, "QuerySpendLogs", err, store.ErrClosed)
	})
}
