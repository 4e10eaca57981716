package admin

import (
	"net/http"
	"strings"
	"testing"
)

func TestBudgetNew(t *testing.T) {
	cases := []struct {
		name string
		body string
		want string
	}{
		{"seed: my-free-tier", `{"budget_id":"my-free-tier","max_budget":4}`, budgetRowJSON("my-free-tier", kv{"max_budget": "4.0"})},
		{"generated id", `{"max_budget":"0.5"}`, budgetRowJSON("gen-1", kv{"max_budget": "0.5"})},
		{"null id is generated", `{"budget_id":null}`, budgetRowJSON("gen-1", nil)},
		{"every field, numbers as strings", `{"budget_id":"full","max_budget":"100","soft_budget":"80.5","max_parallel_requests":"4",
			"tpm_limit":"1000","rpm_limit":60,"budget_duration":"30d","budget_reset_at":"2026-02-01T00:00:00.5Z",
			"model_max_budget":{"gpt-4o":{"max_budget":"0.0000001","budget_duration":"1d","tpm_limit":1000,"rpm_limit":"1000"}},
			"allowed_models":["ignored"],"created_by":"ignored"}`,
			budgetRowJSON("full", kv{
				"max_budget": "100.0", "soft_budget": "80.5", "max_parallel_requests": "4", "tpm_limit": "1000", "rpm_limit": "60",
				"model_max_budget": `{"gpt-4o":{"max_budget":1e-07,"budget_duration":"1d","tpm_limit":1000,"rpm_limit":1000}}`,
				"budget_duration":  `"30d"`, "budget_reset_at": `"2026-02-01T00:00:00.5Z"`,
			})},
		{"zeroes are values", `{"budget_id":"z","max_budget":0,"soft_budget":"0","tpm_limit":0,"rpm_limit":"0","max_parallel_requests":0,"model_max_budget":{}}`,
			budgetRowJSON("z", kv{"max_budget": "0.0", "soft_budget": "0.0", "tpm_limit": "0", "rpm_limit": "0", "max_parallel_requests": "0", "model_max_budget": "{}"})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			code, got := e.do("POST", "/budget/new", c.body)
			check(t, "create", code, got, 200, c.want)
			// What was answered is what was stored.
			check(t, "list", 200, e.ok("GET", "/budget/list", ""), 200, "["+c.want+"]")
		})
	}
}

func TestBudgetNewRejects(t *testing.T) {
	cases := []struct {
		name, body string
		want       string
	}{
		{"duplicate", `{"budget_id":"taken","max_budget":1}`, "Budget with id 'taken' already exists."},
		{"negative max_budget", `{"budget_id":"b","max_budget":-1}`, "max_budget must be a non-negative finite number. Received: -1.0"},
		{"infinite soft_budget", `{"soft_budget":"1e999"}`, "soft_budget must be a non-negative finite number. Received: inf"},
		{"word soft_budget", `{"soft_budget":"lots"}`, "soft_budget must be a non-negative finite number. Received: lots"},
		{"huge max_budget", `{"max_budget":2e9}`, "max_budget must be at most 1000000000.0 USD. Received: 2000000000.0"},
		{"negative rpm_limit", `{"rpm_limit":"-5"}`, "rpm_limit must be a non-negative integer. Received: -5"},
		{"bad duration", `{"budget_duration":"monthly"}`, `budget_duration must be a positive whole number followed by s, m, h, d, w or mo (e.g. "30d", "1mo"). Received: monthly`},
		{"bad reset time", `{"budget_reset_at":"2026-02-01"}`, `budget_reset_at must be an RFC 3339 date-time such as "2026-01-31T00:00:00Z". Received: 2026-02-01`},
		{"bad model_max_budget", `{"model_max_budget":{"m":{"tpm_limit":"many"}}}`, `model_max_budget["m"].tpm_limit must be a non-negative integer. Received: many`},
		{"model_max_budget as a list", `{"model_max_budget":[]}`, `model_max_budget must be an object mapping model names to limits, e.g. {"gpt-4o": {"max_budget": 10, "budget_duration": "1d"}}`},
		{"empty id", `{"budget_id":""}`, "budget_id must be a non-empty string that is not only whitespace"},
		{"long id", `{"budget_id":"` + strings.Repeat("b", 513) + `"}`, "budget_id must be at most 512 bytes, got 513"},
		{"numeric id", `{"budget_id":7}`, "budget_id must be a string"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.setup(req{"POST", "/budget/new", `{"budget_id":"taken"}`})
			e.expectRejected("POST", "/budget/new", c.body, http.StatusBadRequest, detailJSON(c.want))
		})
	}
}

