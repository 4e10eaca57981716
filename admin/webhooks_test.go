package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/admin/webhook"
	"github.com/tollgate-dev/tollgate/internal/syncbuf"
	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/badgerstore"
)

// fakeSender records what /health/services sends and answers with status/err.
type fakeSender struct {
	status int
	err    error
	ids    []string
	bodies []string
}

var _ WebhookSender = (*fakeSender)(nil)

func (f *fakeSender) Send(_ context.Context, id string, p webhook.Payload) (int, error) {
	b, err := p.MarshalJSON()
	if err != nil {
		return 0, err
	}
	f.ids = append(f.ids, id)
	f.bodies = append(f.bodies, string(b))
	return f.status, f.err
}

func TestHealthServices(t *testing.T) {
	sum := sha256.Sum256([]byte(testKey))
	testBody := `{"spend":1.0,"max_budget":0.0,"soft_budget":null,"token":"` + hex.EncodeToString(sum[:]) + `",` +
		`"customer_id":null,"user_id":"default_user_id","team_id":null,"team_alias":null,"user_email":null,` +
		`"key_alias":null,"projected_exceeded_date":null,"projected_spend":null,"event":"budget_crossed",` +
		"\"event_group\":\"user\",\"event_message\":\"User Budget: Budget Crossed\\n Total Budget:`0.0`\"}"
	cases := []struct {
		name     string
		sender   *fakeSender
		query    string
		wantCode int
		want     func(id string) string
		wantSent bool
	}{
		{"no service", &fakeSender{status: 200}, "", 400,
			func(string) string { return errJSON("Service must be specified.", "bad_request_error", "service", 400) }, false},
		{"another service", &fakeSender{status: 200}, "?service=slack", 400,
			func(string) string {
				return errJSON("Service must be in list. Service=slack. List=['webhook']", "bad_request_error", "service", 400)
			}, false},
		{"webhook alerting off", nil, "?service=webhook", 422,
			func(string) string {
				return errJSON(`"webhook" not in proxy config: general_settings. Unable to test this.`, "bad_request_error", "service", 422)
			}, false},
		{"webhook answers", &fakeSender{status: 200}, "?service=webhook", 200,
			func(id string) string {
				return `{"status":"success","message":"Mock webhook alert sent, verify it was received.","event_id":"` + id + `","webhook_status_code":200}`
			}, true},
		{"webhook fails", &fakeSender{status: 500, err: errors.New("HTTP 500 Internal Server Error")}, "?service=webhook", 502,
			func(id string) string {
				return `{"status":"failure","message":"Webhook test failed: HTTP 500 Internal Server Error","event_id":"` + id + `","webhook_status_code":500}`
			}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{}
			if c.sender != nil {
				cfg.Webhook = c.sender
			}
			e := newEnvWith(t, cfg)
			code, got := e.do("GET", "/health/services"+c.query, "")
			id := ""
			if c.sender != nil && len(c.sender.ids) == 1 {
				id = c.sender.ids[0]
				if !strings.HasPrefix(id, "evt_test_") {
					t.Errorf("test event id %q, want an evt_test_ prefix", id)
				}
				if c.sender.bodies[0] != testBody {
					t.Errorf("test event\n got %s\nwant %s", c.sender.bodies[0], testBody)
				}
			}
			if sent := id != ""; sent != c.wantSent {
				t.Errorf("sent = %v, want %v", sent, c.wantSent)
			}
			check(t, "health/services", code, got, c.wantCode, c.want(id))
		})
	}
	t.Run("needs the master key", func(t *testing.T) {
		e := newEnvWith(t, Config{Webhook: &fakeSender{status: 200}})
		code, got := send(t, e.h, "GET", "/health/services?service=webhook", "", "")
		check(t, "no key", code, got, 401, errJSON("Authentication Error, No api key passed in.", "auth_error", "", 401))
	})
}

