package istio

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	clientnetworking "istio.io/client-go/pkg/apis/networking/v1alpha3"

	"github.com/tollgate-dev/tollgate/envoy"
)

// fakeExtProc lets the request headers through, then answers the buffered
// request body with a 402 that says what it received.
type fakeExtProc struct {
	extprocv3.UnimplementedExternalProcessorServer

	mu    sync.Mutex
	paths []string // :path of every stream, in order
}

var _ extprocv3.ExternalProcessorServer = (*fakeExtProc)(nil)

func (f *fakeExtProc) Process(s extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		req, err := s.Recv()
		if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
			return nil
		}
		if err != nil {
			return err
		}
		switch r := req.GetRequest().(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			for _, h := range r.RequestHeaders.GetHeaders().GetHeaders() {
				if h.GetKey() == ":path" {
					f.mu.Lock()
					f.paths = append(f.paths, string(h.GetRawValue()))
					f.mu.Unlock()
				}
			}
			err = s.Send(&extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
				RequestHeaders: &extprocv3.HeadersResponse{},
			}})
		case *extprocv3.ProcessingRequest_RequestBody:
			body := fmt.Sprintf("ext_proc got %d body bytes, end_of_stream=%t",
				len(r.RequestBody.GetBody()), r.RequestBody.GetEndOfStream())
			return s.Send(&extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
				ImmediateResponse: &extprocv3.ImmediateResponse{
					Status: &typev3.HttpStatus{Code: typev3.StatusCode_PaymentRequired},
					Body:   []byte(body),
				},
			}})
		default:
			return status.Errorf(codes.InvalidArgument, "unexpected %T", r)
		}
		if err != nil {
			return err
		}
	}
}

func (f *fakeExtProc) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.paths)
}

