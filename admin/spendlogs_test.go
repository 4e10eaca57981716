package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/internal/syncbuf"
	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/badgerstore"
)

func (brokenStore) QuerySpendLogs(context.Context, store.SpendLogQuery) ([]store.SpendLog, string, error) {
	return nil, "", errDiskOnFire
}

// spendLogsFixture are the logs the spend tests record: two UTC days and a
// third, three customers (carol is deleted after her request), one request
// without a customer, an estimated one and an unpriced one.
func spendLogsFixture() []store.SpendLog {
	day1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	day2 := day1.AddDate(0, 0, 1)
	return []store.SpendLog{
		{RequestID: "req-1", ClientRequestID: "client-1", CustomerID: "alice", Model: "gpt-4o", Path: "/v1/chat/completions",
			PromptTokens: 100, CompletionTokens: 50, TotalTokens: 150, CacheReadTokens: 20, Cost: 1_250_000,
			StartTime: day1.Add(10 * time.Hour), EndTime: day1.Add(10*time.Hour + 1500*time.Millisecond)},
		{RequestID: "req-2", CustomerID: "alice", Model: "claude-sonnet-4", Path: "/v1/messages",
			// Cache writes counted into the total: the daily sums use prompt + completion.
			PromptTokens: 200, CompletionTokens: 100, TotalTokens: 340, CacheCreationTokens: 40, Cost: 3_000_000, Estimated: true,
			StartTime: day2.Add(-time.Millisecond), EndTime: day2.Add(2 * time.Second)},
		{RequestID: "req-3", CustomerID: "bob", Model: "gpt-4o", Path: "/v1/chat/completions",
			PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15, Cost: 125_000,
			StartTime: day2.Add(8 * time.Hour), EndTime: day2.Add(8*time.Hour + 250*time.Millisecond)},
		{RequestID: "req-4", Model: "gpt-4o", Path: "/v1/embeddings", PromptTokens: 8, TotalTokens: 8, Cost: 800,
			StartTime: day2.Add(9 * time.Hour), EndTime: day2.Add(9*time.Hour + 100*time.Millisecond)},
		{RequestID: "req-5", CustomerID: "alice", Model: "mystery-model", Path: "/v1/responses",
			PromptTokens: 7, CompletionTokens: 3, TotalTokens: 10, ReasoningTokens: 2, Unpriced: true,
			StartTime: day2.Add(12 * time.Hour), EndTime: day2.Add(12*time.Hour + 2*time.Second)},
		{RequestID: "req-6", CustomerID: "carol", Model: "gpt-4o", Path: "/openai/deployments/gpt4o/chat/completions",
			PromptTokens: 1, CompletionTokens: 1, TotalTokens: 2, Cost: 3,
			StartTime: day2.AddDate(0, 0, 1), EndTime: day2.AddDate(0, 0, 1).Add(time.Millisecond)},
	}
}

// seedSpend records the fixture in st: alice is created first with an alias,
// the others by their first spend; carol is then deleted.
func seedSpend(t testing.TB, st store.Store) {
	t.Helper()
	ctx := context.Background()
	alias := "Alice"
	if _, err := st.CreateCustomer(ctx, store.Customer{UserID: "alice", Alias: &alias}, nil); err != nil {
		t.Fatalf("create alice: %v", err)
	}
	for _, l := range spendLogsFixture() {
		if _, err := st.RecordSpend(ctx, l); err != nil {
			t.Fatalf("record %s: %v", l.RequestID, err)
		}
	}
	if _, err := st.DeleteCustomers(ctx, []string{"carol"}); err != nil {
		t.Fatalf("delete carol: %v", err)
	}
}

// spendRow is what varies between the fixture's /spend/logs rows. spend is
// written as the API renders it (Python float style: "0.0", "8e-07").
type spendRow struct {
	id, callType, spend              string
	total, prompt, completion        int
	start, end                       string
	durationMS                       int
	model, endpoint, clientID        string
	reasoning, cacheWrite, cacheRead int
	estimated, unpriced              bool
	endUser                          string
}

