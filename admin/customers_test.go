package admin

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/store"
)

// tierJSON is the shared tier most customer tests link to.
const tierJSON = `{"budget_id":"tier-1","max_budget":4,"tpm_limit":100}`

var tierRow = budgetRowJSON("tier-1", kv{"max_budget": "4.0", "tpm_limit": "100"})

// req is one request in a test's setup.
type req struct{ method, path, body string }

func (e *env) setup(reqs ...req) {
	e.t.Helper()
	for _, r := range reqs {
		e.ok(r.method, r.path, r.body)
	}
}

// snapshot is what the store holds, as the list routes show it.
func (e *env) snapshot() string {
	e.t.Helper()
	return e.ok("GET", "/customer/list", "") + e.ok("GET", "/budget/list", "")
}

// expectRejected sends a request that must fail with the given response and write nothing.
func (e *env) expectRejected(method, path, body string, wantCode int, want string) {
	e.t.Helper()
	before := e.snapshot()
	code, got := e.do(method, path, body)
	check(e.t, method+" "+path, code, got, wantCode, want)
	if after := e.snapshot(); after != before {
		e.t.Errorf("a rejected request changed the store:\nbefore %s\nafter  %s", before, after)
	}
}

func TestCustomerNew(t *testing.T) {
	id512 := strings.Repeat("é", 256)
	cases := []struct {
		name  string
		setup []req
		body  string
		want  string
	}{
		{"minimal", nil, `{"user_id":"a"}`, customerRowJSON("a", nil)},
		{"seed: max_budget as a string", nil, `{"user_id":"my-customer-id","max_budget":"0"}`,
			customerRowJSON("my-customer-id", kv{"budget_id": `"gen-1"`, "litellm_budget_table": budgetRowJSON("gen-1", kv{"max_budget": "0.0"})})},
		{"every field, numbers as strings", nil, `{
			"user_id":"b","alias":"Bob","blocked":true,"spend":"4.5","allowed_model_region":"eu","default_model":"gpt-4o",
			"max_budget":"10.25","soft_budget":8,"max_parallel_requests":"3","tpm_limit":1000,"rpm_limit":"60",
			"budget_duration":"1mo","budget_reset_at":"2026-02-01T00:00:00+01:00",
			"model_max_budget":{"gpt-4o":{"max_budget":"2.5","budget_duration":"1d","tpm_limit":"100","rpm_limit":10},"o3":{}}}`,
			customerRowJSON("b", kv{
				"alias": `"Bob"`, "spend": "4.5", "allowed_model_region": `"eu"`, "default_model": `"gpt-4o"`,
				"budget_id": `"gen-1"`, "blocked": "true",
				"litellm_budget_table": budgetRowJSON("gen-1", kv{
					"max_budget": "10.25", "soft_budget": "8.0", "max_parallel_requests": "3", "tpm_limit": "1000", "rpm_limit": "60",
					"model_max_budget": `{"gpt-4o":{"max_budget":2.5,"budget_duration":"1d","tpm_limit":100,"rpm_limit":10},"o3":{}}`,
					"budget_duration":  `"1mo"`, "budget_reset_at": `"2026-01-31T23:00:00Z"`,
				}),
			})},
		{"linked to a shared tier", []req{{"POST", "/budget/new", tierJSON}}, `{"user_id":"a","budget_id":"tier-1"}`,
			customerRowJSON("a", kv{"budget_id": `"tier-1"`, "litellm_budget_table": tierRow})},
		{"inline budget wins over budget_id", []req{{"POST", "/budget/new", tierJSON}}, `{"user_id":"a","budget_id":"tier-1","soft_budget":1}`,
			customerRowJSON("a", kv{"budget_id": `"gen-1"`, "litellm_budget_table": budgetRowJSON("gen-1", kv{"soft_budget": "1.0"})})},
		{"nulls mean unset", nil, `{"user_id":"a","alias":null,"blocked":null,"spend":null,"max_budget":null,"budget_id":null,"tpm_limit":null,"model_max_budget":null}`,
			customerRowJSON("a", nil)},
		{"blocked false and spend 0", nil, `{"user_id":"a","blocked":false,"spend":0}`, customerRowJSON("a", nil)},
		{"unknown fields are ignored", nil, `{"user_id":"a","metadata":{"x":1},"object_permission":{"mcp_servers":["s"]},"models":[],"User_ID":"b"}`,
			customerRowJSON("a", nil)},
		{"small amounts print like Python", nil, `{"user_id":"a","max_budget":0.00008,"soft_budget":"1e-9"}`,
			customerRowJSON("a", kv{"budget_id": `"gen-1"`, "litellm_budget_table": budgetRowJSON("gen-1", kv{"max_budget": "8e-05", "soft_budget": "1e-09"})})},
		{"largest amount", nil, `{"user_id":"a","max_budget":1e9}`,
			customerRowJSON("a", kv{"budget_id": `"gen-1"`, "litellm_budget_table": budgetRowJSON("gen-1", kv{"max_budget": "1000000000.0"})})},
		{"integral floats are integers", nil, `{"user_id":"a","tpm_limit":1e3,"rpm_limit":10.0,"max_parallel_requests":"+2"}`,
			customerRowJSON("a", kv{"budget_id": `"gen-1"`, "litellm_budget_table": budgetRowJSON("gen-1", kv{"tpm_limit": "1000", "rpm_limit": "10", "max_parallel_requests": "2"})})},
		{"512-byte id", nil, `{"user_id":"` + id512 + `"}`, customerRowJSON(id512, nil)},
		{"odd but valid id", nil, `{"user_id":" o'brien \"x\" "}`, customerRowJSON(` o'brien "x" `, nil)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.setup(c.setup...)
			code, got := e.do("POST", "/customer/new", c.body)
			check(t, "create", code, got, 200, c.want)
		})
	}
}

