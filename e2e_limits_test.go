package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/examples/mockllm"
	"github.com/tollgate-dev/tollgate/store"
)

// End-to-end tests of budget windows, rate limits, parallel limits and strict
// budgets, through the real Envoy.

// limModelConfig prices limit-model at 1e-06 USD (1,000 nano-USD) a token
// either way, so a request's worst case is easy to write down: (body bytes +
// max_tokens) × 1,000 nano-USD.
const limModelConfig = `
model_list:
  - model_name: limit-model
    litellm_params:
      model: openai/limit-model
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000001
`

const limNanoPerToken = 1_000

// limBody is a chat request of customer with max_tokens 20.
func limBody(customer string) string {
	return `{"model":"limit-model","user":"` + customer + `","max_tokens":20,"messages":[{"role":"user","content":"hello there"}]}`
}

// limWorstCase is what strict budgets reserve for limBody(customer).
func limWorstCase(customer string) store.Nano {
	return store.Nano(int64(len(limBody(customer))+20) * limNanoPerToken)
}

// limResult is one response, or the error of a request that got none.
type limResult struct {
	code   int
	header http.Header
	body   []byte
	err    error
	sent   time.Time
}

// limDo sends one request; unlike httpDo it may run on any goroutine. Its
// context ends the request early (a client that hangs up).
func limDo(ctx context.Context, url, body string, headers map[string]string) limResult {
	r := limResult{sent: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	if err != nil {
		r.err = err
		return r
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+masterKey)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.err = err
		return r
	}
	defer resp.Body.Close()
	r.code, r.header = resp.StatusCode, resp.Header
	r.body, r.err = io.ReadAll(resp.Body)
	return r
}

// limConcurrently sends n requests at once and returns their results.
func limConcurrently(s *stack, n int, body func(i int) string, headers map[string]string) []limResult {
	out := make([]limResult, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { out[i] = limDo(context.Background(), s.url+"/v1/chat/completions", body(i), headers) })
	}
	wg.Wait()
	return out
}

// limCount counts results by status, failing on transport errors.
func limCount(t *testing.T, rs []limResult) map[int]int {
	t.Helper()
	counts := map[int]int{}
	for _, r := range rs {
		if r.err != nil {
			t.Fatalf("request failed: %v", r.err)
		}
		counts[r.code]++
	}
	return counts
}

// limErr is the error envelope of a rejection.
func limErr(t *testing.T, r limResult) (typ, message string) {
	t.Helper()
	var e struct {
		Error struct{ Type, Message string }
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("rejection body %s: %v", r.body, err)
	}
	return e.Error.Type, e.Error.Message
}

// limCost is the cost of a served limit-model response.
func limCost(t *testing.T, r limResult) store.Nano {
	t.Helper()
	u := usageOf(t, r.body)
	return store.Nano((u.PromptTokens + u.CompletionTokens) * limNanoPerToken)
}

type limMockStats struct {
	Requests    int64 `json:"requests"`
	InFlight    int64 `json:"in_flight"`
	MaxInFlight int64 `json:"max_in_flight"`
}

func (s *stack) limMockStats() limMockStats {
	s.t.Helper()
	code, _, b := httpDo(s.t, "GET", s.mockURL+"/__mock/stats", nil, nil)
	if code != 200 {
		s.t.Fatalf("mock stats: %d %s", code, b)
	}
	var st limMockStats
	mustUnmarshal(s.t, b, &st)
	return st
}

// limPoll calls cond every tick until it is true, for at most limit.
func limPoll(t *testing.T, what string, tick, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		case <-ticker.C:
		}
	}
}

func (s *stack) mustOK(method, path, body string) []byte {
	s.t.Helper()
	code, _, b := s.do(method, path, body)
	if code != 200 {
		s.t.Fatalf("%s %s: %d %s", method, path, code, b)
	}
	return b
}