// spendRows are the fixture's /spend/logs rows by request id.
var spendRows = spendRowsJSON([]spendRow{
	{id: "req-1", callType: "acompletion", spend: "0.00125", total: 150, prompt: 100, completion: 50,
		start: "2026-01-01T10:00:00Z", end: "2026-01-01T10:00:01.5Z", durationMS: 1500,
		model: "gpt-4o", endpoint: "/v1/chat/completions", clientID: "client-1", cacheRead: 20, endUser: "alice"},
	{id: "req-2", callType: "anthropic_messages", spend: "0.003", total: 340, prompt: 200, completion: 100,
		start: "2026-01-01T23:59:59.999Z", end: "2026-01-02T00:00:02Z", durationMS: 2001,
		model: "claude-sonnet-4", endpoint: "/v1/messages", cacheWrite: 40, estimated: true, endUser: "alice"},
	{id: "req-3", callType: "acompletion", spend: "0.000125", total: 15, prompt: 10, completion: 5,
		start: "2026-01-02T08:00:00Z", end: "2026-01-02T08:00:00.25Z", durationMS: 250,
		model: "gpt-4o", endpoint: "/v1/chat/completions", endUser: "bob"},
	{id: "req-4", callType: "aembedding", spend: "8e-07", total: 8, prompt: 8, completion: 0,
		start: "2026-01-02T09:00:00Z", end: "2026-01-02T09:00:00.1Z", durationMS: 100,
		model: "gpt-4o", endpoint: "/v1/embeddings", endUser: ""},
	{id: "req-5", callType: "aresponses", spend: "0.0", total: 10, prompt: 7, completion: 3,
		start: "2026-01-02T12:00:00Z", end: "2026-01-02T12:00:02Z", durationMS: 2000,
		model: "mystery-model", endpoint: "/v1/responses", reasoning: 2, unpriced: true, endUser: "alice"},
	{id: "req-6", callType: "acompletion", spend: "3e-09", total: 2, prompt: 1, completion: 1,
		start: "2026-01-03T00:00:00Z", end: "2026-01-03T00:00:00.001Z", durationMS: 1,
		model: "gpt-4o", endpoint: "/openai/deployments/gpt4o/chat/completions", endUser: "carol"},
})

// spendRowsJSON writes each row out in full, in LiteLLM's key order; the
// usage_object repeats the top-level token counts.
func spendRowsJSON(rows []spendRow) map[string]string {
	m := make(map[string]string, len(rows))
	for _, r := range rows {
		m[r.id] = fmt.Sprintf(`{"request_id":%q,"call_type":%q,"api_key":"","spend":%s,"total_tokens":%d,"prompt_tokens":%d,"completion_tokens":%d,
			"startTime":%q,"endTime":%q,"request_duration_ms":%d,"model":%q,"user":"",
			"metadata":{"status":"success","usage_object":{"completion_tokens":%d,"prompt_tokens":%d,"total_tokens":%d,
				"completion_tokens_details":{"reasoning_tokens":%d},"prompt_tokens_details":{"cached_tokens":%d},
				"cache_creation_input_tokens":%d,"cache_read_input_tokens":%d},
				"endpoint":%q,"client_request_id":%q,"estimated":%t,"unpriced":%t},
			"end_user":%q,"messages":{},"response":{},"status":"success"}`,
			r.id, r.callType, r.spend, r.total, r.prompt, r.completion,
			r.start, r.end, r.durationMS, r.model,
			r.completion, r.prompt, r.total,
			r.reasoning, r.cacheRead,
			r.cacheWrite, r.cacheRead,
			r.endpoint, r.clientID, r.estimated, r.unpriced,
			r.endUser)
	}
	return m
}

// rowsJSON is the array of the fixture rows with these ids.
func rowsJSON(ids ...string) string {
	rows := make([]string, len(ids))
	for i, id := range ids {
		rows[i] = spendRows[id]
	}
	return "[" + strings.Join(rows, ",") + "]"
}

