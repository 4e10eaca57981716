package envoy

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// TestRenderWithoutExtProc checks that the Envoy-alone config is the full
// config minus exactly the ext_proc filter, its per-route switches and its
// cluster, so the benchmark's baseline differs from tollgate's setup in
// nothing else.
func TestRenderWithoutExtProc(t *testing.T) {
	params := Params{
		ListenerAddress:      "127.0.0.1:4000",
		AdminAddress:         "127.0.0.1:9901",
		ExtProcAddress:       "127.0.0.1:50051",
		TollgateAdminAddress: "127.0.0.1:4001",
		UpstreamAddress:      "127.0.0.1:8081",
	}
	// want is the full config with the ext_proc pieces cut out by hand.
	want := renderYAML(t, params)
	params.WithoutExtProc = true
	params.ExtProcAddress = "" // ignored, so it need not be valid
	got := renderYAML(t, params)

	hcm := dig(t, want, "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config").(map[string]any)
	filters := hcm["http_filters"].([]any)
	if name := filters[0].(map[string]any)["name"]; name != "envoy.filters.http.ext_proc" {
		t.Fatalf("first http filter = %v, want the ext_proc filter", name)
	}
	hcm["http_filters"] = filters[1:]
	routes := dig(t, hcm, "route_config", "virtual_hosts", 0, "routes").([]any)
	for _, r := range routes {
		delete(r.(map[string]any), "typed_per_filter_config")
	}
	res := want["static_resources"].(map[string]any)
	clusters := res["clusters"].([]any)
	if name := clusters[0].(map[string]any)["name"]; name != "tollgate_ext_proc" {
		t.Fatalf("first cluster = %v, want tollgate_ext_proc", name)
	}
	res["clusters"] = clusters[1:]

	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("WithoutExtProc config differs from the full config beyond ext_proc (-want +got):\n%s", diff)
	}

	bin, err := FindBinary()
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := Render(params)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "envoy-alone.yaml")
	if err := os.WriteFile(path, rendered, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Validate(t.Context(), bin, path); err != nil {
		t.Error(err)
	}
}

func TestStartWithoutExtProc(t *testing.T) {
	upstream, upstreamAddr := serveRecorder(t)
	admin, adminAddr := serveRecorder(t)
	p := StartForTest(t, StartOptions{Params: Params{
		TollgateAdminAddress: adminAddr,
		UpstreamAddress:      upstreamAddr,
		WithoutExtProc:       true,
	}})
	const chat = `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`
	status, body := do(t, http.MethodPost, p.URL()+"/v1/chat/completions", chat, nil)
	if status != http.StatusOK || body != `{"ok":true}` {
		t.Fatalf("chat: got %d %q, want 200 {\"ok\":true}", status, body)
	}
	status, _ = do(t, http.MethodGet, p.URL()+"/customer/info", "", nil)
	if status != http.StatusOK {
		t.Fatalf("customer/info: got %d, want 200", status)
	}
	gotUp := upstream.got()
	for i := range gotUp {
		gotUp[i].RequestID = ""
	}
	if diff := cmp.Diff([]recorded{{Method: "POST", Path: "/v1/chat/completions", Body: chat}}, gotUp); diff != "" {
		t.Errorf("upstream requests (-want +got):\n%s", diff)
	}
	gotAdmin := admin.got()
	for i := range gotAdmin {
		gotAdmin[i].RequestID = ""
	}
	if diff := cmp.Diff([]recorded{{Method: "GET", Path: "/customer/info"}}, gotAdmin); diff != "" {
		t.Errorf("admin requests (-want +got):\n%s", diff)
	}
}

func renderYAML(t *testing.T, p Params) map[string]any {
	t.Helper()
	b, err := Render(p)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("parse rendered config: %v", err)
	}
	return doc
}

// dig walks maps by string keys and lists by int indexes.
func dig(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, step := range path {
		switch k := step.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("dig %v: %T at %q is not a map", path, v, k)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("dig %v: %T at %d is not a long enough list", path, v, k)
			}
			v = l[k]
		}
	}
	return v
}
