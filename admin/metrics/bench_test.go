package metrics

import (
	"testing"
	"time"
)

// BenchmarkRequest is the metric work of one request: a decision, four
// ext_proc messages and one recorded spend log, from parallel streams.
func BenchmarkRequest(b *testing.B) {
	m := New(Config{})
	log := spendLog("r1", "gpt-4o", 1500, 1000, 200)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Decision(OutcomeAllowed)
			m.ObservePhase(PhaseRequestHeaders, 20*time.Microsecond)
			m.ObservePhase(PhaseRequestBody, 80*time.Microsecond)
			m.ObservePhase(PhaseResponseHeaders, 10*time.Microsecond)
			m.ObservePhase(PhaseResponseBody, 300*time.Microsecond)
			m.models.record(log)
		}
	})
}
