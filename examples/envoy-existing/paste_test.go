package envoyexisting

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/tollgate-dev/tollgate/envoy"
)

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := Files.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseYAML(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("parse YAML: %v\n%s", err, b)
	}
	return v
}

// decode strictly decodes a YAML value into m: an unknown field is an error.
func decode(t *testing.T, v any, m proto.Message) {
	t.Helper()
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(j, m); err != nil {
		t.Fatalf("decode %T: %v\n%s", m, err, j)
	}
}

// The shipped sample is base.yaml with the snippets pasted in, nothing more or less.
func TestSampleIsBasePlusSnippets(t *testing.T) {
	pasted, err := Paste(readFile(t, "base.yaml"), "llm_upstream")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(parseYAML(t, readFile(t, "envoy.yaml")), parseYAML(t, pasted)); diff != "" {
		t.Errorf("envoy.yaml differs from Paste(base.yaml) (-envoy.yaml +pasted):\n%s", diff)
	}
}

// demoConfig is the config tollgate's own end-to-end tests run, decoded.
func demoConfig(t *testing.T) *bootstrapv3.Bootstrap {
	t.Helper()
	b, err := envoy.Render(envoy.Params{
		ListenerAddress:      "127.0.0.1:10000",
		AdminAddress:         "127.0.0.1:9901",
		ExtProcAddress:       "127.0.0.1:50051",
		TollgateAdminAddress: "127.0.0.1:4001",
		UpstreamAddress:      "127.0.0.1:8000",
	})
	if err != nil {
		t.Fatal(err)
	}
	var bs bootstrapv3.Bootstrap
	decode(t, parseYAML(t, b), &bs)
	return &bs
}

// Every snippet decodes strictly into Envoy's own types and carries exactly
// the settings of the demo config that the rest of tollgate's tests exercise.
func TestSnippetsMatchDemoConfig(t *testing.T) {
	demo := demoConfig(t)
	demoListener := demo.GetStaticResources().GetListeners()[0]
	var demoHCM hcmv3.HttpConnectionManager
	if err := demoListener.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&demoHCM); err != nil {
		t.Fatal(err)
	}
	demoRoutes := demoHCM.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()
	llmDemoRoute := demoRoutes[len(demoRoutes)-1] // the catch-all to the LLM upstream
	adminDemoRoute := demoRoutes[0]               // an admin route, which skips ext_proc
	var demoCluster *clusterv3.Cluster
	for _, c := range demo.GetStaticResources().GetClusters() {
		if c.GetName() == "tollgate_ext_proc" {
			demoCluster = c
		}
	}

	t.Run("http-filter.yaml", func(t *testing.T) {
		items := parseYAML(t, readFile(t, "http-filter.yaml")).([]any)
		if len(items) != 1 {
			t.Fatalf("want one filter, got %d", len(items))
		}
		var got hcmv3.HttpFilter
		decode(t, items[0], &got)
		want := demoHCM.GetHttpFilters()[0]
		if diff := cmp.Diff(want, &got, protocmp.Transform()); diff != "" {
			t.Errorf("(-demo +snippet):\n%s", diff)
		}
	})
	t.Run("cluster.yaml", func(t *testing.T) {
		items := parseYAML(t, readFile(t, "cluster.yaml")).([]any)
		if len(items) != 1 {
			t.Fatalf("want one cluster, got %d", len(items))
		}
		var got clusterv3.Cluster
		decode(t, items[0], &got)
		if diff := cmp.Diff(demoCluster, &got, protocmp.Transform()); diff != "" {
			t.Errorf("(-demo +snippet):\n%s", diff)
		}
	})
	t.Run("listener.yaml", func(t *testing.T) {
		var got listenerv3.Listener
		decode(t, parseYAML(t, readFile(t, "listener.yaml")), &got)
		want := &listenerv3.Listener{PerConnectionBufferLimitBytes: demoListener.GetPerConnectionBufferLimitBytes()}
		if diff := cmp.Diff(want, &got, protocmp.Transform()); diff != "" {
			t.Errorf("(-demo +snippet):\n%s", diff)
		}
	})
	t.Run("llm-route.yaml", func(t *testing.T) {
		var got routev3.RouteAction
		decode(t, parseYAML(t, readFile(t, "llm-route.yaml")), &got)
		want := &routev3.RouteAction{Timeout: llmDemoRoute.GetRoute().GetTimeout()}
		if want.Timeout == nil {
			t.Fatal("demo LLM route has no timeout")
		}
		if diff := cmp.Diff(want, &got, protocmp.Transform()); diff != "" {
			t.Errorf("(-demo +snippet):\n%s", diff)
		}
	})
	t.Run("other-route.yaml", func(t *testing.T) {
		var got routev3.Route
		decode(t, parseYAML(t, readFile(t, "other-route.yaml")), &got)
		want := &routev3.Route{TypedPerFilterConfig: adminDemoRoute.GetTypedPerFilterConfig()}
		if len(want.TypedPerFilterConfig) == 0 {
			t.Fatal("demo admin route has no typed_per_filter_config")
		}
		if diff := cmp.Diff(want, &got, protocmp.Transform()); diff != "" {
			t.Errorf("(-demo +snippet):\n%s", diff)
		}
	})
}

