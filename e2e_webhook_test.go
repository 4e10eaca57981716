package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/store"
)

// End-to-end webhook tests: the real tollgate binary behind a real Envoy,
// delivering to the real examples/webhookreceiver process.

const whSecret = "whsec-e2e"

// whMistralConfig turns webhook alerting on and prices the seed's "mistral"
// model at 1e-06 / 2e-06 USD per token (1,000 / 2,000 nano-USD).
const whMistralConfig = `
general_settings:
  alerting: ["webhook"]
model_list:
  - model_name: mistral
    litellm_params:
      model: mistral/mistral-small-latest
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
`

func whMistralCost(u usage) store.Nano {
	return store.Nano(u.PromptTokens*1000 + u.CompletionTokens*2000)
}

var (
	whReceiverOnce sync.Once
	whReceiverErr  error
)

// whReceiverBinary builds examples/webhookreceiver next to the other binaries.
func whReceiverBinary(t *testing.T) string {
	t.Helper()
	binaries(t)
	bin := filepath.Join(binDir, "webhookreceiver")
	whReceiverOnce.Do(func() {
		if out, err := exec.Command("go", "build", "-o", bin, "./examples/webhookreceiver").CombinedOutput(); err != nil {
			whReceiverErr = fmt.Errorf("go build ./examples/webhookreceiver: %v\n%s", err, out)
		}
	})
	if whReceiverErr != nil {
		t.Fatal(whReceiverErr)
	}
	return bin
}

// webhookReceiver is one run of the receiver process; out outlives restarts.
type webhookReceiver struct {
	t    *testing.T
	addr string // host:port, kept across restarts
	out  string
	p    *proc
}

// newWebhookReceiver starts a receiver on a random port, writing to a fresh file.
func newWebhookReceiver(t *testing.T, args ...string) *webhookReceiver {
	r := &webhookReceiver{t: t, addr: "127.0.0.1:0", out: filepath.Join(t.TempDir(), "events.jsonl")}
	r.start(args...)
	return r
}

func (r *webhookReceiver) url() string { return "http://" + r.addr + "/hook" }

// start (re)starts the receiver on its address.
func (r *webhookReceiver) start(args ...string) {
	r.t.Helper()
	var ready string
	r.p, ready = startProc(r.t, "webhookreceiver", whReceiverBinary(r.t),
		append([]string{"-addr", r.addr, "-out", r.out, "-secret", whSecret}, args...), nil, "webhookreceiver listening on ")
	r.addr = strings.TrimPrefix(ready, "webhookreceiver listening on http://")
}

func (r *webhookReceiver) stop() { r.p.stop(r.t) }

// whReceived is one line of the receiver's output.
type whReceived struct {
	Headers   map[string][]string `json:"headers"`
	Body      json.RawMessage     `json:"body"`
	Signature string              `json:"signature"`
	Status    int                 `json:"status"`
}

func (r whReceived) id() string { return whFirstHeader(r.Headers, "X-Tollgate-Event-Id") }