// get sends an authenticated GET and returns the recorder, headers included.
func (e *env) get(path string) *httptest.ResponseRecorder {
	e.t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

func TestSpendLogs(t *testing.T) {
	e := newEnv(t)
	seedSpend(t, e.st)
	cases := []struct {
		name, query string
		want        string
	}{
		{"every log, oldest first", "", rowsJSON("req-1", "req-2", "req-3", "req-4", "req-5", "req-6")},
		{"end_user", "?end_user=alice", rowsJSON("req-1", "req-2", "req-5")},
		{"customer_id", "?customer_id=bob", rowsJSON("req-3")},
		{"user_id names the customer", "?user_id=carol", rowsJSON("req-6")},
		{"customer names that agree", "?end_user=alice&customer_id=alice&user_id=alice", rowsJSON("req-1", "req-2", "req-5")},
		{"empty customer is no filter", "?end_user=", rowsJSON("req-1", "req-2", "req-3", "req-4", "req-5", "req-6")},
		{"unknown customer", "?end_user=dave", "[]"},
		{"model", "?model=gpt-4o", rowsJSON("req-1", "req-3", "req-4", "req-6")},
		{"model and customer", "?model=gpt-4o&end_user=alice", rowsJSON("req-1")},
		{"request_id", "?request_id=req-4", rowsJSON("req-4")},
		{"unknown request_id", "?request_id=nope", "[]"},
		{"request_id of another customer", "?request_id=req-4&end_user=alice", "[]"},
		{"start_date alone gives logs", "?start_date=2026-01-02", rowsJSON("req-3", "req-4", "req-5", "req-6")},
		{"end_date alone includes its day", "?end_date=2026-01-01", rowsJSON("req-1", "req-2")},
		{"one day, unsummarized", "?start_date=2026-01-01&end_date=2026-01-01&summarize=false", rowsJSON("req-1", "req-2")},
		{"date-times are half-open", "?start_date=2026-01-02T08:00:00Z&end_date=2026-01-02T12:00:00Z&summarize=False",
			rowsJSON("req-3", "req-4")},
		{"date-times with an offset", "?start_date=" + url.QueryEscape("2026-01-02T09:00:00+01:00") + "&end_date=2026-01-02T09:00:00.001Z&summarize=0",
			rowsJSON("req-3", "req-4")},
		{"api_key matches nothing", "?api_key=sk-abc", "[]"},
		{"page 1 is the first page", "?page=1&page_size=1000", rowsJSON("req-1", "req-2", "req-3", "req-4", "req-5", "req-6")},
		{"repeated parameter: the last wins", "?end_user=alice&end_user=bob", rowsJSON("req-3")},
		{"summary of two days", "?start_date=2026-01-01&end_date=2026-01-02", `[
			{"startTime":"2026-01-01","spend":0.00425,"users":{"alice":0.00425},"models":{"claude-sonnet-4":0.003,"gpt-4o":0.00125}},
			{"startTime":"2026-01-02","spend":0.0001258,"users":{"":8e-07,"alice":0.0,"bob":0.000125},"models":{"gpt-4o":0.0001258,"mystery-model":0.0}}]`},
		{"summary with filters", "?start_date=2026-01-01&end_date=2026-01-03&summarize=true&model=gpt-4o&end_user=alice", `[
			{"startTime":"2026-01-01","spend":0.00125,"users":{"alice":0.00125},"models":{"gpt-4o":0.00125}}]`},
		{"summary of nothing", "?start_date=2025-01-01&end_date=2025-12-31", "[]"},
		{"summary with api_key", "?start_date=2026-01-01&end_date=2026-01-02&api_key=sk-abc", "[]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := e.get("/spend/logs" + c.query)
			check(t, "GET /spend/logs"+c.query, rec.Code, rec.Body.String(), 200, c.want)
			if got := rec.Header().Get(nextCursorHeader); got != "" {
				t.Errorf("%s = %q on the only page", nextCursorHeader, got)
			}
		})
	}
}

func TestSpendLogsPages(t *testing.T) {
	e := newEnv(t)
	seedSpend(t, e.st)
	pages := []struct {
		query   string
		want    string
		hasNext bool
	}{
		{"?page_size=4", rowsJSON("req-1", "req-2", "req-3", "req-4"), true},
		{"?page_size=4&cursor=", rowsJSON("req-5", "req-6"), false},
	}
	cursor := ""
	for i, p := range pages {
		path := "/spend/logs" + p.query + url.QueryEscape(cursor)
		rec := e.get(path)
		check(t, fmt.Sprintf("page %d", i+1), rec.Code, rec.Body.String(), 200, p.want)
		cursor = rec.Header().Get(nextCursorHeader)
		if (cursor != "") != p.hasNext {
			t.Fatalf("page %d: %s = %q, want one: %v", i+1, nextCursorHeader, cursor, p.hasNext)
		}
	}

	// A filter pages the same way.
	rec := e.get("/spend/logs?end_user=alice&page_size=2")
	check(t, "alice page 1", rec.Code, rec.Body.String(), 200, rowsJSON("req-1", "req-2"))
	rec = e.get("/spend/logs?end_user=alice&page_size=2&cursor=" + url.QueryEscape(rec.Header().Get(nextCursorHeader)))
	check(t, "alice page 2", rec.Code, rec.Body.String(), 200, rowsJSON("req-5"))
	if got := rec.Header().Get(nextCursorHeader); got != "" {
		t.Errorf("last page has %s %q", nextCursorHeader, got)
	}
}

