package admin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/store"
)

// Spend visibility: GET /spend/logs lists spend-log rows (LiteLLM's
// LiteLLM_SpendLogs) and GET /customer/daily/activity sums them per UTC day
// (LiteLLM's SpendAnalyticsPaginatedResponse over LiteLLM_DailyEndUserSpend).
// tollgate keeps no daily table: both sums read every log in the requested
// range, a page of the store at a time, so their cost grows with the number
// of requests in the range (about 4 µs each), not with the days.

const (
	// maxPageSize caps page_size on both routes: a page is one response body
	// and, for /spend/logs, one store read.
	maxPageSize = 1000
	// defaultLogsPageSize is /spend/logs/ui's default page_size.
	defaultLogsPageSize = 50
	// defaultActivityPageSize is /customer/daily/activity's default page_size.
	defaultActivityPageSize = 10
	// sumPageSize is how many logs a sum reads from the store at a time.
	sumPageSize = 1000
	// nextCursorHeader carries the cursor of the next /spend/logs page; it is
	// absent on the last page. The body stays LiteLLM's bare array.
	nextCursorHeader = "X-Next-Cursor"
)

// params reads a route's query string. Repeated parameters take the last
// value, as FastAPI does; empty values count as absent.
type params struct {
	env envelope
	v   url.Values
}

