package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// runningTarget is a started target and what its probe learned.
type runningTarget struct {
	name string
	sys  *system
	url  string
	// costNano is one request's cost as tollgate reports it; 0 for other targets.
	costNano int64
	version  string
}

// measureAll starts every target, then runs o.rounds rounds; each round
// measures every mode and concurrency on every target in turn. Cells compared
// with each other are so measured seconds apart, which matters on a machine
// whose other load comes and goes. Each cell pools the samples of its rounds.
func measureAll(ctx context.Context, o *options, logf func(string, ...any)) (cells []cell, skipped []string, versions map[string]string, err error) {
	var targets []*runningTarget
	defer func() {
		for _, t := range targets {
			if stopErr := t.sys.stop(); stopErr != nil && err == nil {
				err = fmt.Errorf("%s: %w", targetLabels[t.name], stopErr)
			}
		}
	}()
	bodies := map[bool][][]byte{false: requestBodies(o.customers, false), true: requestBodies(o.customers, true)}
	versions = map[string]string{}
	for _, name := range o.targets {
		t, err := startTarget(ctx, o, name, bodies)
		if errors.Is(err, errSkip) {
			msg := fmt.Sprintf("%s: %v", targetLabels[name], err)
			logf("SKIPPING %s", msg)
			skipped = append(skipped, msg)
			continue
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", targetLabels[name], err)
		}
		targets = append(targets, t)
		versions[name] = t.version
	}

	type key struct {
		target string
		stream bool
		conc   int
	}
	acc := map[key]*accum{}
	for round := 1; round <= o.rounds; round++ {
		for _, stream := range o.modes {
			for _, conc := range o.concurrency {
				for _, t := range targets {
					k := key{t.name, stream, conc}
					if acc[k] == nil {
						n := len(t.sys.procs)
						acc[k] = &accum{target: t.name, stream: stream, conc: conc, costNano: t.costNano,
							cpu: make([]time.Duration, n), peakRSS: make([]int64, n), peakAnon: make([]int64, n)}
					}
					quiesce(ctx, targets)
					res, err := measureRound(ctx, o, t, bodies[stream], acc[k])
					if err != nil {
						return nil, nil, nil, fmt.Errorf("%s %s c=%d: %w", targetLabels[t.name], modeName(stream), conc, err)
					}
					logf("round %d/%d  %s", round, o.rounds, res.summary(targetLabels[t.name], modeName(stream), conc))
				}
			}
		}
	}
	for _, t := range targets {
		for _, stream := range o.modes {
			for _, conc := range o.concurrency {
				cells = append(cells, acc[key{t.name, stream, conc}].cell(o, t.sys))
			}
		}
	}
	return cells, skipped, versions, nil
}

func startTarget(ctx context.Context, o *options, name string, bodies map[bool][][]byte) (*runningTarget, error) {
	var sys *system
	var err error
	switch name {
	case targetEnvoy:
		sys, err = startEnvoyAlone(ctx, o)
	case targetNoopExtProc:
		sys, err = startNoopExtProc(ctx, o)
	case targetTollgate:
		sys, err = startTollgate(ctx, o, name, true)
	case targetTollgateNoSync:
		sys, err = startTollgate(ctx, o, name, false)
	case targetLiteLLM:
		sys, err = startLiteLLM(ctx, o)
	}
	if err != nil {
		return nil, err
	}
	// From here until the target stops, every warm-up, measured window and
	// pause between cells is sampled.
	for _, p := range sys.procs {
		if slices.Contains(extProcServers, p.name) {
			p.anon = watchAnon(p.pid(), anonSampleInterval)
		}
	}
	t := &runningTarget{name: name, sys: sys, url: sys.url + "/v1/chat/completions", version: sys.version}
	if err := t.probe(ctx, bodies); err != nil {
		_ = sys.stop()
		if name == targetLiteLLM {
			err = fmt.Errorf("%w: %v", errSkip, err)
		}
		return nil, err
	}
	return t, nil
}

// probe sends one request per mode: a target must answer correctly before it
// is loaded. It learns tollgate's cost per request and LiteLLM's version.
func (t *runningTarget) probe(ctx context.Context, bodies map[bool][][]byte) error {
	for _, stream := range []bool{false, true} {
		w := newWorker(loadSpec{URL: t.url, Key: benchKey, Stream: stream})
		s := w.do(ctx, bodies[stream][0])
		w.client.CloseIdleConnections()
		if s.err != nil {
			return fmt.Errorf("probe (%s): %w", modeName(stream), s.err)
		}
		if v := s.header.Get("x-litellm-version"); v != "" {
			t.version = "LiteLLM " + v
		}
		if !stream && t.sys.tollgateAdmin != "" {
			cost, err := parseCost(s.header.Get("x-litellm-response-cost"))
			if err != nil {
				return fmt.Errorf("probe: %w", err)
			}
			t.costNano = cost
		}
	}
	return nil
}