func TestCustomerNewRejects(t *testing.T) {
	bad := func(param, msg string) string { return errJSON(msg, "bad_request", param, 400) }
	invalid := func(param, msg string) string { return errJSON(msg, "bad_request_error", param, 422) }
	cases := []struct {
		name     string
		body     string
		wantCode int
		want     string
	}{
		{"missing user_id", `{"alias":"x"}`, 422, invalid("user_id", "user_id is required")},
		{"null user_id", `{"user_id":null}`, 422, invalid("user_id", "user_id is required")},
		{"numeric user_id", `{"user_id":5}`, 422, invalid("user_id", "user_id must be a string")},
		{"empty user_id", `{"user_id":""}`, 400, bad("user_id", "user_id must be a non-empty string that is not only whitespace")},
		{"blank user_id", `{"user_id":" \t\n"}`, 400, bad("user_id", "user_id must be a non-empty string that is not only whitespace")},
		{"long user_id", `{"user_id":"` + strings.Repeat("x", 513) + `"}`, 400, bad("user_id", "user_id must be at most 512 bytes, got 513")},
		{"max_budget and budget_id", `{"user_id":"a","max_budget":"0","budget_id":"tier-1"}`, 422, invalid("budget_id", "Set either 'max_budget' or 'budget_id', not both.")},
		{"unknown budget", `{"user_id":"a","budget_id":"nope"}`, 400, bad("budget_id", "Budget with id 'nope' does not exist.")},
		{"duplicate", `{"user_id":"taken"}`, 400, bad("user_id", "Customer already exists, passed user_id=taken. Please pass a new user_id.")},
		{"negative max_budget", `{"user_id":"a","max_budget":-1}`, 400, bad("max_budget", "max_budget must be a non-negative finite number. Received: -1.0")},
		{"negative max_budget string", `{"user_id":"a","max_budget":"-0.5"}`, 400, bad("max_budget", "max_budget must be a non-negative finite number. Received: -0.5")},
		{"word max_budget", `{"user_id":"a","max_budget":"abc"}`, 400, bad("max_budget", "max_budget must be a non-negative finite number. Received: abc")},
		{"NaN max_budget", `{"user_id":"a","max_budget":"NaN"}`, 400, bad("max_budget", "max_budget must be a non-negative finite number. Received: NaN")},
		{"inf max_budget", `{"user_id":"a","max_budget":"inf"}`, 400, bad("max_budget", "max_budget must be a non-negative finite number. Received: inf")},
		{"overflowing max_budget", `{"user_id":"a","max_budget":1e400}`, 400, bad("max_budget", "max_budget must be a non-negative finite number. Received: inf")},
		{"hex max_budget", `{"user_id":"a","max_budget":"0x1p3"}`, 400, bad("max_budget", "max_budget must be a non-negative finite number. Received: 0x1p3")},
		{"empty string max_budget", `{"user_id":"a","max_budget":""}`, 400, bad("max_budget", "max_budget must be a non-negative finite number. Received: ")},
		{"boolean max_budget", `{"user_id":"a","max_budget":true}`, 400, bad("max_budget", "max_budget must be a non-negative finite number. Received: true")},
		{"huge max_budget", `{"user_id":"a","max_budget":1000000000.5}`, 400, bad("max_budget", "max_budget must be at most 1000000000.0 USD. Received: 1000000000.5")},
		{"huge max_budget string", `{"user_id":"a","max_budget":"1e10"}`, 400, bad("max_budget", "max_budget must be at most 1000000000.0 USD. Received: 10000000000.0")},
		{"negative spend", `{"user_id":"a","spend":-2}`, 400, bad("spend", "spend must be a non-negative finite number. Received: -2.0")},
		{"word soft_budget", `{"user_id":"a","soft_budget":"x"}`, 400, bad("soft_budget", "soft_budget must be a non-negative finite number. Received: x")},
		{"negative tpm_limit", `{"user_id":"a","tpm_limit":-1}`, 400, bad("tpm_limit", "tpm_limit must be a non-negative integer. Received: -1")},
		{"fractional tpm_limit", `{"user_id":"a","tpm_limit":1.5}`, 400, bad("tpm_limit", "tpm_limit must be a non-negative integer. Received: 1.5")},
		{"decimal string rpm_limit", `{"user_id":"a","rpm_limit":"1.0"}`, 400, bad("rpm_limit", "rpm_limit must be a non-negative integer. Received: 1.0")},
		{"boolean max_parallel_requests", `{"user_id":"a","max_parallel_requests":true}`, 400, bad("max_parallel_requests", "max_parallel_requests must be a non-negative integer. Received: true")},
		{"tpm_limit beyond int64", `{"user_id":"a","tpm_limit":1e19}`, 400, bad("tpm_limit", "tpm_limit must be a non-negative integer. Received: 1e19")},
		{"unknown duration unit", `{"user_id":"a","budget_duration":"30x"}`, 400, bad("budget_duration", `budget_duration must be a positive whole number followed by s, m, h, d, w or mo (e.g. "30d", "1mo"). Received: 30x`)},
		{"zero duration", `{"user_id":"a","budget_duration":"0d"}`, 400, bad("budget_duration", `budget_duration must be a positive whole number followed by s, m, h, d, w or mo (e.g. "30d", "1mo"). Received: 0d`)},
		{"numeric duration", `{"user_id":"a","budget_duration":30}`, 400, bad("budget_duration", `budget_duration must be a positive whole number followed by s, m, h, d, w or mo (e.g. "30d", "1mo"). Received: 30`)},
		{"bad reset time", `{"user_id":"a","budget_reset_at":"tomorrow"}`, 400, bad("budget_reset_at", `budget_reset_at must be an RFC 3339 date-time such as "2026-01-31T00:00:00Z". Received: tomorrow`)},
		{"unknown region", `{"user_id":"a","allowed_model_region":"asia"}`, 400, bad("allowed_model_region", "allowed_model_region must be 'eu' or 'us'. Received: asia")},
		{"string blocked", `{"user_id":"a","blocked":"yes"}`, 422, invalid("blocked", "blocked must be a boolean")},
		{"numeric alias", `{"user_id":"a","alias":5}`, 422, invalid("alias", "alias must be a string")},
		{"model_max_budget not an object", `{"user_id":"a","model_max_budget":"x"}`, 400,
			bad("model_max_budget", `model_max_budget must be an object mapping model names to limits, e.g. {"gpt-4o": {"max_budget": 10, "budget_duration": "1d"}}`)},
		{"model_max_budget entry not an object", `{"user_id":"a","model_max_budget":{"gpt-4o":5}}`, 400,
			bad("model_max_budget", `model_max_budget["gpt-4o"] must be an object such as {"max_budget": 10, "budget_duration": "1d"}`)},
		{"model_max_budget negative entry", `{"user_id":"a","model_max_budget":{"gpt-4o":{"max_budget":-1}}}`, 400,
			bad("model_max_budget", `model_max_budget["gpt-4o"].max_budget must be a non-negative finite number. Received: -1.0`)},
		{"model_max_budget bad duration", `{"user_id":"a","model_max_budget":{"b":{},"a":{"budget_duration":"1y"}}}`, 400,
			bad("model_max_budget", `model_max_budget["a"].budget_duration must be a positive whole number followed by s, m, h, d, w or mo (e.g. "30d", "1mo"). Received: 1y`)},
		{"model_max_budget empty model", `{"user_id":"a","model_max_budget":{"":{}}}`, 400,
			bad("model_max_budget", "model_max_budget model names must be non-empty")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.setup(req{"POST", "/customer/new", `{"user_id":"taken"}`})
			e.expectRejected("POST", "/customer/new", c.body, c.wantCode, c.want)
		})
	}
}

