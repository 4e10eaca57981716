package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// noopExtProcArg, followed by a listen address, makes the bench binary serve
// the no-op ext_proc server instead of benchmarking: the noop-extproc
// target's second process, so its CPU is measured apart from the driver's.
const noopExtProcArg = "-noop-extproc"

// noopReady is what the no-op server prints on stdout once it listens.
const noopReady = "noop-extproc ready "

// noopMaxMessage is tollgate's gRPC receive limit: BUFFERED bodies up to
// Envoy's buffer arrive as one message.
const noopMaxMessage = 64 << 20

// noopExtProc answers every ext_proc message without looking into bodies.
// Its replies make Envoy exchange, for the benchmark's requests, the same
// messages it exchanges with tollgate, so Envoy + noopExtProc is the floor
// cost of any ext_proc filter with tollgate's processing modes.
type noopExtProc struct {
	extprocv3.UnimplementedExternalProcessorServer
}

// Process is one ext_proc stream, that is one HTTP request.
func (noopExtProc) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := noopReply(req)
		if err != nil {
			return err
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func noopReply(req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	switch r := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
			RequestHeaders: &extprocv3.HeadersResponse{}}}, nil
	case *extprocv3.ProcessingRequest_RequestBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{
			RequestBody: &extprocv3.BodyResponse{}}}, nil
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return noopResponseHeaders(r.ResponseHeaders), nil
	case *extprocv3.ProcessingRequest_ResponseBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{
			ResponseBody: &extprocv3.BodyResponse{}}}, nil
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{
			RequestTrailers: &extprocv3.TrailersResponse{}}}, nil
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{
			ResponseTrailers: &extprocv3.TrailersResponse{}}}, nil
	default:
		return nil, status.Errorf(codes.InvalidArgument, "unexpected ext_proc message %T", r)
	}
}

// noopResponseHeaders sets the response body mode as tollgate does for a
// metered request: errors pass through, event streams are streamed (without
// content-length, or Envoy cuts the stream after one chunk), other successes
// are buffered.
func noopResponseHeaders(h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	headersResp := &extprocv3.HeadersResponse{}
	resp := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: headersResp}}
	code, _ := strconv.Atoi(headerValue(h, ":status"))
	mediaType, _, _ := strings.Cut(headerValue(h, "content-type"), ";")
	switch {
	case code < 200 || code > 299:
		resp.ModeOverride = &filterv3.ProcessingMode{ResponseBodyMode: filterv3.ProcessingMode_NONE}
	case strings.EqualFold(strings.TrimSpace(mediaType), "text/event-stream"):
		resp.ModeOverride = &filterv3.ProcessingMode{ResponseBodyMode: filterv3.ProcessingMode_STREAMED}
		headersResp.Response = &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{RemoveHeaders: []string{"content-length"}}}
	default:
		resp.ModeOverride = &filterv3.ProcessingMode{ResponseBodyMode: filterv3.ProcessingMode_BUFFERED}
	}
	return resp
}

// headerValue returns the first value of the lower-case header name, which
// Envoy puts in raw_value, or in value when raw_value is empty.
func headerValue(h *extprocv3.HttpHeaders, name string) string {
	for _, hv := range h.GetHeaders().GetHeaders() {
		if strings.EqualFold(hv.GetKey(), name) {
			if raw := hv.GetRawValue(); len(raw) > 0 {
				return string(raw)
			}
			return hv.GetValue()
		}
	}
	return ""
}

// serveNoopExtProc serves noopExtProc on addr until ctx ends, after printing
// "noop-extproc ready grpc=ADDR" on stdout.
func serveNoopExtProc(ctx context.Context, addr string, stdout io.Writer) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen no-op ext_proc: %w", err)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(noopMaxMessage))
	extprocv3.RegisterExternalProcessorServer(srv, noopExtProc{})
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	fmt.Fprintf(stdout, "%sgrpc=%s\n", noopReady, lis.Addr())
	select {
	case err := <-errc:
		return fmt.Errorf("serve no-op ext_proc: %w", err)
	case <-ctx.Done():
		// Envoy is stopped first, so no stream is left to wait for.
		srv.GracefulStop()
		return <-errc
	}
}
