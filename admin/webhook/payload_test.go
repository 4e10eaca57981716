package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/store"
)

func ptr[T any](v T) *T { return &v }

func TestPayloadJSON(t *testing.T) {
	date := time.Date(2026, 3, 16, 7, 30, 0, 0, time.FixedZone("X", 3600))
	tests := []struct {
		name string
		p    Payload
		want string
	}{
		{
			name: "the seed's spend_tracked event",
			p: PayloadOf(store.Event{
				Type: store.EventSpendTracked, CustomerID: "krrish12", Spend: 1_112_000,
				Token:   ptr("88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b"),
				Message: "Customer spend tracked. Customer=krrish12, spend=0.001112",
			}),
			want: `{"spend":0.001112,"max_budget":null,"soft_budget":null,` +
				`"token":"88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b","customer_id":"krrish12",` +
				`"user_id":null,"team_id":null,"team_alias":null,"user_email":null,"key_alias":null,` +
				`"projected_exceeded_date":null,"projected_spend":null,"event":"spend_tracked","event_group":"customer",` +
				`"event_message":"Customer spend tracked. Customer=krrish12, spend=0.001112"}`,
		},
		{
			name: "a projected budget event, with limits and unescaped characters",
			p: PayloadOf(store.Event{
				Type: store.EventProjectedLimitExceeded, CustomerID: "a&b<c>", Spend: 2_000_000_000,
				MaxBudget: ptr[store.Nano](4_000_000_000), SoftBudget: ptr[store.Nano](10_000),
				ProjectedSpend: ptr[store.Nano](8_000_000_000), ProjectedExceededDate: &date,
				Message: "Customer Budget: Projected Limit Exceeded",
			}),
			want: `{"spend":2.0,"max_budget":4.0,"soft_budget":1e-05,"token":null,"customer_id":"a&b<c>",` +
				`"user_id":null,"team_id":null,"team_alias":null,"user_email":null,"key_alias":null,` +
				`"projected_exceeded_date":"2026-03-16T06:30:00Z","projected_spend":8.0,"event":"projected_limit_exceeded",` +
				`"event_group":"customer","event_message":"Customer Budget: Projected Limit Exceeded"}`,
		},
		{
			name: "a budget message keeps its newline and backticks",
			p: PayloadOf(store.Event{
				Type: store.EventBudgetCrossed, CustomerID: "c", MaxBudget: ptr[store.Nano](0),
				Message: "Customer Budget: Budget Crossed\n Total Budget:`0.0`",
			}),
			want: `{"spend":0.0,"max_budget":0.0,"soft_budget":null,"token":null,"customer_id":"c",` +
				`"user_id":null,"team_id":null,"team_alias":null,"user_email":null,"key_alias":null,` +
				`"projected_exceeded_date":null,"projected_spend":null,"event":"budget_crossed","event_group":"customer",` +
				"\"event_message\":\"Customer Budget: Budget Crossed\\n Total Budget:`0.0`\"}",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.p.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("body\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestSignVerify(t *testing.T) {
	const secret = "whsec-test"
	body := []byte(`{"spend":0.001112,"event":"spend_tracked"}`)
	now := time.Unix(1_800_000_000, 0)
	signed := func(ts int64, sig string) http.Header {
		h := http.Header{}
		h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		h.Set(HeaderSignature, sig)
		return h
	}
	good := Sign(secret, now.Unix(), body)
	tests := []struct {
		name      string
		secret    string
		h         http.Header
		body      []byte
		tolerance time.Duration
		want      error
	}{
		{"valid", secret, signed(now.Unix(), good), body, 5 * time.Minute, nil},
		{"tampered body", secret, signed(now.Unix(), good), []byte(`{"spend":9.0,"event":"spend_tracked"}`), 5 * time.Minute, ErrBadSignature},
		{"one byte appended", secret, signed(now.Unix(), good), append(append([]byte{}, body...), ' '), 0, ErrBadSignature},
		{"other timestamp", secret, signed(now.Unix()+1, good), body, 5 * time.Minute, ErrBadSignature},
		{"wrong secret", "other", signed(now.Unix(), good), body, 5 * time.Minute, ErrBadSignature},
		{"no algorithm prefix", secret, signed(now.Unix(), good[len("sha256="):]), body, 0, ErrBadSignature},
		{"not hex", secret, signed(now.Unix(), "sha256=zz"), body, 0, ErrBadSignature},
		{"timestamp not a number", secret, http.Header{HeaderTimestamp: {"soon"}, HeaderSignature: {good}}, body, 0, ErrBadSignature},
		{"no headers", secret, http.Header{}, body, 0, ErrNoSignature},
		{"too old", secret, signed(now.Unix()-301, Sign(secret, now.Unix()-301, body)), body, 5 * time.Minute, ErrStale},
		{"too far ahead", secret, signed(now.Unix()+301, Sign(secret, now.Unix()+301, body)), body, 5 * time.Minute, ErrStale},
		{"old but no tolerance", secret, signed(now.Unix()-3600, Sign(secret, now.Unix()-3600, body)), body, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Verify(tt.secret, tt.h, tt.body, now, tt.tolerance); !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestSignMatchesRecipe: the README's recipe, computed by hand: hex of
// HMAC-SHA256(secret, "<timestamp>.<body>"), prefixed "sha256=".
func TestSignMatchesRecipe(t *testing.T) {
	body := []byte(`{"a":1}`)
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write([]byte("1800000000.{\"a\":1}"))
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if got := Sign("s3cret", 1_800_000_000, body); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

// FuzzVerify: headers and bodies from the network never panic Verify, and a
// body signed with Sign always verifies.
func FuzzVerify(f *testing.F) {
	f.Add("secret", "1800000000", "sha256=00", []byte(`{}`))
	f.Add("", "", "", []byte(nil))
	f.Add("k", "-9223372036854775808", "sha256=", []byte("x"))
	f.Fuzz(func(t *testing.T, secret, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, sig)
		_ = Verify(secret, h, body, time.Unix(1_800_000_000, 0), time.Minute)
		if n, err := strconv.ParseInt(ts, 10, 64); err == nil {
			h.Set(HeaderTimestamp, strconv.FormatInt(n, 10))
			h.Set(HeaderSignature, Sign(secret, n, body))
			if err := Verify(secret, h, body, time.Unix(n, 0), time.Minute); err != nil {
				t.Errorf("a signed body does not verify: %v", err)
			}
		}
	})
}