func (p params) str(name string) string {
	vs := p.v[name]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

func (p params) invalid(name, msg string) *apiError {
	return inEnv(p.env, http.StatusBadRequest, typeBadRequest, name, msg)
}

// id returns an optional id parameter, checked like ids in bodies.
func (p params) id(name string) (string, error) {
	s := p.str(name)
	if s == "" {
		return "", nil
	}
	if msg := checkID(name, s); msg != "" {
		return "", p.invalid(name, msg)
	}
	return s, nil
}

// customer returns the customer named by any of names, which must agree.
func (p params) customer(names ...string) (string, error) {
	var id, from string
	for _, name := range names {
		s, err := p.id(name)
		switch {
		case err != nil:
			return "", err
		case s == "" || s == id:
			continue
		case id != "":
			return "", p.invalid(name, fmt.Sprintf("%s and %s name different customers: %s, %s", from, name, id, s))
		}
		id, from = s, name
	}
	return id, nil
}

// ids returns a comma-separated list of ids without empty items or repeats.
func (p params) ids(name string) ([]string, error) {
	var out []string
	for s := range strings.SplitSeq(p.str(name), ",") {
		if s == "" || slices.Contains(out, s) {
			continue
		}
		if msg := checkID(name, s); msg != "" {
			return nil, p.invalid(name, msg)
		}
		out = append(out, s)
	}
	return out, nil
}

// count returns a whole-number parameter in [1, most], def when absent.
func (p params) count(name string, def, most int) (int, error) {
	s := p.str(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > most {
		return 0, p.invalid(name, fmt.Sprintf("%s must be a whole number from 1 to %d. Received: %s", name, most, s))
	}
	return n, nil
}

// boolean returns a boolean parameter in the spellings pydantic accepts.
func (p params) boolean(name string, def bool) (bool, error) {
	s := p.str(name)
	switch strings.ToLower(s) {
	case "":
		return def, nil
	case "true", "t", "1", "yes", "y", "on":
		return true, nil
	case "false", "f", "0", "no", "n", "off":
		return false, nil
	}
	return false, p.invalid(name, fmt.Sprintf("%s must be true or false. Received: %s", name, s))
}

// timeRange returns the half-open range [start, end) that start_date and
// end_date name; a zero bound is open. A date is a UTC day and end_date
// includes its whole day (LiteLLM's own /spend/logs drops it); an RFC 3339
// date-time is that instant.
func (p params) timeRange() (start, end time.Time, err error) {
	if start, err = p.instant("start_date", false); err != nil {
		return time.Time{}, time.Time{}, err
	}
	if end, err = p.instant("end_date", true); err != nil {
		return time.Time{}, time.Time{}, err
	}
	if !start.IsZero() && !end.IsZero() && !end.After(start) {
		return time.Time{}, time.Time{}, p.invalid("end_date", "end_date must be after start_date")
	}
	return start, end, nil
}

func (p params) instant(name string, end bool) (time.Time, error) {
	s := p.str(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err == nil && end {
		t = t.AddDate(0, 0, 1)
	}
	if err != nil {
		if t, err = time.Parse(time.RFC3339, s); err != nil {
			return time.Time{}, p.invalid(name, fmt.Sprintf(
				"%s must be a date (YYYY-MM-DD) or an RFC 3339 date-time such as 2026-01-31T00:00:00Z. Received: %s", name, s))
		}
	}
	// The zero time means "open"; an end there would select nothing instead.
	if end && !t.After(time.Time{}) {
		return time.Time{}, p.invalid(name, name+" must be after 0001-01-01T00:00:00Z")
	}
	return t.UTC(), nil
}

// spendLogRow is a LiteLLM_SpendLogs row as /spend/logs returns it, with the
// columns tollgate has. api_key and user are always "": tollgate sees no
// virtual keys or internal users. messages and response are {} as in
// LiteLLM with prompt storage off.
type spendLogRow struct {
	RequestID         string           `json:"request_id"`
	CallType          string           `json:"call_type"`
	APIKey            string           `json:"api_key"`
	Spend             usd              `json:"spend"`
	TotalTokens       int64            `json:"total_tokens"`
	PromptTokens      int64            `json:"prompt_tokens"`
	CompletionTokens  int64            `json:"completion_tokens"`
	StartTime         string           `json:"startTime"`
	EndTime           string           `json:"endTime"`
	RequestDurationMS *int64           `json:"request_duration_ms"`
	Model             string           `json:"model"`
	User              string           `json:"user"`
	Metadata          spendLogMetadata `json:"metadata"`
	EndUser           string           `json:"end_user"`
	Messages          struct{}         `json:"messages"`
	Response          struct{}         `json:"response"`
	Status            string           `json:"status"`
}

// spendLogMetadata keeps LiteLLM's metadata keys where one fits (status,
// usage_object) and adds what only tollgate records.
type spendLogMetadata struct {
	Status      string      `json:"status"`
	UsageObject usageObject `json:"usage_object"`
	// Endpoint is the request path.
	Endpoint string `json:"endpoint"`
	// ClientRequestID is the x-request-id the request arrived with.
	ClientRequestID string `json:"client_request_id"`
	// Estimated: the upstream reported no usage, so tokens were counted locally.
	Estimated bool `json:"estimated"`
	// Unpriced: the model has no price, so spend is 0.
	Unpriced bool `json:"unpriced"`
}

// usageObject is the OpenAI usage LiteLLM stores, with Anthropic's cache counts.
type usageObject struct {
	CompletionTokens         int64                   `json:"completion_tokens"`
	PromptTokens             int64                   `json:"prompt_tokens"`
	TotalTokens              int64                   `json:"total_tokens"`
	CompletionTokensDetails  completionTokensDetails `json:"completion_tokens_details"`
	PromptTokensDetails      promptTokensDetails     `json:"prompt_tokens_details"`
	CacheCreationInputTokens int64                   `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64                   `json:"cache_read_input_tokens"`
}

type completionTokensDetails struct {
	ReasoningTokens int64 `json:"reasoning_tokens"`
}

type promptTokensDetails struct {
	CachedTokens int64 `json:"cached_tokens"`
}

// callTypes maps the end of a metered path to LiteLLM's call_type; the
// longer suffix comes first.
var callTypes = []struct{ suffix, callType string }{
	{"/chat/completions", "acompletion"},
	{"/completions", "atext_completion"},
	{"/embeddings", "aembedding"},
	{"/responses", "aresponses"},
	{"/messages", "anthropic_messages"},
}

func callType(path string) string {
	for _, c := range callTypes {
		if strings.HasSuffix(path, c.suffix) {
			return c.callType
		}
	}
	return ""
}

func newSpendLogRow(l store.SpendLog) spendLogRow {
	row := spendLogRow{
		RequestID:        l.RequestID,
		CallType:         callType(l.Path),
		Spend:            usd(l.Cost),
		TotalTokens:      l.TotalTokens,
		PromptTokens:     l.PromptTokens,
		CompletionTokens: l.CompletionTokens,
		StartTime:        timestamp(l.StartTime),
		EndTime:          timestamp(l.EndTime),
		Model:            l.Model,
		Metadata: spendLogMetadata{
			// Only successful responses are metered.
			Status: "success",
			UsageObject: usageObject{
				CompletionTokens:         l.CompletionTokens,
				PromptTokens:             l.PromptTokens,
				TotalTokens:              l.TotalTokens,
				CompletionTokensDetails:  completionTokensDetails{ReasoningTokens: l.ReasoningTokens},
				PromptTokensDetails:      promptTokensDetails{CachedTokens: l.CacheReadTokens},
				CacheCreationInputTokens: l.CacheCreationTokens,
				CacheReadInputTokens:     l.CacheReadTokens,
			},
			Endpoint:        l.Path,
			ClientRequestID: l.ClientRequestID,
			Estimated:       l.Estimated,
			Unpriced:        l.Unpriced,
		},
		EndUser: l.CustomerID,
		Status:  "success",
	}
	if !l.StartTime.IsZero() && !l.EndTime.Before(l.StartTime) {
		ms := l.EndTime.Sub(l.StartTime).Milliseconds()
		row.RequestDurationMS = &ms
	}
	return row
}

// spendLogs handles GET /spend/logs: the logs of the filters, oldest first,
// a page at a time (page_size, cursor from the X-Next-Cursor header). With
// both start_date and end_date, and summarize not false, it answers with
// LiteLLM's per-day summary instead, as LiteLLM does.
func (s *server) spendLogs(w http.ResponseWriter, r *http.Request) error {
	p := params{env: envError, v: r.URL.Query()}
	customer, err := p.customer("end_user", "customer_id", "user_id")
	if err != nil {
		return err
	}
	q := store.SpendLogQuery{CustomerID: customer, Model: p.str("model"), After: p.str("cursor")}
	if q.RequestID, err = p.id("request_id"); err != nil {
		return err
	}
	if q.Start, q.End, err = p.timeRange(); err != nil {
		return err
	}
	summarize, err := p.boolean("summarize", true)
	if err != nil {
		return err
	}
	if q.Limit, err = p.count("page_size", defaultLogsPageSize, maxPageSize); err != nil {
		return err
	}
	// A client paging LiteLLM's /spend/logs/ui way would loop on page 1.
	if page := p.str("page"); page != "" && page != "1" {
		return p.invalid("page", "/spend/logs pages with a cursor: pass the "+nextCursorHeader+" header of the previous page as cursor")
	}
	if summarize && !q.Start.IsZero() && !q.End.IsZero() {
		return s.spendSummary(w, r, p, q)
	}
	if p.str("api_key") != "" { // tollgate records no virtual keys
		return writeJSON(w, http.StatusOK, []spendLogRow{})
	}
	logs, next, err := s.st.QuerySpendLogs(r.Context(), q)
	if errors.Is(err, store.ErrBadCursor) {
		return p.invalid("cursor", "cursor is not one this server returned; start again without it")
	}
	if err != nil {
		return fmt.Errorf("query spend logs: %w", err)
	}
	rows := make([]spendLogRow, len(logs))
	for i, l := range logs {
		rows[i] = newSpendLogRow(l)
	}
	if next != "" {
		w.Header().Set(nextCursorHeader, next)
	}
	return writeJSON(w, http.StatusOK, rows)
}

// spendSummaryDay is one day of LiteLLM's legacy /spend/logs summary. users
// is keyed by customer id ("" for requests without one): tollgate has no
// internal users, and its customers are who the spend belongs to.
type spendSummaryDay struct {
	StartTime string         `json:"startTime"`
	Spend     usd            `json:"spend"`
	Users     map[string]usd `json:"users"`
	Models    map[string]usd `json:"models"`
}

// spendSummary answers /spend/logs?summarize=true: spend per UTC day with
// data, oldest first. Unlike LiteLLM it adds no zero-spend days.
func (s *server) spendSummary(w http.ResponseWriter, r *http.Request, p params, q store.SpendLogQuery) error {
	if p.str("cursor") != "" {
		return p.invalid("cursor", "the summary has no pages; send summarize=false to page through logs")
	}
	days := map[string]*spendSummaryDay{}
	if p.str("api_key") == "" {
		err := s.eachSpendLog(r.Context(), q, func(l store.SpendLog) {
			key := l.StartTime.UTC().Format(time.DateOnly)
			d := days[key]
			if d == nil {
				d = &spendSummaryDay{StartTime: key, Users: map[string]usd{}, Models: map[string]usd{}}
				days[key] = d
			}
			d.Spend += usd(l.Cost)
			d.Users[l.CustomerID] += usd(l.Cost)
			d.Models[l.Model] += usd(l.Cost)
		})
		if err != nil {
			return err
		}
	}
	out := make([]*spendSummaryDay, 0, len(days))
	for _, d := range days {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b *spendSummaryDay) int { return strings.Compare(a.StartTime, b.StartTime) })
	return writeJSON(w, http.StatusOK, out)
}

// eachSpendLog calls fn on every log q selects, reading sumPageSize at a time.
// It stops when ctx ends (the client went away).
func (s *server) eachSpendLog(ctx context.Context, q store.SpendLogQuery, fn func(store.SpendLog)) error {
	q.Limit = sumPageSize
	for {
		logs, next, err := s.st.QuerySpendLogs(ctx, q)
		if err != nil {
			return fmt.Errorf("query spend logs: %w", err)
		}
		for _, l := range logs {
			fn(l)
		}
		if next == "" {
			return nil
		}
		q.After = next
	}
}

// spendMetrics is LiteLLM's SpendMetrics (the members tollgate can fill).
// total_tokens is prompt + completion, as LiteLLM sums it. Only successful
// responses are metered, so failed_requests is always 0.
type spendMetrics struct {
	Spend                    usd   `json:"spend"`
	PromptTokens             int64 `json:"prompt_tokens"`
	CompletionTokens         int64 `json:"completion_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	TotalTokens              int64 `json:"total_tokens"`
	SuccessfulRequests       int64 `json:"successful_requests"`
	FailedRequests           int64 `json:"failed_requests"`
	APIRequests              int64 `json:"api_requests"`
}

func (m *spendMetrics) add(o spendMetrics) {
	m.Spend += o.Spend
	m.PromptTokens += o.PromptTokens
	m.CompletionTokens += o.CompletionTokens
	m.CacheReadInputTokens += o.CacheReadInputTokens
	m.CacheCreationInputTokens += o.CacheCreationInputTokens
	m.TotalTokens += o.TotalTokens
	m.SuccessfulRequests += o.SuccessfulRequests
	m.FailedRequests += o.FailedRequests
	m.APIRequests += o.APIRequests
}

func logMetrics(l store.SpendLog) spendMetrics {
	return spendMetrics{
		Spend:                    usd(l.Cost),
		PromptTokens:             l.PromptTokens,
		CompletionTokens:         l.CompletionTokens,
		CacheReadInputTokens:     l.CacheReadTokens,
		CacheCreationInputTokens: l.CacheCreationTokens,
		TotalTokens:              l.PromptTokens + l.CompletionTokens,
		SuccessfulRequests:       1,
		APIRequests:              1,
	}
}

// metricWithMetadata is one entry of a breakdown.
type metricWithMetadata struct {
	Metrics         spendMetrics   `json:"metrics"`
	Metadata        map[string]any `json:"metadata"`
	APIKeyBreakdown struct{}       `json:"api_key_breakdown"`
}

// breakdown is LiteLLM's BreakdownMetrics. tollgate fills models,
// model_groups (the same: LiteLLM falls back to the model when a request has
// no model group), endpoints (the request path) and entities (customers);
// it knows no MCP servers, providers or API keys.
type breakdown struct {
	MCPServers  map[string]*metricWithMetadata `json:"mcp_servers"`
	Models      map[string]*metricWithMetadata `json:"models"`
	ModelGroups map[string]*metricWithMetadata `json:"model_groups"`
	Providers   map[string]*metricWithMetadata `json:"providers"`
	Endpoints   map[string]*metricWithMetadata `json:"endpoints"`
	APIKeys     map[string]*metricWithMetadata `json:"api_keys"`
	Entities    map[string]*metricWithMetadata `json:"entities"`
}

func newBreakdown() breakdown {
	return breakdown{
		MCPServers: map[string]*metricWithMetadata{}, Models: map[string]*metricWithMetadata{},
		ModelGroups: map[string]*metricWithMetadata{}, Providers: map[string]*metricWithMetadata{},
		Endpoints: map[string]*metricWithMetadata{}, APIKeys: map[string]*metricWithMetadata{},
		Entities: map[string]*metricWithMetadata{},
	}
}

// addTo adds m to the entry k of b, creating it with metadata meta.
func addTo(b map[string]*metricWithMetadata, k string, m spendMetrics, meta map[string]any) {
	e := b[k]
	if e == nil {
		e = &metricWithMetadata{Metadata: meta}
		b[k] = e
	}
	e.Metrics.add(m)
}

type dailySpendData struct {
	Date      string       `json:"date"`
	Metrics   spendMetrics `json:"metrics"`
	Breakdown breakdown    `json:"breakdown"`
}

type dailySpendMetadata struct {
	TotalSpend                    usd   `json:"total_spend"`
	TotalPromptTokens             int64 `json:"total_prompt_tokens"`
	TotalCompletionTokens         int64 `json:"total_completion_tokens"`
	TotalTokens                   int64 `json:"total_tokens"`
	TotalAPIRequests              int64 `json:"total_api_requests"`
	TotalSuccessfulRequests       int64 `json:"total_successful_requests"`
	TotalFailedRequests           int64 `json:"total_failed_requests"`
	TotalCacheReadInputTokens     int64 `json:"total_cache_read_input_tokens"`
	TotalCacheCreationInputTokens int64 `json:"total_cache_creation_input_tokens"`
	Page                          int   `json:"page"`
	TotalPages                    int   `json:"total_pages"`
	HasMore                       bool  `json:"has_more"`
}

// spendAnalyticsResponse is LiteLLM's SpendAnalyticsPaginatedResponse.
type spendAnalyticsResponse struct {
	Results  []dailySpendData   `json:"results"`
	Metadata dailySpendMetadata `json:"metadata"`
}

// dailyKey identifies a row of LiteLLM's daily customer table that tollgate
// can tell apart: one per UTC day, customer, model and endpoint.
type dailyKey struct {
	date, customer, model, endpoint string
}

type dailyRow struct {
	dailyKey
	metrics spendMetrics
}

// customerDailyActivity handles GET /customer/daily/activity (alias
// /end_user/daily/activity). Like LiteLLM it pages over the daily rows
// (newest day first) and sums each page: results group the page's rows by
// day and metadata totals the page, so a client that sums the pages gets the
// range. Only requests that named a customer count.
func (s *server) customerDailyActivity(w http.ResponseWriter, r *http.Request) error {
	p := params{env: envDetail, v: r.URL.Query()}
	if p.str("start_date") == "" || p.str("end_date") == "" {
		return p.invalid("start_date", "Please provide start_date and end_date")
	}
	start, end, err := p.timeRange()
	if err != nil {
		return err
	}
	include, err := p.ids("end_user_ids")
	if err != nil {
		return err
	}
	exclude, err := p.ids("exclude_end_user_ids")
	if err != nil {
		return err
	}
	page, err := p.count("page", 1, math.MaxInt32)
	if err != nil {
		return err
	}
	size, err := p.count("page_size", defaultActivityPageSize, maxPageSize)
	if err != nil {
		return err
	}

	sums := map[dailyKey]*spendMetrics{}
	add := func(l store.SpendLog) {
		if l.CustomerID == "" || slices.Contains(exclude, l.CustomerID) {
			return
		}
		k := dailyKey{l.StartTime.UTC().Format(time.DateOnly), l.CustomerID, l.Model, l.Path}
		m := sums[k]
		if m == nil {
			m = &spendMetrics{}
			sums[k] = m
		}
		m.add(logMetrics(l))
	}
	q := store.SpendLogQuery{Model: p.str("model"), Start: start, End: end}
	switch {
	case p.str("api_key") != "": // tollgate records no virtual keys
	case len(include) == 0:
		err = s.eachSpendLog(r.Context(), q, add)
	default:
		// One customer's index each: the other customers' logs are not read.
		for _, id := range include {
			q.CustomerID = id
			if err = s.eachSpendLog(r.Context(), q, add); err != nil {
				break
			}
		}
	}
	if err != nil {
		return err
	}

	rows := make([]dailyRow, 0, len(sums))
	for k, m := range sums {
		rows = append(rows, dailyRow{k, *m})
	}
	slices.SortFunc(rows, func(a, b dailyRow) int {
		return cmp.Or(strings.Compare(b.date, a.date), strings.Compare(a.customer, b.customer),
			strings.Compare(a.model, b.model), strings.Compare(a.endpoint, b.endpoint))
	})
	from := min((page-1)*size, len(rows))
	resp, err := s.dailyActivity(r.Context(), rows[from:min(from+size, len(rows))])
	if err != nil {
		return err
	}
	resp.Metadata.Page = page
	resp.Metadata.TotalPages = (len(rows) + size - 1) / size
	resp.Metadata.HasMore = page*size < len(rows)
	return writeJSON(w, http.StatusOK, resp)
}

// dailyActivity groups rows (newest day first) by day and totals them.
func (s *server) dailyActivity(ctx context.Context, rows []dailyRow) (spendAnalyticsResponse, error) {
	resp := spendAnalyticsResponse{Results: []dailySpendData{}}
	aliases := map[string]map[string]any{}
	var total spendMetrics
	for _, row := range rows {
		if n := len(resp.Results); n == 0 || resp.Results[n-1].Date != row.date {
			resp.Results = append(resp.Results, dailySpendData{Date: row.date, Breakdown: newBreakdown()})
		}
		day := &resp.Results[len(resp.Results)-1]
		meta, ok := aliases[row.customer]
		if !ok {
			var err error
			if meta, err = s.customerAlias(ctx, row.customer); err != nil {
				return spendAnalyticsResponse{}, err
			}
			aliases[row.customer] = meta
		}
		m := row.metrics
		day.Metrics.add(m)
		addTo(day.Breakdown.Models, row.model, m, map[string]any{})
		addTo(day.Breakdown.ModelGroups, row.model, m, map[string]any{})
		addTo(day.Breakdown.Endpoints, row.endpoint, m, map[string]any{})
		addTo(day.Breakdown.Entities, row.customer, m, meta)
		total.add(m)
	}
	resp.Metadata = dailySpendMetadata{
		TotalSpend:                    total.Spend,
		TotalPromptTokens:             total.PromptTokens,
		TotalCompletionTokens:         total.CompletionTokens,
		TotalTokens:                   total.TotalTokens,
		TotalAPIRequests:              total.APIRequests,
		TotalSuccessfulRequests:       total.SuccessfulRequests,
		TotalFailedRequests:           total.FailedRequests,
		TotalCacheReadInputTokens:     total.CacheReadInputTokens,
		TotalCacheCreationInputTokens: total.CacheCreationInputTokens,
	}
	return resp, nil
}

// customerAlias is an entity's metadata, as LiteLLM builds it from the
// customer table: {"alias": ...}, or {} for a customer since deleted.
func (s *server) customerAlias(ctx context.Context, id string) (map[string]any, error) {
	c, err := s.st.GetCustomer(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return map[string]any{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get customer: %w", err)
	}
	return map[string]any{"alias": c.Alias}, nil
}