// base.yaml (before), envoy.yaml (after) and Paste's own output all pass the
// real Envoy's validate mode.
func TestConfigsValidate(t *testing.T) {
	bin, err := envoy.FindBinary()
	if err != nil {
		t.Fatalf("these tests need the real Envoy: %v", err)
	}
	pasted, err := Paste(readFile(t, "base.yaml"), "llm_upstream")
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"base.yaml":   readFile(t, "base.yaml"),
		"envoy.yaml":  readFile(t, "envoy.yaml"),
		"pasted.yaml": pasted,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), name)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := envoy.Validate(t.Context(), bin, path); err != nil {
				t.Error(err)
			}
		})
	}
}

// httpFilterNames returns the http_filters names of every HCM in a pasted config.
func httpFilterNames(t *testing.T, cfg []byte) [][]string {
	t.Helper()
	var doc struct {
		StaticResources struct {
			Listeners []struct {
				FilterChains []struct {
					Filters []struct {
						TypedConfig struct {
							HTTPFilters []struct{ Name string } `yaml:"http_filters"`
						} `yaml:"typed_config"`
					}
				} `yaml:"filter_chains"`
			}
		} `yaml:"static_resources"`
	}
	if err := yaml.Unmarshal(cfg, &doc); err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, l := range doc.StaticResources.Listeners {
		for _, c := range l.FilterChains {
			for _, f := range c.Filters {
				var names []string
				for _, h := range f.TypedConfig.HTTPFilters {
					names = append(names, h.Name)
				}
				out = append(out, names)
			}
		}
	}
	return out
}

// miniBase is a config with two listeners: one with an LLM route and another
// filter before the router, one without any LLM route.
const miniBase = `
static_resources:
  listeners:
  - name: public
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          route_config:
            virtual_hosts:
            - routes:
              - match: {prefix: /}
                route: {cluster: openai}
          http_filters:
          - name: envoy.filters.http.cors
          - name: envoy.filters.http.router
  - name: private
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          route_config:
            virtual_hosts:
            - routes:
              - match: {prefix: /}
                route: {cluster: billing}
          http_filters:
          - name: envoy.filters.http.router
  clusters:
  - name: openai
  - name: billing
`

// Paste touches only the HCMs that carry LLM routes and keeps the router last.
func TestPasteOnlyWhereLLMRoutesAre(t *testing.T) {
	out, err := Paste([]byte(miniBase), "openai")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"envoy.filters.http.cors", "envoy.filters.http.ext_proc", "envoy.filters.http.router"},
		{"envoy.filters.http.router"},
	}
	if diff := cmp.Diff(want, httpFilterNames(t, out)); diff != "" {
		t.Errorf("http_filters (-want +got):\n%s", diff)
	}
	var doc struct {
		StaticResources struct {
			Listeners []struct {
				Name  string
				Limit int `yaml:"per_connection_buffer_limit_bytes"`
			}
			Clusters []struct{ Name string }
		} `yaml:"static_resources"`
	}
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	if got := doc.StaticResources.Listeners; got[0].Limit != 32<<20 || got[1].Limit != 0 {
		t.Errorf("buffer limits: public %d, private %d; want 32 MiB on public only", got[0].Limit, got[1].Limit)
	}
	var clusters []string
	for _, c := range doc.StaticResources.Clusters {
		clusters = append(clusters, c.Name)
	}
	if diff := cmp.Diff([]string{"openai", "billing", "tollgate_ext_proc"}, clusters); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}
}

func TestPasteRejects(t *testing.T) {
	for _, c := range []struct {
		name, base string
		llm        []string
		wantErr    string
	}{
		{"not YAML", "{", []string{"openai"}, "parse base config"},
		{"a list", "- 1", []string{"openai"}, "parse base config"},
		{"no static resources", "admin: {}", []string{"openai"}, "no static_resources"},
		{"no LLM route", miniBase, []string{"anthropic"}, "no route in the base config goes to [anthropic]"},
		{"no LLM cluster named", miniBase, nil, "no route in the base config goes to []"},
		{"no router", strings.Replace(miniBase, "envoy.filters.http.router", "envoy.filters.http.buffer", 1), []string{"openai"},
			"listener public: http_filters has no envoy.filters.http.router"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Paste([]byte(c.base), c.llm...)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("Paste error = %v, want one containing %q", err, c.wantErr)
			}
		})
	}
}

// Paste never panics on an operator's config, and whatever it accepts comes
// back as YAML with tollgate's cluster added.
func FuzzPaste(f *testing.F) {
	f.Add([]byte(miniBase), "openai")
	base, err := Files.ReadFile("base.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(base, "llm_upstream")
	f.Add([]byte("static_resources: {listeners: [{filter_chains: [{filters: [{name: x}]}]}]}"), "x")
	f.Fuzz(func(t *testing.T, base []byte, cluster string) {
		out, err := Paste(base, cluster)
		if err != nil {
			return
		}
		var doc struct {
			StaticResources struct {
				Clusters []struct{ Name string }
			} `yaml:"static_resources"`
		}
		if err := yaml.Unmarshal(out, &doc); err != nil {
			t.Fatalf("Paste output is not YAML: %v\n%s", err, out)
		}
		clusters := doc.StaticResources.Clusters
		if len(clusters) == 0 || clusters[len(clusters)-1].Name != "tollgate_ext_proc" {
			t.Errorf("clusters = %v, want tollgate_ext_proc last", clusters)
		}
	})
}