func TestBudgetUpdate(t *testing.T) {
	const start = `{"budget_id":"t","max_budget":10,"soft_budget":5,"tpm_limit":100,"rpm_limit":10,"max_parallel_requests":2,
		"budget_duration":"1d","budget_reset_at":"2026-01-03T00:00:00Z","model_max_budget":{"m":{"max_budget":1}}}`
	full := kv{
		"max_budget": "10.0", "soft_budget": "5.0", "tpm_limit": "100", "rpm_limit": "10", "max_parallel_requests": "2",
		"budget_duration": `"1d"`, "budget_reset_at": `"2026-01-03T00:00:00Z"`, "model_max_budget": `{"m":{"max_budget":1.0}}`,
	}
	with := func(over kv) kv {
		out := kv{}
		for k, v := range full {
			out[k] = v
		}
		for k, v := range over {
			out[k] = v
		}
		return out
	}
	cases := []struct {
		name, body string
		want       string
	}{
		{"absent fields are kept", `{"budget_id":"t"}`, budgetRowJSON("t", full)},
		{"zero is a value", `{"budget_id":"t","max_budget":0,"tpm_limit":"0"}`, budgetRowJSON("t", with(kv{"max_budget": "0.0", "tpm_limit": "0"}))},
		{"null clears", `{"budget_id":"t","soft_budget":null,"budget_duration":null,"budget_reset_at":null,"model_max_budget":null,"rpm_limit":null}`,
			budgetRowJSON("t", with(kv{"soft_budget": "null", "budget_duration": "null", "budget_reset_at": "null", "model_max_budget": "null", "rpm_limit": "null"}))},
		// A new duration moves the reset time to its schedule: the 1st of next month.
		{"strings and new values", `{"budget_id":"t","max_budget":"4.5","budget_duration":"1mo","model_max_budget":{"n":{"rpm_limit":"3"}}}`,
			budgetRowJSON("t", with(kv{"max_budget": "4.5", "budget_duration": `"1mo"`, "budget_reset_at": `"2026-02-01T00:00:00Z"`, "model_max_budget": `{"n":{"rpm_limit":3}}`}))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.setup(req{"POST", "/budget/new", start})
			code, got := e.do("POST", "/budget/update", c.body)
			check(t, "update", code, got, 200, c.want)
			check(t, "info", 200, e.ok("POST", "/budget/info", `{"budgets":["t"]}`), 200, "["+c.want+"]")
		})
	}
}

func TestBudgetUpdateReachesCustomers(t *testing.T) {
	e := newEnv(t)
	e.setup(
		req{"POST", "/budget/new", `{"budget_id":"tier","max_budget":4}`},
		req{"POST", "/customer/new", `{"user_id":"a","budget_id":"tier"}`},
		req{"POST", "/budget/update", `{"budget_id":"tier","max_budget":"6"}`},
	)
	check(t, "info", 200, e.ok("GET", "/customer/info?end_user_id=a", ""), 200,
		customerInfoJSON("a", kv{"budget_id": `"tier"`, "litellm_budget_table": budgetInfoJSON("tier", kv{"max_budget": "6.0"})}))
}

func TestBudgetUpdateRejects(t *testing.T) {
	cases := []struct {
		name, body string
		wantCode   int
		want       string
	}{
		{"missing budget_id", `{"max_budget":1}`, 400, "budget_id is required"},
		{"null budget_id", `{"budget_id":null}`, 400, "budget_id is required"},
		{"unknown budget", `{"budget_id":"ghost","max_budget":1}`, 404, "Budget with id 'ghost' does not exist."},
		{"negative max_budget", `{"budget_id":"t","max_budget":"-1"}`, 400, "max_budget must be a non-negative finite number. Received: -1.0"},
		{"bad duration", `{"budget_id":"t","budget_duration":""}`, 400, `budget_duration must be a positive whole number followed by s, m, h, d, w or mo (e.g. "30d", "1mo"). Received: `},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.setup(req{"POST", "/budget/new", `{"budget_id":"t","max_budget":3}`})
			e.expectRejected("POST", "/budget/update", c.body, c.wantCode, detailJSON(c.want))
		})
	}
}

func TestBudgetInfo(t *testing.T) {
	e := newEnv(t)
	e.setup(
		req{"POST", "/budget/new", `{"budget_id":"a","max_budget":1}`},
		req{"POST", "/budget/new", `{"budget_id":"b","soft_budget":2}`},
	)
	a := budgetRowJSON("a", kv{"max_budget": "1.0"})
	b := budgetRowJSON("b", kv{"soft_budget": "2.0"})
	cases := []struct {
		name, body string
		wantCode   int
		want       string
	}{
		{"in the order asked", `{"budgets":["b","a"]}`, 200, "[" + b + "," + a + "]"},
		{"unknown ids are left out", `{"budgets":["x","a","y"]}`, 200, "[" + a + "]"},
		{"repeats once", `{"budgets":["a","a"]}`, 200, "[" + a + "]"},
		{"none known", `{"budgets":["x"]}`, 200, "[]"},
		{"empty list", `{"budgets":[]}`, 400, detailJSON("Specify list of budget id's to query. Passed in=[]")},
		{"missing list", `{}`, 400, detailJSON("budgets is required")},
		{"not a list", `{"budgets":"a"}`, 400, detailJSON("budgets must be a list of strings")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, got := e.do("POST", "/budget/info", c.body)
			check(t, "info", code, got, c.wantCode, c.want)
		})
	}
}