func TestSpendLogsRejected(t *testing.T) {
	e := newEnv(t)
	seedSpend(t, e.st)
	bad := func(param, msg string) string { return errJSON(msg, "bad_request", param, 400) }
	dateMsg := func(name, got string) string {
		return name + " must be a date (YYYY-MM-DD) or an RFC 3339 date-time such as 2026-01-31T00:00:00Z. Received: " + got
	}
	cases := []struct {
		name, query string
		want        string
	}{
		{"start_date not a date", "?start_date=yesterday", bad("start_date", dateMsg("start_date", "yesterday"))},
		{"end_date not a date", "?end_date=2026-02-30", bad("end_date", dateMsg("end_date", "2026-02-30"))},
		{"unescaped plus is a space", "?start_date=2026-01-02T09:00:00+01:00", bad("start_date", dateMsg("start_date", "2026-01-02T09:00:00 01:00"))},
		{"end before start", "?start_date=2026-01-02&end_date=2026-01-01", bad("end_date", "end_date must be after start_date")},
		{"empty date-time range", "?start_date=2026-01-02T00:00:00Z&end_date=2026-01-02T00:00:00Z", bad("end_date", "end_date must be after start_date")},
		{"end at the zero time", "?end_date=0001-01-01T00:00:00Z", bad("end_date", "end_date must be after 0001-01-01T00:00:00Z")},
		{"page_size 0", "?page_size=0", bad("page_size", "page_size must be a whole number from 1 to 1000. Received: 0")},
		{"page_size over the cap", "?page_size=1001", bad("page_size", "page_size must be a whole number from 1 to 1000. Received: 1001")},
		{"page_size not a number", "?page_size=ten", bad("page_size", "page_size must be a whole number from 1 to 1000. Received: ten")},
		{"summarize not a boolean", "?summarize=maybe", bad("summarize", "summarize must be true or false. Received: maybe")},
		{"customers that disagree", "?end_user=alice&customer_id=bob",
			bad("customer_id", "end_user and customer_id name different customers: alice, bob")},
		{"whitespace customer", "?user_id=%20%20", bad("user_id", "user_id must be a non-empty string that is not only whitespace")},
		{"customer id too long", "?end_user=" + strings.Repeat("x", 513), bad("end_user", "end_user must be at most 512 bytes, got 513")},
		{"request id too long", "?request_id=" + strings.Repeat("x", 70000), bad("request_id", "request_id must be at most 512 bytes, got 70000")},
		{"cursor not ours", "?cursor=not-a-cursor!", bad("cursor", "cursor is not one this server returned; start again without it")},
		{"page other than 1", "?page=2", bad("page", "/spend/logs pages with a cursor: pass the X-Next-Cursor header of the previous page as cursor")},
		{"cursor on a summary", "?start_date=2026-01-01&end_date=2026-01-02&cursor=abc",
			bad("cursor", "the summary has no pages; send summarize=false to page through logs")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := e.do("GET", "/spend/logs"+c.query, "")
			check(t, "GET /spend/logs"+c.query, code, body, 400, c.want)
		})
	}
}

// sums are the numbers of a SpendMetrics; spend is written as the API prints it.
type sums struct {
	spend                                                  string
	prompt, completion, cacheRead, cacheCreation, requests int
}

// metrics renders LiteLLM's SpendMetrics; total_tokens is prompt + completion.
func (s sums) metrics() string {
	return fmt.Sprintf(`{"spend":%s,"prompt_tokens":%d,"completion_tokens":%d,"cache_read_input_tokens":%d,"cache_creation_input_tokens":%d,`+
		`"total_tokens":%d,"successful_requests":%d,"failed_requests":0,"api_requests":%d}`,
		s.spend, s.prompt, s.completion, s.cacheRead, s.cacheCreation, s.prompt+s.completion, s.requests, s.requests)
}

