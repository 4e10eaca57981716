package envoy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
)

// continueProcessor is an ext_proc server that lets every request through
// unchanged and records which messages each stream carried.
type continueProcessor struct {
	extprocv3.UnimplementedExternalProcessorServer
	mu      sync.Mutex
	streams [][]string
}

var _ extprocv3.ExternalProcessorServer = (*continueProcessor)(nil)

func (c *continueProcessor) Process(stream grpc.BidiStreamingServer[extprocv3.ProcessingRequest, extprocv3.ProcessingResponse]) error {
	c.mu.Lock()
	i := len(c.streams)
	c.streams = append(c.streams, nil)
	c.mu.Unlock()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		var kind string
		resp := &extprocv3.ProcessingResponse{}
		switch req.Request.(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			kind = "request_headers"
			resp.Response = &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}
		case *extprocv3.ProcessingRequest_RequestBody:
			kind = "request_body"
			resp.Response = &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			kind = "response_headers"
			resp.Response = &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}
		case *extprocv3.ProcessingRequest_ResponseBody:
			kind = "response_body"
			resp.Response = &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}
		default:
			// Trailers are configured SKIP; anything else is a config regression.
			kind = "unexpected"
		}
		c.mu.Lock()
		c.streams[i] = append(c.streams[i], kind)
		c.mu.Unlock()
		if resp.Response == nil {
			continue
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func (c *continueProcessor) seen() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([][]string, len(c.streams))
	for i, s := range c.streams {
		out[i] = append([]string(nil), s...)
	}
	return out
}

// serveExtProc serves a continueProcessor on network ("tcp" or "unix") and
// returns it with the address to put in Params.ExtProcAddress.
func serveExtProc(t *testing.T, network string) (*continueProcessor, string) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "extproc.sock")
	}
	lis, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	proc := &continueProcessor{}
	extprocv3.RegisterExternalProcessorServer(srv, proc)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	if network == "unix" {
		return proc, "unix://" + addr
	}
	return proc, lis.Addr().String()
}

// recorder is an HTTP server that remembers the requests it got.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	Method, Path, Body string
	RequestID          string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.reqs = append(r.reqs, recorded{Method: req.Method, Path: req.URL.Path, Body: string(body), RequestID: req.Header.Get("x-request-id")})
	r.mu.Unlock()
	w.Header().Set("content-type", "application/json")
	_, _ = io.WriteString(w, `{"ok":true}`)
}

func (r *recorder) got() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

func serveRecorder(t *testing.T) (*recorder, string) {
	t.Helper()
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return rec, strings.TrimPrefix(srv.URL, "http://")
}