func TestBudgetList(t *testing.T) {
	e := newEnv(t)
	check(t, "empty", 200, e.ok("GET", "/budget/list", ""), 200, "[]")
	e.setup(
		req{"POST", "/budget/new", `{"budget_id":"z","max_budget":1}`},
		req{"POST", "/customer/new", `{"user_id":"c","rpm_limit":3}`}, // an inline budget is listed too
		req{"POST", "/budget/new", `{"budget_id":"a"}`},
	)
	check(t, "three", 200, e.ok("GET", "/budget/list", ""), 200,
		"["+budgetRowJSON("a", nil)+","+budgetRowJSON("gen-1", kv{"rpm_limit": "3"})+","+budgetRowJSON("z", kv{"max_budget": "1.0"})+"]")
}

func TestBudgetDelete(t *testing.T) {
	e := newEnv(t)
	e.setup(
		req{"POST", "/budget/new", `{"budget_id":"tier","max_budget":4,"budget_duration":"7d"}`},
		req{"POST", "/customer/new", `{"user_id":"a","budget_id":"tier"}`},
		req{"POST", "/customer/new", `{"user_id":"b","budget_id":"tier"}`},
	)
	code, got := e.do("POST", "/budget/delete", `{"id":"tier"}`)
	// 2026-01-02 is a Friday: a weekly budget resets on Monday.
	check(t, "delete", code, got, 200, budgetRowJSON("tier", kv{"max_budget": "4.0", "budget_duration": `"7d"`, "budget_reset_at": `"2026-01-05T00:00:00Z"`}))
	// The customers stay, unlinked.
	check(t, "customers", 200, e.ok("GET", "/customer/list", ""), 200, "["+customerInfoJSON("a", nil)+","+customerInfoJSON("b", nil)+"]")
	check(t, "budgets", 200, e.ok("GET", "/budget/list", ""), 200, "[]")

	rejects := []struct {
		name, body string
		wantCode   int
		want       string
	}{
		{"again", `{"id":"tier"}`, 404, "Budget with id 'tier' does not exist."},
		{"missing id", `{"budget_id":"tier"}`, 400, "id is required"},
		{"numeric id", `{"id":1}`, 400, "id must be a string"},
	}
	for _, c := range rejects {
		t.Run(c.name, func(t *testing.T) {
			e.expectRejected("POST", "/budget/delete", c.body, c.wantCode, detailJSON(c.want))
		})
	}
}

func TestBudgetSettings(t *testing.T) {
	e := newEnv(t)
	e.setup(
		req{"POST", "/budget/new", `{"budget_id":"full","max_budget":10,"soft_budget":"2.5","tpm_limit":7,"budget_duration":"1w","model_max_budget":{"m":{"max_budget":1}}}`},
		req{"POST", "/budget/new", `{"budget_id":"bare"}`},
	)
	item := func(name, typ, desc, value string) string {
		return `{"field_name":` + mustJSON(name) + `,"field_type":` + mustJSON(typ) + `,"field_description":` + mustJSON(desc) +
			`,"field_value":` + value + `,"stored_in_db":true,"field_default_value":null,"premium_field":false,"nested_fields":null,"field_options":null,"field_tab":null}`
	}
	settings := func(maxBudget, softBudget, mpr, tpm, rpm, duration, models string) string {
		return "[" + strings.Join([]string{
			item("max_budget", "Float", "Requests will fail if this budget (in USD) is exceeded.", maxBudget),
			item("soft_budget", "Float", "Requests will NOT fail if this is exceeded. Will fire alerting though.", softBudget),
			item("max_parallel_requests", "Integer", "Max concurrent requests allowed for this budget id.", mpr),
			item("tpm_limit", "Integer", "Max tokens per minute, allowed for this budget id.", tpm),
			item("rpm_limit", "Integer", "Max requests per minute, allowed for this budget id.", rpm),
			item("budget_duration", "String", "Max duration budget should be set for (e.g. '1hr', '1d', '28d')", duration),
			item("model_max_budget", "Object", "Max budget for each model (e.g. {'gpt-4o': {'max_budget': '0.0000001', 'budget_duration': '1d', 'tpm_limit': 1000, 'rpm_limit': 1000}})", models),
		}, ",") + "]"
	}
	cases := []struct {
		name, path string
		wantCode   int
		want       string
	}{
		{"set values", "/budget/settings?budget_id=full", 200, settings("10.0", "2.5", "null", "7", "null", `"1w"`, `{"m":{"max_budget":1.0}}`)},
		{"unset values", "/budget/settings?budget_id=bare", 200, settings("null", "null", "null", "null", "null", "null", "null")},
		{"unknown budget", "/budget/settings?budget_id=ghost", 404, detailJSON("Budget with id 'ghost' does not exist.")},
		{"missing parameter", "/budget/settings", 400, detailJSON("budget_id is required")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, got := e.do("GET", c.path, "")
			check(t, c.path, code, got, c.wantCode, c.want)
		})
	}
}
