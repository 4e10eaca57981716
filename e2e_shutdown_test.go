package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/examples/mockllm"
	"github.com/tollgate-dev/tollgate/store"
)

// shutdownClientBound is the most any call may take in the shutdown tests:
// far more than a drain needs, far less than "hangs".
const shutdownClientBound = 30 * time.Second

// shutdownResult is how one client call through Envoy ended.
type shutdownResult struct {
	code int
	cost string // x-litellm-response-cost
	body []byte
	err  error
}

func (r shutdownResult) String() string {
	if r.err != nil {
		return r.err.Error()
	}
	return fmt.Sprintf("%d %.200s", r.code, r.body)
}

// Lifecycle: SIGTERM while 50 requests are in flight.
//
// On SIGTERM tollgate stops taking ext_proc streams (gRPC GracefulStop: the
// listener closes, the connection gets GOAWAY) and lets the open ones finish
// for up to --shutdown-grace (default 10 s), then cuts them and closes the store. Envoy fails
// closed (failure_mode_allow: false in envoy/envoy.yaml.tmpl), so a request
// can end in one of three ways:
//
//  1. Its ext_proc stream opened before the drain, as the 50 held at the
//     upstream here did: it is served to the end, 200, and tollgate writes
//     its spend log before it lets the response go, so every 200 is charged.
//  2. It arrives during the drain, as the late requests here do: Envoy opens
//     its stream on the draining connection before the final GOAWAY (then it
//     is served and charged as in 1), or on a new connection tollgate no
//     longer accepts, and answers 500 itself, before anything reaches the
//     upstream.
//  3. Its stream is still open when the grace period runs out: tollgate cuts it
//     and Envoy answers 500 (or resets a response it had begun), uncharged,
//     though the upstream may have done the work. The test releases the
//     upstream as soon as the drain has begun, so this must not happen.
//
// So: no call hangs, the held ones are all 200, the late ones 200 or 500,
// tollgate exits 0 within its bound, and after a restart on the same data
// directory the recorded spend is exactly the 200s × their cost, with one
// spend log for each 200 and no request at the upstream that was not a 200.
// (Failing open instead, Envoy would pass case 2 to the upstream unmetered.)
func TestE2EShutdownDrainsInFlightRequests(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	const (
		customer = "draining"
		inFlight = 50
		late     = 10
		// exitBound is the most tollgate may take to exit after SIGTERM: the
		// drain plus closing the store.
		exitBound = defaultShutdownGrace + 5*time.Second
	)
	rig := newShutdownRig(t, s, customer)
	// 50 requests pass tollgate's request phase and wait at the upstream,
	// each with its ext_proc stream open for the response phase.
	heldResults := make(chan shutdownResult, inFlight)
	for range inFlight {
		go func() { heldResults <- rig.send(true) }()
	}
	// Cleanups run last in, first out: the calls end before the processes stop.
	t.Cleanup(func() { rig.release() })
	limPoll(t, "50 requests held at the upstream", 10*time.Millisecond, shutdownClientBound, func() bool {
		if len(heldResults) > 0 {
			t.Fatalf("a request ended before the upstream held it: %v", <-heldResults)
		}
		return rig.stats().Held == inFlight
	})

	sigterm := time.Now()
	if err := s.tollgate.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	limPoll(t, "tollgate to close its ext_proc listener", 10*time.Millisecond, exitBound, func() bool {
		c, err := net.DialTimeout("tcp", s.grpcAddr, time.Second)
		if err == nil {
			c.Close()
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	})
	if n := len(heldResults); n != 0 {
		t.Fatalf("%d held requests ended when the drain began: %v", n, <-heldResults)
	}

	// Late requests, while the 50 keep tollgate draining.
	lateResults := make(chan shutdownResult, late)
	for range late {
		go func() { lateResults <- rig.send(false) }()
	}
	charged := 0
	for range late {
		switch r := <-lateResults; {
		case r.err == nil && r.code == http.StatusOK && r.cost == rig.cost.String():
			charged++
		case r.err == nil && r.code == http.StatusInternalServerError:
		default:
			t.Errorf("late request: %v (cost header %q), want 200 costing %s or Envoy's 500", r, r.cost, rig.cost)
		}
	}

	if n := rig.release(); n != inFlight {
		t.Errorf("released %d requests, want %d", n, inFlight)
	}
	for range inFlight {
		r := <-heldResults
		if r.err != nil || r.code != http.StatusOK || r.cost != rig.cost.String() {
			t.Errorf("request in flight at SIGTERM: %v (cost header %q), want 200 costing %s", r, r.cost, rig.cost)
			continue
		}
		charged++
	}

	if err := s.tollgate.wait(t, time.Until(sigterm.Add(exitBound))); err != nil {
		t.Errorf("tollgate exit after SIGTERM: %v, want status 0", err)
	}
	if log := s.tollgate.log.String(); strings.Contains(log, "still open after grace period") {
		t.Errorf("tollgate cut ext_proc streams instead of draining them")
	}

	// What was recorded survived the shutdown: a tollgate restarted on the
	// same data directory reports it.
	if got, want := rig.spendAfterRestart(), store.Nano(charged)*rig.cost; got != want {
		t.Errorf("spend after restart = %d nano-USD, want %d (%d responses × %d)", got, want, charged, rig.cost)
	}
	logs := s.spendLogs(customer)
	ids := map[string]bool{}
	for _, l := range logs {
		if l.Cost != rig.cost {
			t.Errorf("spend log %s costs %d nano-USD, want %d", l.RequestID, l.Cost, rig.cost)
		}
		ids[l.RequestID] = true
	}
	if len(logs) != charged || len(ids) != charged {
		t.Errorf("%d spend logs (%d request ids), want one for each of the %d 200 responses", len(logs), len(ids), charged)
	}
	if got := rig.stats().Requests; got != int64(charged) {
		t.Errorf("the upstream served %d requests, want only the %d charged ones", got, charged)
	}
}

// shutdownRig sends one customer's chat completions through a stack, with
// the mock upstream holding them on request.
type shutdownRig struct {
	t        *testing.T
	s        *stack
	customer string
	body     string
	// cost is what each of these requests costs when served.
	cost store.Nano
}

type mockStats struct{ Requests, Held int64 }

func newShutdownRig(t *testing.T, s *stack, customer string) *shutdownRig {
	body := fmt.Sprintf(`{"model":"azure-gpt-3.5","user":%q,"messages":[{"role":"user","content":"hold this request"}]}`, customer)
	// 3 words + 3 per message in, mockllm.ReplyWords (16) out, at gpt-3.5-turbo prices.
	const cost = store.Nano(6*gpt35InputNano + 16*gpt35OutputNano)
	if u := mockllm.ReportedUsage("/v1/chat/completions", []byte(body), nil); gpt35Cost(usage{u.PromptTokens, u.CompletionTokens}) != cost {
		t.Fatalf("the mock reports %+v, which does not cost %d nano-USD", u, cost)
	}
	return &shutdownRig{t: t, s: s, customer: customer, body: body, cost: cost}
}

// send makes one call through Envoy; hold keeps it at the upstream until release.
func (r *shutdownRig) send(hold bool) shutdownResult {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownClientBound)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", r.s.url+"/v1/chat/completions", strings.NewReader(r.body))
	if err != nil {
		return shutdownResult{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+masterKey)
	req.Header.Set("Content-Type", "application/json")
	if hold {
		req.Header.Set(mockllm.HeaderHold, "true")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return shutdownResult{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return shutdownResult{code: resp.StatusCode, cost: resp.Header.Get("x-litellm-response-cost"), body: b, err: err}
}

func (r *shutdownRig) stats() mockStats {
	code, _, b := httpDo(r.t, "GET", r.s.mockURL+"/__mock/stats", nil, nil)
	if code != http.StatusOK {
		r.t.Fatalf("mock stats: %d %s", code, b)
	}
	var st mockStats
	mustUnmarshal(r.t, b, &st)
	return st
}

// release lets every held request through and returns how many there were.
func (r *shutdownRig) release() int64 {
	code, _, b := httpDo(r.t, "POST", r.s.mockURL+"/__mock/release", nil, nil)
	if code != http.StatusOK {
		r.t.Fatalf("mock release: %d %s", code, b)
	}
	var rel struct{ Released int64 }
	mustUnmarshal(r.t, b, &rel)
	return rel.Released
}

// spendAfterRestart starts a new tollgate on the stopped one's data
// directory, which becomes the stack's tollgate, and returns the customer's
// spend as it reports it.
func (r *shutdownRig) spendAfterRestart() store.Nano {
	tollgateBin, _ := binaries(r.t)
	restarted, ready := startProc(r.t, "tollgate (restarted)", tollgateBin,
		[]string{"--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data-dir", r.s.dataDir},
		[]string{"TOLLGATE_MASTER_KEY=" + masterKey}, "tollgate ready ")
	r.s.tollgate = restarted
	code, _, b := httpDo(r.t, "GET", "http://"+readyAddr(r.t, ready, "admin")+"/customer/info?end_user_id="+r.customer, nil, auth())
	if code != http.StatusOK {
		r.t.Fatalf("customer/info after restart: %d %s", code, b)
	}
	var info map[string]any
	mustUnmarshal(r.t, b, &info)
	return spendOf(r.t, info)
}

// Lifecycle: a stream still open when --shutdown-grace runs out is cut.
// tollgate waits the grace period, cuts the streams, closes the store and
// exits 0 without waiting for the upstream; Envoy, failing closed, answers
// those requests with an empty 500 at once and resets their upstream
// requests; nothing is charged for them, though the upstream saw them.
func TestE2EShutdownCutsStreamsAfterGrace(t *testing.T) {
	t.Parallel()
	const (
		grace = time.Second
		held  = 3
	)
	s := newStack(t, stackOptions{args: []string{"--shutdown-grace", grace.String()}})
	const customer = "cut-short"
	if code, _, b := s.do("POST", "/customer/new", fmt.Sprintf(`{"user_id": %q}`, customer)); code != http.StatusOK {
		t.Fatalf("customer/new: %d %s", code, b)
	}
	rig := newShutdownRig(t, s, customer)
	results := make(chan shutdownResult, held)
	for range held {
		go func() { results <- rig.send(true) }()
	}
	t.Cleanup(func() { rig.release() })
	limPoll(t, "the requests held at the upstream", 10*time.Millisecond, shutdownClientBound, func() bool {
		return rig.stats().Held == held
	})

	sigterm := time.Now()
	if err := s.tollgate.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := s.tollgate.wait(t, grace+5*time.Second); err != nil {
		t.Errorf("tollgate exit after SIGTERM: %v, want status 0", err)
	}
	if took := time.Since(sigterm); took < grace {
		t.Errorf("tollgate exited %s after SIGTERM, before the %s grace period ended", took, grace)
	}
	if log := s.tollgate.log.String(); !strings.Contains(log, "still open after grace period") {
		t.Errorf("tollgate did not say it cut ext_proc streams; log:\n%s", log)
	}

	// Envoy fails each cut request at once with a 500 of its own and resets
	// its upstream request, so nothing is left held at the upstream.
	for range held {
		if r := <-results; r.err != nil || r.code != http.StatusInternalServerError || len(r.body) != 0 || r.cost != "" {
			t.Errorf("cut request: %v (cost header %q), want Envoy's empty 500", r, r.cost)
		}
	}
	if got := rig.stats(); got != (mockStats{Requests: held, Held: 0}) {
		t.Errorf("upstream stats %+v, want the %d requests reached and none still held", got, held)
	}
	if got := rig.spendAfterRestart(); got != 0 {
		t.Errorf("spend after restart = %d nano-USD, want 0: no request was served", got)
	}
}