func TestCustomerInfo(t *testing.T) {
	e := newEnv(t)
	e.setup(
		req{"POST", "/budget/new", tierJSON},
		req{"POST", "/customer/new", `{"user_id":"plain"}`},
		req{"POST", "/customer/new", `{"user_id":"tiered","alias":"T","budget_id":"tier-1","allowed_model_region":"us"}`},
		req{"POST", "/customer/new", `{"user_id":"own","max_budget":2,"budget_duration":"1d","model_max_budget":{"m":{"rpm_limit":1}}}`},
		req{"POST", "/customer/new", `{"user_id":"a b&c"}`},
	)
	tierInfo := budgetInfoJSON("tier-1", kv{"max_budget": "4.0", "tpm_limit": "100"})
	cases := []struct {
		name     string
		path     string
		wantCode int
		want     string
	}{
		{"typed, nulls included", "/customer/info?end_user_id=plain", 200, customerInfoJSON("plain", nil)},
		{"typed nested budget", "/customer/info?end_user_id=tiered", 200,
			customerInfoJSON("tiered", kv{"alias": `"T"`, "allowed_model_region": `"us"`, "budget_id": `"tier-1"`, "litellm_budget_table": tierInfo})},
		{"typed inline budget", "/customer/info?end_user_id=own", 200,
			customerInfoJSON("own", kv{"budget_id": `"gen-1"`, "litellm_budget_table": budgetInfoJSON("gen-1", kv{
				"max_budget": "2.0", "budget_duration": `"1d"`, "model_max_budget": `{"m":{"rpm_limit":1}}`,
			})})},
		{"escaped id", "/customer/info?end_user_id=a+b%26c", 200, `{"user_id":"a b&c","blocked":false,"alias":null,"spend":0.0,"allowed_model_region":null,
			"default_model":null,"budget_id":null,"litellm_budget_table":null,"object_permission_id":null,"object_permission":null}`},
		{"end_user alias leaves out nulls", "/end_user/info?end_user_id=plain", 200,
			`{"user_id":"plain","spend":0.0,"blocked":false}`},
		{"end_user alias nests the full row", "/end_user/info?end_user_id=tiered", 200,
			`{"user_id":"tiered","alias":"T","spend":0.0,"allowed_model_region":"us","budget_id":"tier-1","blocked":false,
			  "litellm_budget_table":{"budget_id":"tier-1","max_budget":4.0,"tpm_limit":100,"allowed_models":[],
			  "created_at":"` + testStamp + `","created_by":"default_user_id","updated_at":"` + testStamp + `","updated_by":"default_user_id"}}`},
		{"unknown", "/customer/info?end_user_id=ghost", 404, errJSON("End User Id=ghost does not exist in db", "not_found", "end_user_id", 404)},
		{"unknown via alias", "/end_user/info?end_user_id=ghost", 404, errJSON("End User Id=ghost does not exist in db", "not_found", "end_user_id", 404)},
		{"missing parameter", "/customer/info", 422, errJSON("end_user_id is required", "bad_request_error", "end_user_id", 422)},
		{"empty parameter", "/customer/info?end_user_id=", 400, errJSON("end_user_id must be a non-empty string that is not only whitespace", "bad_request", "end_user_id", 400)},
		{"long parameter", "/customer/info?end_user_id=" + strings.Repeat("x", 513), 400, errJSON("end_user_id must be at most 512 bytes, got 513", "bad_request", "end_user_id", 400)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, got := e.do("GET", c.path, "")
			check(t, c.path, code, got, c.wantCode, c.want)
		})
	}
}

