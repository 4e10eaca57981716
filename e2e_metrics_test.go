package main

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/store"
)

// Traffic through a real Envoy, then one scrape of /metrics: every counter
// equals what was sent. The ext_proc filter is off for admin routes, so only
// the LLM requests below reach the data plane.
func TestE2EMetricsCountWhatWasSent(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	for _, call := range []string{
		`/customer/block {"user_ids": ["mallory"]}`,
		`/customer/new {"user_id": "broke", "max_budget": 0}`,
	} {
		path, body, _ := strings.Cut(call, " ")
		if code, _, b := httpDo(t, "POST", s.adminURL+path, body, auth()); code != 200 {
			t.Fatalf("%s: %d %s", path, code, b)
		}
	}

	const allowed = 5
	var spend store.Nano
	var prompt, completion int64
	for i := range allowed {
		code, _, b := s.chat("alice", "azure-gpt-3.5", strings.Repeat("tell me more ", i+1))
		if code != 200 {
			t.Fatalf("chat %d: %d %s", i, code, b)
		}
		u := usageOf(t, b)
		spend += gpt35Cost(u)
		prompt += u.PromptTokens
		completion += u.CompletionTokens
	}
	for range 2 {
		if code, _, b := s.chat("mallory", "azure-gpt-3.5", "hi"); code != 403 {
			t.Fatalf("blocked chat: %d %s", code, b)
		}
	}
	if code, _, b := s.chat("broke", "azure-gpt-3.5", "hi"); code != 429 {
		t.Fatalf("chat over budget: %d %s", code, b)
	}
	if code, _, b := httpDo(t, "POST", s.url+"/chat/completions", `{"model":"azure-gpt-3.5"}`, nil); code != 401 {
		t.Fatalf("chat without a key: %d %s", code, b)
	}
	if code, _, b := s.do("POST", "/chat/completions", `["not an object"]`); code != 400 {
		t.Fatalf("chat with an array body: %d %s", code, b)
	}

	code, _, body := httpDo(t, http.MethodGet, s.adminURL+"/metrics", nil, nil)
	if code != 200 {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	scrape := string(body)
	for series, want := range map[string]float64{
		`tollgate_decisions_total{outcome="allowed"}`:         allowed,
		`tollgate_decisions_total{outcome="blocked"}`:         2,
		`tollgate_decisions_total{outcome="budget_exceeded"}`: 1,
		`tollgate_decisions_total{outcome="unauthenticated"}`: 1,
		`tollgate_decisions_total{outcome="bad_request"}`:     1,
		`tollgate_decisions_total{outcome="rate_limited"}`:    0,
		`tollgate_decisions_total{outcome="unavailable"}`:     0,
		// One message per phase per request: 10 requests; 9 sent a body (the
		// 401 was refused on its headers); 5 were answered by the upstream.
		`tollgate_extproc_message_duration_seconds_count{phase="request_headers"}`:  10,
		`tollgate_extproc_message_duration_seconds_count{phase="request_body"}`:     9,
		`tollgate_extproc_message_duration_seconds_count{phase="response_headers"}`: allowed,
		`tollgate_extproc_message_duration_seconds_count{phase="response_body"}`:    allowed,
		`tollgate_tokens_total{kind="prompt",model="azure-gpt-3.5"}`:                float64(prompt),
		`tollgate_tokens_total{kind="completion",model="azure-gpt-3.5"}`:            float64(completion),
		`tollgate_unpriced_requests_total{model="azure-gpt-3.5"}`:                   0,
		`tollgate_store_operation_duration_seconds_count{op="record_spend"}`:        allowed,
		`tollgate_store_operation_errors_total{op="record_spend"}`:                  0,
	} {
		if got := metricValue(t, scrape, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	usd := metricValue(t, scrape, `tollgate_spend_usd_total{model="azure-gpt-3.5"}`)
	if got, err := store.NanoFromUSD(usd); err != nil || got != spend {
		t.Errorf("tollgate_spend_usd_total = %v USD (%d nano, %v), want %d nano", usd, got, err, spend)
	}
}

// metricValue is the value of one series in a Prometheus text scrape.
func metricValue(t *testing.T, scrape, series string) float64 {
	t.Helper()
	for line := range strings.Lines(scrape) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	t.Fatalf("scrape lacks %s:\n%s", series, scrape)
	return 0
}