func do(t *testing.T, method, url, body string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("content-type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestStartRoutes(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run("ext_proc over "+network, func(t *testing.T) {
			t.Parallel()
			proc, extProcAddr := serveExtProc(t, network)
			upstream, upstreamAddr := serveRecorder(t)
			admin, adminAddr := serveRecorder(t)
			p := StartForTest(t, StartOptions{Params: Params{
				ExtProcAddress:       extProcAddr,
				TollgateAdminAddress: adminAddr,
				UpstreamAddress:      upstreamAddr,
			}})

			const chat = `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`
			status, body := do(t, http.MethodPost, p.URL()+"/v1/chat/completions", chat, nil)
			if status != http.StatusOK || body != `{"ok":true}` {
				t.Fatalf("chat: got %d %q, want 200 {\"ok\":true}", status, body)
			}
			// Envoy keeps a loopback client's x-request-id despite generate_request_id
			// (DESIGN.md, "Careful with request ids"): tollgate must not trust it.
			status, _ = do(t, http.MethodPost, p.URL()+"/v1/embeddings", `{}`, http.Header{"X-Request-Id": {"client-chosen"}})
			if status != http.StatusOK {
				t.Fatalf("embeddings: got %d, want 200", status)
			}
			status, _ = do(t, http.MethodGet, p.URL()+"/health/liveliness", "", nil)
			if status != http.StatusOK {
				t.Fatalf("liveliness: got %d, want 200", status)
			}

			gotUp := upstream.got()
			if len(gotUp) != 2 || gotUp[0].RequestID == "" {
				t.Fatalf("upstream requests = %+v, want two, the first with a generated x-request-id", gotUp)
			}
			gotUp[0].RequestID = "generated"
			want := []recorded{
				{Method: "POST", Path: "/v1/chat/completions", Body: chat, RequestID: "generated"},
				{Method: "POST", Path: "/v1/embeddings", Body: "{}", RequestID: "client-chosen"},
			}
			if diff := cmp.Diff(want, gotUp); diff != "" {
				t.Errorf("upstream requests (-want +got):\n%s", diff)
			}
			gotAdmin := admin.got()
			for i := range gotAdmin {
				gotAdmin[i].RequestID = ""
			}
			if diff := cmp.Diff([]recorded{{Method: "GET", Path: "/health/liveliness"}}, gotAdmin); diff != "" {
				t.Errorf("admin requests (-want +got):\n%s", diff)
			}
			// Only the LLM calls went through ext_proc, with the configured phases.
			phases := []string{"request_headers", "request_body", "response_headers", "response_body"}
			if diff := cmp.Diff([][]string{phases, phases}, proc.seen()); diff != "" {
				t.Errorf("ext_proc messages (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStartFailureMode(t *testing.T) {
	tests := []struct {
		name             string
		failureModeAllow bool
		wantStatus       int
		wantUpstream     int
	}{
		{name: "fail closed", failureModeAllow: false, wantStatus: http.StatusInternalServerError, wantUpstream: 0},
		{name: "fail open", failureModeAllow: true, wantStatus: http.StatusOK, wantUpstream: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			upstream, upstreamAddr := serveRecorder(t)
			_, adminAddr := serveRecorder(t)
			p := StartForTest(t, StartOptions{Params: Params{
				// Nothing listens here, so every ext_proc stream fails.
				ExtProcAddress:       "unix://" + filepath.Join(t.TempDir(), "absent.sock"),
				TollgateAdminAddress: adminAddr,
				UpstreamAddress:      upstreamAddr,
				FailureModeAllow:     tt.failureModeAllow,
			}})
			status, _ := do(t, http.MethodPost, p.URL()+"/v1/chat/completions", `{"model":"m"}`, nil)
			if status != tt.wantStatus {
				t.Errorf("status = %d, want %d", status, tt.wantStatus)
			}
			if got := len(upstream.got()); got != tt.wantUpstream {
				t.Errorf("upstream got %d requests, want %d", got, tt.wantUpstream)
			}
		})
	}
}

// directConfig is a bootstrap whose listeners (one per name) answer every
// request with name.
func directConfig(names ...string) []byte {
	var listeners []string
	for _, name := range names {
		listeners = append(listeners, fmt.Sprintf(`{"name": %q,
  "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
  "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    "stat_prefix": %q,
    "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"],
      "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": %q}}}]}]},
    "http_filters": [{"name": "envoy.filters.http.router",
      "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}`, name, name, name))
	}
	return fmt.Appendf(nil, `{"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
"static_resources": {"listeners": [%s]}}`, strings.Join(listeners, ","))
}

// A config given as it is runs in place of the rendered one, and must have
// the one listener Start can report the URL of.
func TestStartConfig(t *testing.T) {
	t.Run("one listener", func(t *testing.T) {
		t.Parallel()
		p := StartForTest(t, StartOptions{Config: directConfig("given"), Params: Params{UpstreamAddress: "ignored"}})
		if status, body := do(t, http.MethodGet, p.URL()+"/anything", "", nil); status != http.StatusOK || body != "given" {
			t.Errorf("got %d %q, want 200 \"given\"", status, body)
		}
		if status, _ := do(t, http.MethodGet, p.AdminURL()+"/ready", "", nil); status != http.StatusOK {
			t.Errorf("admin /ready: %d, want 200", status)
		}
	})
	t.Run("two listeners", func(t *testing.T) {
		t.Parallel()
		p, err := Start(t.Context(), StartOptions{Config: directConfig("a", "b")})
		if err == nil {
			_ = p.Stop()
			t.Fatal("Start succeeded, want an error")
		}
		if want := "want 1 listener, got 2"; !strings.Contains(err.Error(), want) {
			t.Errorf("Start error = %v, want one containing %q", err, want)
		}
	})
}

func TestListenerPort(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    int
		wantErr string
	}{
		{
			name: "envoy 1.40 answer",
			body: `{"listener_statuses":[{"name":"tollgate_listener","local_address":{"socket_address":{"address":"127.0.0.1","port_value":41234}}}]}`,
			want: 41234,
		},
		{name: "no listeners", body: `{"listener_statuses":[]}`, wantErr: "want 1 listener, got 0"},
		{name: "not bound", body: `{"listener_statuses":[{"local_address":{}}]}`, wantErr: "bad port 0"},
		{name: "not json", body: `<html>`, wantErr: "parse envoy listeners"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ListenerPort([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ListenerPort = %d, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ListenerPort = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func FuzzListenerPort(f *testing.F) {
	f.Add([]byte(`{"listener_statuses":[{"local_address":{"socket_address":{"port_value":4000}}}]}`))
	f.Add([]byte(`{"listener_statuses":[{"local_address":{"socket_address":{"port_value":-1}}}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		port, err := ListenerPort(body)
		if err == nil && (port < 1 || port > 65535) {
			t.Errorf("ListenerPort accepted port %d", port)
		}
	})
}