// TestSeedInfo is the seed's "Get Customer Spend" example: a customer created
// by its first priced request, then read with /customer/info.
func TestSeedInfo(t *testing.T) {
	e := newEnv(t)
	cost, err := store.NanoFromUSD(0.001413)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.RecordSpend(context.Background(), store.SpendLog{RequestID: "r1", CustomerID: "ishaan3", Model: "azure-gpt-3.5", Cost: cost, StartTime: testTime, EndTime: testTime}); err != nil {
		t.Fatalf("record spend: %v", err)
	}
	code, got := e.do("GET", "/customer/info?end_user_id=ishaan3", "")
	// The docs' example plus the keys newer LiteLLM builds add (budget_id, object_permission_id, object_permission).
	check(t, "info", code, got, 200, `{"user_id":"ishaan3","blocked":false,"alias":null,"spend":0.001413,"allowed_model_region":null,
		"default_model":null,"budget_id":null,"litellm_budget_table":null,"object_permission_id":null,"object_permission":null}`)
}

func TestCustomerUpdate(t *testing.T) {
	tierAfter := req{"POST", "/budget/info", `{"budgets":["tier-1"]}`}
	cases := []struct {
		name  string
		setup []req
		body  string
		want  string
		// then, when set, is read after the update and must answer thenWant.
		then     *req
		thenWant string
	}{
		{"blocked false unblocks", []req{{"POST", "/customer/new", `{"user_id":"a","blocked":true}`}},
			`{"user_id":"a","blocked":false}`, customerRowJSON("a", nil), nil, ""},
		{"empty alias is written", []req{{"POST", "/customer/new", `{"user_id":"a","alias":"x"}`}},
			`{"user_id":"a","alias":""}`, customerRowJSON("a", kv{"alias": `""`}), nil, ""},
		{"absent and null fields are kept", []req{{"POST", "/customer/new", `{"user_id":"a","alias":"x","blocked":true,"default_model":"m","allowed_model_region":"eu"}`}},
			`{"user_id":"a","alias":null}`,
			customerRowJSON("a", kv{"alias": `"x"`, "blocked": "true", "default_model": `"m"`, "allowed_model_region": `"eu"`}), nil, ""},
		{"every field", []req{{"POST", "/budget/new", tierJSON}, {"POST", "/customer/new", `{"user_id":"a"}`}},
			`{"user_id":"a","alias":"A","blocked":true,"budget_id":"tier-1","allowed_model_region":"us","default_model":"gpt-4o","tpm_limit":5}`,
			customerRowJSON("a", kv{"alias": `"A"`, "blocked": "true", "budget_id": `"tier-1"`, "allowed_model_region": `"us"`, "default_model": `"gpt-4o"`, "litellm_budget_table": tierRow}),
			nil, ""},
		{"max_budget 0 creates an own budget", []req{{"POST", "/customer/new", `{"user_id":"a"}`}},
			`{"user_id":"a","max_budget":0}`,
			customerRowJSON("a", kv{"budget_id": `"gen-1"`, "litellm_budget_table": budgetRowJSON("gen-1", kv{"max_budget": "0.0"})}), nil, ""},
		{"max_budget string updates the own budget in place", []req{{"POST", "/customer/new", `{"user_id":"a","max_budget":5,"rpm_limit":7}`}},
			`{"user_id":"a","max_budget":"2.5"}`,
			customerRowJSON("a", kv{"budget_id": `"gen-1"`, "litellm_budget_table": budgetRowJSON("gen-1", kv{"max_budget": "2.5", "rpm_limit": "7"})}), nil, ""},
		{"max_budget leaves the shared tier alone", []req{{"POST", "/budget/new", tierJSON}, {"POST", "/customer/new", `{"user_id":"a","budget_id":"tier-1"}`}},
			`{"user_id":"a","max_budget":1}`,
			customerRowJSON("a", kv{"budget_id": `"gen-1"`, "litellm_budget_table": budgetRowJSON("gen-1", kv{"max_budget": "1.0", "tpm_limit": "100"})}),
			&tierAfter, "[" + tierRow + "]"},
		{"budget_id relinks", []req{{"POST", "/budget/new", tierJSON}, {"POST", "/customer/new", `{"user_id":"a","max_budget":9}`}},
			`{"user_id":"a","budget_id":"tier-1"}`,
			customerRowJSON("a", kv{"budget_id": `"tier-1"`, "litellm_budget_table": tierRow}), nil, ""},
		{"update is visible in info", []req{{"POST", "/customer/new", `{"user_id":"a","blocked":true}`}},
			`{"user_id":"a","blocked":false,"alias":"z"}`, customerRowJSON("a", kv{"alias": `"z"`}),
			&req{"GET", "/customer/info?end_user_id=a", ""}, customerInfoJSON("a", kv{"alias": `"z"`})},
		{"via end_user alias", []req{{"POST", "/customer/new", `{"user_id":"a"}`}},
			`{"user_id":"a","alias":"e"}`, customerRowJSON("a", kv{"alias": `"e"`}), nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.setup(c.setup...)
			path := "/customer/update"
			if strings.Contains(c.name, "end_user") {
				path = "/end_user/update"
			}
			code, got := e.do("POST", path, c.body)
			check(t, "update", code, got, 200, c.want)
			if c.then != nil {
				code, got := e.do(c.then.method, c.then.path, c.then.body)
				check(t, "after update", code, got, 200, c.thenWant)
			}
		})
	}
}