// A budget with tpm_limit 2: of ten quick calls, one gets through (its
// reserved estimate, then its real tokens, use the minute up).
func TestE2ETPMLimit(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{configYAML: limModelConfig})
	s.mustOK("POST", "/budget/new", `{"budget_id":"tpm-2","tpm_limit":2}`)
	s.mustOK("POST", "/customer/new", `{"user_id":"tok","budget_id":"tpm-2"}`)

	rs := limConcurrently(s, 10, func(int) string { return limBody("tok") }, nil)
	counts := limCount(t, rs)
	if counts[200] != 1 || counts[429] != 9 {
		t.Fatalf("statuses %v, want one 200 and nine 429", counts)
	}
	if got := s.mockRequests(); got != 1 {
		t.Errorf("upstream saw %d requests, want 1", got)
	}
	for _, r := range rs {
		if r.code != 429 {
			continue
		}
		typ, msg := limErr(t, r)
		prefix := "Rate limit exceeded for end_user: tok. Limit type: tokens. Current limit: 2, Remaining: 0. Limit resets at: "
		if typ != "rate_limit_exceeded" || !strings.HasPrefix(msg, prefix) {
			t.Errorf("rejection %s %q, want rate_limit_exceeded %q…", typ, msg, prefix)
		}
		reset, err := time.Parse("2006-01-02 15:04:05 UTC", strings.TrimPrefix(msg, prefix))
		if err != nil || reset.Before(time.Now().Add(-time.Minute)) || reset.After(time.Now().Add(time.Minute)) {
			t.Errorf("reset time %q: %v, want within the minute", strings.TrimPrefix(msg, prefix), err)
		}
		h := r.header
		if h.Get("x-ratelimit-limit-tokens") != "2" || h.Get("x-ratelimit-remaining-tokens") != "0" ||
			h.Get("x-ratelimit-reset-tokens") == "" || h.Get("retry-after") == "" || h.Get("rate_limit_type") != "tokens" {
			t.Errorf("headers %v", h)
		}
	}
	// Quick calls after it: still refused within the minute.
	if r := limDo(context.Background(), s.url+"/v1/chat/completions", limBody("tok"), nil); r.code != 429 {
		t.Errorf("a later call: %d %s, want 429", r.code, r.body)
	}
}

// rpm_limit 3 lets exactly three through in a window and three more in the
// next. The window is 5 s (LITELLM_RATE_LIMIT_WINDOW_SIZE, LiteLLM's own
// setting) so the test sees two windows.
func TestE2ERPMLimit(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{configYAML: limModelConfig, env: []string{"LITELLM_RATE_LIMIT_WINDOW_SIZE=5"}})
	s.mustOK("POST", "/customer/new", `{"user_id":"req","rpm_limit":3}`)

	first := limConcurrently(s, 10, func(int) string { return limBody("req") }, nil)
	if counts := limCount(t, first); counts[200] != 3 || counts[429] != 7 {
		t.Fatalf("first window: statuses %v, want three 200 and seven 429", counts)
	}
	var reset time.Time
	for _, r := range first {
		if r.code != 429 {
			continue
		}
		typ, msg := limErr(t, r)
		if typ != "rate_limit_exceeded" || !strings.Contains(msg, "Limit type: requests. Current limit: 3, Remaining: 0.") {
			t.Errorf("rejection %s %q", typ, msg)
		}
		if r.header.Get("x-ratelimit-remaining-requests") != "0" || r.header.Get("x-ratelimit-limit-requests") != "3" {
			t.Errorf("headers %v", r.header)
		}
		var err error
		if reset, err = time.Parse("2006-01-02 15:04:05 UTC", r.header.Get("reset_at")); err != nil {
			t.Fatalf("reset_at header: %v", err)
		}
	}
	// Refused until the window ends, then served: poll with refused calls,
	// which do not count.
	var opened limResult
	limPoll(t, "a call in the next window", 100*time.Millisecond, 15*time.Second, func() bool {
		opened = limDo(context.Background(), s.url+"/v1/chat/completions", limBody("req"), nil)
		if opened.code == 200 && opened.sent.Add(time.Second).Before(reset) {
			t.Fatalf("served at %v, before the window reset at %v", opened.sent, reset)
		}
		return opened.code == 200
	})
	next := limConcurrently(s, 9, func(int) string { return limBody("req") }, nil)
	if counts := limCount(t, next); counts[200] != 2 || counts[429] != 7 {
		t.Fatalf("second window: statuses %v, want two more 200 (three with the first) and seven 429", counts)
	}
	if got := s.mockRequests(); got != 6 {
		t.Errorf("upstream saw %d requests, want 6", got)
	}
}

