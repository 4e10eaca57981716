package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/badgerstore"
)

const masterKey = "sk-test-master"

// gpt35 prices per token in nano-USD: azure-gpt-3.5 is priced as gpt-3.5-turbo
// ($0.50 / $1.50 per million tokens).
const (
	gpt35InputNano  = 500
	gpt35OutputNano = 1500
)

// stack is one end-to-end setup: mock upstream ← Envoy → tollgate.
type stack struct {
	t        *testing.T
	url      string // Envoy's listener: the public URL
	adminURL string // tollgate's admin server, directly
	grpcAddr string // tollgate's ext_proc server
	mockURL  string
	dataDir  string
	tollgate *proc
}

type stackOptions struct {
	configYAML string   // written to a file and passed with --config
	args       []string // extra tollgate flags
	env        []string // extra tollgate environment
}

func newStack(t *testing.T, opts stackOptions) *stack {
	t.Helper()
	tollgateBin, mockBin := binaries(t)
	s := &stack{t: t, dataDir: filepath.Join(t.TempDir(), "data")}

	_, mockLine := startProc(t, "mockllm", mockBin, []string{"-addr", "127.0.0.1:0"}, nil, "mockllm listening on ")
	s.mockURL = strings.TrimPrefix(mockLine, "mockllm listening on ")

	args := []string{"--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data-dir", s.dataDir}
	if opts.configYAML != "" {
		path := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(path, []byte(opts.configYAML), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", path)
	}
	args = append(args, opts.args...)
	env := append([]string{"TOLLGATE_MASTER_KEY=" + masterKey, "TOLLGATE_LOG_LEVEL=debug"}, opts.env...)
	var ready string
	s.tollgate, ready = startProc(t, "tollgate", tollgateBin, args, env, "tollgate ready ")
	s.adminURL = "http://" + readyAddr(t, ready, "admin")
	s.grpcAddr = readyAddr(t, ready, "grpc")
	s.url = startEnvoy(t, s.grpcAddr, strings.TrimPrefix(s.adminURL, "http://"), strings.TrimPrefix(s.mockURL, "http://"))
	return s
}

func auth() map[string]string { return map[string]string{"Authorization": "Bearer " + masterKey} }

// do calls the public URL with the master key.
func (s *stack) do(method, path string, body any) (int, http.Header, []byte) {
	s.t.Helper()
	return httpDo(s.t, method, s.url+path, body, auth())
}

// chat sends a chat completion for customer through Envoy.
func (s *stack) chat(customer, model, content string) (int, http.Header, []byte) {
	s.t.Helper()
	body := map[string]any{"model": model, "messages": []map[string]string{{"role": "user", "content": content}}}
	if customer != "" {
		body["user"] = customer
	}
	return s.do("POST", "/chat/completions", body)
}

// mockRequests is how many LLM requests reached the upstream.
func (s *stack) mockRequests() int {
	s.t.Helper()
	code, _, b := httpDo(s.t, "GET", s.mockURL+"/__mock/stats", nil, nil)
	if code != 200 {
		s.t.Fatalf("mock stats: %d %s", code, b)
	}
	var st struct{ Requests int }
	mustUnmarshal(s.t, b, &st)
	return st.Requests
}

// customerSpend reads /customer/info through Envoy.
func (s *stack) customerInfo(id string) map[string]any {
	s.t.Helper()
	code, _, b := s.do("GET", "/customer/info?end_user_id="+id, nil)
	if code != 200 {
		s.t.Fatalf("customer/info %s: %d %s", id, code, b)
	}
	var m map[string]any
	mustUnmarshal(s.t, b, &m)
	return m
}

// spendLogs stops tollgate and reads the spend logs straight from its Badger
// directory: what was recorded is what survives a shutdown.
func (s *stack) spendLogs(customer string) []store.SpendLog {
	s.t.Helper()
	s.tollgate.stop(s.t)
	st, err := badgerstore.Open(badgerstore.Options{Dir: s.dataDir})
	if err != nil {
		s.t.Fatal(err)
	}
	defer st.Close()
	logs, err := st.SpendLogs(context.Background(), customer)
	if err != nil {
		s.t.Fatal(err)
	}
	return logs
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
}

type usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

func usageOf(t *testing.T, body []byte) usage {
	t.Helper()
	var r struct{ Usage usage }
	mustUnmarshal(t, body, &r)
	if r.Usage.PromptTokens == 0 || r.Usage.CompletionTokens == 0 {
		t.Fatalf("response has no usage: %s", body)
	}
	return r.Usage
}

func gpt35Cost(u usage) store.Nano {
	return store.Nano(u.PromptTokens*gpt35InputNano + u.CompletionTokens*gpt35OutputNano)
}

// spendOf returns the customer's spend as nano-USD.
func spendOf(t *testing.T, info map[string]any) store.Nano {
	t.Helper()
	f, ok := info["spend"].(float64)
	if !ok {
		t.Fatalf("spend is not a number: %v", info["spend"])
	}
	n, err := store.NanoFromUSD(f)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func errorEnvelope(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var e struct{ Error map[string]any }
	mustUnmarshal(t, b, &e)
	if e.Error == nil {
		t.Fatalf("no error envelope in %s", b)
	}
	return e.Error
}

// Seed step 1 and 2: a chat call with "user" creates the customer; its spend is
// tokens × price to the nano-USD; a second call adds to it.
func TestE2ESeedTrackingCustomerCredit(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})

	code, hdr, b := s.chat("ishaan3", "azure-gpt-3.5", "what time is it")
	if code != 200 {
		t.Fatalf("chat: %d %s", code, b)
	}
	first := gpt35Cost(usageOf(t, b))
	if got, want := hdr.Get("x-litellm-response-cost"), first.String(); got != want {
		t.Errorf("x-litellm-response-cost = %q, want %q", got, want)
	}
	info := s.customerInfo("ishaan3")
	if got := spendOf(t, info); got != first {
		t.Errorf("spend after one call = %d nano, want %d", got, first)
	}
	wantInfo := map[string]any{
		"user_id": "ishaan3", "blocked": false, "alias": nil, "spend": first.USD(),
		"allowed_model_region": nil, "default_model": nil, "budget_id": nil, "litellm_budget_table": nil,
		"object_permission_id": nil, "object_permission": nil,
	}
	if diff := cmp.Diff(wantInfo, info); diff != "" {
		t.Errorf("customer/info (-want +got):\n%s", diff)
	}

	code, _, b = s.chat("ishaan3", "azure-gpt-3.5", "and what day is it today please")
	if code != 200 {
		t.Fatalf("second chat: %d %s", code, b)
	}
	second := gpt35Cost(usageOf(t, b))
	if got := spendOf(t, s.customerInfo("ishaan3")); got != first+second {
		t.Errorf("spend after two calls = %d nano, want %d", got, first+second)
	}
	if got := s.mockRequests(); got != 2 {
		t.Errorf("upstream saw %d requests, want 2", got)
	}
}

