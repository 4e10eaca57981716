package extproc_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/tollgate-dev/tollgate/extproc"
	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/badgerstore"
)

const (
	benchKey       = "sk-bench"
	benchCustomers = 1_000
)

// BenchmarkRequestCycle plays Envoy for one LLM request per op, over an
// in-process gRPC connection, against Badger on disk with sync writes (the
// shipped configuration): request headers, request body, response headers and
// the response body (one buffered message, or nine SSE chunks when streamed),
// each answered before the next is sent. Every customer has a budget, so each
// op reads the customer and the budget and records the spend. 16 requests run
// at once, as at concurrency 16 in make bench, so spend records share fsyncs.
// ns/op and allocs/op include the gRPC client side, which Envoy does in C++;
// a CPU profile (-cpuprofile) tells the two sides apart.
func BenchmarkRequestCycle(b *testing.B) {
	for _, stream := range []bool{false, true} {
		name := "non-streaming"
		if stream {
			name = "streaming"
		}
		b.Run(name, func(b *testing.B) {
			st, err := badgerstore.Open(badgerstore.Options{Dir: b.TempDir(), SyncWrites: true})
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				if err := st.Close(); err != nil {
					b.Error(err)
				}
			}()
			seedBudgetedCustomers(b, st)
			// The binary's default logger: text at info level, which logs a line
			// per recorded spend. Formatting it is part of the cost; the bytes go nowhere.
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			client := serve(b, extproc.NewServer(extproc.Config{MasterKey: benchKey, DataPlaneAuth: true, Logger: logger}, st))

			var seq atomic.Int64
			b.SetParallelism(8) // × GOMAXPROCS 2 = 16 streams at once
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n := int(seq.Add(1))
					if err := requestCycle(b.Context(), client, n, stream); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

func seedBudgetedCustomers(b *testing.B, st *badgerstore.Store) {
	ctx := context.Background()
	maxBudget := store.Nano(1_000_000_000_000_000)
	for i := range benchCustomers {
		_, err := st.CreateCustomer(ctx, store.Customer{UserID: customerID(i)}, &store.Budget{MaxBudget: &maxBudget})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func customerID(i int) string { return fmt.Sprintf("bench-customer-%04d", i%benchCustomers) }

// serve runs srv on an in-memory listener and returns a client for it.
func serve(b *testing.B, srv extprocv3.ExternalProcessorServer) extprocv3.ExternalProcessorClient {
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	b.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	return extprocv3.NewExternalProcessorClient(conn)
}

var (
	chatBody = []byte(`{"id":"chatcmpl-bench","object":"chat.completion","created":1767225600,"model":"gpt-4o-mini",` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello, benchmark! This reply comes from the tollgate bench mock upstream."},` +
		`"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":16,"total_tokens":28}}`)
	sseChunks = func() [][]byte {
		chunk := func(rest string) []byte {
			return []byte(`data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1767225600,"model":"gpt-4o-mini",` + rest + "}\n\n")
		}
		out := [][]byte{chunk(`"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]`)}
		for _, c := range []string{"Hello, benchmark!", " This reply comes", " from the tollgate", " bench mock upstream."} {
			out = append(out, chunk(`"choices":[{"index":0,"delta":{"content":"`+c+`"},"finish_reason":null}]`))
		}
		return append(out,
			chunk(`"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]`),
			chunk(`"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":16,"total_tokens":28}`),
			[]byte("data: [DONE]\n\n"),
			nil, // Envoy ends a streamed body with an empty end_of_stream message
		)
	}()
)

// requestCycle sends one request's ext_proc messages as Envoy does and checks
// that none was answered with an ImmediateResponse.
func requestCycle(ctx context.Context, c extprocv3.ExternalProcessorClient, n int, stream bool) error {
	s, err := c.Process(ctx)
	if err != nil {
		return err
	}
	reqBody := `{"model":"gpt-4o-mini","user":"` + customerID(n) + `","messages":[{"role":"user","content":"Say hello to the benchmark."}]}`
	contentType, respBody := "application/json", [][]byte{chatBody}
	if stream {
		reqBody = reqBody[:len(reqBody)-1] + `,"stream":true,"stream_options":{"include_usage":true}}`
		contentType, respBody = "text/event-stream", sseChunks
	}
	msgs := []*extprocv3.ProcessingRequest{
		headers(false, false, ":method", "POST", ":path", "/v1/chat/completions", ":authority", "127.0.0.1:4000", ":scheme", "http",
			"content-type", "application/json", "authorization", "Bearer "+benchKey, "content-length", strconv.Itoa(len(reqBody)),
			"x-request-id", "bench-"+strconv.Itoa(n), "user-agent", "bench"),
		{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte(reqBody), EndOfStream: true}}},
		headers(true, false, ":status", "200", "content-type", contentType, "date", "Mon, 30 Nov 2026 16:00:00 GMT"),
	}
	for i, chunk := range respBody {
		msgs = append(msgs, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
			ResponseBody: &extprocv3.HttpBody{Body: chunk, EndOfStream: i == len(respBody)-1}}})
	}
	for _, m := range msgs {
		if err := s.Send(m); err != nil {
			return err
		}
		resp, err := s.Recv()
		if err != nil {
			return err
		}
		if ir := resp.GetImmediateResponse(); ir != nil {
			return fmt.Errorf("request %d rejected: %d %s", n, ir.GetStatus().GetCode(), ir.GetBody())
		}
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("stream end: %v, want EOF", err)
	}
	return nil
}

// headers builds a headers message from name, value pairs, values in
// raw_value as Envoy sends them.
func headers(response, endOfStream bool, kv ...string) *extprocv3.ProcessingRequest {
	hm := &corev3.HeaderMap{}
	for i := 0; i < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	h := &extprocv3.HttpHeaders{Headers: hm, EndOfStream: endOfStream}
	if response {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: h}}
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: h}}
}
