// Package envoyexisting holds the snippets that add tollgate to an Envoy config
// you already run (README.md says where each goes) and Paste, which pastes
// them exactly that way. Tests use Paste to prove that base.yaml plus the
// snippets is the shipped envoy.yaml, and to run the result in a real Envoy,
// so the snippets, the sample and the instructions cannot drift apart.
package envoyexisting

import (
	"embed"
	"errors"
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Files are the snippets, base.yaml (a config before tollgate) and envoy.yaml
// (base.yaml with the snippets pasted in).
//
//go:embed *.yaml
var Files embed.FS

const (
	hcmName    = "envoy.filters.network.http_connection_manager"
	routerName = "envoy.filters.http.router"
)

// Paste returns base (an Envoy bootstrap config in YAML) with tollgate added:
// routes whose cluster is one of llmClusters get llm-route.yaml and go
// through http-filter.yaml, every other route gets other-route.yaml,
// listeners carrying LLM routes get listener.yaml, and cluster.yaml is added
// to the clusters. Routes must be inline (route_config, not RDS).
func Paste(base []byte, llmClusters ...string) ([]byte, error) {
	var cfg map[string]any
	if err := yaml.Unmarshal(base, &cfg); err != nil {
		return nil, fmt.Errorf("parse base config: %w", err)
	}
	var (
		filter, cluster                []any
		listener, llmRoute, otherRoute map[string]any
	)
	for name, dst := range map[string]any{
		"http-filter.yaml": &filter, "cluster.yaml": &cluster, "listener.yaml": &listener,
		"llm-route.yaml": &llmRoute, "other-route.yaml": &otherRoute,
	} {
		b, err := Files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		if err := yaml.Unmarshal(b, dst); err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
	}

	resources, _ := cfg["static_resources"].(map[string]any)
	if resources == nil {
		return nil, errors.New("base config has no static_resources")
	}
	pasted := 0
	for _, l := range mapsIn(resources["listeners"]) {
		withLLM := false
		for _, chain := range mapsIn(l["filter_chains"]) {
			for _, f := range mapsIn(chain["filters"]) {
				if f["name"] != hcmName {
					continue
				}
				hcm, _ := f["typed_config"].(map[string]any)
				ok, err := pasteHCM(hcm, llmClusters, filter, llmRoute, otherRoute)
				if err != nil {
					return nil, fmt.Errorf("listener %v: %w", l["name"], err)
				}
				withLLM = withLLM || ok
			}
		}
		if withLLM {
			merge(l, listener)
			pasted++
		}
	}
	if pasted == 0 {
		return nil, fmt.Errorf("no route in the base config goes to %v", llmClusters)
	}
	clusters, _ := resources["clusters"].([]any)
	resources["clusters"] = append(clusters, cluster...)
	return yaml.Marshal(cfg)
}

// pasteHCM adds tollgate to one HttpConnectionManager if it has an LLM route,
// and reports whether it did.
func pasteHCM(hcm map[string]any, llmClusters []string, filter []any, llmRoute, otherRoute map[string]any) (bool, error) {
	routeConfig, _ := hcm["route_config"].(map[string]any)
	var llm, other []map[string]any
	for _, vh := range mapsIn(routeConfig["virtual_hosts"]) {
		for _, r := range mapsIn(vh["routes"]) {
			action, _ := r["route"].(map[string]any)
			if cluster, _ := action["cluster"].(string); slices.Contains(llmClusters, cluster) {
				llm = append(llm, action)
			} else {
				other = append(other, r)
			}
		}
	}
	if len(llm) == 0 {
		return false, nil
	}
	filters, _ := hcm["http_filters"].([]any)
	router := slices.IndexFunc(filters, func(f any) bool {
		m, _ := f.(map[string]any)
		return m["name"] == routerName
	})
	if router < 0 {
		return false, fmt.Errorf("http_filters has no %s", routerName)
	}
	hcm["http_filters"] = slices.Insert(filters, router, filter...)
	for _, action := range llm {
		merge(action, llmRoute)
	}
	for _, r := range other {
		merge(r, otherRoute)
	}
	return true, nil
}

// mapsIn returns the mappings in a YAML sequence, skipping anything else.
func mapsIn(v any) []map[string]any {
	list, _ := v.([]any)
	var out []map[string]any
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// merge sets src's keys in dst, merging mappings present in both, the way a
// person pastes keys next to existing ones. src is never aliased into dst, so
// one snippet can be merged into many places.
func merge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			dm, ok := dst[k].(map[string]any)
			if !ok {
				dm = map[string]any{}
				dst[k] = dm
			}
			merge(dm, sm)
			continue
		}
		dst[k] = v
	}
}