// A 30 s budget window: at the limit the customer is refused, and right
// after the reset instant it is served again; the spend logs keep the
// window before.
func TestE2EBudgetWindow30s(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{configYAML: limModelConfig})
	worst := limWorstCase("win")
	s.mustOK("POST", "/customer/new", fmt.Sprintf(`{"user_id":"win","max_budget":%s,"budget_duration":"30s"}`, worst))

	// windowEnd reads the end of the current window from /end_user/info.
	windowEnd := func() time.Time {
		var row struct {
			Table struct {
				ResetAt string `json:"budget_reset_at"`
			} `json:"litellm_budget_table"`
		}
		mustUnmarshal(t, s.mustOK("GET", "/end_user/info?end_user_id=win", ""), &row)
		end, err := time.Parse(time.RFC3339Nano, row.Table.ResetAt)
		if err != nil {
			t.Fatalf("budget_reset_at %q: %v", row.Table.ResetAt, err)
		}
		return end
	}
	// Start with at least 8 s of the window left, so two calls fit in it.
	end := windowEnd()
	if time.Until(end) < 8*time.Second {
		limPoll(t, "the next window", 100*time.Millisecond, 35*time.Second, func() bool { return windowEnd().After(end) })
		end = windowEnd()
	}
	chat := func() limResult {
		return limDo(context.Background(), s.url+"/v1/chat/completions", limBody("win"), nil)
	}
	served := chat()
	if served.code != 200 {
		t.Fatalf("first call: %d %s", served.code, served.body)
	}
	firstCost := limCost(t, served)
	refused := chat()
	if typ, msg := limErr(t, refused); refused.code != 429 || typ != "budget_exceeded" ||
		!strings.HasPrefix(msg, fmt.Sprintf("ExceededBudget: End User=win over budget. Spend=%s, Budget=%s", firstCost, worst)) {
		t.Fatalf("at the limit: %d %s %q", refused.code, typ, msg)
	}
	if !refused.sent.Before(end) {
		t.Fatalf("the refusal came after the window ended (%v); the test needs it inside", end)
	}
	// Refused until the reset instant, served right after it.
	var again limResult
	limPoll(t, "a call after the reset", 200*time.Millisecond, 35*time.Second, func() bool {
		again = chat()
		switch {
		case again.code == 200:
			return true
		case again.sent.After(end.Add(time.Second)):
			t.Fatalf("still refused at %v, a second after the reset at %v: %d %s", again.sent, end, again.code, again.body)
		}
		return false
	})
	if got := time.Now(); got.Before(end) {
		t.Fatalf("served at %v, before the reset at %v", got, end)
	}
	secondCost := limCost(t, again)
	if got := spendOf(t, s.customerInfo("win")); got != secondCost {
		t.Errorf("spend shown = %d, want only the new window's %d", got, secondCost)
	}
	logs := s.spendLogs("win")
	if len(logs) != 2 || logs[0].Cost != firstCost || !logs[0].Window.End.Equal(end) ||
		logs[1].Cost != secondCost || !logs[1].Window.End.After(end) {
		t.Errorf("spend logs = %+v, want the old window's and the new one's", logs)
	}
}

// 100 concurrent requests of one customer with strict budgets on never push
// its spend past max_budget; with them off, the overshoot is measured
// (BENCHMARKS.md).
func TestE2EStrictBudgetConcurrent(t *testing.T) {
	t.Parallel()
	const n = 100
	run := func(t *testing.T, strict bool, budget store.Nano) (served int, spend store.Nano) {
		s := newStack(t, stackOptions{configYAML: limModelConfig, args: []string{fmt.Sprintf("--strict-budgets=%v", strict)}})
		s.mustOK("POST", "/customer/new", fmt.Sprintf(`{"user_id":"hot","max_budget":%s}`, budget))
		rs := limConcurrently(s, n, func(int) string { return limBody("hot") }, nil)
		var sum store.Nano
		for _, r := range rs {
			switch {
			case r.err != nil:
				t.Fatalf("request failed: %v", r.err)
			case r.code == 200:
				served++
				sum += limCost(t, r)
			case r.code == 429:
				if typ, _ := limErr(t, r); typ != "budget_exceeded" {
					t.Errorf("rejection type %q", typ)
				}
			default:
				t.Fatalf("status %d %s", r.code, r.body)
			}
		}
		spend = spendOf(t, s.customerInfo("hot"))
		if spend != sum || int64(served) != s.limMockStats().Requests {
			t.Errorf("spend %d for %d served (sum %d), upstream saw %d", spend, served, sum, s.limMockStats().Requests)
		}
		return served, spend
	}
	t.Run("strict", func(t *testing.T) {
		t.Parallel()
		budget := 10 * limWorstCase("hot")
		served, spend := run(t, true, budget)
		if spend > budget {
			t.Errorf("spend %s passed the budget %s", spend, budget)
		}
		if served < 10 {
			t.Errorf("%d served, want at least the 10 worst cases that fit", served)
		}
		t.Logf("strict budgets on: %d of %d served, spend %s of %s (%.2f×)", served, n, spend, budget, float64(spend)/float64(budget))
	})
	t.Run("off", func(t *testing.T) {
		t.Parallel()
		// A budget of ten requests' real cost (the mock's token counts are
		// known): the ideal is ten served.
		body := []byte(limBody("hot"))
		one := store.Nano((mockllm.PromptTokens(body) + mockllm.CompletionTokens(body)) * limNanoPerToken)
		budget := 10 * one
		served, spend := run(t, false, budget)
		t.Logf("strict budgets off: %d of %d served, spend %s of %s: overshoot %.1f× the budget", served, n, spend, budget, float64(spend)/float64(budget))
	})
}