// Seed "Quick Start": max_budget "0" (a string) rejects the next call with 429
// before the upstream is called.
func TestE2ESeedZeroBudgetRejects(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})

	code, _, b := s.do("POST", "/customer/new", `{"user_id": "my-customer-id", "max_budget": "0"}`)
	if code != 200 {
		t.Fatalf("customer/new: %d %s", code, b)
	}
	code, hdr, b := s.chat("my-customer-id", "mistral", "What's the weather like in Boston today?")
	if code != 429 {
		t.Fatalf("chat over budget: %d %s, want 429", code, b)
	}
	if got := hdr.Get("content-type"); got != "application/json" {
		t.Errorf("content-type = %q", got)
	}
	want := map[string]any{
		"message": "ExceededBudget: End User=my-customer-id over budget. Spend=0.0, Budget=0.0",
		"type":    "budget_exceeded", "param": nil, "code": "429",
	}
	if diff := cmp.Diff(want, errorEnvelope(t, b)); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
	if got := s.mockRequests(); got != 0 {
		t.Errorf("upstream saw %d requests, want 0", got)
	}
}

// Seed "Assign Pricing Tiers": a $4 tier; once spend reaches 4 the customer is refused.
func TestE2ESeedPricingTier(t *testing.T) {
	t.Parallel()
	// A price override makes one call cost more than the tier: 0.25 USD per token.
	// The seed spends past the tier with one call, which strict budgets
	// refuse up front (their worst case is more than $4): this is the
	// recorded-spend check alone.
	s := newStack(t, stackOptions{args: []string{"--strict-budgets=false"}, configYAML: `
model_list:
  - model_name: tier-model
    litellm_params:
      model: openai/tier-model
      input_cost_per_token: 0.25
      output_cost_per_token: 0.25
`})
	code, _, b := s.do("POST", "/budget/new", `{"budget_id": "my-free-tier", "max_budget": 4}`)
	if code != 200 {
		t.Fatalf("budget/new: %d %s", code, b)
	}
	code, _, b = s.do("POST", "/customer/new", `{"user_id": "my-customer-id", "budget_id": "my-free-tier"}`)
	if code != 200 {
		t.Fatalf("customer/new: %d %s", code, b)
	}
	info := s.customerInfo("my-customer-id")
	wantTable := map[string]any{
		"budget_id": "my-free-tier", "max_budget": 4.0, "soft_budget": nil, "max_parallel_requests": nil,
		"tpm_limit": nil, "rpm_limit": nil, "model_max_budget": nil, "budget_duration": nil, "allowed_models": []any{},
	}
	if diff := cmp.Diff(wantTable, info["litellm_budget_table"]); diff != "" {
		t.Errorf("litellm_budget_table (-want +got):\n%s", diff)
	}

	code, _, b = s.chat("my-customer-id", "tier-model", "Hello!")
	if code != 200 {
		t.Fatalf("first chat: %d %s", code, b)
	}
	u := usageOf(t, b)
	cost := store.Nano((u.PromptTokens + u.CompletionTokens) * 250_000_000)
	if cost < 4*store.NanoPerUSD {
		t.Fatalf("test setup: one call costs %s, want at least the $4 tier", cost)
	}
	code, _, b = s.chat("my-customer-id", "tier-model", "Hello again!")
	if code != 429 {
		t.Fatalf("chat over the tier: %d %s, want 429", code, b)
	}
	wantMsg := fmt.Sprintf("ExceededBudget: End User=my-customer-id over budget. Spend=%s, Budget=4.0", cost)
	if got := errorEnvelope(t, b)["message"]; got != wantMsg {
		t.Errorf("message = %q, want %q", got, wantMsg)
	}
	if got := s.mockRequests(); got != 1 {
		t.Errorf("upstream saw %d requests, want 1", got)
	}
}