func TestCustomerUpdateRejects(t *testing.T) {
	cases := []struct {
		name     string
		body     string
		wantCode int
		want     string
	}{
		{"unknown customer", `{"user_id":"ghost","alias":"x"}`, 404, errJSON("End User Id=ghost does not exist in db", "not_found", "user_id", 404)},
		{"unknown budget", `{"user_id":"a","budget_id":"nope"}`, 400, errJSON("Budget with id 'nope' does not exist.", "bad_request", "budget_id", 400)},
		{"missing user_id", `{"alias":"x"}`, 422, errJSON("user_id is required", "bad_request_error", "user_id", 422)},
		{"empty user_id", `{"user_id":""}`, 400, errJSON("user_id must be a non-empty string that is not only whitespace", "bad_request", "user_id", 400)},
		{"negative max_budget", `{"user_id":"a","max_budget":"-3"}`, 400, errJSON("max_budget must be a non-negative finite number. Received: -3.0", "bad_request", "max_budget", 400)},
		{"numeric blocked", `{"user_id":"a","blocked":0}`, 422, errJSON("blocked must be a boolean", "bad_request_error", "blocked", 422)},
		{"unknown region", `{"user_id":"a","allowed_model_region":"EU"}`, 400, errJSON("allowed_model_region must be 'eu' or 'us'. Received: EU", "bad_request", "allowed_model_region", 400)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.setup(req{"POST", "/customer/new", `{"user_id":"a","max_budget":1}`})
			e.expectRejected("POST", "/customer/update", c.body, c.wantCode, c.want)
		})
	}
}