// An unknown customer under a default budget of one request's worst case:
// of 50 concurrent first requests, one reaches the upstream.
func TestE2EDefaultBudgetFirstRequests(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{configYAML: limModelConfig + `
litellm_settings:
  max_end_user_budget_id: one-request
`})
	s.mustOK("POST", "/budget/new", fmt.Sprintf(`{"budget_id":"one-request","max_budget":%s}`, limWorstCase("newbie")))
	rs := limConcurrently(s, 50, func(int) string { return limBody("newbie") }, nil)
	if counts := limCount(t, rs); counts[200] != 1 || counts[429] != 49 {
		t.Errorf("statuses %v, want one 200 and 49 429", counts)
	}
	if got := s.mockRequests(); got != 1 {
		t.Errorf("upstream saw %d requests, want 1", got)
	}
}

// max_parallel_requests 2: of 20 concurrent streams never more than 2 reach
// the upstream at once, and after clients hang up and upstream errors the
// counter is back at 0: two slow requests are admitted again, a third is not.
func TestE2EParallelLimit(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{configYAML: limModelConfig})
	s.mustOK("POST", "/customer/new", `{"user_id":"par","max_parallel_requests":2}`)
	url := s.url + "/v1/chat/completions"
	stream := `{"model":"limit-model","user":"par","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	slow := func(ms int) map[string]string { return map[string]string{"x-mock-delay-ms": fmt.Sprint(ms)} }

	rs := limConcurrently(s, 20, func(int) string { return stream }, slow(300))
	counts := limCount(t, rs)
	st := s.limMockStats()
	if counts[200] < 2 || counts[200]+counts[429] != 20 || st.MaxInFlight > 2 || st.MaxInFlight < 1 || int64(counts[200]) != st.Requests {
		t.Fatalf("statuses %v, upstream %+v: want at most 2 at once upstream", counts, st)
	}
	for _, r := range rs {
		if r.code == 429 {
			if typ, msg := limErr(t, r); typ != "parallel_request_limit_exceeded" ||
				!strings.HasPrefix(msg, "Rate limit exceeded for end_user: par. Limit type: max_parallel_requests. Current limit: 2, Remaining: 0.") {
				t.Errorf("rejection %s %q", typ, msg)
			}
		}
	}

	// Two streams whose clients hang up while the upstream works on them
	// (retried while the slots of the streams above are being given back).
	limPoll(t, "two streams upstream, then hung up", 50*time.Millisecond, 15*time.Second, func() bool {
		ctx, hangUp := context.WithCancel(context.Background())
		defer hangUp()
		results := make(chan limResult, 2)
		for range 2 {
			go func() { results <- limDo(ctx, url, stream, slow(60_000)) }()
		}
		limPoll(t, "two streams upstream or refused", 10*time.Millisecond, 15*time.Second, func() bool {
			return s.limMockStats().InFlight == 2 || len(results) > 0
		})
		both := len(results) == 0
		if both {
			if r := limDo(context.Background(), url, stream, nil); r.code != 429 {
				t.Errorf("a third while two are in flight: %d %s, want 429", r.code, r.body)
			}
		}
		hangUp()
		<-results
		<-results
		limPoll(t, "the upstream to see the hang-ups", 20*time.Millisecond, 15*time.Second, func() bool { return s.limMockStats().InFlight == 0 })
		return both
	})
	// Upstream errors, two at a time (retried while the slots of the hung-up
	// streams are still being given back).
	limPoll(t, "two upstream errors", 50*time.Millisecond, 15*time.Second, func() bool {
		rs := limConcurrently(s, 2, func(int) string { return stream }, map[string]string{"x-mock-status": "500"})
		return limCount(t, rs)[500] == 2
	})

	// Back to 0: two slow requests are admitted together, and a third is not.
	limPoll(t, "two requests admitted together", 50*time.Millisecond, 15*time.Second, func() bool {
		results := make(chan limResult, 2)
		for range 2 {
			go func() { results <- limDo(context.Background(), url, stream, slow(1500)) }()
		}
		limPoll(t, "two requests to be answered or upstream", 10*time.Millisecond, 15*time.Second, func() bool {
			return s.limMockStats().InFlight == 2 || len(results) > 0
		})
		if len(results) > 0 { // one was refused: a slot was still held, try again
			<-results
			<-results
			return false
		}
		if r := limDo(context.Background(), url, stream, nil); r.code != 429 {
			t.Errorf("a third: %d %s, want 429", r.code, r.body)
		}
		for range 2 {
			if r := <-results; r.code != 200 {
				t.Errorf("slow request: %d %s", r.code, r.body)
			}
		}
		return true
	})
	if st := s.limMockStats(); st.MaxInFlight > 2 {
		t.Errorf("upstream saw %d at once, want at most 2", st.MaxInFlight)
	}
}
