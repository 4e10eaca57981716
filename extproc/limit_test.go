package extproc

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/extproc/limits"
	"github.com/tollgate-dev/tollgate/extproc/pricing"
	"github.com/tollgate-dev/tollgate/store"
)

// testClock is a clock the test sets; it does not move by itself.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// limitServer is a Server on a fake store and a settable clock, with the
// server kept so tests can look at its admission state.
type limitServer struct {
	srv   *Server
	c     extprocv3.ExternalProcessorClient
	st    *fakeStore
	clock *testClock
}

func newLimitServer(t *testing.T, edit func(*Config), budgets []store.Budget, customers ...store.Customer) *limitServer {
	t.Helper()
	cfg := testConfig(t)
	clock := &testClock{t: t0}
	cfg.Now = clock.now
	if edit != nil {
		edit(&cfg)
	}
	st := newFakeStore()
	for _, b := range budgets {
		st.budgets[b.BudgetID] = b
	}
	for _, c := range customers {
		st.customers[c.UserID] = c
	}
	srv := NewServer(cfg, st)
	return &limitServer{srv: srv, c: serve(t, srv), st: st, clock: clock}
}

// live is an ext_proc stream the test keeps open, as Envoy does while a
// request is in flight.
type live struct {
	t      *testing.T
	stream extprocv3.ExternalProcessor_ProcessClient
	cancel context.CancelFunc
}

func (s *limitServer) open(t *testing.T) *live {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	stream, err := s.c.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	return &live{t: t, stream: stream, cancel: cancel}
}

func (l *live) send(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	l.t.Helper()
	if err := l.stream.Send(m); err != nil {
		l.t.Fatalf("send: %v", err)
	}
	resp, err := l.stream.Recv()
	if err != nil {
		l.t.Fatalf("recv: %v", err)
	}
	return resp
}

// request sends a chat request's headers and body and returns the body's
// answer (or the headers' rejection).
func (l *live) request(body string) *extprocv3.ProcessingResponse {
	l.t.Helper()
	if r := l.send(llmHeaders()); r.GetImmediateResponse() != nil {
		return r
	}
	return l.send(reqBody(body))
}