// quiesce waits, at most 5 s, until every target is idle (under 10 % of a CPU
// over 200 ms), so work left over from the last cell, such as Badger's
// compactions, does not land in the next one.
func quiesce(ctx context.Context, targets []*runningTarget) {
	total := func() time.Duration {
		var sum time.Duration
		for _, t := range targets {
			for _, p := range t.sys.procs {
				if st, err := readTree(p.pid()); err == nil {
					sum += st.CPU
				}
			}
		}
		return sum
	}
	const interval = 200 * time.Millisecond
	prev := total()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		cur := total()
		if cur-prev <= interval/10 {
			return
		}
		prev = cur
	}
}

// accum collects one cell's rounds.
type accum struct {
	target   string
	stream   bool
	conc     int
	costNano int64
	rounds   []roundStats
	requests int
	window   time.Duration
	ok       int
	errors   int
	firstErr string
	// cpu, peakRSS and peakAnon are per measured process, in system.procs
	// order; peakAnon stays 0 for processes without an anonWatch.
	cpu       []time.Duration
	peakRSS   []int64
	peakAnon  []int64
	driverCPU time.Duration
	// recordedNano is the spend tollgate recorded during the cell's rounds.
	recordedNano int64
}

// measureRound runs one round of a cell and adds it to a: samples, the
// processes' CPU time during the measured window and, for tollgate, the spend
// recorded during the whole round.
func measureRound(ctx context.Context, o *options, t *runningTarget, bodies [][]byte, a *accum) (loadResult, error) {
	sys := t.sys
	var spendBefore int64
	if sys.tollgateAdmin != "" {
		var err error
		if spendBefore, err = totalSpend(ctx, sys.tollgateAdmin); err != nil {
			return loadResult{}, err
		}
	}
	before := make([]procStats, len(sys.procs))
	var driverBefore time.Duration
	var snapErr error
	res := runLoad(ctx, loadSpec{
		URL: t.url, Key: benchKey, Bodies: bodies, Stream: a.stream, Concurrency: a.conc,
		Warmup: o.warmup, Duration: o.duration, MaxRequests: o.maxRequests,
		onMeasureStart: func() {
			for i, p := range sys.procs {
				st, err := readTree(p.pid())
				snapErr = errors.Join(snapErr, err)
				before[i] = st
			}
			var err error
			driverBefore, err = selfCPU()
			snapErr = errors.Join(snapErr, err)
		},
	})
	if err := ctx.Err(); err != nil {
		return loadResult{}, err
	}
	driverAfter, err := selfCPU()
	if err := errors.Join(snapErr, err); err != nil {
		return loadResult{}, err
	}
	for i, p := range sys.procs {
		select {
		case <-p.exited:
			return loadResult{}, fmt.Errorf("%s exited during the cell: %v\n%s", p.name, p.waitErr, p.logTail())
		default:
		}
		st, err := readTree(p.pid())
		if err != nil {
			return loadResult{}, err
		}
		a.cpu[i] += st.CPU - before[i].CPU
		a.peakRSS[i] = st.PeakRSS
		if p.anon != nil {
			if a.peakAnon[i], err = p.anon.peakNow(); err != nil {
				return loadResult{}, err
			}
		}
	}
	a.driverCPU += driverAfter - driverBefore
	a.requests += len(res.Latencies)
	a.rounds = append(a.rounds, roundStats{
		Requests:   len(res.Latencies),
		Throughput: float64(len(res.Latencies)) / res.Window.Seconds(),
		Latency:    summarize(res.Latencies),
		TTFB:       summarize(res.TTFB),
	})
	a.window += res.Window
	a.ok += res.OK
	a.errors += res.Errors
	if a.firstErr == "" {
		a.firstErr = res.FirstError
	}
	if sys.tollgateAdmin != "" {
		after, err := totalSpend(ctx, sys.tollgateAdmin)
		if err != nil {
			return loadResult{}, err
		}
		a.recordedNano += after - spendBefore
		if res.CostHeader != "" {
			if got, err := parseCost(res.CostHeader); err != nil || got != t.costNano {
				return loadResult{}, fmt.Errorf("x-litellm-response-cost %q under load, want %d nano-USD as in the probe", res.CostHeader, t.costNano)
			}
		}
	}
	return res, nil
}