// entry is one breakdown entry of these sums.
func (s sums) entry(metadata string) string {
	return fmt.Sprintf(`{"metrics":%s,"metadata":%s,"api_key_breakdown":{}}`, s.metrics(), metadata)
}

// The fixture's daily rows, one per day, customer, model and endpoint.
var (
	s1 = sums{"0.00125", 100, 50, 20, 0, 1} // req-1
	s2 = sums{"0.003", 200, 100, 0, 40, 1}  // req-2
	s3 = sums{"0.000125", 10, 5, 0, 0, 1}   // req-3
	s5 = sums{"0.0", 7, 3, 0, 0, 1}         // req-5
	s6 = sums{"3e-09", 1, 1, 0, 0, 1}       // req-6
)

const (
	aliceMeta = `{"alias":"Alice"}`
	bobMeta   = `{"alias":null}`
	goneMeta  = `{}`
)

// dayJSON is one result: models and model_groups hold the same entries.
func dayJSON(date string, s sums, models, endpoints, entities string) string {
	return fmt.Sprintf(`{"date":%q,"metrics":%s,"breakdown":{"mcp_servers":{},"models":%s,"model_groups":%s,"providers":{},`+
		`"endpoints":%s,"api_keys":{},"entities":%s}}`, date, s.metrics(), models, models, endpoints, entities)
}

// activityJSON is a SpendAnalyticsPaginatedResponse; the totals are the page's.
func activityJSON(results []string, s sums, page, totalPages int, hasMore bool) string {
	return fmt.Sprintf(`{"results":[%s],"metadata":{"total_spend":%s,"total_prompt_tokens":%d,"total_completion_tokens":%d,"total_tokens":%d,`+
		`"total_api_requests":%d,"total_successful_requests":%d,"total_failed_requests":0,"total_cache_read_input_tokens":%d,`+
		`"total_cache_creation_input_tokens":%d,"page":%d,"total_pages":%d,"has_more":%v}}`,
		strings.Join(results, ","), s.spend, s.prompt, s.completion, s.prompt+s.completion,
		s.requests, s.requests, s.cacheRead, s.cacheCreation, page, totalPages, hasMore)
}