// The official openai-go SDK with its User parameter works through Envoy and is tracked.
func TestE2EOpenAISDK(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	client := openai.NewClient(option.WithBaseURL(s.url+"/v1"), option.WithAPIKey(masterKey), option.WithMaxRetries(0))
	resp, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "azure-gpt-3.5",
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage("You are a helpful assistant."),
			openai.UserMessage("Hello!"),
		},
		User: openai.String("sdk-customer"),
	})
	if err != nil {
		t.Fatalf("openai-go: %v", err)
	}
	want := gpt35Cost(usage{PromptTokens: resp.Usage.PromptTokens, CompletionTokens: resp.Usage.CompletionTokens})
	if resp.Usage.PromptTokens == 0 || resp.Usage.CompletionTokens == 0 {
		t.Fatalf("no usage in SDK response: %+v", resp.Usage)
	}
	if got := spendOf(t, s.customerInfo("sdk-customer")); got != want {
		t.Errorf("spend = %d nano, want %d", got, want)
	}

	// A budget exhausted for this customer surfaces as the SDK's 429 error.
	if code, _, b := s.do("POST", "/customer/block", `{"user_ids": ["sdk-customer"]}`); code != 200 {
		t.Fatalf("block: %d %s", code, b)
	}
	_, err = client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "azure-gpt-3.5",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello!")},
		User:     openai.String("sdk-customer"),
	})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 {
		t.Fatalf("blocked customer via SDK: err = %v, want a 403 *openai.Error", err)
	}
}

