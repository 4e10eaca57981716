package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReportFinish(t *testing.T) {
	lat := func(p50, p99 float64) *percentiles {
		return &percentiles{P50: p50, P90: p50, P99: p99, Max: p99, Mean: p50}
	}
	tg := func(mode string, conc int, rps float64, l *percentiles, rss, anon float64, m *metering) cell {
		return cell{Target: targetTollgate, Label: targetLabels[targetTollgate], Mode: mode, Concurrency: conc, Throughput: rps, Latency: l,
			Processes: []procUsage{{Name: "envoy", PeakRSSMB: 500}, {Name: "tollgate", PeakRSSMB: rss, PeakAnonRSSMB: anon}}, Metering: m}
	}
	other := func(target, mode string, conc int, rps float64, l *percentiles) cell {
		return cell{Target: target, Label: targetLabels[target], Mode: mode, Concurrency: conc, Throughput: rps, Latency: l}
	}
	noop := func(mode string, conc int, rps float64, l, ttfb *percentiles) cell {
		return cell{Target: targetNoopExtProc, Label: targetLabels[targetNoopExtProc], Mode: mode, Concurrency: conc, Throughput: rps, Latency: l, TTFB: ttfb,
			Processes:          []procUsage{{Name: "envoy", CPUPerRequestUS: 30, PeakRSSMB: 500}, {Name: "noop-extproc", CPUPerRequestUS: 12, PeakRSSMB: 15, PeakAnonRSSMB: 9}},
			SUTCPUPerRequestUS: 42, SUTCPUPercent: 97}
	}
	r := &report{Cells: []cell{
		other(targetEnvoy, "non-streaming", 1, 5000, lat(0.2, 0.4)),
		other(targetEnvoy, "non-streaming", 16, 10000, lat(1.0, 2.0)),
		{Target: targetEnvoy, Label: targetLabels[targetEnvoy], Mode: "non-streaming", Concurrency: 64, Throughput: 10000, Latency: lat(6.0, 9.0), DriverCPUPercent: 95},
		tg("non-streaming", 1, 3000, lat(0.5, 1.0), 40, 30, &metering{Served: 10, Recorded: 10}),
		// The anonymous peak is the highest of any cell, not the VmHWM peak's cell's.
		tg("non-streaming", 16, 8000, lat(1.25, 4.0), 60, 64, &metering{Served: 20, Recorded: 20}),
		tg("non-streaming", 64, 5000, lat(12.0, 20.0), 160, 50, &metering{Served: 30, Recorded: 29}),
		// Sync off is reported but never judged.
		{Target: targetTollgateNoSync, Mode: "non-streaming", Concurrency: 64, Throughput: 1, Processes: []procUsage{{Name: "tollgate", PeakRSSMB: 999, PeakAnonRSSMB: 999}}},
		other(targetLiteLLM, "non-streaming", 1, 300, lat(4.2, 9.0)),
		other(targetLiteLLM, "non-streaming", 16, 400, lat(31.0, 50.0)),
		other(targetLiteLLM, "non-streaming", 64, 500, lat(130.0, 200.0)),
		noop("non-streaming", 16, 9000, lat(1.125, 2.5), nil),
		noop("non-streaming", 64, 8000, lat(7.0, 10.0), nil),
		{Target: targetEnvoy, Label: targetLabels[targetEnvoy], Mode: "streaming", Concurrency: 64, Throughput: 6000, Latency: lat(8.0, 12.0), TTFB: lat(2.0, 3.0)},
		noop("streaming", 64, 4500, lat(8.5, 13.0), lat(2.25, 3.5)),
	}}
	r.finish()

	if diff := cmp.Diff(&percentiles{P50: 0.25, P90: 0.25, P99: 2, Max: 2, Mean: 0.25}, r.find(targetTollgate, "non-streaming", 16).Added); diff != "" {
		t.Errorf("added latency (-want +got):\n%s", diff)
	}
	if r.find(targetEnvoy, "non-streaming", 16).Added != nil {
		t.Error("Envoy alone has an added latency over itself")
	}

	type row struct{ Name, Goal, Measured, Met string }
	var got []row
	for _, c := range r.Targets {
		met := "n/a"
		if c.Met != nil {
			met = map[bool]string{true: "met", false: "not met"}[*c.Met]
		}
		got = append(got, row{c.Name, c.Goal, c.Measured, met})
	}
	const floor = "context: floor of any ext_proc filter (not a target)"
	want := []row{
		{"Added latency over Envoy alone, non-streaming, c=16, p50", "≤ 0.3 ms", "0.250 ms", "met"},
		{"Added latency over Envoy alone, non-streaming, c=16, p99", "≤ 1.5 ms", "2.000 ms", "not met"},
		{"Envoy + no-op ext_proc: added latency over Envoy alone, non-streaming, c=16, p50", floor, "0.125 ms", "n/a"},
		{"Envoy + no-op ext_proc: added latency over Envoy alone, non-streaming, c=16, p99", floor, "0.500 ms", "n/a"},
		{"Throughput vs Envoy alone, non-streaming, c=64", "≥ 60 %", "50 % (5000 vs 10000 req/s); Envoy alone was load-generator-bound, so this overstates the ratio", "not met"},
		{"Throughput vs Envoy alone, streaming, c=64", "≥ 60 %", "not measured", "n/a"},
		{"Envoy + no-op ext_proc: throughput vs Envoy alone, non-streaming, c=64", floor, "80 % (8000 vs 10000 req/s); Envoy alone was load-generator-bound, so this overstates the ratio", "n/a"},
		{"Envoy + no-op ext_proc: throughput vs Envoy alone, streaming, c=64", floor, "75 % (4500 vs 6000 req/s)", "n/a"},
		{"Throughput vs LiteLLM, non-streaming, c=64", "≥ 10×", "10.0× (5000 vs 500 req/s)", "met"},
		{"Throughput vs LiteLLM, streaming, c=64", "≥ 10×", "not measured", "n/a"},
		{"Added p50 latency vs LiteLLM's, non-streaming, c=1", "≤ 1/10", "1/13.3 (0.300 vs 4.000 ms)", "met"},
		{"Added p50 latency vs LiteLLM's, non-streaming, c=16", "≤ 1/10", "1/120.0 (0.250 vs 30.000 ms)", "met"},
		{"tollgate peak RSS during the load test", "≤ 150 MB", "168 MB (VmHWM; anonymous 67 MB, the rest file-backed: the executable and Badger's memory-mapped files)", "not met"},
		{"Every served non-streaming request recorded once under load", "recorded = served", "59 of 60", "not met"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}

	md := r.markdown()
	for _, line := range []string{
		"| Envoy + tollgate | 16 | 8000 | 1.250 | 1.250 | 4.000 | +0.250 | +0.250 | +2.000 | 0 | 0 | 0 | 0 | 60 | 64 | 0 | 20/20 |",
		"| Envoy alone | 16 | 10000 | 1.000 | 1.000 | 2.000 | — | — | — | 0 | 0 | 0 | — | — | — | 0 | — |",
		"| tollgate peak RSS during the load test | ≤ 150 MB | 168 MB (VmHWM; anonymous 67 MB, the rest file-backed: the executable and Badger's memory-mapped files) | **not met** |",
		"| Envoy alone | 64 | 10000 | 6.000 | 6.000 | 9.000 | — | — | — | 0 | 0 | 0 | — | — | — | 95 ⚠ | — |",
		"| Envoy + no-op ext_proc | 16 | 9000 | 1.125 | 1.125 | 2.500 | +0.125 | +0.125 | +0.500 | 0 | 42 | 97 | 12 | 15 | 9 | 0 | — |",
		"| Envoy + no-op ext_proc | 64 | 4500 | 8.500 | 8.500 | 13.000 | +0.500 | +0.500 | +1.000 | 2.250 | 3.500 | +0.250 | 0 | 42 | 97 | 12 | 15 | 9 | 0 | — |",
		"| Envoy + no-op ext_proc: throughput vs Envoy alone, streaming, c=64 | context: floor of any ext_proc filter (not a target) | 75 % (4500 vs 6000 req/s) | — |",
		"| target | c | req/s | p50 | p90 | p99 | +p50 | +p90 | +p99 | errors | SUT CPU µs/req | SUT CPU % | ext_proc CPU µs/req | ext_proc peak RSS MiB | ext_proc peak anon RSS MiB | driver CPU % | metered |\n" +
			"|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
		"| target | c | req/s | p50 | p90 | p99 | +p50 | +p90 | +p99 | TTFB p50 | TTFB p99 | +TTFB p50 | errors | SUT CPU µs/req | SUT CPU % | ext_proc CPU µs/req | ext_proc peak RSS MiB | ext_proc peak anon RSS MiB | driver CPU % | metered |\n" +
			"|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
		"Its peak anon RSS is the highest RssAnon (heap, stacks, runtime), sampled every 100ms from the target's start. ",
	} {
		if !strings.Contains(md, line) {
			t.Errorf("markdown lacks %q:\n%s", line, md)
		}
	}
	envoyOnly := &report{Cells: []cell{other(targetEnvoy, "non-streaming", 1, 5000, lat(0.2, 0.4))}}
	envoyOnly.finish()
	if md := envoyOnly.markdown(); strings.Contains(md, "#### Streaming") {
		t.Errorf("markdown has a streaming table without streaming cells:\n%s", md)
	}
}
