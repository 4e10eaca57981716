package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/testing/protocmp"
)

// TestMain lets the test binary stand in for bin/bench as the no-op ext_proc
// process, which the noop-extproc target starts from os.Executable.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == noopExtProcArg {
		main()
		return
	}
	os.Exit(m.Run())
}

// noopClient serves noopExtProc over an in-memory connection.
func noopClient(t *testing.T) extprocv3.ExternalProcessorClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(srv, noopExtProc{})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return extprocv3.NewExternalProcessorClient(conn)
}

func httpHeaders(endOfStream bool, kv ...string) *extprocv3.HttpHeaders {
	hm := &corev3.HeaderMap{}
	for i := 0; i < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return &extprocv3.HttpHeaders{Headers: hm, EndOfStream: endOfStream}
}

func TestNoopExtProc(t *testing.T) {
	respHeaders := func(h *extprocv3.HttpHeaders) *extprocv3.ProcessingRequest {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: h}}
	}
	bodyMode := func(m filterv3.ProcessingMode_BodySendMode) *filterv3.ProcessingMode {
		return &filterv3.ProcessingMode{ResponseBodyMode: m}
	}
	tests := []struct {
		name string
		in   *extprocv3.ProcessingRequest
		want *extprocv3.ProcessingResponse
	}{
		{
			name: "request headers",
			in: &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: httpHeaders(false,
				":method", "POST", ":path", "/v1/chat/completions", "authorization", "Bearer "+benchKey, "content-length", "250")}},
			want: &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}},
		},
		{
			name: "request body",
			in: &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{
				Body: requestBodies(1, false)[0], EndOfStream: true}}},
			want: &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}},
		},
		{
			name: "response headers, JSON",
			in:   respHeaders(httpHeaders(false, ":status", "200", "content-type", "application/json", "content-length", "421")),
			want: &extprocv3.ProcessingResponse{
				Response:     &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}},
				ModeOverride: bodyMode(filterv3.ProcessingMode_BUFFERED),
			},
		},
		{
			name: "response headers, event stream in value",
			in: respHeaders(&extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
				{Key: ":status", Value: "200"}, {Key: "content-type", Value: "Text/Event-Stream; charset=utf-8"}}}}),
			want: &extprocv3.ProcessingResponse{
				Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{
					Response: &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{RemoveHeaders: []string{"content-length"}}},
				}},
				ModeOverride: bodyMode(filterv3.ProcessingMode_STREAMED),
			},
		},
		{
			name: "response headers, error",
			in:   respHeaders(httpHeaders(false, ":status", "429", "content-type", "application/json")),
			want: &extprocv3.ProcessingResponse{
				Response:     &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}},
				ModeOverride: bodyMode(filterv3.ProcessingMode_NONE),
			},
		},
		{
			name: "response headers, error event stream",
			in:   respHeaders(httpHeaders(false, ":status", "503", "content-type", "text/event-stream")),
			want: &extprocv3.ProcessingResponse{
				Response:     &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}},
				ModeOverride: bodyMode(filterv3.ProcessingMode_NONE),
			},
		},
		{
			name: "response headers, no status",
			in:   respHeaders(httpHeaders(true)),
			want: &extprocv3.ProcessingResponse{
				Response:     &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}},
				ModeOverride: bodyMode(filterv3.ProcessingMode_NONE),
			},
		},
		{
			name: "response body",
			in: &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{
				Body: mockChatJSON(), EndOfStream: true}}},
			want: &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}},
		},
		{
			name: "request trailers",
			in:   &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{RequestTrailers: &extprocv3.HttpTrailers{}}},
			want: &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}},
		},
		{
			name: "response trailers",
			in:   &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{ResponseTrailers: &extprocv3.HttpTrailers{}}},
			want: &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}},
		},
	}
	client := noopClient(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream, err := client.Process(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(tt.in); err != nil {
				t.Fatal(err)
			}
			got, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("reply (-want +got):\n%s", diff)
			}
			if err := stream.CloseSend(); err != nil {
				t.Fatal(err)
			}
			if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
				t.Errorf("Recv after CloseSend = %v, want io.EOF: the server ends the stream", err)
			}
		})
	}
	t.Run("unknown message", func(t *testing.T) {
		stream, err := client.Process(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&extprocv3.ProcessingRequest{}); err != nil {
			t.Fatal(err)
		}
		_, err = stream.Recv()
		if got := status.Code(err); got != codes.InvalidArgument {
			t.Errorf("Recv = %v, want code %v", err, codes.InvalidArgument)
		}
	})
}