// Blocked customers are rejected with 403 before the upstream; unblocking restores service.
func TestE2EBlockUnblock(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	if code, _, b := s.do("POST", "/customer/block", `{"user_ids": ["bad-actor"]}`); code != 200 {
		t.Fatalf("block: %d %s", code, b)
	}
	code, _, b := s.chat("bad-actor", "azure-gpt-3.5", "hi")
	if code != 403 {
		t.Fatalf("blocked chat: %d %s, want 403", code, b)
	}
	want := map[string]any{
		"message": "User blocked from making LLM API Calls. User=bad-actor",
		"type":    "customer_blocked", "param": nil, "code": "403",
	}
	if diff := cmp.Diff(want, errorEnvelope(t, b)); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
	// The header sources are checked too, before the body is read.
	code, _, _ = httpDo(t, "POST", s.url+"/chat/completions", `{"model":"azure-gpt-3.5","messages":[]}`,
		map[string]string{"Authorization": "Bearer " + masterKey, "x-litellm-customer-id": "bad-actor"})
	if code != 403 {
		t.Errorf("blocked via x-litellm-customer-id: %d, want 403", code)
	}
	if got := s.mockRequests(); got != 0 {
		t.Errorf("upstream saw %d requests, want 0", got)
	}

	if code, _, b := s.do("POST", "/customer/unblock", `{"user_ids": ["bad-actor"]}`); code != 200 {
		t.Fatalf("unblock: %d %s", code, b)
	}
	if code, _, b := s.chat("bad-actor", "azure-gpt-3.5", "hi"); code != 200 {
		t.Fatalf("chat after unblock: %d %s", code, b)
	}
}

