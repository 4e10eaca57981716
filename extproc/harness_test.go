package extproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/tollgate-dev/tollgate/extproc/pricing"
	"github.com/tollgate-dev/tollgate/store"
)

// fakeStore is an in-memory Store with injectable failures.
type fakeStore struct {
	mu        sync.Mutex
	customers map[string]store.Customer
	budgets   map[string]store.Budget
	getErr    error // returned by GetCustomer and GetBudget when set
	budgetErr error // returned by GetBudget only, when set
	recordErr error
	spends    []store.SpendLog
}

var _ Store = (*fakeStore)(nil)

func newFakeStore() *fakeStore {
	return &fakeStore{customers: map[string]store.Customer{}, budgets: map[string]store.Budget{}}
}

func (f *fakeStore) GetCustomer(_ context.Context, id string) (store.Customer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.getErr != nil {
		return store.Customer{}, f.getErr
	}
	c, ok := f.customers[id]
	if !ok {
		return store.Customer{}, store.ErrNotFound
	}
	return c, nil
}

func (f *fakeStore) GetBudget(_ context.Context, id string) (store.Budget, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := errors.Join(f.getErr, f.budgetErr); err != nil {
		return store.Budget{}, err
	}
	b, ok := f.budgets[id]
	if !ok {
		return store.Budget{}, store.ErrNotFound
	}
	return b, nil
}

func (f *fakeStore) RecordSpend(_ context.Context, l store.SpendLog) (store.SpendResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.recordErr != nil {
		return store.SpendResult{}, f.recordErr
	}
	for _, s := range f.spends {
		if s.RequestID == l.RequestID {
			return store.SpendResult{}, store.ErrDuplicateRequest
		}
	}
	f.spends = append(f.spends, l)
	if l.CustomerID == "" {
		return store.SpendResult{}, nil
	}
	// Like a real store: upsert the customer, rolling its windows over.
	c, known := f.customers[l.CustomerID]
	if !known {
		c = store.Customer{UserID: l.CustomerID, CreatedAt: l.EndTime}
	}
	c.AddSpend(l, l.EndTime)
	f.customers[l.CustomerID] = c
	return store.SpendResult{Customer: c, Created: !known}, nil
}

func (f *fakeStore) recorded() []store.SpendLog {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]store.SpendLog(nil), f.spends...)
}

func nano(n int64) *store.Nano {
	v := store.Nano(n)
	return &v
}

func ptr[T any](v T) *T { return &v }

// t0 is the fake clock's first reading; every reading advances it one second.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const testPrices = `{
	"gpt-test":            {"input_cost_per_token": 1.5e-06, "output_cost_per_token": 2e-06,
	                        "cache_read_input_token_cost": 7.5e-07, "output_cost_per_reasoning_token": 4e-06},
	"gpt-test-2025-01-01": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06},
	"embed-test":          {"input_cost_per_token": 1.875e-08},
	"claude-test":         {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
	                        "cache_read_input_token_cost": 3e-07, "cache_creation_input_token_cost": 3.75e-06}
}`

// testConfig is a Config with a fake clock, sequential request ids
// (tg-1, tg-2, …) and the test price table.
func testConfig(t *testing.T) Config {
	t.Helper()
	prices, err := pricing.Parse(strings.NewReader(testPrices))
	if err != nil {
		t.Fatal(err)
	}
	var ticks, ids atomic.Int64
	return Config{
		MasterKey:     "sk-master",
		DataPlaneAuth: true,
		Prices:        prices,
		Logger:        slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:           func() time.Time { return t0.Add(time.Duration(ticks.Add(1)-1) * time.Second) },
		NewID:         func() string { return fmt.Sprintf("tg-%d", ids.Add(1)) },
	}
}

// startServer serves NewServer(cfg, st) over an in-memory gRPC connection.
func startServer(t *testing.T, cfg Config, st Store) extprocv3.ExternalProcessorClient {
	t.Helper()
	return serve(t, NewServer(cfg, st))
}

// serve serves s over an in-memory gRPC connection.
func serve(t *testing.T, s *Server) extprocv3.ExternalProcessorClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(64 << 20)) // as main.go: Envoy sends BUFFERED bodies whole
	extprocv3.RegisterExternalProcessorServer(srv, s)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return extprocv3.NewExternalProcessorClient(conn)
}

// exchange plays Envoy: it sends each message and waits for its answer, stops
// after an ImmediateResponse as Envoy does, then closes the stream and checks
// the server ends it cleanly.
func exchange(t *testing.T, c extprocv3.ExternalProcessorClient, msgs ...*extprocv3.ProcessingRequest) []*extprocv3.ProcessingResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	stream, err := c.Process(ctx)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	var out []*extprocv3.ProcessingResponse
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			t.Fatalf("send: %v", err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("recv: %v", err)
		}
		out = append(out, resp)
		if resp.GetImmediateResponse() != nil {
			break
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatalf("close send: %v", err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("stream did not end cleanly: %v", err)
	}
	return out
}

func headerList(kv ...string) *corev3.HeaderMap {
	m := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return m
}

// reqHeaders is the request_headers message Envoy sends for method and path.
// A POST announces its body's length, as SDKs do, unless kv sets
// content-length to "" (a chunked upload).
func reqHeaders(method, path string, kv ...string) *extprocv3.ProcessingRequest {
	base := []string{":method", method, ":path", path, ":authority", "llm.example", ":scheme", "http"}
	if method == "POST" && !slices.Contains(kv, "content-length") {
		base = append(base, "content-length", "64")
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] == "content-length" && kv[i+1] == "" {
			kv = slices.Delete(slices.Clone(kv), i, i+2)
			break
		}
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: headerList(append(base, kv...)...)},
	}}
}

// llmHeaders are the request headers of an authenticated chat completion.
func llmHeaders(kv ...string) *extprocv3.ProcessingRequest {
	return reqHeaders("POST", "/v1/chat/completions", append([]string{"authorization", "Bearer sk-master"}, kv...)...)
}

func reqBody(body string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: []byte(body), EndOfStream: true},
	}}
}

func respHeaders(endOfStream bool, kv ...string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: headerList(kv...), EndOfStream: endOfStream},
	}}
}

func respBody(body []byte, endOfStream bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
		ResponseBody: &extprocv3.HttpBody{Body: body, EndOfStream: endOfStream},
	}}
}

// Expected responses, written out field by field rather than built with the
// code under test.

func wantSet(key, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: key, RawValue: []byte(value)},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// wantStripped is the request-headers mutation when no upstream key is configured.
func wantStripped() *extprocv3.HeaderMutation {
	return &extprocv3.HeaderMutation{RemoveHeaders: []string{"api-key", "x-api-key", "authorization"}}
}

func wantRequestHeaders(m *extprocv3.HeaderMutation) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
		RequestHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{HeaderMutation: m}},
	}}
}

func wantRequestBody() *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{
		RequestBody: &extprocv3.BodyResponse{},
	}}
}

func wantImmediate(code int, body, details string) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(code)},
			Headers: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{wantSet("content-type", "application/json")}},
			Body:    []byte(body),
			Details: details,
		},
	}}
}

func diffResponses(want, got []*extprocv3.ProcessingResponse) string {
	return cmp.Diff(want, got, protocmp.Transform())
}
