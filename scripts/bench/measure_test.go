package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMedianOverRounds(t *testing.T) {
	p := func(v float64) *percentiles { return &percentiles{P50: v, P90: 2 * v, P99: 3 * v, Max: 4 * v, Mean: v} }
	tests := []struct {
		name     string
		rounds   []roundStats
		wantRPS  float64
		wantLat  *percentiles
		wantTTFB *percentiles
	}{
		{name: "none", wantRPS: 0},
		{
			name:    "one stalled round of three",
			rounds:  []roundStats{{Throughput: 100, Latency: p(1)}, {Throughput: 1, Latency: p(4000)}, {Throughput: 120, Latency: p(2)}},
			wantRPS: 100, wantLat: p(2),
		},
		{
			name:    "even count averages the middle two",
			rounds:  []roundStats{{Throughput: 10, Latency: p(1), TTFB: p(1)}, {Throughput: 30, Latency: p(3), TTFB: p(5)}},
			wantRPS: 20, wantLat: p(2), wantTTFB: p(3),
		},
		{
			name:    "rounds without TTFB are left out",
			rounds:  []roundStats{{Throughput: 5, Latency: p(1)}, {Throughput: 5, Latency: p(1), TTFB: p(7)}},
			wantRPS: 5, wantLat: p(1), wantTTFB: p(7),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rps := median(tt.rounds, func(r roundStats) float64 { return r.Throughput })
			lat := medianPercentiles(tt.rounds, func(r roundStats) *percentiles { return r.Latency })
			ttfb := medianPercentiles(tt.rounds, func(r roundStats) *percentiles { return r.TTFB })
			if diff := cmp.Diff([]any{tt.wantRPS, tt.wantLat, tt.wantTTFB}, []any{rps, lat, ttfb}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