func TestCustomerDelete(t *testing.T) {
	cases := []struct {
		name     string
		body     string
		wantCode int
		want     string
		// left is /customer/list afterwards.
		left string
	}{
		{"two", `{"user_ids":["a","b"]}`, 200,
			`{"deleted_customers":2,"message":"Successfully deleted customers with ids: ['a', 'b']"}`,
			"[" + customerInfoJSON("o'brien", nil) + "]"},
		{"quote in id", `{"user_ids":["o'brien"]}`, 200,
			`{"deleted_customers":1,"message":"Successfully deleted customers with ids: [\"o'brien\"]"}`,
			"[" + customerInfoJSON("a", kv{"budget_id": `"tier-1"`, "litellm_budget_table": budgetInfoJSON("tier-1", kv{"max_budget": "4.0", "tpm_limit": "100"})}) + "," + customerInfoJSON("b", kv{"budget_id": `"gen-1"`, "litellm_budget_table": budgetInfoJSON("gen-1", kv{"max_budget": "1.0"})}) + "]"},
		{"repeated id", `{"user_ids":["a","a"]}`, 200,
			`{"deleted_customers":1,"message":"Successfully deleted customers with ids: ['a', 'a']"}`,
			"[" + customerInfoJSON("b", kv{"budget_id": `"gen-1"`, "litellm_budget_table": budgetInfoJSON("gen-1", kv{"max_budget": "1.0"})}) + "," + customerInfoJSON("o'brien", nil) + "]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.setup(
				req{"POST", "/budget/new", tierJSON},
				req{"POST", "/customer/new", `{"user_id":"a","budget_id":"tier-1"}`},
				req{"POST", "/customer/new", `{"user_id":"b","max_budget":1}`},
				req{"POST", "/customer/new", `{"user_id":"o'brien"}`},
			)
			code, got := e.do("POST", "/customer/delete", c.body)
			check(t, "delete", code, got, c.wantCode, c.want)
			check(t, "left", 200, e.ok("GET", "/customer/list", ""), 200, c.left)
			// The shared tier outlives its customers.
			check(t, "tier", 200, e.ok("POST", "/budget/info", `{"budgets":["tier-1"]}`), 200, "["+tierRow+"]")
		})
	}
}

