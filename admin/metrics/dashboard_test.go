package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"testing"
)

// metricName finds the metric names a PromQL expression reads.
var metricName = regexp.MustCompile(`(?:^|[^A-Za-z0-9_])((?:tollgate|go|process)_[A-Za-z0-9_]+)`)

// TestGrafanaDashboard: the sample dashboard is valid JSON, and every metric
// its queries read is one that tollgate exposes.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("../../examples/grafana/tollgate-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}

	// Every family, with series in each: a model recorded, a store wrapped.
	m := New(Config{Outbox: &fakeOutbox{}})
	m.models.record(spendLog("r1", "gpt-4o", 1, 1, 1))
	InstrumentStore(openBadger(t), m)
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var exposed []string
	for _, f := range families {
		exposed = append(exposed, f.GetName(), f.GetName()+"_bucket", f.GetName()+"_sum", f.GetName()+"_count")
	}

	queries := 0
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			queries++
			names := metricName.FindAllStringSubmatch(q.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q reads no tollgate, go or process metric", p.Title, q.Expr)
			}
			for _, n := range names {
				if !slices.Contains(exposed, n[1]) {
					t.Errorf("panel %q: %s is not exposed", p.Title, n[1])
				}
			}
		}
	}
	if dash.Title != "tollgate" || queries < 10 {
		t.Errorf("dashboard %q has %d queries, want the tollgate dashboard's", dash.Title, queries)
	}
}
