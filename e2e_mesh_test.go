package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/tollgate-dev/tollgate/envoy"
	envoyexisting "github.com/tollgate-dev/tollgate/examples/envoy-existing"
	"github.com/tollgate-dev/tollgate/store"
)

// The examples/envoy-existing snippets, pasted into an Envoy config that also
// routes /internal/ to an unrelated service, run in a real Envoy in front of
// the real tollgate and the mock upstream: the unrelated route never reaches
// ext_proc, the LLM routes are authenticated, buffered up to the raised limit
// and charged.
func TestE2EMeshEnvoyExistingSnippets(t *testing.T) {
	t.Parallel()
	tollgateBin, mockBin := binaries(t)
	_, mockLine := startProc(t, "mockllm", mockBin, []string{"-addr", "127.0.0.1:0"}, nil, "mockllm listening on ")
	mockURL := strings.TrimPrefix(mockLine, "mockllm listening on ")
	_, ready := startProc(t, "tollgate", tollgateBin,
		[]string{"--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data-dir", t.TempDir()},
		[]string{"TOLLGATE_MASTER_KEY=" + masterKey}, "tollgate ready ")
	tollgateAdmin := "http://" + readyAddr(t, ready, "admin")

	// The unrelated service echoes what reached it.
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"path": r.URL.Path, "authorization": r.Header.Get("Authorization"), "body": string(body),
		})
	}))
	t.Cleanup(internal.Close)

	base, err := envoyexisting.Files.ReadFile("base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pasted, err := envoyexisting.Paste(base, "llm_upstream")
	if err != nil {
		t.Fatal(err)
	}
	e := envoy.StartForTest(t, envoy.StartOptions{Concurrency: 1, Config: meshAddresses(t, pasted, map[string]string{
		"internal_service":  strings.TrimPrefix(internal.URL, "http://"),
		"llm_upstream":      strings.TrimPrefix(mockURL, "http://"),
		"tollgate_ext_proc": readyAddr(t, ready, "grpc"),
	})})

	// The unrelated route: no key needed, the client's Authorization header
	// and a body naming a customer arrive untouched, and nothing is charged.
	chatBody := `{"model": "azure-gpt-3.5", "user": "internal-customer", "messages": [{"role": "user", "content": "hi"}]}`
	for _, c := range []struct {
		name    string
		headers map[string]string
	}{
		{"without a key", nil},
		{"with the client's own key", map[string]string{"Authorization": "Bearer sk-client-own-key"}},
	} {
		t.Run("internal "+c.name, func(t *testing.T) {
			code, _, b := httpDo(t, "POST", e.URL()+"/internal/echo", chatBody, c.headers)
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, b)
			}
			var got map[string]string
			mustUnmarshal(t, b, &got)
			want := map[string]string{"path": "/internal/echo", "authorization": c.headers["Authorization"], "body": chatBody}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("what reached the internal service (-want +got):\n%s", diff)
			}
		})
	}

	// The LLM routes: a missing key is refused by tollgate, a request bigger
	// than Envoy's 1 MiB default buffer passes, and both calls are charged.
	if code, _, b := httpDo(t, "POST", e.URL()+"/v1/chat/completions", chatBody, nil); code != http.StatusUnauthorized {
		t.Errorf("LLM route without a key: status %d, want 401: %s", code, b)
	}
	var want store.Nano
	for _, c := range []struct{ path, content string }{
		{"/v1/chat/completions", "what time is it"},
		{"/chat/completions", strings.Repeat("long prompt ", 150_000)}, // 1.8 MB
	} {
		body := map[string]any{"model": "azure-gpt-3.5", "user": "llm-customer",
			"messages": []map[string]string{{"role": "user", "content": c.content}}}
		code, _, b := httpDo(t, "POST", e.URL()+c.path, body, auth())
		if code != http.StatusOK {
			t.Fatalf("%s (%d bytes of content): status %d: %.300s", c.path, len(c.content), code, b)
		}
		want += gpt35Cost(usageOf(t, b))
	}

	code, _, b := httpDo(t, "GET", tollgateAdmin+"/customer/info?end_user_id=llm-customer", nil, auth())
	if code != http.StatusOK {
		t.Fatalf("customer/info llm-customer: %d %s", code, b)
	}
	var info map[string]any
	mustUnmarshal(t, b, &info)
	if got := spendOf(t, info); got != want {
		t.Errorf("llm-customer spend = %d nano-USD, want %d", got, want)
	}
	if code, _, b := httpDo(t, "GET", tollgateAdmin+"/customer/info?end_user_id=internal-customer", nil, auth()); code != http.StatusNotFound {
		t.Errorf("customer/info internal-customer: %d %s, want 404 (never seen by tollgate)", code, b)
	}
	// Envoy's own count: only the three LLM requests opened an ext_proc stream.
	if got := counter(t, e, "http.ingress_http.ext_proc.streams_started"); got != 3 {
		t.Errorf("ext_proc streams started = %d, want 3 (the LLM requests only)", got)
	}
}

// counter reads one of Envoy's counters from its admin API.
func counter(t *testing.T, e *envoy.Process, name string) int {
	t.Helper()
	code, _, b := httpDo(t, "GET", e.AdminURL()+"/stats?filter=^"+strings.ReplaceAll(name, ".", `\.`)+"$", nil, nil)
	if code != http.StatusOK {
		t.Fatalf("envoy stats: %d %s", code, b)
	}
	value, ok := strings.CutPrefix(strings.TrimSpace(string(b)), name+": ")
	if !ok {
		t.Fatalf("envoy has no counter %s: %q", name, b)
	}
	n, err := strconv.Atoi(value)
	if err != nil {
		t.Fatalf("envoy counter %s: %v", name, err)
	}
	return n
}

// meshAddresses rewrites an Envoy config for a test: the admin interface and
// every listener bind 127.0.0.1:0, and each cluster named in clusters gets
// that one host:port as its only endpoint.
func meshAddresses(t *testing.T, config []byte, clusters map[string]string) []byte {
	t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal(config, &cfg); err != nil {
		t.Fatal(err)
	}
	loopback := func() map[string]any {
		return map[string]any{"socket_address": map[string]any{"address": "127.0.0.1", "port_value": 0}}
	}
	cfg["admin"] = map[string]any{"address": loopback()}
	resources := cfg["static_resources"].(map[string]any)
	for _, l := range resources["listeners"].([]any) {
		l.(map[string]any)["address"] = loopback()
	}
	seen := 0
	for _, c := range resources["clusters"].([]any) {
		c := c.(map[string]any)
		addr, ok := clusters[c["name"].(string)]
		if !ok {
			continue
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		portNum, err := strconv.Atoi(port)
		if err != nil {
			t.Fatal(err)
		}
		c["load_assignment"] = map[string]any{
			"cluster_name": c["name"],
			"endpoints": []any{map[string]any{"lb_endpoints": []any{map[string]any{"endpoint": map[string]any{
				"address": map[string]any{"socket_address": map[string]any{"address": host, "port_value": portNum}},
			}}}}},
		}
		seen++
	}
	if seen != len(clusters) {
		t.Fatalf("config has %d of the clusters %v", seen, clusters)
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