func TestWebhookRoutes(t *testing.T) {
	st, err := badgerstore.Open(badgerstore.Options{
		InMemory: true, Now: func() time.Time { return testTime },
		Alerting: store.Alerting{Enabled: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	h := newHandler(Config{Outbox: st}, st, &syncbuf.Buffer{})
	do := func(method, path, body string) (int, string) {
		t.Helper()
		return send(t, h, method, path, body, "Bearer "+testKey)
	}
	var events []store.Event
	for i, c := range []string{"alice", "bob", "alice"} {
		res, err := st.RecordSpend(t.Context(), store.SpendLog{RequestID: string(rune('a' + i)), CustomerID: c, Cost: 1_112_000})
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, res.Events...)
	}
	if err := st.RecordDeliveries(t.Context(), []store.Delivery{
		{Event: events[0], Attempts: 1},
		{Event: events[1], Attempts: 10, Dead: true, LastError: "HTTP 500 Internal Server Error"},
	}); err != nil {
		t.Fatal(err)
	}
	dead := events[1].ID

	code, got := do("GET", "/webhook/info", "")
	check(t, "info", code, got, 200, `{"webhook_enabled":false,"delivered":1,"retried":1,"pending":1,"dead":1}`)

	code, got = do("GET", "/webhook/dead/list", "")
	check(t, "dead list", code, got, 200, `[{"event_id":`+mustJSON(dead)+`,"customer_id":"bob","event":"spend_tracked","attempts":10,`+
		`"last_error":"HTTP 500 Internal Server Error","created_at":"2026-01-02T03:04:05Z","dead_at":"2026-01-02T03:04:05Z",`+
		`"payload":{"spend":0.001112,"max_budget":null,"soft_budget":null,"token":null,"customer_id":"bob","user_id":null,`+
		`"team_id":null,"team_alias":null,"user_email":null,"key_alias":null,"projected_exceeded_date":null,`+
		`"projected_spend":null,"event":"spend_tracked","event_group":"customer",`+
		`"event_message":"Customer spend tracked. Customer=bob, spend=0.001112"}}]`)

	rejects := []struct {
		name, body string
		wantCode   int
		want       string
	}{
		{"unknown id", `{"event_ids":[` + mustJSON(dead) + `,"evt_nope"]}`, 404, errJSON("No dead event with id(s) evt_nope", "not_found", "event_ids", 404)},
		{"pending event", `{"event_ids":[` + mustJSON(events[2].ID) + `]}`, 404, errJSON("No dead event with id(s) "+events[2].ID, "not_found", "event_ids", 404)},
		{"empty list", `{"event_ids":[]}`, 400, errJSON("event_ids must list at least one dead event id", "bad_request", "event_ids", 400)},
		{"missing list", `{}`, 422, errJSON("event_ids is required", "bad_request_error", "event_ids", 422)},
	}
	for _, r := range rejects {
		code, got := do("POST", "/webhook/dead/replay", r.body)
		check(t, "replay: "+r.name, code, got, r.wantCode, r.want)
	}
	code, got = do("POST", "/webhook/dead/replay", `{"event_ids":[`+mustJSON(dead)+`]}`)
	check(t, "replay", code, got, 200, `{"replayed":1,"event_ids":[`+mustJSON(dead)+`]}`)
	code, got = do("GET", "/webhook/info", "")
	check(t, "info after replay", code, got, 200, `{"webhook_enabled":false,"delivered":1,"retried":1,"pending":2,"dead":0}`)

	var rows []json.RawMessage
	_, got = do("GET", "/webhook/dead/list", "")
	if err := json.Unmarshal([]byte(got), &rows); err != nil || len(rows) != 0 {
		t.Errorf("dead list after replay = %s (%v), want []", got, err)
	}
	code, _ = send(t, h, "GET", "/webhook/info", "", "")
	if code != http.StatusUnauthorized {
		t.Errorf("/webhook/info without a key: status %d, want 401", code)
	}
}
