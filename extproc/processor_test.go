package extproc

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/tollgate-dev/tollgate/store"
)

const (
	bodyNoKey      = `{"error":{"message":"Authentication Error, No api key passed in.","type":"auth_error","param":null,"code":"401"}}`
	bodyInvalidKey = `{"error":{"message":"Authentication Error, Invalid proxy server token passed.","type":"auth_error","param":null,"code":"401"}}`
	chatBody       = `{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`
)

func TestAuth(t *testing.T) {
	tests := []struct {
		name     string
		disabled bool
		req      *extprocv3.ProcessingRequest
		want     *extprocv3.ProcessingResponse
	}{
		{name: "bearer", req: reqHeaders("POST", "/v1/chat/completions", "authorization", "Bearer sk-master"),
			want: wantRequestHeaders(wantStripped())},
		{name: "bearer in lower case", req: reqHeaders("POST", "/v1/chat/completions", "authorization", "bearer sk-master"),
			want: wantRequestHeaders(wantStripped())},
		{name: "api-key", req: reqHeaders("POST", "/v1/chat/completions", "api-key", "sk-master"),
			want: wantRequestHeaders(wantStripped())},
		{name: "x-api-key", req: reqHeaders("POST", "/v1/chat/completions", "x-api-key", "sk-master"),
			want: wantRequestHeaders(wantStripped())},
		{name: "missing", req: reqHeaders("POST", "/v1/chat/completions"),
			want: wantImmediate(401, bodyNoKey, "tollgate_auth_missing")},
		{name: "empty bearer", req: reqHeaders("POST", "/v1/chat/completions", "authorization", "Bearer  "),
			want: wantImmediate(401, bodyNoKey, "tollgate_auth_missing")},
		{name: "not a bearer token", req: reqHeaders("POST", "/v1/chat/completions", "authorization", "Basic c2stbWFzdGVy"),
			want: wantImmediate(401, bodyNoKey, "tollgate_auth_missing")},
		{name: "wrong", req: reqHeaders("POST", "/v1/chat/completions", "authorization", "Bearer sk-wrong"),
			want: wantImmediate(401, bodyInvalidKey, "tollgate_auth_invalid")},
		{name: "prefix of the key", req: reqHeaders("POST", "/v1/chat/completions", "x-api-key", "sk-mast"),
			want: wantImmediate(401, bodyInvalidKey, "tollgate_auth_invalid")},
		{name: "authorization wins over api-key", req: reqHeaders("POST", "/v1/chat/completions",
			"authorization", "Bearer sk-wrong", "api-key", "sk-master"),
			want: wantImmediate(401, bodyInvalidKey, "tollgate_auth_invalid")},
		{name: "applies to paths that are not metered", req: reqHeaders("GET", "/v1/models"),
			want: wantImmediate(401, bodyNoKey, "tollgate_auth_missing")},
		{name: "disabled", disabled: true, req: reqHeaders("POST", "/v1/chat/completions"),
			want: wantRequestHeaders(wantStripped())},
		{name: "disabled ignores a wrong key", disabled: true, req: reqHeaders("POST", "/v1/chat/completions", "x-api-key", "nope"),
			want: wantRequestHeaders(wantStripped())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.DataPlaneAuth = !tt.disabled
			got := exchange(t, startServer(t, cfg, newFakeStore()), tt.req)
			if diff := diffResponses([]*extprocv3.ProcessingResponse{tt.want}, got); diff != "" {
				t.Errorf("responses (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCredentialMutation(t *testing.T) {
	withUpstream := &extprocv3.HeaderMutation{
		SetHeaders:    []*corev3.HeaderValueOption{wantSet("authorization", "Bearer sk-upstream")},
		RemoveHeaders: []string{"api-key", "x-api-key"},
	}
	tests := []struct {
		name        string
		auth        bool
		upstreamKey string
		want        *extprocv3.HeaderMutation
	}{
		{"auth on, no upstream key: client credentials removed", true, "", wantStripped()},
		{"auth on, upstream key replaces the client's", true, "sk-upstream", withUpstream},
		{"auth off, no upstream key: still removed", false, "", wantStripped()},
		{"auth off, upstream key still injected", false, "sk-upstream", withUpstream},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.DataPlaneAuth = tt.auth
			cfg.UpstreamAPIKey = tt.upstreamKey
			got := exchange(t, startServer(t, cfg, newFakeStore()),
				reqHeaders("POST", "/v1/chat/completions", "authorization", "Bearer sk-master", "api-key", "sk-master", "x-api-key", "sk-master"))
			if diff := diffResponses([]*extprocv3.ProcessingResponse{wantRequestHeaders(tt.want)}, got); diff != "" {
				t.Errorf("responses (-want +got):\n%s", diff)
			}
		})
	}
	// Anthropic upstreams take their key in x-api-key, Azure's in api-key;
	// the client's key never reaches them, whichever header it came in.
	styles := []struct {
		name, path, key string
		hdr             []string
		want            *extprocv3.HeaderMutation
	}{
		{name: "anthropic", path: "/v1/messages", key: "sk-ant-upstream", want: &extprocv3.HeaderMutation{
			SetHeaders:    []*corev3.HeaderValueOption{wantSet("x-api-key", "sk-ant-upstream")},
			RemoveHeaders: []string{"api-key", "authorization"}}},
		{name: "anthropic without an upstream key", path: "/v1/messages", want: wantStripped()},
		{name: "anthropic-version on another path", path: "/v1/models", key: "k", hdr: []string{"anthropic-version", "2023-06-01"},
			want: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{wantSet("x-api-key", "k")},
				RemoveHeaders: []string{"api-key", "authorization"}}},
		{name: "azure", path: "/openai/deployments/d/chat/completions", key: "azure-key", want: &extprocv3.HeaderMutation{
			SetHeaders:    []*corev3.HeaderValueOption{wantSet("api-key", "azure-key")},
			RemoveHeaders: []string{"x-api-key", "authorization"}}},
	}
	for _, tt := range styles {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.UpstreamAPIKey = tt.key
			got := exchange(t, startServer(t, cfg, newFakeStore()),
				reqHeaders("POST", tt.path, append([]string{"x-api-key", "sk-master", "authorization", "Bearer sk-master"}, tt.hdr...)...))
			if diff := cmp.Diff(tt.want, got[0].GetRequestHeaders().GetResponse().GetHeaderMutation(), protocmp.Transform()); diff != "" {
				t.Errorf("header mutation (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPathsThatAreNotMetered(t *testing.T) {
	skipRest := wantRequestHeaders(wantStripped())
	skipRest.ModeOverride = &filterv3.ProcessingMode{
		RequestBodyMode:    filterv3.ProcessingMode_NONE,
		ResponseHeaderMode: filterv3.ProcessingMode_SKIP,
		ResponseBodyMode:   filterv3.ProcessingMode_NONE,
	}
	tests := []struct {
		method, path string
		want         *extprocv3.ProcessingResponse
	}{
		{"GET", "/v1/models", skipRest},
		{"POST", "/v1/files", skipRest},
		{"POST", "/v1/messages/count_tokens", skipRest},
		{"POST", "/v1/chat/completions/extra", skipRest},
		{"GET", "/v1/chat/completions", skipRest},
		{"POST", "/openai/deployments/d/responses", skipRest},
		{"POST", "/chat/completions", wantRequestHeaders(wantStripped())},
		{"POST", "/v1/chat/completions?api-version=2024-06-01", wantRequestHeaders(wantStripped())},
		{"POST", "/completions", wantRequestHeaders(wantStripped())},
		{"POST", "/v1/completions", wantRequestHeaders(wantStripped())},
		{"POST", "/embeddings", wantRequestHeaders(wantStripped())},
		{"POST", "/v1/embeddings", wantRequestHeaders(wantStripped())},
		{"POST", "/v1/responses", wantRequestHeaders(wantStripped())},
		{"POST", "/responses", wantRequestHeaders(wantStripped())},
		{"POST", "/v1/messages", wantRequestHeaders(wantStripped())},
		{"POST", "/messages?beta=true", wantRequestHeaders(wantStripped())},
		{"POST", "/openai/deployments/gpt/chat/completions?api-version=2024-10-21", wantRequestHeaders(wantStripped())},
		{"POST", "/openai/v1/responses", wantRequestHeaders(wantStripped())},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			st := newFakeStore()
			st.customers["bob"] = store.Customer{UserID: "bob", Blocked: true}
			got := exchange(t, startServer(t, testConfig(t), st),
				reqHeaders(tt.method, tt.path, "authorization", "Bearer sk-master", "x-litellm-customer-id", "nobody"))
			if diff := diffResponses([]*extprocv3.ProcessingResponse{tt.want}, got); diff != "" {
				t.Errorf("responses (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("a blocked customer still reaches other paths", func(t *testing.T) {
		st := newFakeStore()
		st.customers["bob"] = store.Customer{UserID: "bob", Blocked: true}
		got := exchange(t, startServer(t, testConfig(t), st),
			reqHeaders("GET", "/v1/models", "authorization", "Bearer sk-master", "x-litellm-customer-id", "bob"))
		if diff := diffResponses([]*extprocv3.ProcessingResponse{skipRest}, got); diff != "" {
			t.Errorf("responses (-want +got):\n%s", diff)
		}
	})
}

func budgetBody(status int, id, spend, budget string) string {
	return `{"error":{"message":"ExceededBudget: End User=` + id + ` over budget. Spend=` + spend + `, Budget=` + budget +
		`","type":"budget_exceeded","param":null,"code":"` + map[int]string{400: "400", 429: "429"}[status] + `"}}`
}

func TestAdmission(t *testing.T) {
	blocked := wantImmediate(403,
		`{"error":{"message":"User blocked from making LLM API Calls. User=bob","type":"customer_blocked","param":null,"code":"403"}}`,
		"tollgate_customer_blocked")
	unavailable := wantImmediate(503,
		`{"error":{"message":"Spend tracking is unavailable, so the budget could not be checked. Try again later.","type":"service_unavailable","param":null,"code":"503"}}`,
		"tollgate_store_unavailable")
	allowed := wantRequestHeaders(wantStripped())
	budget := func(id string, maxNano int64) store.Budget {
		return store.Budget{BudgetID: id, MaxBudget: nano(maxNano)}
	}

	tests := []struct {
		name          string
		customers     []store.Customer
		budgets       []store.Budget
		defaultBudget string
		status        int
		getErr        error
		budgetErr     error
		want          *extprocv3.ProcessingResponse
	}{
		{name: "unknown customer, no default budget", want: allowed},
		{name: "known customer without a budget", customers: []store.Customer{{UserID: "bob", Spend: 5_000_000_000}}, want: allowed},
		{name: "blocked", customers: []store.Customer{{UserID: "bob", Blocked: true}}, want: blocked},
		{name: "blocked beats an open budget", customers: []store.Customer{{UserID: "bob", Blocked: true, BudgetID: ptr("b")}},
			budgets: []store.Budget{budget("b", 100_000_000_000)}, want: blocked},
		{name: "own budget, under", customers: []store.Customer{{UserID: "bob", Spend: 999_999_999, BudgetID: ptr("b")}},
			budgets: []store.Budget{budget("b", 1_000_000_000)}, want: allowed},
		{name: "own budget, spend equals max", customers: []store.Customer{{UserID: "bob", Spend: 1_000_000_000, BudgetID: ptr("b")}},
			budgets: []store.Budget{budget("b", 1_000_000_000)},
			want:    wantImmediate(429, budgetBody(429, "bob", "1.0", "1.0"), "tollgate_budget_exceeded")},
		{name: "own budget, over", customers: []store.Customer{{UserID: "bob", Spend: 886_999, BudgetID: ptr("b")}},
			budgets: []store.Budget{budget("b", 100_000)},
			want:    wantImmediate(429, budgetBody(429, "bob", "0.000886999", "0.0001"), "tollgate_budget_exceeded")},
		{name: "budget of 0 blocks the first call", customers: []store.Customer{{UserID: "bob", BudgetID: ptr("zero")}},
			budgets: []store.Budget{budget("zero", 0)},
			want:    wantImmediate(429, budgetBody(429, "bob", "0.0", "0.0"), "tollgate_budget_exceeded")},
		{name: "shared tier budget", customers: []store.Customer{{UserID: "bob", Spend: 2_500_000_000, BudgetID: ptr("tier-free")}},
			budgets: []store.Budget{budget("tier-free", 2_000_000_000)},
			want:    wantImmediate(429, budgetBody(429, "bob", "2.5", "2.0"), "tollgate_budget_exceeded")},
		{name: "budget without max_budget", customers: []store.Customer{{UserID: "bob", Spend: 2_500_000_000, BudgetID: ptr("b")}},
			budgets: []store.Budget{{BudgetID: "b"}}, want: allowed},
		{name: "status 400 when configured", status: 400,
			customers: []store.Customer{{UserID: "bob", Spend: 3_000_000_000, BudgetID: ptr("b")}},
			budgets:   []store.Budget{budget("b", 1_000_000_000)},
			want:      wantImmediate(400, budgetBody(400, "bob", "3.0", "1.0"), "tollgate_budget_exceeded")},
		{name: "default budget for a customer without one", defaultBudget: "default",
			customers: []store.Customer{{UserID: "bob", Spend: 10_000_000}},
			budgets:   []store.Budget{budget("default", 10_000_000)},
			want:      wantImmediate(429, budgetBody(429, "bob", "0.01", "0.01"), "tollgate_budget_exceeded")},
		{name: "own budget beats the default", defaultBudget: "default",
			customers: []store.Customer{{UserID: "bob", Spend: 10_000_000, BudgetID: ptr("big")}},
			budgets:   []store.Budget{budget("default", 10_000_000), budget("big", 20_000_000)}, want: allowed},
		{name: "default budget of 0 blocks an unknown customer", defaultBudget: "default",
			budgets: []store.Budget{budget("default", 0)},
			want:    wantImmediate(429, budgetBody(429, "bob", "0.0", "0.0"), "tollgate_budget_exceeded")},
		{name: "unknown customer under the default budget", defaultBudget: "default",
			budgets: []store.Budget{budget("default", 1)}, want: allowed},
		{name: "missing default budget means no limit", defaultBudget: "gone",
			customers: []store.Customer{{UserID: "bob", Spend: 10_000_000_000}}, want: allowed},
		{name: "customer's missing budget falls back to the default", defaultBudget: "default",
			customers: []store.Customer{{UserID: "bob", Spend: 5, BudgetID: ptr("deleted")}},
			budgets:   []store.Budget{budget("default", 5)},
			want:      wantImmediate(429, budgetBody(429, "bob", "5e-09", "5e-09"), "tollgate_budget_exceeded")},
		{name: "customer lookup fails closed", getErr: errors.New("disk on fire"), want: unavailable},
		{name: "budget lookup fails closed", customers: []store.Customer{{UserID: "bob", BudgetID: ptr("b")}},
			budgetErr: errors.New("disk on fire"), want: unavailable},
		{name: "default budget lookup fails closed", defaultBudget: "default", budgetErr: context.DeadlineExceeded, want: unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newServer := func() (extprocv3.ExternalProcessorClient, *fakeStore) {
				st := newFakeStore()
				for _, c := range tt.customers {
					st.customers[c.UserID] = c
				}
				for _, b := range tt.budgets {
					st.budgets[b.BudgetID] = b
				}
				st.getErr, st.budgetErr = tt.getErr, tt.budgetErr
				cfg := testConfig(t)
				cfg.DefaultBudgetID = tt.defaultBudget
				cfg.BudgetExceededStatus = tt.status
				// These are the checks on recorded spend; strict budgets
				// (reservations) have their own tests.
				cfg.DisableBudgetReservation = true
				return startServer(t, cfg, st), st
			}

			t.Run("customer named by header", func(t *testing.T) {
				c, _ := newServer()
				got := exchange(t, c, llmHeaders("x-litellm-customer-id", "bob"), reqBody(chatBody))
				want := []*extprocv3.ProcessingResponse{tt.want}
				if tt.want.GetImmediateResponse() == nil {
					want = append(want, wantRequestBody())
				}
				if diff := diffResponses(want, got); diff != "" {
					t.Errorf("responses (-want +got):\n%s", diff)
				}
			})
			t.Run("customer named by body", func(t *testing.T) {
				c, _ := newServer()
				got := exchange(t, c, llmHeaders(), reqBody(`{"model":"gpt-test","user":"bob"}`))
				want := []*extprocv3.ProcessingResponse{allowed, tt.want}
				if tt.want.GetImmediateResponse() == nil {
					want[1] = wantRequestBody()
				}
				if diff := diffResponses(want, got); diff != "" {
					t.Errorf("responses (-want +got):\n%s", diff)
				}
			})
		})
	}
}

func TestCustomerResolutionOrder(t *testing.T) {
	// Each listed customer is blocked, so the 403's User= names the one chosen.
	blockedAs := func(id string) *extprocv3.ProcessingResponse {
		return wantImmediate(403, `{"error":{"message":"User blocked from making LLM API Calls. User=`+id+
			`","type":"customer_blocked","param":null,"code":"403"}}`, "tollgate_customer_blocked")
	}
	tests := []struct {
		name    string
		headers []string
		body    string
		// atHeaders: the reject comes in reply to the request headers.
		atHeaders bool
		want      *extprocv3.ProcessingResponse
	}{
		{"customer-id header first", []string{"x-litellm-customer-id", "h1", "x-litellm-end-user-id", "h2", "x-user", "h3"},
			`{"user":"b1"}`, true, blockedAs("h1")},
		{"end-user-id header second", []string{"x-litellm-end-user-id", "h2", "x-user", "h3"}, `{"user":"b1"}`, true, blockedAs("h2")},
		{"configured header third", []string{"x-user", "h3"}, `{"user":"b1"}`, true, blockedAs("h3")},
		{"whitespace header skipped", []string{"x-litellm-customer-id", "  ", "x-user", "h3"}, `{}`, true, blockedAs("h3")},
		{"headers beat the body", []string{"x-litellm-customer-id", "h1"}, `{"user":"b1"}`, true, blockedAs("h1")},
		{"body user", nil, `{"user":"b1","litellm_metadata":{"user":"b2"}}`, false, blockedAs("b1")},
		{"body litellm_metadata.user", nil, `{"litellm_metadata":{"user":"b2"},"metadata":{"user_id":"b3"}}`, false, blockedAs("b2")},
		{"body litellm_metadata as a JSON string", nil, `{"litellm_metadata":"{\"user\":\"b2\"}"}`, false, blockedAs("b2")},
		{"body metadata.user_id", nil, `{"metadata":{"user_id":"b3"},"safety_identifier":"b4"}`, false, blockedAs("b3")},
		{"body safety_identifier", nil, `{"safety_identifier":"b4"}`, false, blockedAs("b4")},
		{"body number", nil, `{"user":42}`, false, blockedAs("42")},
		{"body whitespace skipped", nil, `{"user":" \t","safety_identifier":"b4"}`, false, blockedAs("b4")},
		{"body object skipped", nil, `{"user":{"id":"b1"},"metadata":{"user_id":"b3"}}`, false, blockedAs("b3")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newFakeStore()
			for _, id := range []string{"h1", "h2", "h3", "b1", "b2", "b3", "b4", "42"} {
				st.customers[id] = store.Customer{UserID: id, Blocked: true}
			}
			cfg := testConfig(t)
			cfg.UserHeaderName = "X-User"
			got := exchange(t, startServer(t, cfg, st), llmHeaders(tt.headers...), reqBody(tt.body))
			want := []*extprocv3.ProcessingResponse{tt.want}
			if !tt.atHeaders {
				want = []*extprocv3.ProcessingResponse{wantRequestHeaders(wantStripped()), tt.want}
			}
			if diff := diffResponses(want, got); diff != "" {
				t.Errorf("responses (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("no customer anywhere", func(t *testing.T) {
		st := newFakeStore()
		st.getErr = errors.New("must not be called")
		got := exchange(t, startServer(t, testConfig(t), st), llmHeaders(), reqBody(`{"user":true,"metadata":{"user_id":null}}`))
		if diff := diffResponses([]*extprocv3.ProcessingResponse{wantRequestHeaders(wantStripped()), wantRequestBody()}, got); diff != "" {
			t.Errorf("responses (-want +got):\n%s", diff)
		}
	})
}

func TestMalformedBody(t *testing.T) {
	want := wantImmediate(400,
		`{"error":{"message":"Invalid request body: expected a JSON object.","type":"invalid_request_error","param":null,"code":"400"}}`,
		"tollgate_invalid_body")
	for _, body := range []string{``, `not json`, `{"model":"gpt-test"`, `[{"model":"gpt-test"}]`, `"gpt-test"`, `null`, `{"a":1} {"b":2}`,
		`{"a":` + strings.Repeat("[", 16<<20-16) + strings.Repeat("]", 16<<20-16) + `}`} {
		t.Run(fmt.Sprintf("%.30s", body), func(t *testing.T) {
			got := exchange(t, startServer(t, testConfig(t), newFakeStore()), llmHeaders(), reqBody(body))
			if diff := diffResponses([]*extprocv3.ProcessingResponse{wantRequestHeaders(wantStripped()), want}, got); diff != "" {
				t.Errorf("responses (-want +got):\n%s", diff)
			}
		})
	}
}

func wantResponseHeaders() *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{
		ResponseHeaders: &extprocv3.HeadersResponse{},
	}}
}

func wantResponseBody(cost string) *extprocv3.ProcessingResponse {
	b := &extprocv3.BodyResponse{}
	if cost != "" {
		b.Response = &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{
			SetHeaders: []*corev3.HeaderValueOption{wantSet("x-litellm-response-cost", cost)},
		}}
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: b}}
}

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zlibbed(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// chatResponse costs, at gpt-test prices: 600 text prompt tokens × 1.5e-06 +
// 400 cached × 7.5e-07 + 100 reasoning × 4e-06 + 400 other completion × 2e-06
// = 0.0009 + 0.0003 + 0.0004 + 0.0008 = 0.0024 USD.
const chatResponse = `{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-test-2025-01-01",
	"choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],
	"usage":{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500,
		"prompt_tokens_details":{"cached_tokens":400},"completion_tokens_details":{"reasoning_tokens":100}}}`

// chatBodyPromptTokens is chatBody's prompt counted locally: 3 for the
// message, "user" and "hi" one each, 3 to prime the reply.
const chatBodyPromptTokens = 8

func brotlied(t *testing.T, s string) []byte {
	t.Helper()
	b, _ := compress(t, "br", s)
	return b
}

func wantMode(m filterv3.ProcessingMode_BodySendMode) *extprocv3.ProcessingResponse {
	r := wantResponseHeaders()
	r.ModeOverride = &filterv3.ProcessingMode{ResponseBodyMode: m}
	return r
}

func TestResponse(t *testing.T) {
	chatLog := store.SpendLog{
		RequestID: "tg-1", ClientRequestID: "client-7", CustomerID: "alice", Model: "gpt-test", Path: "/v1/chat/completions",
		PromptTokens: 1000, CompletionTokens: 500, TotalTokens: 1500, CacheReadTokens: 400, ReasoningTokens: 100,
		Cost: 2_400_000, StartTime: t0, EndTime: t0.Add(time.Second),
	}
	// estimatedLog: no usage came back, so chatBody's prompt was counted
	// locally (8 tokens × 1500 nano) along with completion tokens of text.
	estimatedLog := func(completion int64) store.SpendLog {
		return store.SpendLog{RequestID: "tg-1", ClientRequestID: "client-7", CustomerID: "alice", Model: "gpt-test",
			Path: "/v1/chat/completions", PromptTokens: chatBodyPromptTokens, CompletionTokens: completion,
			TotalTokens: chatBodyPromptTokens + completion, Cost: store.Nano(chatBodyPromptTokens*1500 + completion*2000),
			Estimated: true, StartTime: t0, EndTime: t0.Add(time.Second)}
	}
	buffered := wantMode(filterv3.ProcessingMode_BUFFERED)
	partial := wantMode(filterv3.ProcessingMode_BUFFERED_PARTIAL)
	passthrough := wantMode(filterv3.ProcessingMode_NONE)
	noBody := wantResponseHeaders()
	noBody.GetResponseHeaders().Response = &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{
		SetHeaders: []*corev3.HeaderValueOption{wantSet("x-litellm-response-cost", "1.2e-05")},
	}}
	ok := func(kv ...string) *extprocv3.ProcessingRequest {
		return respHeaders(false, append([]string{":status", "200", "content-type", "application/json", "content-length", "2000"}, kv...)...)
	}

	tests := []struct {
		name      string
		path      string
		reqBody   string
		maxBody   int64
		response  []*extprocv3.ProcessingRequest
		recordErr error
		want      []*extprocv3.ProcessingResponse // replies to response
		wantLogs  []store.SpendLog
	}{
		{
			name:     "buffered JSON: exact cost recorded and returned",
			response: []*extprocv3.ProcessingRequest{ok(), respBody([]byte(chatResponse), true)},
			want:     []*extprocv3.ProcessingResponse{buffered, wantResponseBody("0.0024")},
			wantLogs: []store.SpendLog{chatLog},
		},
		{
			name:     "gzip response: usage read from a copy",
			response: []*extprocv3.ProcessingRequest{ok("content-encoding", "gzip"), respBody(gzipped(t, chatResponse), true)},
			want:     []*extprocv3.ProcessingResponse{buffered, wantResponseBody("0.0024")},
			wantLogs: []store.SpendLog{chatLog},
		},
		{
			name: "deflate response",
			response: []*extprocv3.ProcessingRequest{
				respHeaders(false, ":status", "201", "content-encoding", "deflate", "content-length", "500"), respBody(zlibbed(t, chatResponse), true)},
			want:     []*extprocv3.ProcessingResponse{buffered, wantResponseBody("0.0024")},
			wantLogs: []store.SpendLog{chatLog},
		},
		{
			name:     "brotli response",
			response: []*extprocv3.ProcessingRequest{ok("content-encoding", "br"), respBody(brotlied(t, chatResponse), true)},
			want:     []*extprocv3.ProcessingResponse{buffered, wantResponseBody("0.0024")},
			wantLogs: []store.SpendLog{chatLog},
		},
		{
			name:     "unknown length: BUFFERED_PARTIAL, still with the cost header",
			response: []*extprocv3.ProcessingRequest{respHeaders(false, ":status", "200"), respBody([]byte(chatResponse), true)},
			want:     []*extprocv3.ProcessingResponse{partial, wantResponseBody("0.0024")},
			wantLogs: []store.SpendLog{chatLog},
		},
		{
			name: "unknown length over Envoy's buffer: only the start is seen",
			response: []*extprocv3.ProcessingRequest{respHeaders(false, ":status", "200"),
				respBody([]byte(`{"choices":[{"message":{"content":"hello"}}],"usa`), false)},
			want:     []*extprocv3.ProcessingResponse{partial, wantResponseBody("1.2e-05")},
			wantLogs: []store.SpendLog{estimatedLog(0)},
		},
		{
			name:    "known length over the buffer: STREAMED, read in pieces, no cost header",
			maxBody: 100,
			response: []*extprocv3.ProcessingRequest{ok(),
				respBody([]byte(chatResponse[:100]), false), respBody([]byte(chatResponse[100:]), false), respBody(nil, true)},
			want: []*extprocv3.ProcessingResponse{wantMode(filterv3.ProcessingMode_STREAMED),
				wantResponseBody(""), wantResponseBody(""), wantResponseBody("")},
			wantLogs: []store.SpendLog{chatLog},
		},
		{
			name:     "unpriced model: tokens recorded at cost 0",
			reqBody:  `{"model":"mystery-model","user":"alice"}`,
			response: []*extprocv3.ProcessingRequest{ok(), respBody([]byte(`{"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`), true)},
			want:     []*extprocv3.ProcessingResponse{buffered, wantResponseBody("0.0")},
			wantLogs: []store.SpendLog{{RequestID: "tg-1", ClientRequestID: "client-7", CustomerID: "alice", Model: "mystery-model",
				Path: "/v1/chat/completions", PromptTokens: 7, CompletionTokens: 3, TotalTokens: 10, Unpriced: true,
				StartTime: t0, EndTime: t0.Add(time.Second)}},
		},
		{
			name:     "request model without a price: the response's model prices it",
			reqBody:  `{"model":"my-deployment","user":"alice"}`,
			response: []*extprocv3.ProcessingRequest{ok(), respBody([]byte(chatResponse), true)},
			// gpt-test-2025-01-01 has no cache or reasoning prices: 1000 × 1e-06 + 500 × 1e-06.
			want: []*extprocv3.ProcessingResponse{buffered, wantResponseBody("0.0015")},
			wantLogs: []store.SpendLog{{RequestID: "tg-1", ClientRequestID: "client-7", CustomerID: "alice", Model: "gpt-test-2025-01-01",
				Path: "/v1/chat/completions", PromptTokens: 1000, CompletionTokens: 500, TotalTokens: 1500, CacheReadTokens: 400,
				ReasoningTokens: 100, Cost: 1_500_000, StartTime: t0, EndTime: t0.Add(time.Second)}},
		},
		{
			name:    "embeddings: sub-nano price rounded once",
			path:    "/v1/embeddings",
			reqBody: `{"model":"embed-test","input":"hi","user":"alice"}`,
			response: []*extprocv3.ProcessingRequest{ok(),
				respBody([]byte(`{"object":"list","model":"embed-test","usage":{"prompt_tokens":333,"total_tokens":333}}`), true)},
			// 333 × 18.75 nano = 6243.75 nano.
			want: []*extprocv3.ProcessingResponse{buffered, wantResponseBody("6.244e-06")},
			wantLogs: []store.SpendLog{{RequestID: "tg-1", ClientRequestID: "client-7", CustomerID: "alice", Model: "embed-test",
				Path: "/v1/embeddings", PromptTokens: 333, TotalTokens: 333, Cost: 6244, StartTime: t0, EndTime: t0.Add(time.Second)}},
		},
		{
			name:    "Azure deployment: the model is the deployment",
			path:    "/openai/deployments/gpt-test/chat/completions?api-version=2024-10-21",
			reqBody: `{"messages":[{"role":"user","content":"hi"}],"user":"alice"}`,
			response: []*extprocv3.ProcessingRequest{ok(),
				respBody([]byte(`{"model":"gpt-4o-2024-08-06","usage":{"prompt_tokens":10,"completion_tokens":1}}`), true)},
			want: []*extprocv3.ProcessingResponse{buffered, wantResponseBody("1.7e-05")},
			wantLogs: []store.SpendLog{{RequestID: "tg-1", ClientRequestID: "client-7", CustomerID: "alice", Model: "gpt-test",
				Path: "/openai/deployments/gpt-test/chat/completions", PromptTokens: 10, CompletionTokens: 1, TotalTokens: 11,
				Cost: 17_000, StartTime: t0, EndTime: t0.Add(time.Second)}},
		},
		{
			name: "2xx without usage: tokens counted locally",
			response: []*extprocv3.ProcessingRequest{ok(),
				respBody([]byte(`{"choices":[{"message":{"content":"hello world"}}]}`), true)},
			want:     []*extprocv3.ProcessingResponse{buffered, wantResponseBody("1.6e-05")},
			wantLogs: []store.SpendLog{estimatedLog(2)},
		},
		{
			name:     "unreadable body: the prompt counted locally",
			response: []*extprocv3.ProcessingRequest{ok("content-encoding", "zstd"), respBody([]byte{0x28, 0xb5}, true)},
			want:     []*extprocv3.ProcessingResponse{buffered, wantResponseBody("1.2e-05")},
			wantLogs: []store.SpendLog{estimatedLog(0)},
		},
		{
			name:     "2xx without a body",
			response: []*extprocv3.ProcessingRequest{respHeaders(true, ":status", "204")},
			want:     []*extprocv3.ProcessingResponse{noBody},
			wantLogs: []store.SpendLog{estimatedLog(0)},
		},
		{
			name:     "error response passes through and costs nothing",
			response: []*extprocv3.ProcessingRequest{respHeaders(false, ":status", "429", "content-type", "application/json")},
			want:     []*extprocv3.ProcessingResponse{passthrough},
		},
		{
			name:     "missing status is not a success",
			response: []*extprocv3.ProcessingRequest{respHeaders(false, "content-type", "application/json")},
			want:     []*extprocv3.ProcessingResponse{passthrough},
		},
		{
			name:      "store failure after the response: still answered with the cost",
			recordErr: errors.New("disk full"),
			response:  []*extprocv3.ProcessingRequest{ok(), respBody([]byte(chatResponse), true)},
			want:      []*extprocv3.ProcessingResponse{buffered, wantResponseBody("0.0024")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newFakeStore()
			st.recordErr = tt.recordErr
			path := tt.path
			if path == "" {
				path = "/v1/chat/completions"
			}
			body := tt.reqBody
			if body == "" {
				body = chatBody
			}
			cfg := testConfig(t)
			cfg.MaxRequestBodyBytes = tt.maxBody
			msgs := append([]*extprocv3.ProcessingRequest{
				reqHeaders("POST", path, "authorization", "Bearer sk-master", "x-request-id", "client-7", "x-litellm-customer-id", "alice"),
				reqBody(body),
			}, tt.response...)
			got := exchange(t, startServer(t, cfg, st), msgs...)
			if len(got) < 2 {
				t.Fatalf("got %d responses, want at least 2", len(got))
			}
			if diff := diffResponses(tt.want, got[2:]); diff != "" {
				t.Errorf("response-path replies (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantLogs, st.recorded()); diff != "" {
				t.Errorf("spend logs (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRepeatedClientRequestID: a client reusing an x-request-id gets charged
// every time, because the at-most-once key is tollgate's own id.
func TestRepeatedClientRequestID(t *testing.T) {
	st := newFakeStore()
	c := startServer(t, testConfig(t), st)
	for range 2 {
		exchange(t, c, llmHeaders("x-request-id", "same"), reqBody(chatBody),
			respHeaders(false, ":status", "200"), respBody([]byte(chatResponse), true))
	}
	var got [][2]string
	for _, l := range st.recorded() {
		got = append(got, [2]string{l.RequestID, l.ClientRequestID})
	}
	if diff := cmp.Diff([][2]string{{"tg-1", "same"}, {"tg-2", "same"}}, got); diff != "" {
		t.Errorf("(request id, client request id) of the spend logs (-want +got):\n%s", diff)
	}
}

func TestStreamProtocol(t *testing.T) {
	t.Run("trailers are answered", func(t *testing.T) {
		got := exchange(t, startServer(t, testConfig(t), newFakeStore()),
			&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{RequestTrailers: &extprocv3.HttpTrailers{}}},
			&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{ResponseTrailers: &extprocv3.HttpTrailers{}}})
		want := []*extprocv3.ProcessingResponse{
			{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}},
			{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}},
		}
		if diff := diffResponses(want, got); diff != "" {
			t.Errorf("responses (-want +got):\n%s", diff)
		}
	})
	t.Run("a message of no known kind ends the stream", func(t *testing.T) {
		stream, err := startServer(t, testConfig(t), newFakeStore()).Process(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&extprocv3.ProcessingRequest{}); err != nil {
			t.Fatal(err)
		}
		_, err = stream.Recv()
		if got := status.Code(err); got != codes.InvalidArgument {
			t.Errorf("Recv error %v, want code InvalidArgument", err)
		}
	})
}