func TestCustomerDeleteRejects(t *testing.T) {
	cases := []struct {
		name     string
		body     string
		wantCode int
		want     string
	}{
		{"some missing", `{"user_ids":["a","x","y"]}`, 404, errJSON("End User Id(s)=x, y do not exist in db", "not_found", "user_ids", 404)},
		{"empty list", `{"user_ids":[]}`, 400, errJSON("user_ids must list at least one customer id", "bad_request", "user_ids", 400)},
		{"missing list", `{}`, 422, errJSON("user_ids is required", "bad_request_error", "user_ids", 422)},
		{"string instead of list", `{"user_ids":"a"}`, 422, errJSON("user_ids must be a list of strings", "bad_request_error", "user_ids", 422)},
		{"number in list", `{"user_ids":["a",1]}`, 422, errJSON("user_ids must be a list of strings", "bad_request_error", "user_ids", 422)},
		{"blank id in list", `{"user_ids":["a"," "]}`, 400, errJSON("user_ids must be a non-empty string that is not only whitespace", "bad_request", "user_ids", 400)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.setup(req{"POST", "/customer/new", `{"user_id":"a"}`})
			e.expectRejected("POST", "/customer/delete", c.body, c.wantCode, c.want)
		})
	}
}

func TestCustomerList(t *testing.T) {
	e := newEnv(t)
	check(t, "empty", 200, e.ok("GET", "/customer/list", ""), 200, `[]`)
	e.setup(
		req{"POST", "/budget/new", tierJSON},
		req{"POST", "/customer/new", `{"user_id":"b","budget_id":"tier-1","blocked":true}`},
		req{"POST", "/customer/new", `{"user_id":"a","alias":"first","spend":"1.5"}`},
		req{"POST", "/customer/new", `{"user_id":"c","budget_id":"tier-1"}`},
	)
	tierInfo := budgetInfoJSON("tier-1", kv{"max_budget": "4.0", "tpm_limit": "100"})
	want := "[" + customerInfoJSON("a", kv{"alias": `"first"`, "spend": "1.5"}) + "," +
		customerInfoJSON("b", kv{"blocked": "true", "budget_id": `"tier-1"`, "litellm_budget_table": tierInfo}) + "," +
		customerInfoJSON("c", kv{"budget_id": `"tier-1"`, "litellm_budget_table": tierInfo}) + "]"
	for _, path := range []string{"/customer/list", "/end_user/list"} {
		t.Run(path, func(t *testing.T) {
			code, got := e.do("GET", path, "")
			check(t, path, code, got, 200, want)
		})
	}
}