func TestCustomerDailyActivity(t *testing.T) {
	e := newEnv(t)
	seedSpend(t, e.st)
	// Yesterday, seen from 2026-01-03: bob's request and alice's unpriced one;
	// the request without a customer does not count.
	jan2Sums := sums{"0.000125", 17, 8, 0, 0, 2}
	jan2 := dayJSON("2026-01-02", jan2Sums,
		`{"gpt-4o":`+s3.entry(`{}`)+`,"mystery-model":`+s5.entry(`{}`)+`}`,
		`{"/v1/chat/completions":`+s3.entry(`{}`)+`,"/v1/responses":`+s5.entry(`{}`)+`}`,
		`{"alice":`+s5.entry(aliceMeta)+`,"bob":`+s3.entry(bobMeta)+`}`)
	jan3 := dayJSON("2026-01-03", s6,
		`{"gpt-4o":`+s6.entry(`{}`)+`}`,
		`{"/openai/deployments/gpt4o/chat/completions":`+s6.entry(`{}`)+`}`,
		`{"carol":`+s6.entry(goneMeta)+`}`)
	jan2Alice := dayJSON("2026-01-02", s5,
		`{"mystery-model":`+s5.entry(`{}`)+`}`,
		`{"/v1/responses":`+s5.entry(`{}`)+`}`,
		`{"alice":`+s5.entry(aliceMeta)+`}`)
	jan2Bob := dayJSON("2026-01-02", s3,
		`{"gpt-4o":`+s3.entry(`{}`)+`}`,
		`{"/v1/chat/completions":`+s3.entry(`{}`)+`}`,
		`{"bob":`+s3.entry(bobMeta)+`}`)
	jan1Claude := dayJSON("2026-01-01", s2,
		`{"claude-sonnet-4":`+s2.entry(`{}`)+`}`,
		`{"/v1/messages":`+s2.entry(`{}`)+`}`,
		`{"alice":`+s2.entry(aliceMeta)+`}`)
	jan1GPT := dayJSON("2026-01-01", s1,
		`{"gpt-4o":`+s1.entry(`{}`)+`}`,
		`{"/v1/chat/completions":`+s1.entry(`{}`)+`}`,
		`{"alice":`+s1.entry(aliceMeta)+`}`)
	zero := sums{spend: "0.0"}
	const threeDays = "?start_date=2026-01-01&end_date=2026-01-03"

	cases := []struct {
		name, query string
		want        string
	}{
		{"yesterday", "?start_date=2026-01-02&end_date=2026-01-02", activityJSON([]string{jan2}, jan2Sums, 1, 1, false)},
		{"one customer", "?start_date=2026-01-02&end_date=2026-01-02&end_user_ids=bob", activityJSON([]string{jan2Bob}, s3, 1, 1, false)},
		{"several customers, one excluded", "?start_date=2026-01-02&end_date=2026-01-02&end_user_ids=alice,bob,,bob&exclude_end_user_ids=alice",
			activityJSON([]string{jan2Bob}, s3, 1, 1, false)},
		{"exclusion alone", "?start_date=2026-01-02&end_date=2026-01-02&exclude_end_user_ids=bob", activityJSON([]string{jan2Alice}, s5, 1, 1, false)},
		{"model", threeDays + "&model=gpt-4o&page_size=100",
			activityJSON([]string{jan3, jan2Bob, jan1GPT}, sums{"0.001375003", 111, 56, 20, 0, 3}, 1, 1, false)},
		{"date-times are half-open", "?start_date=2026-01-02T08:00:00Z&end_date=2026-01-02T12:00:00Z", activityJSON([]string{jan2Bob}, s3, 1, 1, false)},
		{"page 1 of 3", threeDays + "&page_size=2", activityJSON([]string{jan3, jan2Alice}, sums{"3e-09", 8, 4, 0, 0, 2}, 1, 3, true)},
		{"page 2 of 3: a day split across pages", threeDays + "&page_size=2&page=2",
			activityJSON([]string{jan2Bob, jan1Claude}, sums{"0.003125", 210, 105, 0, 40, 2}, 2, 3, true)},
		{"page 3 of 3", threeDays + "&page_size=2&page=3", activityJSON([]string{jan1GPT}, s1, 3, 3, false)},
		{"past the last page", threeDays + "&page_size=2&page=4", activityJSON(nil, zero, 4, 3, false)},
		{"api_key matches nothing", threeDays + "&api_key=sk-abc", activityJSON(nil, zero, 1, 0, false)},
		{"no activity", "?start_date=2025-01-01&end_date=2025-01-31", activityJSON(nil, zero, 1, 0, false)},
	}
	for _, c := range cases {
		for _, prefix := range []string{"/customer", "/end_user"} {
			t.Run(c.name+" "+prefix, func(t *testing.T) {
				path := prefix + "/daily/activity" + c.query
				code, body := e.do("GET", path, "")
				check(t, "GET "+path, code, body, 200, c.want)
			})
		}
	}
}

func TestCustomerDailyActivityRejected(t *testing.T) {
	e := newEnv(t)
	const day = "?start_date=2026-01-01&end_date=2026-01-01"
	cases := []struct {
		name, query string
		want        string
	}{
		{"no dates", "", "Please provide start_date and end_date"},
		{"no end_date", "?start_date=2026-01-01", "Please provide start_date and end_date"},
		{"no start_date", "?end_date=2026-01-01", "Please provide start_date and end_date"},
		{"bad date", "?start_date=2026-1-1&end_date=2026-01-01",
			"start_date must be a date (YYYY-MM-DD) or an RFC 3339 date-time such as 2026-01-31T00:00:00Z. Received: 2026-1-1"},
		{"end before start", "?start_date=2026-01-02&end_date=2026-01-01", "end_date must be after start_date"},
		{"page 0", day + "&page=0", "page must be a whole number from 1 to 2147483647. Received: 0"},
		{"page not a number", day + "&page=one", "page must be a whole number from 1 to 2147483647. Received: one"},
		{"page_size over the cap", day + "&page_size=5000", "page_size must be a whole number from 1 to 1000. Received: 5000"},
		{"whitespace id", day + "&end_user_ids=a,%20", "end_user_ids must be a non-empty string that is not only whitespace"},
		{"whitespace excluded id", day + "&exclude_end_user_ids=%09", "exclude_end_user_ids must be a non-empty string that is not only whitespace"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := e.do("GET", "/customer/daily/activity"+c.query, "")
			check(t, c.query, code, body, 400, detailJSON(c.want))
		})
	}
}