// respond sends a buffered JSON response with usage.
func (l *live) respond(prompt, completion int) {
	l.t.Helper()
	l.send(respHeaders(false, ":status", "200", "content-type", "application/json", "content-length", "100"))
	l.send(respBody([]byte(fmt.Sprintf(`{"model":"gpt-test","usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
		prompt, completion, prompt+completion)), true))
}

// end closes the stream as Envoy does when the request is over.
func (l *live) end() {
	l.t.Helper()
	if err := l.stream.CloseSend(); err != nil {
		l.t.Fatal(err)
	}
	if _, err := l.stream.Recv(); err != io.EOF {
		l.t.Fatalf("stream did not end cleanly: %v", err)
	}
}

// rejection reads an immediate response: status, error envelope and headers.
type rejection struct {
	Status  int
	Type    string
	Message string
	Headers map[string]string
}

func rejected(t *testing.T, r *extprocv3.ProcessingResponse) rejection {
	t.Helper()
	ir := r.GetImmediateResponse()
	if ir == nil {
		t.Fatalf("admitted, want a rejection: %v", r)
	}
	var env errorEnvelope
	if err := json.Unmarshal(ir.GetBody(), &env); err != nil {
		t.Fatalf("body %s: %v", ir.GetBody(), err)
	}
	if env.Error.Code != fmt.Sprint(int(ir.GetStatus().GetCode())) || env.Error.Param != nil {
		t.Errorf("envelope code %q param %v for status %d", env.Error.Code, env.Error.Param, ir.GetStatus().GetCode())
	}
	h := map[string]string{}
	for _, o := range ir.GetHeaders().GetSetHeaders() {
		if o.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("header %s is not overwritten", o.GetHeader().GetKey())
		}
		h[o.GetHeader().GetKey()] = string(o.GetHeader().GetRawValue())
	}
	return rejection{Status: int(ir.GetStatus().GetCode()), Type: env.Error.Type, Message: env.Error.Message, Headers: h}
}

func admitted(t *testing.T, r *extprocv3.ProcessingResponse) {
	t.Helper()
	if r.GetRequestBody() == nil {
		t.Fatalf("rejected, want admitted: %v", r)
	}
}

const bobChat = `{"model":"gpt-test","user":"bob","messages":[{"role":"user","content":"hi"}]}`

func TestBudgetWindows(t *testing.T) {
	// t0 is 2026-03-01 12:00 UTC; the daily budget's window is March 1.
	daily := store.Budget{BudgetID: "daily", MaxBudget: nano(100), BudgetDuration: ptr("1d"), BudgetResetAt: ptr(at("2026-03-01T00:00:00Z"))}
	onDaily := func(spend int64, end string, created string) store.Customer {
		c := store.Customer{UserID: "bob", Spend: store.Nano(spend), BudgetID: ptr("daily"), CreatedAt: at(created)}
		if end != "" {
			c.WindowEnd = at(end)
		}
		return c
	}
	tests := []struct {
		name          string
		customer      store.Customer
		defaultBudget string
		wantMessage   string // "" admitted
	}{
		{"spend of the current window counts", onDaily(100, "2026-03-02T00:00:00Z", "2026-01-01T00:00:00Z"),
			"", "ExceededBudget: End User=bob over budget. Spend=1e-07, Budget=1e-07"},
		{"spend of a window that has ended is zero", onDaily(100, "2026-03-01T00:00:00Z", "2026-01-01T00:00:00Z"), "", ""},
		{"the reset instant itself", onDaily(100, "2026-03-01T12:00:00Z", "2026-01-01T00:00:00Z"), "", ""},
		{"spend without a window from before the last reset is zero", onDaily(100, "", "2026-02-20T00:00:00Z"), "", ""},
		{"spend without a window given since the last reset counts", onDaily(100, "", "2026-03-01T06:00:00Z"),
			"", "ExceededBudget: End User=bob over budget. Spend=1e-07, Budget=1e-07"},
		{"default-budget customers reset too", store.Customer{UserID: "bob", Spend: 100, WindowEnd: at("2026-03-01T00:00:00Z")}, "daily", ""},
		{"default-budget customers in the window", store.Customer{UserID: "bob", Spend: 100, WindowEnd: at("2026-03-02T00:00:00Z")},
			"daily", "ExceededBudget: End User=bob over budget. Spend=1e-07, Budget=1e-07"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newLimitServer(t, func(c *Config) {
				c.DefaultBudgetID = tt.defaultBudget
				c.DisableBudgetReservation = true
			}, []store.Budget{daily}, tt.customer)
			r := s.open(t).request(bobChat)
			if tt.wantMessage == "" {
				admitted(t, r)
				return
			}
			got := rejected(t, r)
			if got.Status != 429 || got.Type != "budget_exceeded" || got.Message != tt.wantMessage {
				t.Errorf("rejection = %+v, want 429 budget_exceeded %q", got, tt.wantMessage)
			}
		})
	}
}

func TestRecordedWindows(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		loc  *time.Location
		b    store.Budget
		want store.Window
	}{
		{"daily in UTC", nil,
			store.Budget{BudgetID: "b", BudgetDuration: ptr("1d"), BudgetResetAt: ptr(at("2026-03-01T00:00:00Z"))},
			store.Window{Start: at("2026-03-01T00:00:00Z"), End: at("2026-03-02T00:00:00Z"), Reset: true}},
		{"daily in Tokyo: 12:00 UTC is 21:00 there", tokyo,
			store.Budget{BudgetID: "b", BudgetDuration: ptr("1d"), BudgetResetAt: ptr(at("2026-03-01T00:00:00+09:00"))},
			store.Window{Start: at("2026-03-01T00:00:00+09:00"), End: at("2026-03-02T00:00:00+09:00"), Reset: true}},
		{"first window of a monthly budget", nil,
			store.Budget{BudgetID: "b", BudgetDuration: ptr("1mo"), BudgetResetAt: ptr(at("2026-04-01T00:00:00Z"))},
			store.Window{Start: at("2026-03-01T00:00:00Z"), End: at("2026-04-01T00:00:00Z")}},
		{"a budget that never resets", nil, store.Budget{BudgetID: "b"}, store.Window{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newLimitServer(t, func(c *Config) { c.Location = tt.loc }, []store.Budget{tt.b},
				store.Customer{UserID: "bob", BudgetID: ptr("b")})
			l := s.open(t)
			admitted(t, l.request(bobChat))
			l.respond(5, 3)
			l.end()
			logs := s.st.recorded()
			if len(logs) != 1 {
				t.Fatalf("%d spend logs, want 1", len(logs))
			}
			got := logs[0].Window
			if !got.Start.Equal(tt.want.Start) || !got.End.Equal(tt.want.End) || got.Reset != tt.want.Reset {
				t.Errorf("Window = %+v, want %+v", got, tt.want)
			}
			c := s.st.customers["bob"]
			if c.Spend != 5*1500+3*2000 || !c.WindowEnd.Equal(tt.want.End) {
				t.Errorf("customer after the spend: Spend %d, WindowEnd %v", c.Spend, c.WindowEnd)
			}
		})
	}
}

func TestRateLimits(t *testing.T) {
	t.Run("rpm: the limit, LiteLLM's 429, then the next window", func(t *testing.T) {
		s := newLimitServer(t, nil, []store.Budget{{BudgetID: "b", RPMLimit: ptr[int64](2)}},
			store.Customer{UserID: "bob", BudgetID: ptr("b")})
		s.clock.t = at("2026-03-01T12:00:00.4Z")
		for range 2 {
			l := s.open(t)
			admitted(t, l.request(bobChat))
			l.end()
		}
		s.clock.advance(15 * time.Second)
		got := rejected(t, s.open(t).request(bobChat))
		want := rejection{Status: 429, Type: "rate_limit_exceeded",
			Message: "Rate limit exceeded for end_user: bob. Limit type: requests. Current limit: 2, Remaining: 0. Limit resets at: 2026-03-01 12:01:00 UTC",
			Headers: map[string]string{
				"content-type": "application/json", "retry-after": "45", "rate_limit_type": "requests", "reset_at": "2026-03-01 12:01:00 UTC",
				"x-ratelimit-limit-requests": "2", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "45s",
			}}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("rejection (-want +got):\n%s", d)
		}
		s.clock.t = at("2026-03-01T12:01:00Z")
		admitted(t, s.open(t).request(bobChat))
	})

	t.Run("tpm: one request's tokens use the minute up", func(t *testing.T) {
		s := newLimitServer(t, nil, []store.Budget{{BudgetID: "b", TPMLimit: ptr[int64](2), RPMLimit: ptr[int64](100)}},
			store.Customer{UserID: "bob", BudgetID: ptr("b")})
		first := s.open(t)
		admitted(t, first.request(bobChat))
		// In flight, its estimate is reserved.
		got := rejected(t, s.open(t).request(bobChat))
		if got.Message != "Rate limit exceeded for end_user: bob. Limit type: tokens. Current limit: 2, Remaining: 0. Limit resets at: 2026-03-01 12:01:00 UTC" ||
			got.Headers["x-ratelimit-remaining-tokens"] != "0" || got.Headers["x-ratelimit-limit-tokens"] != "2" ||
			got.Headers["x-ratelimit-remaining-requests"] != "99" || got.Headers["retry-after"] != "60" {
			t.Errorf("rejection = %+v", got)
		}
		first.respond(5, 3)
		first.end()
		// Done: its 8 tokens count for the rest of the minute.
		rejected(t, s.open(t).request(bobChat))
		s.clock.advance(time.Minute)
		admitted(t, s.open(t).request(bobChat))
	})

	t.Run("tpm counts the configured tokens", func(t *testing.T) {
		for _, tc := range []struct {
			counting limits.Counting
			tokens   int64
		}{{limits.CountTotal, 8}, {limits.CountInput, 5}, {limits.CountOutput, 3}} {
			s := newLimitServer(t, func(c *Config) { c.TokenCounting = tc.counting }, []store.Budget{{BudgetID: "b", TPMLimit: ptr[int64](1000)}},
				store.Customer{UserID: "bob", BudgetID: ptr("b")})
			l := s.open(t)
			admitted(t, l.request(`{"model":"gpt-test","user":"bob","max_tokens":1,"messages":[]}`))
			l.respond(5, 3)
			l.end()
			// The next admission shows what the first one left.
			tk, rej := s.srv.rates.Admit("bob", limits.Limits{TPM: ptr[int64](1000)}, 0)
			if rej != nil || tk.RemainingTokens != 1000-tc.tokens {
				t.Errorf("%v: remaining tokens %d, want %d", tc.counting, tk.RemainingTokens, 1000-tc.tokens)
			}
			tk.Done(0)
		}
	})

	t.Run("a model entry's rpm is the customer's on that model", func(t *testing.T) {
		b := store.Budget{BudgetID: "b", ModelMaxBudget: map[string]store.ModelBudget{"gpt-test": {RPMLimit: ptr[int64](1)}}}
		s := newLimitServer(t, nil, []store.Budget{b}, store.Customer{UserID: "bob", BudgetID: ptr("b")})
		admitted(t, s.open(t).request(bobChat))
		got := rejected(t, s.open(t).request(bobChat))
		if got.Message != "Rate limit exceeded for end_user: bob, model: gpt-test. Limit type: requests. Current limit: 1, Remaining: 0. Limit resets at: 2026-03-01 12:01:00 UTC" {
			t.Errorf("message = %q", got.Message)
		}
		admitted(t, s.open(t).request(`{"model":"gpt-test-2025-01-01","user":"bob"}`))
	})

	t.Run("rate limits of the default budget apply to unknown customers", func(t *testing.T) {
		s := newLimitServer(t, func(c *Config) { c.DefaultBudgetID = "default" }, []store.Budget{{BudgetID: "default", RPMLimit: ptr[int64](1)}})
		admitted(t, s.open(t).request(bobChat))
		if got := rejected(t, s.open(t).request(bobChat)); got.Type != "rate_limit_exceeded" {
			t.Errorf("type = %q", got.Type)
		}
	})
}

func TestParallelLimit(t *testing.T) {
	ends := []struct {
		name string
		end  func(l *live)
	}{
		{"response completed", func(l *live) { l.respond(5, 3); l.end() }},
		{"client hung up before the response", func(l *live) { l.cancel() }},
		{"client hung up mid-stream", func(l *live) {
			l.send(respHeaders(false, ":status", "200", "content-type", "text/event-stream"))
			l.send(respBody([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"hel\"}}]}\n\n"), false))
			l.cancel()
		}},
		{"upstream error", func(l *live) {
			l.send(respHeaders(false, ":status", "500", "content-type", "application/json"))
			l.end()
		}},
		{"Envoy ended the stream without a response", func(l *live) { l.end() }},
	}
	for _, tt := range ends {
		t.Run(tt.name, func(t *testing.T) {
			s := newLimitServer(t, nil, []store.Budget{{BudgetID: "b", MaxParallelRequests: ptr[int64](1), MaxBudget: nano(1_000_000_000)}},
				store.Customer{UserID: "bob", BudgetID: ptr("b")})
			first := s.open(t)
			admitted(t, first.request(bobChat))
			got := rejected(t, s.open(t).request(bobChat))
			want := rejection{Status: 429, Type: "parallel_request_limit_exceeded",
				Message: "Rate limit exceeded for end_user: bob. Limit type: max_parallel_requests. Current limit: 1, Remaining: 0. In flight: 1.",
				Headers: map[string]string{"content-type": "application/json", "retry-after": "1", "rate_limit_type": "max_parallel_requests"}}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("rejection (-want +got):\n%s", d)
			}
			tt.end(first)
			waitFor(t, "the slot to be free", func() bool { return s.srv.rates.InFlight("bob") == 0 && s.srv.ledger.Len() == 0 })
			next := s.open(t)
			admitted(t, next.request(bobChat))
			next.end()
		})
	}
}

// TestNothingLeaks: many streams of one customer cut at every point leave no
// request in flight and no reservation behind.
func TestNothingLeaks(t *testing.T) {
	s := newLimitServer(t, nil, []store.Budget{{BudgetID: "b", MaxParallelRequests: ptr[int64](3), RPMLimit: ptr[int64](1 << 30),
		TPMLimit: ptr[int64](1 << 40), MaxBudget: nano(1 << 50)}}, store.Customer{UserID: "bob", BudgetID: ptr("b")})
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			stream, err := s.c.Process(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			msgs := []*extprocv3.ProcessingRequest{llmHeaders(), reqBody(bobChat),
				respHeaders(false, ":status", "200", "content-type", "application/json", "content-length", "10"),
				respBody([]byte(`{"usage":{"prompt_tokens":1,"completion_tokens":1}}`), true)}
			for _, m := range msgs[:i%len(msgs)+1] {
				if stream.Send(m) != nil {
					return
				}
				r, err := stream.Recv()
				if err != nil || r.GetImmediateResponse() != nil {
					break
				}
			}
			if i%2 == 0 {
				_ = stream.CloseSend()
				_, _ = stream.Recv()
			}
		})
	}
	wg.Wait()
	waitFor(t, "every stream to finish", func() bool { return s.srv.rates.InFlight("bob") == 0 && s.srv.ledger.Len() == 0 })
}

func TestStrictBudgets(t *testing.T) {
	const body = `{"model":"gpt-test","user":"bob","max_tokens":10}`
	// The body's bytes at the input price, 10 completion tokens at the
	// reasoning price (4e-06), dearer than the output price.
	worst := int64(len(body))*1500 + 10*4000
	usage := int64(5*1500 + 3*2000)
	onBudget := func(max int64) []store.Budget { return []store.Budget{{BudgetID: "b", MaxBudget: nano(max)}} }
	bob := store.Customer{UserID: "bob", BudgetID: ptr("b")}

	t.Run("a budget of one worst case admits one request at a time", func(t *testing.T) {
		s := newLimitServer(t, nil, onBudget(worst), bob)
		first := s.open(t)
		admitted(t, first.request(body))
		got := rejected(t, s.open(t).request(body))
		want := fmt.Sprintf("ExceededBudget: End User=bob over budget. Spend=0.0, Budget=%s, Reserved=%s (requests in flight, this one's worst case included)",
			store.Nano(worst), store.Nano(2*worst))
		if got.Status != 429 || got.Type != "budget_exceeded" || got.Message != want {
			t.Errorf("rejection = %+v, want message %q", got, want)
		}
		first.respond(5, 3)
		first.end()
		// The real cost is recorded and the reservation gone: spend + worst no longer fits.
		got = rejected(t, s.open(t).request(body))
		want = fmt.Sprintf("ExceededBudget: End User=bob over budget. Spend=%s, Budget=%s, Reserved=%s (requests in flight, this one's worst case included)",
			store.Nano(usage), store.Nano(worst), store.Nano(worst))
		if got.Message != want {
			t.Errorf("message = %q, want %q", got.Message, want)
		}
		if n := s.srv.ledger.Len(); n != 0 {
			t.Errorf("%d reservations left", n)
		}
	})
	t.Run("room for two", func(t *testing.T) {
		s := newLimitServer(t, nil, onBudget(2*worst), bob)
		admitted(t, s.open(t).request(body))
		admitted(t, s.open(t).request(body))
		rejected(t, s.open(t).request(body))
	})
	t.Run("off: only recorded spend counts", func(t *testing.T) {
		s := newLimitServer(t, func(c *Config) { c.DisableBudgetReservation = true }, onBudget(worst), bob)
		admitted(t, s.open(t).request(body))
		admitted(t, s.open(t).request(body))
	})
	t.Run("an unpriced model reserves nothing", func(t *testing.T) {
		s := newLimitServer(t, nil, onBudget(1), bob)
		admitted(t, s.open(t).request(`{"model":"no-price","user":"bob"}`))
		admitted(t, s.open(t).request(`{"model":"no-price","user":"bob"}`))
	})
	t.Run("the default budget holds the first concurrent requests of a new customer", func(t *testing.T) {
		s := newLimitServer(t, func(c *Config) { c.DefaultBudgetID = "default" }, []store.Budget{{BudgetID: "default", MaxBudget: nano(worst)}})
		var lives []*live
		n := 0
		for range 20 {
			l := s.open(t)
			lives = append(lives, l)
			if l.request(body).GetRequestBody() != nil {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d of 20 first requests admitted, want 1", n)
		}
	})
	t.Run("the store failing after the reservation fails closed and gives it back", func(t *testing.T) {
		s := newLimitServer(t, nil, onBudget(worst), bob)
		l := s.open(t)
		if r := l.send(llmHeaders("x-litellm-customer-id", "bob")); r.GetImmediateResponse() != nil {
			t.Fatalf("headers rejected: %v", r)
		}
		s.st.mu.Lock()
		s.st.getErr = fmt.Errorf("disk on fire")
		s.st.mu.Unlock()
		if got := rejected(t, l.send(reqBody(body))); got.Status != 503 {
			t.Errorf("status = %d, want 503", got.Status)
		}
		if n := s.srv.ledger.Len(); n != 0 {
			t.Errorf("%d reservations left", n)
		}
	})
}

func TestModelBudgets(t *testing.T) {
	b := store.Budget{BudgetID: "b", CreatedAt: at("2026-02-01T00:00:00Z"),
		ModelMaxBudget: map[string]store.ModelBudget{"gpt-test": {MaxBudget: nano(50), BudgetDuration: ptr("1d")}}}
	spent := func(end string) store.Customer {
		return store.Customer{UserID: "bob", BudgetID: ptr("b"),
			ModelSpend: map[string]store.ModelSpend{"gpt-test": {Spend: 50, WindowEnd: at(end)}}}
	}
	t.Run("the model's budget is spent", func(t *testing.T) {
		s := newLimitServer(t, func(c *Config) { c.DisableBudgetReservation = true }, []store.Budget{b}, spent("2026-03-02T00:00:00Z"))
		got := rejected(t, s.open(t).request(bobChat))
		if got.Status != 429 || got.Type != "model_budget_exceeded" ||
			got.Message != "ExceededModelBudget: End User=bob over budget for model=gpt-test. Spend=5e-08, Budget=5e-08" {
			t.Errorf("rejection = %+v", got)
		}
		admitted(t, s.open(t).request(`{"model":"gpt-test-2025-01-01","user":"bob"}`))
	})
	t.Run("the model's window has ended", func(t *testing.T) {
		s := newLimitServer(t, func(c *Config) { c.DisableBudgetReservation = true }, []store.Budget{b}, spent("2026-03-01T00:00:00Z"))
		l := s.open(t)
		admitted(t, l.request(bobChat))
		l.respond(5, 3)
		l.end()
		logs := s.st.recorded()
		if len(logs) != 1 || logs[0].ModelBudget != "gpt-test" || !logs[0].ModelWindow.End.Equal(at("2026-03-02T00:00:00Z")) {
			t.Fatalf("spend logs = %+v, want one counted on gpt-test until March 2", logs)
		}
		if got := s.st.customers["bob"].ModelSpend["gpt-test"]; got.Spend != store.Nano(5*1500+3*2000) {
			t.Errorf("model spend = %+v, want the new window's cost", got)
		}
	})
	t.Run("strict: the model's budget holds reservations", func(t *testing.T) {
		body := `{"model":"gpt-test","user":"bob","max_tokens":10}`
		worst := int64(len(body))*1500 + 10*4000
		mb := b
		mb.ModelMaxBudget = map[string]store.ModelBudget{"gpt-test": {MaxBudget: nano(worst)}}
		s := newLimitServer(t, nil, []store.Budget{mb}, store.Customer{UserID: "bob", BudgetID: ptr("b")})
		admitted(t, s.open(t).request(body))
		got := rejected(t, s.open(t).request(body))
		want := fmt.Sprintf("ExceededModelBudget: End User=bob over budget for model=gpt-test. Spend=0.0, Budget=%s, Reserved=%s (requests in flight, this one's worst case included)",
			store.Nano(worst), store.Nano(2*worst))
		if got.Type != "model_budget_exceeded" || got.Message != want {
			t.Errorf("rejection = %+v, want %q", got, want)
		}
	})
}

func TestSoftBudgetNeverBlocks(t *testing.T) {
	s := newLimitServer(t, nil, []store.Budget{{BudgetID: "b", SoftBudget: nano(1)}},
		store.Customer{UserID: "bob", BudgetID: ptr("b"), Spend: 1_000_000})
	admitted(t, s.open(t).request(bobChat))
}

func TestWorstCase(t *testing.T) {
	prices, err := pricing.Parse(strings.NewReader(`{
		"capped":   {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "max_output_tokens": 100},
		"uncapped": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},
		"cached":   {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "cache_creation_input_token_cost": 3e-06, "max_output_tokens": 100}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		api        api
		body       string
		completion int64
	}{
		{"max_tokens", apiChat, `{"model":"capped","max_tokens":10}`, 10},
		{"max_completion_tokens wins", apiChat, `{"model":"capped","max_completion_tokens":20,"max_tokens":10}`, 20},
		{"n choices", apiChat, `{"model":"capped","max_tokens":10,"n":3}`, 30},
		{"the model's limit when unset", apiChat, `{"model":"capped"}`, 100},
		{"capped at the model's limit", apiChat, `{"model":"capped","max_tokens":1000}`, 100},
		{"default for a model without a limit", apiChat, `{"model":"uncapped"}`, 4096},
		{"a request's limit beyond the default", apiChat, `{"model":"uncapped","max_tokens":10000}`, 10000},
		{"not numbers are ignored", apiChat, `{"model":"capped","max_tokens":"10","n":1.5}`, 100},
		{"embeddings generate nothing", apiEmbeddings, `{"model":"capped","input":"x"}`, 0},
		{"Responses API", apiResponses, `{"model":"capped","max_output_tokens":7,"max_tokens":50}`, 7},
		{"Anthropic messages", apiMessages, `{"model":"capped","max_tokens":9}`, 9},
		{"completions: best_of", apiCompletions, `{"model":"capped","max_tokens":10,"n":2,"best_of":4}`, 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &processor{s: NewServer(Config{Prices: prices}, nil), route: route{api: tt.api}}
			p.model = gjsonModel(tt.body)
			want := store.Nano(int64(len(tt.body))*1000 + tt.completion*2000)
			if got := p.worstCase([]byte(tt.body)); got != want {
				t.Errorf("worstCase = %d, want %d (%d completion tokens)", got, want, tt.completion)
			}
		})
	}
	t.Run("a dearer cache write counts", func(t *testing.T) {
		body := `{"model":"cached","max_tokens":1}`
		p := &processor{s: NewServer(Config{Prices: prices}, nil), route: route{api: apiChat}, model: "cached"}
		if got, want := p.worstCase([]byte(body)), store.Nano(int64(len(body))*3000+2000); got != want {
			t.Errorf("worstCase = %d, want %d", got, want)
		}
	})
	t.Run("unpriced", func(t *testing.T) {
		p := &processor{s: NewServer(Config{Prices: prices}, nil), route: route{api: apiChat}, model: "nope"}
		if got := p.worstCase([]byte(`{"model":"nope"}`)); got != 0 {
			t.Errorf("worstCase = %d, want 0", got)
		}
	})
}

func gjsonModel(body string) string {
	var m struct{ Model string }
	_ = json.Unmarshal([]byte(body), &m)
	return m.Model
}

func TestEstimateTokens(t *testing.T) {
	body40 := `{"model":"gpt-tes","max_tokens":5,"x":1}` // 40 bytes: 10 prompt tokens
	if len(body40) != 40 {
		t.Fatalf("test body is %d bytes", len(body40))
	}
	tests := []struct {
		name     string
		counting limits.Counting
		api      api
		body     string
		want     int64
	}{
		{"total", limits.CountTotal, apiChat, body40, 15},
		{"input", limits.CountInput, apiChat, body40, 10},
		{"output", limits.CountOutput, apiChat, body40, 5},
		{"no max_tokens: at least 1024", limits.CountTotal, apiChat, `{"model":"gpt-test"}`, 5 + 1024},
		{"embeddings: the input only", limits.CountTotal, apiEmbeddings, `{"input":"hello world"}`, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &processor{s: NewServer(Config{TokenCounting: tt.counting}, nil), route: route{api: tt.api}}
			if got := p.estimateTokens([]byte(tt.body)); got != tt.want {
				t.Errorf("estimateTokens = %d, want %d", got, tt.want)
			}
		})
	}
}

// The immediate response helper puts extra headers after content-type.
func TestErrorResponseHeaders(t *testing.T) {
	r := errorResponse(429, "rate_limit_exceeded", "m", "d", setHeader("retry-after", "3"))
	want := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{
			Status: &typev3.HttpStatus{Code: 429},
			Headers: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
				wantSet("content-type", "application/json"), wantSet("retry-after", "3")}},
			Body:    []byte(`{"error":{"message":"m","type":"rate_limit_exceeded","param":null,"code":"429"}}`),
			Details: "d",
		},
	}}
	if d := diffResponses([]*extprocv3.ProcessingResponse{want}, []*extprocv3.ProcessingResponse{r}); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// FuzzWorstCase: request bodies are outside bytes. Reading their limits never
// panics, the worst case always covers the body's bytes at the input price,
// and the tpm estimate is never negative.
func FuzzWorstCase(f *testing.F) {
	for _, s := range []string{`{"model":"gpt-test","max_tokens":10,"n":3}`, `{"max_completion_tokens":1e30}`,
		`{"max_tokens":-1,"best_of":9223372036854775807}`, `{"max_output_tokens":"x"}`, `[`, ``} {
		f.Add(s, uint8(apiChat))
	}
	prices, err := pricing.Parse(strings.NewReader(testPrices))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body string, a uint8) {
		p := &processor{s: NewServer(Config{Prices: prices}, nil), route: route{api: api(a % 6)}, model: "gpt-test"}
		if got, floor := p.worstCase([]byte(body)), store.Nano(int64(len(body))*1500); got < floor {
			t.Fatalf("worstCase = %d, below the body's %d bytes at the input price", got, len(body))
		}
		if got := p.estimateTokens([]byte(body)); got < 0 {
			t.Fatalf("estimateTokens = %d", got)
		}
	})
}