// roundStats is one round of a cell.
type roundStats struct {
	Requests   int          `json:"requests"`
	Throughput float64      `json:"throughput_rps"`
	Latency    *percentiles `json:"latency"`
	TTFB       *percentiles `json:"ttfb,omitempty"`
}

// median is the median over rounds of f; the mean of the middle two for an
// even count. Over rounds, one stalled round (the machine is shared) moves the
// median far less than it moves pooled samples.
func median(rounds []roundStats, f func(roundStats) float64) float64 {
	v := make([]float64, len(rounds))
	for i, r := range rounds {
		v[i] = f(r)
	}
	slices.Sort(v)
	n := len(v)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// medianPercentiles takes the median of each percentile over the rounds that
// have them.
func medianPercentiles(rounds []roundStats, f func(roundStats) *percentiles) *percentiles {
	var have []roundStats
	for _, r := range rounds {
		if f(r) != nil {
			have = append(have, r)
		}
	}
	if len(have) == 0 {
		return nil
	}
	get := func(g func(*percentiles) float64) float64 {
		return median(have, func(r roundStats) float64 { return g(f(r)) })
	}
	return &percentiles{
		P50:  get(func(p *percentiles) float64 { return p.P50 }),
		P90:  get(func(p *percentiles) float64 { return p.P90 }),
		P99:  get(func(p *percentiles) float64 { return p.P99 }),
		Max:  get(func(p *percentiles) float64 { return p.Max }),
		Mean: get(func(p *percentiles) float64 { return p.Mean }),
	}
}

// cell turns the rounds into the reported cell: throughput and latency
// percentiles are medians over the rounds, CPU per request is over all rounds.
func (a *accum) cell(o *options, sys *system) cell {
	c := cell{
		Target:      a.target,
		Label:       targetLabels[a.target],
		Mode:        modeName(a.stream),
		Concurrency: a.conc,
		Rounds:      o.rounds,
		Requests:    a.requests,
		Errors:      a.errors,
		FirstError:  a.firstErr,
		Window:      a.window.Seconds(),
		Throughput:  median(a.rounds, func(r roundStats) float64 { return r.Throughput }),
		Latency:     medianPercentiles(a.rounds, func(r roundStats) *percentiles { return r.Latency }),
		TTFB:        medianPercentiles(a.rounds, func(r roundStats) *percentiles { return r.TTFB }),
		PerRound:    a.rounds,
	}
	c.DriverCPUPercent = 100 * a.driverCPU.Seconds() / a.window.Seconds() / float64(cpusOf(o.driverCPUs))
	var sutCPU time.Duration
	for i, p := range sys.procs {
		sutCPU += a.cpu[i]
		c.Processes = append(c.Processes, procUsage{
			Name:            p.name,
			CPUSeconds:      a.cpu[i].Seconds(),
			CPUPerRequestUS: perRequestUS(a.cpu[i], c.Requests),
			PeakRSSMB:       float64(a.peakRSS[i]) / (1 << 20),
			PeakAnonRSSMB:   float64(a.peakAnon[i]) / (1 << 20),
		})
	}
	c.SUTCPUPerRequestUS = perRequestUS(sutCPU, c.Requests)
	c.SUTCPUPercent = 100 * sutCPU.Seconds() / a.window.Seconds() / float64(cpusOf(o.sutCPUs))
	if sys.tollgateAdmin != "" {
		c.Metering = &metering{Served: a.ok, CostNano: a.costNano, Recorded: float64(a.recordedNano) / float64(a.costNano)}
	}
	return c
}

// summary is one progress line for a round.
func (r loadResult) summary(label, mode string, conc int) string {
	s := fmt.Sprintf("%-34s %-13s c=%-3d %7.0f req/s", label, mode, conc, float64(len(r.Latencies))/r.Window.Seconds())
	if p := summarize(r.Latencies); p != nil {
		s += fmt.Sprintf("  p50 %7.3f ms  p99 %8.3f ms", p.P50, p.P99)
	}
	if r.Errors > 0 {
		s += fmt.Sprintf("  ERRORS %d (first: %s)", r.Errors, r.FirstError)
	}
	return s
}