// spendRoutes are the spend visibility routes, as the shared route tests list them.
func spendRoutes() []route {
	return []route{
		{"GET", "/spend/logs", "", envError},
		{"GET", "/spend/logs?start_date=2026-01-01&end_date=2026-01-02", "", envError},
		{"GET", "/customer/daily/activity?start_date=2026-01-01&end_date=2026-01-02", "", envDetail},
		{"GET", "/end_user/daily/activity?start_date=2026-01-01&end_date=2026-01-02&end_user_ids=a", "", envDetail},
	}
}

func TestSpendRoutesNeedTheMasterKey(t *testing.T) {
	e := newEnv(t)
	want := errJSON("Authentication Error, Invalid proxy server token passed.", "auth_error", "", 401)
	for _, r := range spendRoutes() {
		t.Run(r.path, func(t *testing.T) {
			code, body := send(t, e.h, r.method, r.path, "", "Bearer sk-wrong")
			check(t, r.path, code, body, 401, want)
		})
	}
}

func TestSpendRoutesStoreFailure(t *testing.T) {
	for _, r := range spendRoutes() {
		t.Run(r.path, func(t *testing.T) {
			buf := &syncbuf.Buffer{}
			h := newHandler(Config{}, brokenStore{}, buf)
			code, body := send(t, h, r.method, r.path, "", "Bearer "+testKey)
			check(t, r.path, code, body, 500, r.in("Internal Server Error", "internal_server_error", "", 500))
			if !strings.Contains(buf.String(), errDiskOnFire.Error()) {
				t.Errorf("log lacks the cause: %s", buf.String())
			}
		})
	}
}

func TestCallType(t *testing.T) {
	cases := []struct{ path, want string }{
		{"/v1/chat/completions", "acompletion"},
		{"/chat/completions", "acompletion"},
		{"/openai/deployments/d/chat/completions", "acompletion"},
		{"/v1/completions", "atext_completion"},
		{"/openai/deployments/d/embeddings", "aembedding"},
		{"/openai/responses", "aresponses"},
		{"/v1/messages", "anthropic_messages"},
		{"/v1/models", ""},
		{"", ""},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			if got := callType(c.path); got != c.want {
				t.Errorf("callType(%q) = %q, want %q", c.path, got, c.want)
			}
		})
	}
}

