package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestSeedRequests replays the admin calls of the seed page (LiteLLM's
// "Customers" doc) over real HTTP, bodies as printed there minus the
// "# 👈" annotations, which are not JSON.
func TestSeedRequests(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(e.h)
	t.Cleanup(srv.Close)

	tier := budgetRowJSON("my-free-tier", kv{"max_budget": "4.0"})
	steps := []struct {
		name, method, path, body string
		wantCode                 int
		want                     string
	}{
		{"create new customer with budget", "POST", "/customer/new", `{
        "user_id" : "my-customer-id",
        "max_budget": "0"
    }`, 200, customerRowJSON("my-customer-id", kv{"budget_id": `"gen-1"`, "litellm_budget_table": budgetRowJSON("gen-1", kv{"max_budget": "0.0"})})},
		{"create a budget", "POST", "/budget/new", `{
    "budget_id": "my-free-tier", 
    "max_budget": 4 
}`, 200, tier},
		// The page reuses my-customer-id, so as in LiteLLM the second create is refused.
		{"assign budget to the same customer id", "POST", "/customer/new", `{
    "user_id": "my-customer-id",
    "budget_id": "my-free-tier"
}`, 400, errJSON("Customer already exists, passed user_id=my-customer-id. Please pass a new user_id.", "bad_request", "user_id", 400)},
		{"delete it", "POST", "/customer/delete", `{"user_ids": ["my-customer-id"]}`, 200,
			`{"deleted_customers":1,"message":"Successfully deleted customers with ids: ['my-customer-id']"}`},
		{"assign budget to customer", "POST", "/customer/new", `{
    "user_id": "my-customer-id",
    "budget_id": "my-free-tier"
}`, 200, customerRowJSON("my-customer-id", kv{"budget_id": `"my-free-tier"`, "litellm_budget_table": tier})},
		{"get customer spend", "GET", "/customer/info?end_user_id=my-customer-id", "", 200,
			customerInfoJSON("my-customer-id", kv{"budget_id": `"my-free-tier"`, "litellm_budget_table": budgetInfoJSON("my-free-tier", kv{"max_budget": "4.0"})})},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			var body io.Reader
			if s.body != "" {
				body = strings.NewReader(s.body)
			}
			req, err := http.NewRequestWithContext(t.Context(), s.method, srv.URL+s.path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer sk-1234")
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			check(t, s.path, resp.StatusCode, string(got), s.wantCode, s.want)
		})
	}
}