func TestCustomerBlockUnblock(t *testing.T) {
	e := newEnv(t)
	e.setup(
		req{"POST", "/budget/new", tierJSON},
		req{"POST", "/customer/new", `{"user_id":"a","budget_id":"tier-1","spend":2}`},
	)
	steps := []struct {
		name, path, body string
		want             string
		// info is what /customer/info?end_user_id=a shows afterwards.
		info string
	}{
		{"block creates unknown ids", "/customer/block", `{"user_ids":["a","new","a"]}`,
			`{"blocked_users":[` + customerRowJSON("a", kv{"spend": "2.0", "budget_id": `"tier-1"`, "blocked": "true", "litellm_budget_table": tierRow}) + "," +
				customerRowJSON("new", kv{"blocked": "true"}) + `]}`,
			customerInfoJSON("a", kv{"spend": "2.0", "blocked": "true", "budget_id": `"tier-1"`, "litellm_budget_table": budgetInfoJSON("tier-1", kv{"max_budget": "4.0", "tpm_limit": "100"})})},
		{"block again is idempotent", "/end_user/block", `{"user_ids":["new"]}`,
			`{"blocked_users":[` + customerRowJSON("new", kv{"blocked": "true"}) + `]}`, ""},
		{"unblock clears the flag and skips unknown ids", "/customer/unblock", `{"user_ids":["ghost","a"]}`,
			`{"blocked_users":[` + customerRowJSON("a", kv{"spend": "2.0", "budget_id": `"tier-1"`, "litellm_budget_table": tierRow}) + `]}`,
			customerInfoJSON("a", kv{"spend": "2.0", "budget_id": `"tier-1"`, "litellm_budget_table": budgetInfoJSON("tier-1", kv{"max_budget": "4.0", "tpm_limit": "100"})})},
		{"unblock via alias", "/end_user/unblock", `{"user_ids":["new"]}`,
			`{"blocked_users":[` + customerRowJSON("new", nil) + `]}`, ""},
		{"unblock only unknown ids", "/customer/unblock", `{"user_ids":["ghost"]}`, `{"blocked_users":[]}`, ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			code, got := e.do("POST", s.path, s.body)
			check(t, s.path, code, got, 200, s.want)
			if s.info != "" {
				check(t, "info", 200, e.ok("GET", "/customer/info?end_user_id=a", ""), 200, s.info)
			}
		})
	}
	if _, err := e.st.GetCustomer(context.Background(), "ghost"); err == nil {
		t.Error("unblock created a customer")
	}
}

func TestCustomerBlockRejects(t *testing.T) {
	cases := []struct {
		name, body string
		want       string
	}{
		{"missing list", `{}`, detailJSON("user_ids is required")},
		{"empty list", `{"user_ids":[]}`, detailJSON("user_ids must list at least one customer id")},
		{"not a list", `{"user_ids":"a"}`, detailJSON("user_ids must be a list of strings")},
		{"empty id", `{"user_ids":[""]}`, detailJSON("user_ids must be a non-empty string that is not only whitespace")},
		{"long id", `{"user_ids":["` + strings.Repeat("x", 600) + `"]}`, detailJSON("user_ids must be at most 512 bytes, got 600")},
	}
	for _, path := range []string{"/customer/block", "/customer/unblock", "/end_user/block", "/end_user/unblock"} {
		for _, c := range cases {
			t.Run(path+"/"+c.name, func(t *testing.T) {
				e := newEnv(t)
				e.setup(req{"POST", "/customer/new", `{"user_id":"a"}`})
				e.expectRejected("POST", path, c.body, http.StatusBadRequest, c.want)
			})
		}
	}
}

// TestEndUserAliases checks every /end_user/* write route against its /customer/* twin.
func TestEndUserAliases(t *testing.T) {
	cases := []struct {
		path, body string
	}{
		{"/new", `{"user_id":"z","max_budget":"1"}`},
		{"/update", `{"user_id":"a","alias":"q"}`},
		{"/delete", `{"user_ids":["a"]}`},
		{"/block", `{"user_ids":["a"]}`},
		{"/unblock", `{"user_ids":["a"]}`},
		{"/new", `{"user_id":"a"}`}, // an error case: duplicate
		{"/update", `{"user_id":"ghost"}`},
	}
	for _, c := range cases {
		t.Run(c.path+" "+c.body, func(t *testing.T) {
			var codes [2]int
			var bodies [2]string
			for i, prefix := range []string{"/customer", "/end_user"} {
				e := newEnv(t)
				e.setup(req{"POST", "/customer/new", `{"user_id":"a","blocked":true}`})
				codes[i], bodies[i] = e.do("POST", prefix+c.path, c.body)
			}
			check(t, "/end_user"+c.path, codes[1], bodies[1], codes[0], strings.TrimSpace(bodies[0]))
		})
	}
}