// gatewayBootstrap renders a minimal Envoy config in the shape Istio gives an
// ingress gateway, with the EnvoyFilter's patches applied the way Istio
// applies them: one listener, routes named "internal" (to a direct response)
// and "llm", and a static cluster under the EnvoyFilter's ext_proc cluster
// name pointing at extProcAddr.
func gatewayBootstrap(t *testing.T, ef *clientnetworking.EnvoyFilter, extProcAddr string) []byte {
	t.Helper()
	filters := []any{map[string]any{
		"name":         "envoy.filters.http.router",
		"typed_config": map[string]any{"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
	}}
	direct := func(name, prefix, body string) map[string]any {
		return map[string]any{
			"name":            name,
			"match":           map[string]any{"prefix": prefix},
			"direct_response": map[string]any{"status": 200, "body": map[string]any{"inline_string": body}},
		}
	}
	routes := []map[string]any{direct("internal", "/internal/", "internal service"), direct("llm", "/", "llm upstream")}
	listener := map[string]any{
		"name":    "gateway",
		"address": loopback0(),
		"filter_chains": []any{map[string]any{"filters": []any{map[string]any{
			"name": "envoy.filters.network.http_connection_manager",
			"typed_config": map[string]any{
				"@type":       "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
				"stat_prefix": "gateway",
				"route_config": map[string]any{"virtual_hosts": []any{map[string]any{
					"name": "all", "domains": []any{"*"}, "routes": routes,
				}}},
			},
		}}}},
	}
	var cluster string
	for i, p := range ef.Spec.GetConfigPatches() {
		j, err := protojson.Marshal(p.GetPatch().GetValue())
		if err != nil {
			t.Fatal(err)
		}
		var value map[string]any
		if err := json.Unmarshal(j, &value); err != nil {
			t.Fatal(err)
		}
		op := p.GetPatch().GetOperation()
		switch p.GetApplyTo() {
		case networkingv1alpha3.EnvoyFilter_HTTP_FILTER:
			before := p.GetMatch().GetListener().GetFilterChain().GetFilter().GetSubFilter().GetName()
			at := slices.IndexFunc(filters, func(f any) bool { return f.(map[string]any)["name"] == before })
			if op != networkingv1alpha3.EnvoyFilter_Patch_INSERT_BEFORE || at < 0 {
				t.Fatalf("patch %d: %s before %q is not what this test applies", i, op, before)
			}
			filters = slices.Insert(filters, at, any(value))
			var hf struct {
				TypedConfig struct {
					GrpcService struct {
						EnvoyGrpc struct {
							ClusterName string `json:"cluster_name"`
						} `json:"envoy_grpc"`
					} `json:"grpc_service"`
				} `json:"typed_config"`
			}
			if err := json.Unmarshal(j, &hf); err != nil {
				t.Fatal(err)
			}
			cluster = hf.TypedConfig.GrpcService.EnvoyGrpc.ClusterName
		case networkingv1alpha3.EnvoyFilter_LISTENER:
			if op != networkingv1alpha3.EnvoyFilter_Patch_MERGE {
				t.Fatalf("patch %d: LISTENER %s is not what this test applies", i, op)
			}
			for k, v := range value {
				listener[k] = v
			}
		case networkingv1alpha3.EnvoyFilter_HTTP_ROUTE:
			name := p.GetMatch().GetRouteConfiguration().GetVhost().GetRoute().GetName()
			at := slices.IndexFunc(routes, func(r map[string]any) bool { return r["name"] == name })
			if op != networkingv1alpha3.EnvoyFilter_Patch_MERGE || at < 0 {
				t.Fatalf("patch %d: HTTP_ROUTE %s on route %q is not what this test applies", i, op, name)
			}
			for k, v := range value {
				routes[at][k] = v
			}
		default:
			t.Fatalf("patch %d: applyTo %s is not what this test applies", i, p.GetApplyTo())
		}
	}
	listener["filter_chains"].([]any)[0].(map[string]any)["filters"].([]any)[0].(map[string]any)["typed_config"].(map[string]any)["http_filters"] = filters

	host, port, err := net.SplitHostPort(extProcAddr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{
		"admin": map[string]any{"address": loopback0()},
		"static_resources": map[string]any{
			"listeners": []any{listener},
			"clusters": []any{map[string]any{
				"name":            cluster,
				"type":            "STATIC",
				"connect_timeout": "5s",
				// What Istio sets for a Service port named grpc-*.
				"typed_extension_protocol_options": map[string]any{
					"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": map[string]any{
						"@type":                "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
						"explicit_http_config": map[string]any{"http2_protocol_options": map[string]any{}},
					},
				},
				"load_assignment": map[string]any{
					"cluster_name": cluster,
					"endpoints": []any{map[string]any{"lb_endpoints": []any{map[string]any{"endpoint": map[string]any{
						"address": map[string]any{"socket_address": map[string]any{"address": host, "port_value": port}},
					}}}}},
				},
			}},
		},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loopback0() map[string]any {
	return map[string]any{"socket_address": map[string]any{"address": "127.0.0.1", "port_value": 0}}
}

// The gateway EnvoyFilter's patches, applied to a minimal gateway config,
// pass Envoy's validation and run: the LLM route reaches ext_proc with the
// whole request body, above Envoy's 1 MiB default buffer, while the route the
// HTTP_ROUTE patch names never opens an ext_proc stream.
func TestGatewayEnvoyFilterInEnvoy(t *testing.T) {
	bin, err := envoy.FindBinary()
	if err != nil {
		t.Fatalf("this test needs the real Envoy: %v", err)
	}
	fake := &fakeExtProc{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(64 << 20))
	extprocv3.RegisterExternalProcessorServer(srv, fake)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	ef := only[*clientnetworking.EnvoyFilter](t, readManifests(t, "envoyfilter-gateway.yaml"))
	config := gatewayBootstrap(t, ef, lis.Addr().String())
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(path, config, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := envoy.Validate(t.Context(), bin, path); err != nil {
		t.Fatal(err)
	}
	url := envoy.StartForTest(t, envoy.StartOptions{Bin: bin, Config: config, Concurrency: 1}).URL()

	bigBody := strings.Repeat("x", 2<<20)
	for _, c := range []struct {
		name, method, path, body string
		wantStatus               int
		wantBody                 string
	}{
		{"internal route skips ext_proc", "GET", "/internal/status", "", 200, "internal service"},
		{"LLM route goes through ext_proc", "POST", "/v1/chat/completions", `{"model":"m"}`, 402,
			"ext_proc got 13 body bytes, end_of_stream=true"},
		{"a 2 MiB body arrives whole", "POST", "/v1/embeddings", bigBody, 402,
			"ext_proc got 2097152 body bytes, end_of_stream=true"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), c.method, url+c.path, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != c.wantStatus || string(b) != c.wantBody {
				t.Errorf("%s %s: %d %q, want %d %q", c.method, c.path, resp.StatusCode, b, c.wantStatus, c.wantBody)
			}
		})
	}
	if diff := cmp.Diff([]string{"/v1/chat/completions", "/v1/embeddings"}, fake.seen()); diff != "" {
		t.Errorf("paths ext_proc saw (-want +got):\n%s", diff)
	}
}