// 200 concurrent requests for one customer: spend is the exact sum and there are
// exactly 200 spend-log rows, each with its own request id.
func TestE2EConcurrentSpendIsExact(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	const n = 200
	costs := make([]store.Nano, n)
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"model":"azure-gpt-3.5","user":"hot","messages":[{"role":"user","content":"%s"}]}`,
				strings.Repeat("word ", i%17+1))
			code, _, b := httpDo(t, "POST", s.url+"/v1/chat/completions", body, auth())
			if code != 200 {
				errs <- fmt.Sprintf("request %d: %d %s", i, code, b)
				return
			}
			var r struct{ Usage usage }
			if err := json.Unmarshal(b, &r); err != nil {
				errs <- err.Error()
				return
			}
			costs[i] = gpt35Cost(r.Usage)
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if t.Failed() {
		return
	}
	var want store.Nano
	for _, c := range costs {
		want += c
	}
	if got := spendOf(t, s.customerInfo("hot")); got != want {
		t.Errorf("spend = %d nano, want %d", got, want)
	}
	logs := s.spendLogs("hot")
	if len(logs) != n {
		t.Fatalf("%d spend logs, want %d", len(logs), n)
	}
	ids := map[string]bool{}
	var sum store.Nano
	for _, l := range logs {
		ids[l.RequestID] = true
		sum += l.Cost
	}
	if len(ids) != n || sum != want {
		t.Errorf("spend logs: %d distinct request ids, sum %d; want %d and %d", len(ids), sum, n, want)
	}
}

// A client that repeats an x-request-id is still charged for every request.
func TestE2ERepeatedClientRequestIDIsChargedEachTime(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	var want store.Nano
	for range 3 {
		code, _, b := httpDo(t, "POST", s.url+"/chat/completions",
			`{"model":"azure-gpt-3.5","user":"replayer","messages":[{"role":"user","content":"free lunch?"}]}`,
			map[string]string{"Authorization": "Bearer " + masterKey, "x-request-id": "same-id-every-time"})
		if code != 200 {
			t.Fatalf("chat: %d %s", code, b)
		}
		want += gpt35Cost(usageOf(t, b))
	}
	if got := spendOf(t, s.customerInfo("replayer")); got != want {
		t.Errorf("spend = %d nano, want %d (three charged requests)", got, want)
	}
	logs := s.spendLogs("replayer")
	if len(logs) != 3 {
		t.Fatalf("%d spend logs, want 3", len(logs))
	}
	for _, l := range logs {
		if l.ClientRequestID != "same-id-every-time" {
			t.Errorf("ClientRequestID = %q, want the client's x-request-id", l.ClientRequestID)
		}
	}
}

// Data-plane auth, credential replacement, bad JSON, non-LLM paths and upstream errors.
func TestE2EDataPlaneEdges(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{env: []string{"TOLLGATE_UPSTREAM_API_KEY=sk-upstream-secret"}})

	t.Run("missing key is 401", func(t *testing.T) {
		code, _, b := httpDo(t, "POST", s.url+"/chat/completions", `{"model":"azure-gpt-3.5","user":"a","messages":[]}`, nil)
		if code != 401 {
			t.Fatalf("%d %s, want 401", code, b)
		}
		if got := errorEnvelope(t, b)["type"]; got != "auth_error" {
			t.Errorf("type = %v, want auth_error", got)
		}
	})
	t.Run("wrong key is 401", func(t *testing.T) {
		code, _, b := httpDo(t, "POST", s.url+"/chat/completions", `{"model":"azure-gpt-3.5","messages":[]}`,
			map[string]string{"x-api-key": "sk-wrong"})
		if code != 401 {
			t.Fatalf("%d %s, want 401", code, b)
		}
	})
	t.Run("client key replaced by upstream key", func(t *testing.T) {
		code, _, b := httpDo(t, "POST", s.url+"/chat/completions", `{"model":"azure-gpt-3.5","user":"a","messages":[{"role":"user","content":"x"}]}`,
			map[string]string{"api-key": masterKey})
		if code != 200 {
			t.Fatalf("%d %s", code, b)
		}
		code, _, b = httpDo(t, "GET", s.mockURL+"/__mock/last", nil, nil)
		if code != 200 {
			t.Fatalf("mock last: %d", code)
		}
		if strings.Contains(string(b), masterKey) {
			t.Errorf("the client's key reached the upstream: %s", b)
		}
		if !strings.Contains(string(b), "Bearer sk-upstream-secret") {
			t.Errorf("the upstream credential was not set: %s", b)
		}
	})
	t.Run("malformed JSON is 400", func(t *testing.T) {
		before := s.mockRequests()
		code, _, b := s.do("POST", "/chat/completions", `{"model": "azure-gpt-3.5", "messages": [`)
		if code != 400 {
			t.Fatalf("%d %s, want 400", code, b)
		}
		if got := errorEnvelope(t, b)["type"]; got != "invalid_request_error" {
			t.Errorf("type = %v", got)
		}
		if s.mockRequests() != before {
			t.Error("malformed request reached the upstream")
		}
	})
	t.Run("upstream error passes through and costs nothing", func(t *testing.T) {
		code, _, b := httpDo(t, "POST", s.url+"/chat/completions",
			`{"model":"azure-gpt-3.5","user":"unlucky","messages":[{"role":"user","content":"x"}]}`,
			map[string]string{"Authorization": "Bearer " + masterKey, "x-mock-status": "500"})
		if code != 500 {
			t.Fatalf("%d %s, want the upstream's 500", code, b)
		}
		code, _, _ = s.do("GET", "/customer/info?end_user_id=unlucky", nil)
		if code != 404 {
			t.Errorf("customer/info after a failed call: %d, want 404 (nothing recorded)", code)
		}
	})
	t.Run("non-LLM path passes through", func(t *testing.T) {
		code, _, _ := s.do("GET", "/__mock/stats", nil)
		if code != 200 {
			t.Errorf("GET /__mock/stats through Envoy: %d, want 200", code)
		}
	})
}
