package admin

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"testing"
)

func TestPyList(t *testing.T) {
	cases := []struct {
		name string
		ids  []string
		want string
	}{
		{"plain", []string{"a", "b"}, `['a', 'b']`},
		{"empty", nil, `[]`},
		{"single quote switches to double", []string{"o'brien"}, `["o'brien"]`},
		{"both quotes", []string{`a'b"c`}, `['a\'b"c']`},
		{"backslash", []string{`a\b`}, `['a\\b']`},
		{"whitespace escapes", []string{"a\nb\tc\rd"}, `['a\nb\tc\rd']`},
		{"control characters", []string{"\x00\x7f\u0085"}, `['\x00\x7f\x85']`},
		{"non-printable above latin-1", []string{"\u2028\U000e0001"}, `['\u2028\U000e0001']`},
		{"printable unicode kept", []string{"é中🙂"}, `['é中🙂']`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := pyList(c.ids); got != c.want {
				t.Errorf("pyList(%q) = %s, want %s", c.ids, got, c.want)
			}
		})
	}
}

// fuzzBodies seeds the request-body fuzzers: valid requests, every field type
// in the wrong shape, and broken JSON.
var fuzzBodies = []string{
	`{"user_id":"a"}`,
	`{"user_id":"my-customer-id","max_budget":"0"}`,
	`{"budget_id":"my-free-tier","max_budget":4}`,
	`{"user_id":"b","alias":"x","blocked":true,"spend":"4.5","allowed_model_region":"eu","max_budget":1e9,"soft_budget":"1e-9",
	  "tpm_limit":"10","rpm_limit":1e3,"max_parallel_requests":0,"budget_duration":"1mo","budget_reset_at":"2026-01-01T00:00:00Z",
	  "model_max_budget":{"m":{"max_budget":"1","budget_duration":"1d","tpm_limit":1,"rpm_limit":"2"}}}`,
	`{"user_id":5,"max_budget":[],"tpm_limit":{},"budget_duration":null,"model_max_budget":{"m":[1]}}`,
	`{"max_budget":-1e400,"soft_budget":"NaN","tpm_limit":1e19,"budget_reset_at":"2026-13-45T99:99:99Z"}`,
	`{"user_id":"\u0000","budget_id":"\ud800"}`,
	`{"user_id":"a","user_id":"b"}`,
	`{"user_id":`,
	`[]`, `null`, `"x"`, `0`, ``, "\xff\xfe",
}

// fuzzRoute posts body to path and checks the answer is never a 5xx, is JSON,
// and that any error uses the route's envelope with a matching code.
func fuzzRoute(f *testing.F, path string, env envelope) {
	for _, b := range fuzzBodies {
		f.Add([]byte(b))
	}
	// No logger: a log of every rejected input would grow without bound.
	h := New(Config{MasterKey: testKey}, newEnv(f).st)
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testKey)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code == 200 {
			var row map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &row); err != nil {
				t.Fatalf("200 body is not a JSON object: %v: %s", err, rec.Body)
			}
			return
		}
		if env == envDetail {
			var d struct {
				Detail *struct {
					Error *string `json:"error"`
				} `json:"detail"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil || d.Detail == nil || d.Detail.Error == nil {
				t.Fatalf("status %d without the detail envelope: %s", rec.Code, rec.Body)
			}
			return
		}
		var eb struct {
			Error *struct {
				Message string `json:"message"`
				Code    string `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error == nil || eb.Error.Message == "" {
			t.Fatalf("status %d without the error envelope: %s", rec.Code, rec.Body)
		}
		if eb.Error.Code != strconv.Itoa(rec.Code) {
			t.Fatalf("code %q for status %d", eb.Error.Code, rec.Code)
		}
	})
}

func FuzzCustomerNew(f *testing.F) { fuzzRoute(f, "/customer/new", envError) }

func FuzzBudgetNew(f *testing.F) { fuzzRoute(f, "/budget/new", envDetail) }