func TestSpendLogRowDuration(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := func(n int64) *int64 { return &n }
	cases := []struct {
		name       string
		start, end time.Time
		want       *int64
	}{
		{"normal", t0, t0.Add(1234567 * time.Microsecond), ms(1234)},
		{"instant", t0, t0, ms(0)},
		{"no start time", time.Time{}, t0, nil},
		{"end before start", t0, t0.Add(-time.Second), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := newSpendLogRow(store.SpendLog{StartTime: c.start, EndTime: c.end}).RequestDurationMS
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("request_duration_ms (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSpendVisibilityOverHTTP answers "who spent what yesterday" the way an
// operator would: over HTTP, against a store on disk, following cursors.
func TestSpendVisibilityOverHTTP(t *testing.T) {
	st, err := badgerstore.Open(badgerstore.Options{Dir: t.TempDir(), SyncWrites: true})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	seedSpend(t, st)
	srv := httptest.NewServer(New(Config{MasterKey: testKey}, st))
	t.Cleanup(srv.Close)
	get := func(path string) (string, http.Header) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), "GET", srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testKey)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: status %d: %s", path, resp.StatusCode, body)
		}
		return string(body), resp.Header
	}

	// Every log of 2026-01-02, two at a time.
	var ids []string
	cursor := ""
	for page := 1; ; page++ {
		if page > 10 {
			t.Fatal("cursor never ends")
		}
		body, h := get("/spend/logs?start_date=2026-01-02&end_date=2026-01-02&summarize=false&page_size=2&cursor=" + url.QueryEscape(cursor))
		var rows []struct {
			RequestID string  `json:"request_id"`
			EndUser   string  `json:"end_user"`
			Spend     float64 `json:"spend"`
		}
		if err := json.Unmarshal([]byte(body), &rows); err != nil {
			t.Fatalf("page %d: %v: %s", page, err, body)
		}
		for _, r := range rows {
			ids = append(ids, fmt.Sprintf("%s %s %g", r.RequestID, r.EndUser, r.Spend))
		}
		if cursor = h.Get(nextCursorHeader); cursor == "" {
			break
		}
	}
	if diff := cmp.Diff([]string{"req-3 bob 0.000125", "req-4  8e-07", "req-5 alice 0"}, ids); diff != "" {
		t.Errorf("logs of 2026-01-02 (-want +got):\n%s", diff)
	}

	// Who spent what that day, per customer.
	body, _ := get("/customer/daily/activity?start_date=2026-01-02&end_date=2026-01-02&page_size=1000")
	var activity struct {
		Results []struct {
			Breakdown struct {
				Entities map[string]struct {
					Metrics struct {
						Spend       float64 `json:"spend"`
						APIRequests int     `json:"api_requests"`
					} `json:"metrics"`
				} `json:"entities"`
			} `json:"breakdown"`
		} `json:"results"`
		Metadata struct {
			TotalSpend float64 `json:"total_spend"`
			HasMore    bool    `json:"has_more"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal([]byte(body), &activity); err != nil {
		t.Fatalf("daily activity: %v: %s", err, body)
	}
	got := map[string]string{"total": fmt.Sprintf("%g more=%v", activity.Metadata.TotalSpend, activity.Metadata.HasMore)}
	for _, r := range activity.Results {
		for id, e := range r.Breakdown.Entities {
			got[id] = fmt.Sprintf("%g in %d", e.Metrics.Spend, e.Metrics.APIRequests)
		}
	}
	want := map[string]string{"total": "0.000125 more=false", "alice": "0 in 1", "bob": "0.000125 in 1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("spend of 2026-01-02 (-want +got):\n%s", diff)
	}
}

// fuzzQueries seeds the query-string fuzzers.
var fuzzQueries = []string{
	"",
	"start_date=2026-01-01&end_date=2026-01-02",
	"start_date=2026-01-02T08:00:00Z&end_date=2026-01-02T12:00:00.5%2B01:00&summarize=false",
	"end_user=alice&customer_id=alice&user_id=bob&model=gpt-4o&request_id=req-1&api_key=sk",
	"page=1&page_size=1000&cursor=AAAAAAAAAAAAAAAAAA",
	"end_user_ids=a,,b&exclude_end_user_ids=%20&page=2147483647&page_size=1",
	"start_date=0001-01-01&end_date=9999-12-31",
	"start_date=%ff&end_date=%&page_size=-1&summarize=2&page=1e3",
	"end_date=0001-01-01T00:00:00Z&start_date=0000-12-31T23:00:00-01:00",
}

// fuzzQuery sends arbitrary query strings to path and checks the answer is
// never a 5xx, and that a 200 is the JSON shape the route promises and an
// error is in the route's envelope.
func fuzzQuery(f *testing.F, path string, env envelope, shape any) {
	for _, q := range fuzzQueries {
		f.Add(q)
	}
	e := newEnv(f)
	seedSpend(f, e.st)
	h := New(Config{MasterKey: testKey}, e.st)
	f.Fuzz(func(t *testing.T, query string) {
		req := httptest.NewRequest("GET", path, nil)
		req.URL.RawQuery = query
		req.Header.Set("Authorization", "Bearer "+testKey)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch {
		case rec.Code >= 500:
			t.Fatalf("status %d for %q: %s", rec.Code, query, rec.Body)
		case rec.Code == 200:
			if err := json.Unmarshal(rec.Body.Bytes(), shape); err != nil {
				t.Fatalf("200 body for %q is not the route's shape: %v: %s", query, err, rec.Body)
			}
		case env == envDetail:
			var d struct {
				Detail *struct {
					Error string `json:"error"`
				} `json:"detail"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil || d.Detail == nil || d.Detail.Error == "" {
				t.Fatalf("status %d for %q without the detail envelope: %s", rec.Code, query, rec.Body)
			}
		default:
			var eb struct {
				Error *struct {
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error == nil || eb.Error.Message == "" {
				t.Fatalf("status %d for %q without the error envelope: %s", rec.Code, query, rec.Body)
			}
		}
	})
}

func FuzzSpendLogsQuery(f *testing.F) {
	fuzzQuery(f, "/spend/logs", envError, &[]map[string]any{})
}

func FuzzCustomerDailyActivityQuery(f *testing.F) {
	fuzzQuery(f, "/customer/daily/activity", envDetail, &struct {
		Results  []map[string]any `json:"results"`
		Metadata map[string]any   `json:"metadata"`
	}{})
}