func whFirstHeader(h map[string][]string, k string) string {
	if v := h[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// whPayload is the fields of a delivered event the tests look at.
type whPayload struct {
	Spend      float64 `json:"spend"`
	CustomerID *string `json:"customer_id"`
	Event      string  `json:"event"`
	EventGroup string  `json:"event_group"`
	Message    string  `json:"event_message"`
}

func (r whReceived) payload(t *testing.T) whPayload {
	t.Helper()
	var p whPayload
	mustUnmarshal(t, r.Body, &p)
	return p
}

// lines reads everything the receiver has written so far.
func (r *webhookReceiver) lines() []whReceived {
	r.t.Helper()
	b, err := os.ReadFile(r.out)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	var out []whReceived
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var rec whReceived
		mustUnmarshal(r.t, l, &rec)
		out = append(out, rec)
	}
	return out
}

// delivered returns each event accepted with a 2xx once, by id, in the order
// of first acceptance: what a receiver that drops duplicates keeps.
func (r *webhookReceiver) delivered() []whReceived {
	var out []whReceived
	seen := map[string]bool{}
	for _, l := range r.lines() {
		if l.Status/100 == 2 && !seen[l.id()] {
			seen[l.id()] = true
			out = append(out, l)
		}
	}
	return out
}

// whEventually polls cond every 20 ms for at most 60 s.
func whEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// whOutboxCounts reads GET /webhook/info from a tollgate admin server.
func whOutboxCounts(t *testing.T, adminURL string) map[string]any {
	t.Helper()
	code, _, b := httpDo(t, "GET", adminURL+"/webhook/info", nil, auth())
	if code != 200 {
		t.Fatalf("webhook/info: %d %s", code, b)
	}
	var m map[string]any
	mustUnmarshal(t, b, &m)
	return m
}

func whCount(m map[string]any, k string) int { f, _ := m[k].(float64); return int(f) }

// whStack is a stack that delivers to rcv, with fast retries. Its
// config file path is returned for restarts.
func whStack(t *testing.T, rcv *webhookReceiver, maxAttempts int) (*stack, []string, []string) {
	t.Helper()
	configPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(configPath, []byte(whMistralConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	// Budget events need spend to reach the budget, which strict budgets
	// (reservations, e2e_limits_test.go) prevent by design.
	args := []string{"--config", configPath, "--strict-budgets=false"}
	env := []string{
		"WEBHOOK_URL=" + rcv.url(),
		"TOLLGATE_WEBHOOK_SECRET=" + whSecret,
		"TOLLGATE_WEBHOOK_MAX_ATTEMPTS=" + strconv.Itoa(maxAttempts),
		"TOLLGATE_WEBHOOK_BACKOFF_MIN=10ms",
		"TOLLGATE_WEBHOOK_BACKOFF_MAX=100ms",
	}
	return newStack(t, stackOptions{args: args, env: env}), args, env
}

// whChatCost sends a chat for customer and returns what it cost.
func whChatCost(t *testing.T, s *stack, customer, content string) store.Nano {
	t.Helper()
	code, hdr, b := s.chat(customer, "mistral", content)
	if code != 200 {
		t.Fatalf("chat %s: %d %s", customer, code, b)
	}
	cost := whMistralCost(usageOf(t, b))
	if got := hdr.Get("x-litellm-response-cost"); got != cost.String() {
		t.Fatalf("x-litellm-response-cost = %q, want %q", got, cost.String())
	}
	return cost
}

// TestE2EWebhookSeedPayload: the seed's Event Webhook tab. A tracked request
// reaches a real receiver process as LiteLLM's WebhookEvent: every key, the
// right JSON types, signed; /health/services?service=webhook sends a test.
func TestE2EWebhookSeedPayload(t *testing.T) {
	t.Parallel()
	rcv := newWebhookReceiver(t)
	s, _, _ := whStack(t, rcv, 3)

	cost := whChatCost(t, s, "krrish12", "What's the weather like in Boston today?")
	whEventually(t, "the spend_tracked event", func() bool { return len(rcv.delivered()) == 1 })
	got := rcv.delivered()[0]

	if got.Signature != "valid" {
		t.Errorf("signature %q, want valid", got.Signature)
	}
	if !strings.HasPrefix(got.id(), "evt_") {
		t.Errorf("event id %q", got.id())
	}
	dec := json.NewDecoder(bytes.NewReader(got.Body))
	dec.UseNumber()
	var body map[string]any
	if err := dec.Decode(&body); err != nil {
		t.Fatal(err)
	}
	keys := []string{"spend", "max_budget", "soft_budget", "token", "customer_id", "user_id", "team_id", "team_alias",
		"user_email", "key_alias", "projected_exceeded_date", "projected_spend", "event", "event_group", "event_message"}
	if d := cmp.Diff(slices.Sorted(slices.Values(keys)), slices.Sorted(maps.Keys(body))); d != "" {
		t.Errorf("keys (-want +got):\n%s", d)
	}
	spend, ok := body["spend"].(json.Number)
	if !ok || spend.String() != cost.String() {
		t.Errorf("spend = %#v, want the number %s", body["spend"], cost)
	}
	sum := sha256.Sum256([]byte(masterKey))
	want := map[string]any{
		"spend": spend, "max_budget": nil, "soft_budget": nil, "token": hex.EncodeToString(sum[:]),
		"customer_id": "krrish12", "user_id": nil, "team_id": nil, "team_alias": nil, "user_email": nil, "key_alias": nil,
		"projected_exceeded_date": nil, "projected_spend": nil, "event": "spend_tracked", "event_group": "customer",
		"event_message": "Customer spend tracked. Customer=krrish12, spend=" + cost.String(),
	}
	if d := cmp.Diff(want, body); d != "" {
		t.Errorf("payload (-want +got):\n%s", d)
	}

	// The seed's "Test it" for the webhook itself, through Envoy.
	code, _, b := s.do("GET", "/health/services?service=webhook", nil)
	var health map[string]any
	mustUnmarshal(t, b, &health)
	if code != 200 || health["status"] != "success" || whCount(health, "webhook_status_code") != 200 {
		t.Fatalf("health/services: %d %s", code, b)
	}
	whEventually(t, "the test event", func() bool { return len(rcv.delivered()) == 2 })
	test := rcv.delivered()[1]
	if p := test.payload(t); test.id() != health["event_id"] || p.Event != "budget_crossed" || p.EventGroup != "user" || p.CustomerID != nil {
		t.Errorf("test event %s: %s", test.id(), test.Body)
	}
	if c := whOutboxCounts(t, s.adminURL); whCount(c, "delivered") != 1 || whCount(c, "pending") != 0 || c["webhook_enabled"] != true {
		t.Errorf("webhook/info = %v, want 1 delivered, 0 pending", c)
	}
}

// whSendTraffic sends rounds × customers chats, one request per customer at a
// time, each longer than the last so each costs more, and returns the costs
// per customer in request order.
func whSendTraffic(t *testing.T, s *stack, customers []string, rounds int) map[string][]store.Nano {
	t.Helper()
	costs := map[string][]store.Nano{}
	for i := range rounds {
		for _, c := range customers {
			costs[c] = append(costs[c], whChatCost(t, s, c, "hello"+strings.Repeat(" more", i)))
		}
	}
	return costs
}

// whCheckDelivered: after dropping duplicates by id, each tracked request's
// event arrived exactly once, in request order per customer.
func whCheckDelivered(t *testing.T, rcv *webhookReceiver, want map[string][]store.Nano) {
	t.Helper()
	got := map[string][]store.Nano{}
	for _, r := range rcv.delivered() {
		if r.Signature != "valid" {
			t.Errorf("event %s: signature %s", r.id(), r.Signature)
		}
		p := r.payload(t)
		if p.Event != "spend_tracked" || p.CustomerID == nil {
			t.Fatalf("unexpected event %s", r.Body)
		}
		n, err := store.NanoFromUSD(p.Spend)
		if err != nil {
			t.Fatal(err)
		}
		got[*p.CustomerID] = append(got[*p.CustomerID], n)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("delivered spends per customer, in arrival order (-want +got):\n%s", d)
	}
}

// TestE2EWebhookReceiverDownThenUp: events pile up while the receiver is
// down and all arrive, in order per customer, once it is back.
func TestE2EWebhookReceiverDownThenUp(t *testing.T) {
	t.Parallel()
	rcv := newWebhookReceiver(t)
	rcv.stop()
	s, _, _ := whStack(t, rcv, 100_000)

	costs := whSendTraffic(t, s, []string{"alice", "bob", "carol"}, 4)
	whEventually(t, "12 pending events", func() bool { return whCount(whOutboxCounts(t, s.adminURL), "pending") == 12 })
	if n := len(rcv.lines()); n != 0 {
		t.Fatalf("the receiver is down but recorded %d requests", n)
	}

	rcv.start()
	whEventually(t, "12 delivered events", func() bool { return whCount(whOutboxCounts(t, s.adminURL), "delivered") == 12 })
	whCheckDelivered(t, rcv, costs)
	if c := whOutboxCounts(t, s.adminURL); whCount(c, "pending") != 0 || whCount(c, "dead") != 0 || whCount(c, "retried") == 0 {
		t.Errorf("webhook/info = %v, want nothing pending or dead and some retried", c)
	}
}

// TestE2EWebhookSurvivesSIGKILL: tollgate is killed with events pending; a
// new tollgate on the same data directory delivers them all.
func TestE2EWebhookSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	rcv := newWebhookReceiver(t)
	rcv.stop()
	s, args, env := whStack(t, rcv, 100_000)

	costs := whSendTraffic(t, s, []string{"alice", "bob"}, 3)
	whEventually(t, "6 pending events", func() bool { return whCount(whOutboxCounts(t, s.adminURL), "pending") == 6 })
	if err := s.tollgate.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err := <-s.tollgate.done
	s.tollgate.done <- err

	rcv.start()
	tollgateBin, _ := binaries(t)
	_, ready := startProc(t, "tollgate (restarted)", tollgateBin,
		append([]string{"--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data-dir", s.dataDir}, args...),
		append([]string{"TOLLGATE_MASTER_KEY=" + masterKey, "TOLLGATE_LOG_LEVEL=debug"}, env...), "tollgate ready ")
	adminURL := "http://" + readyAddr(t, ready, "admin")
	whEventually(t, "6 delivered events", func() bool { return whCount(whOutboxCounts(t, adminURL), "delivered") == 6 })
	whCheckDelivered(t, rcv, costs)
}

// TestE2EWebhookDeadAndReplay: a receiver answering 500 forever gets the
// bounded number of attempts; the event is then dead, listed, and delivered
// under the same id when replayed.
func TestE2EWebhookDeadAndReplay(t *testing.T) {
	t.Parallel()
	rcv := newWebhookReceiver(t, "-status", "500")
	s, _, _ := whStack(t, rcv, 3)

	cost := whChatCost(t, s, "alice", "hello")
	whEventually(t, "a dead event", func() bool { return whCount(whOutboxCounts(t, s.adminURL), "dead") == 1 })
	lines := rcv.lines()
	if len(lines) != 3 || lines[0].id() != lines[1].id() || lines[1].id() != lines[2].id() {
		t.Fatalf("%d requests, want 3 attempts of one event: %+v", len(lines), lines)
	}
	id := lines[0].id()

	code, _, b := httpDo(t, "GET", s.adminURL+"/webhook/dead/list", nil, auth())
	var dead []struct {
		EventID   string `json:"event_id"`
		Attempts  int    `json:"attempts"`
		LastError string `json:"last_error"`
	}
	mustUnmarshal(t, b, &dead)
	if code != 200 || len(dead) != 1 || dead[0].EventID != id || dead[0].Attempts != 3 || dead[0].LastError != "HTTP 500 Internal Server Error" {
		t.Fatalf("dead/list: %d %s", code, b)
	}

	rcv.stop()
	rcv.start()
	code, _, b = httpDo(t, "POST", s.adminURL+"/webhook/dead/replay", map[string]any{"event_ids": []string{id}}, auth())
	if code != 200 {
		t.Fatalf("dead/replay: %d %s", code, b)
	}
	whEventually(t, "the replayed event", func() bool { return len(rcv.delivered()) == 1 })
	if got := rcv.delivered()[0]; got.id() != id {
		t.Errorf("delivered %s, want the replayed %s", got.id(), id)
	}
	whCheckDelivered(t, rcv, map[string][]store.Nano{"alice": {cost}})
	if c := whOutboxCounts(t, s.adminURL); whCount(c, "dead") != 0 || whCount(c, "delivered") != 1 {
		t.Errorf("webhook/info = %v, want 1 delivered, 0 dead", c)
	}
}

// TestE2EWebhookBudgetEventsOnce: concurrent requests push a customer past
// its soft budget, 85 %, 95 % and its max budget; each event arrives once,
// carrying the spend at which its boundary was reached.
func TestE2EWebhookBudgetEventsOnce(t *testing.T) {
	t.Parallel()
	rcv := newWebhookReceiver(t)
	s, _, _ := whStack(t, rcv, 3)

	unit := whChatCost(t, s, "probe", "hello")
	usd := func(n store.Nano) float64 { return n.USD() }
	code, _, b := s.do("POST", "/customer/new", map[string]any{
		"user_id": "tiered", "max_budget": usd(10 * unit), "soft_budget": usd(5 * unit),
	})
	if code != 200 {
		t.Fatalf("customer/new: %d %s", code, b)
	}
	const n = 20
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { codes[i], _, _ = s.chat("tiered", "mistral", "hello") })
	}
	wg.Wait()
	served := 0
	for _, c := range codes {
		switch c {
		case 200:
			served++
		case 429: // refused once the budget was spent
		default:
			t.Fatalf("statuses %v, want only 200 and 429", codes)
		}
	}
	spent := spendOf(t, s.customerInfo("tiered"))
	if spent != store.Nano(served)*unit || spent < 10*unit {
		t.Fatalf("spend %d after %d served requests of %d each, want their sum and at least the max budget %d", spent, served, unit, 10*unit)
	}
	tracked := served
	whEventually(t, "every event", func() bool { return len(rcv.delivered()) == 1+tracked+4 })

	type fired struct {
		Event, Message string
		Spend          store.Nano
	}
	var got []fired
	for _, r := range rcv.delivered() {
		p := r.payload(t)
		if p.Event == "spend_tracked" {
			continue
		}
		n, err := store.NanoFromUSD(p.Spend)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fired{p.Event, p.Message, n})
	}
	slices.SortStableFunc(got, func(x, y fired) int { return int(x.Spend - y.Spend) })
	want := []fired{
		{"soft_budget_crossed", "Customer Budget: Soft Budget Crossed\n Total Soft Budget:`" + (5 * unit).String() + "`", 5 * unit},
		{"threshold_crossed", "Customer Budget: 15% Threshold Crossed", 9 * unit},
		{"threshold_crossed", "Customer Budget: 5% Threshold Crossed ", 10 * unit},
		{"budget_crossed", "Customer Budget: Budget Crossed\n Total Budget:`" + (10 * unit).String() + "`", 10 * unit},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("budget events (-want +got):\n%s", d)
	}
}
