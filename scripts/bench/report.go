package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// report is everything one run measured; it is written as results.json and
// rendered as results.md.
type report struct {
	Started  time.Time `json:"started"`
	Command  string    `json:"command"`
	Machine  machine   `json:"machine"`
	Settings settings  `json:"settings"`
	Cells    []cell    `json:"cells"`
	Skipped  []string  `json:"skipped,omitempty"`
	Targets  []check   `json:"targets"`
}

type machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemoryMiB int64  `json:"memory_mib"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
	Envoy     string `json:"envoy"`
	LiteLLM   string `json:"litellm,omitempty"`
	Commit    string `json:"tollgate_commit"`
}

type settings struct {
	Quick        bool    `json:"quick"`
	Rounds       int     `json:"rounds"`
	WarmupS      float64 `json:"warmup_s"`
	DurationS    float64 `json:"duration_s"`
	MaxRequests  int     `json:"max_requests"`
	Customers    int     `json:"customers"`
	SUTCPUs      string  `json:"sut_cpus"`
	DriverCPUs   string  `json:"driver_cpus"`
	EnvoyWorkers int     `json:"envoy_workers"`
	BodyBytes    [2]int  `json:"body_bytes"` // non-streaming, streaming
}

func newSettings(o *options) settings {
	return settings{
		Quick:        o.quick,
		Rounds:       o.rounds,
		WarmupS:      o.warmup.Seconds(),
		DurationS:    o.duration.Seconds(),
		MaxRequests:  o.maxRequests,
		Customers:    o.customers,
		SUTCPUs:      o.sutCPUs,
		DriverCPUs:   o.driverCPUs,
		EnvoyWorkers: o.envoyWorkers,
		BodyBytes:    [2]int{len(requestBodies(1, false)[0]), len(requestBodies(1, true)[0])},
	}
}

// cell is one target × mode × concurrency.
type cell struct {
	Target      string `json:"target"`
	Label       string `json:"label"`
	Mode        string `json:"mode"`
	Concurrency int    `json:"concurrency"`
	Rounds      int    `json:"rounds"`
	// Requests are the measured successful requests of all rounds;
	// Throughput, Latency and TTFB are medians over the rounds in PerRound.
	Requests   int          `json:"requests"`
	Errors     int          `json:"errors"`
	FirstError string       `json:"first_error,omitempty"`
	Window     float64      `json:"window_s"`
	Throughput float64      `json:"throughput_rps"`
	Latency    *percentiles `json:"latency"`
	TTFB       *percentiles `json:"ttfb,omitempty"`
	// Added and AddedTTFB are this cell's percentiles minus Envoy alone's in
	// the same mode and concurrency.
	Added              *percentiles `json:"added_latency,omitempty"`
	AddedTTFB          *percentiles `json:"added_ttfb,omitempty"`
	Processes          []procUsage  `json:"processes"`
	SUTCPUPerRequestUS float64      `json:"sut_cpu_per_request_us"`
	SUTCPUPercent      float64      `json:"sut_cpu_percent"`
	DriverCPUPercent   float64      `json:"driver_cpu_percent"`
	Metering           *metering    `json:"metering,omitempty"`
	PerRound           []roundStats `json:"per_round,omitempty"`
}

// procUsage is one measured process (with its children) during the window.
type procUsage struct {
	Name            string  `json:"name"`
	CPUSeconds      float64 `json:"cpu_s"`
	CPUPerRequestUS float64 `json:"cpu_per_request_us"`
	// PeakRSSMB is VmHWM at the end of the cell: the peak since the process started.
	PeakRSSMB float64 `json:"peak_rss_mib"`
	// PeakAnonRSSMB is the highest RssAnon sampled from when the target
	// started serving to the end of the cell; ext_proc servers only.
	PeakAnonRSSMB float64 `json:"peak_anon_rss_mib,omitempty"`
}

// metering compares requests served with spend recorded during a tollgate cell
// (warm-up included): Recorded is the spend added divided by one request's cost.
type metering struct {
	Served   int     `json:"served"`
	Recorded float64 `json:"recorded"`
	CostNano int64   `json:"cost_per_request_nano_usd"`
}

func (c *cell) process(name string) *procUsage {
	for i := range c.Processes {
		if c.Processes[i].Name == name {
			return &c.Processes[i]
		}
	}
	return nil
}

// extProcServer is the cell's ext_proc server process; nil for targets without one.
func (c *cell) extProcServer() *procUsage {
	for _, name := range extProcServers {
		if p := c.process(name); p != nil {
			return p
		}
	}
	return nil
}

// driverBoundPercent is the load generator CPU use above which a cell measured
// the load generator rather than the target.
const driverBoundPercent = 90

func (c *cell) driverBound() bool { return c.DriverCPUPercent >= driverBoundPercent }

func (c *cell) summary() string {
	s := fmt.Sprintf("%-34s %-13s c=%-3d %8.0f req/s", c.Label, c.Mode, c.Concurrency, c.Throughput)
	if c.Latency != nil {
		s += fmt.Sprintf("  p50 %.3f ms  p99 %.3f ms", c.Latency.P50, c.Latency.P99)
	}
	s += fmt.Sprintf("  SUT CPU %.0f%%  driver CPU %.0f%%", c.SUTCPUPercent, c.DriverCPUPercent)
	if c.Errors > 0 {
		s += fmt.Sprintf("  ERRORS %d (first: %s)", c.Errors, c.FirstError)
	}
	if m := c.Metering; m != nil {
		s += fmt.Sprintf("  metered %s/%d", fmtCount(m.Recorded), m.Served)
	}
	return s
}

// finish fills in the added latencies and evaluates the targets.
func (r *report) finish() {
	base := map[string]*cell{}
	for i := range r.Cells {
		if c := &r.Cells[i]; c.Target == targetEnvoy {
			base[cellKey(c.Mode, c.Concurrency)] = c
		}
	}
	for i := range r.Cells {
		c := &r.Cells[i]
		b := base[cellKey(c.Mode, c.Concurrency)]
		if c.Target == targetEnvoy || b == nil {
			continue
		}
		c.Added = subtract(c.Latency, b.Latency)
		c.AddedTTFB = subtract(c.TTFB, b.TTFB)
	}
	r.Targets = r.checks()
}

func cellKey(mode string, conc int) string { return mode + "/" + strconv.Itoa(conc) }

func subtract(a, b *percentiles) *percentiles {
	if a == nil || b == nil {
		return nil
	}
	return &percentiles{P50: a.P50 - b.P50, P90: a.P90 - b.P90, P99: a.P99 - b.P99, Max: a.Max - b.Max, Mean: a.Mean - b.Mean}
}

func (r *report) find(target, mode string, conc int) *cell {
	for i := range r.Cells {
		if c := &r.Cells[i]; c.Target == target && c.Mode == mode && c.Concurrency == conc {
			return c
		}
	}
	return nil
}

// check is one of the load-test targets, met or not.
type check struct {
	Name     string `json:"name"`
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	// Met is nil when the cells it needs were not measured, and on context
	// rows, which are no target.
	Met *bool `json:"met"`
}

// noopContext is the goal column of the rows that measure Envoy + the no-op
// ext_proc server: they are no target, they show how much of tollgate's
// distance from Envoy alone any ext_proc filter has.
const noopContext = "context: floor of any ext_proc filter (not a target)"

// checks evaluates the load-test targets of issue 6 on the shipped
// configuration (tollgate with sync writes on), with the no-op ext_proc
// server's numbers beside them.
func (r *report) checks() []check {
	var out []check
	add := func(name, goal string, measured func() (string, bool, bool)) {
		c := check{Name: name, Goal: goal, Measured: "not measured"}
		if m, met, ok := measured(); ok {
			c.Measured, c.Met = m, &met
		}
		out = append(out, c)
	}
	addContext := func(name string, measured func() (string, bool, bool)) {
		c := check{Name: name, Goal: noopContext, Measured: "not measured"}
		if m, _, ok := measured(); ok {
			c.Measured = m
		}
		out = append(out, c)
	}
	const ns = "non-streaming"
	noop := targetLabels[targetNoopExtProc] + ": "
	type pctl struct {
		name  string
		limit float64
		get   func(*percentiles) float64
	}
	pctls := []pctl{
		{"p50", 0.3, func(p *percentiles) float64 { return p.P50 }},
		{"p99", 1.5, func(p *percentiles) float64 { return p.P99 }},
	}
	addedLatency := func(target string, p pctl) func() (string, bool, bool) {
		return func() (string, bool, bool) {
			c := r.find(target, ns, 16)
			if c == nil || c.Added == nil {
				return "", false, false
			}
			v := p.get(c.Added)
			return fmt.Sprintf("%.3f ms", v), v <= p.limit, true
		}
	}
	for _, p := range pctls {
		add("Added latency over Envoy alone, non-streaming, c=16, "+p.name, fmt.Sprintf("≤ %.1f ms", p.limit), addedLatency(targetTollgate, p))
	}
	for _, p := range pctls {
		addContext(noop+"added latency over Envoy alone, non-streaming, c=16, "+p.name, addedLatency(targetNoopExtProc, p))
	}
	throughput := func(target, mode string) func() (string, bool, bool) {
		return func() (string, bool, bool) {
			t, e := r.find(target, mode, 64), r.find(targetEnvoy, mode, 64)
			if t == nil || e == nil || e.Throughput == 0 {
				return "", false, false
			}
			ratio := t.Throughput / e.Throughput
			m := fmt.Sprintf("%.0f %% (%.0f vs %.0f req/s)", 100*ratio, t.Throughput, e.Throughput)
			if e.driverBound() {
				m += "; Envoy alone was load-generator-bound, so this overstates the ratio"
			}
			return m, ratio >= 0.6, true
		}
	}
	for _, mode := range []string{ns, "streaming"} {
		add("Throughput vs Envoy alone, "+mode+", c=64", "≥ 60 %", throughput(targetTollgate, mode))
	}
	for _, mode := range []string{ns, "streaming"} {
		addContext(noop+"throughput vs Envoy alone, "+mode+", c=64", throughput(targetNoopExtProc, mode))
	}
	for _, mode := range []string{ns, "streaming"} {
		add("Throughput vs LiteLLM, "+mode+", c=64", "≥ 10×", func() (string, bool, bool) {
			t, l := r.find(targetTollgate, mode, 64), r.find(targetLiteLLM, mode, 64)
			if t == nil || l == nil || l.Throughput == 0 {
				return "", false, false
			}
			ratio := t.Throughput / l.Throughput
			return fmt.Sprintf("%.1f× (%.0f vs %.0f req/s)", ratio, t.Throughput, l.Throughput), ratio >= 10, true
		})
	}
	for _, conc := range []int{1, 16} {
		add(fmt.Sprintf("Added p50 latency vs LiteLLM's, non-streaming, c=%d", conc), "≤ 1/10", func() (string, bool, bool) {
			t, l := r.find(targetTollgate, ns, conc), r.find(targetLiteLLM, ns, conc)
			if t == nil || l == nil || t.Added == nil || l.Added == nil || l.Added.P50 <= 0 {
				return "", false, false
			}
			ratio := t.Added.P50 / l.Added.P50
			return fmt.Sprintf("1/%.1f (%.3f vs %.3f ms)", 1/math.Max(ratio, 1e-9), t.Added.P50, l.Added.P50), ratio <= 0.1, true
		})
	}
	add("tollgate peak RSS during the load test", "≤ 150 MB", func() (string, bool, bool) {
		peak, anon, seen := 0.0, 0.0, false
		for i := range r.Cells {
			if p := r.Cells[i].process("tollgate"); p != nil && r.Cells[i].Target == targetTollgate {
				peak, anon, seen = math.Max(peak, p.PeakRSSMB), math.Max(anon, p.PeakAnonRSSMB), true
			}
		}
		// MB as in the issue: 10^6 bytes.
		mb, anonMB := peak*(1<<20)/1e6, anon*(1<<20)/1e6
		return fmt.Sprintf("%.0f MB (VmHWM; anonymous %.0f MB, the rest file-backed: the executable and Badger's memory-mapped files)", mb, anonMB), mb <= 150, seen
	})
	add("Every served non-streaming request recorded once under load", "recorded = served", func() (string, bool, bool) {
		served, recorded, seen := 0, 0.0, false
		for i := range r.Cells {
			c := &r.Cells[i]
			if c.Target == targetTollgate && c.Mode == ns && c.Metering != nil {
				served, recorded, seen = served+c.Metering.Served, recorded+c.Metering.Recorded, true
			}
		}
		return fmt.Sprintf("%s of %d", fmtCount(recorded), served), recorded == float64(served), seen
	})
	return out
}

func fmtCount(f float64) string {
	if f == math.Trunc(f) {
		return strconv.FormatFloat(f, 'f', 0, 64)
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

// markdown renders the report for BENCHMARKS.md.
func (r *report) markdown() string {
	var b strings.Builder
	m, s := r.Machine, r.Settings
	fmt.Fprintf(&b, "### Load test, %s\n\n", r.Started.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "Machine: %d × %s, %d MiB RAM, Linux %s, %s. tollgate %s, %s", m.CPUs, m.CPUModel, m.MemoryMiB, m.Kernel, m.Go, m.Commit, m.Envoy)
	if m.LiteLLM != "" {
		fmt.Fprintf(&b, ", %s", m.LiteLLM)
	}
	fmt.Fprintf(&b, ".  \nCommand: `%s`. Per cell: %d round(s), targets interleaved, each %gs warm-up then %gs measured (at most %d requests); "+
		"req/s and latencies are medians over the rounds; "+
		"%d customers; request bodies %d B (non-streaming) and %d B (streaming).  \n",
		r.Command, s.Rounds, s.WarmupS, s.DurationS, s.MaxRequests, s.Customers, s.BodyBytes[0], s.BodyBytes[1])
	if s.SUTCPUs != "" {
		fmt.Fprintf(&b, "Pinning: systems under test on CPU %s (Envoy --concurrency %d), load generator and mock upstream on CPU %s.\n\n", s.SUTCPUs, s.EnvoyWorkers, s.DriverCPUs)
	} else {
		fmt.Fprintf(&b, "Pinning: none (Envoy --concurrency %d).\n\n", s.EnvoyWorkers)
	}
	b.WriteString("Latencies in ms; `+` columns are added latency over Envoy alone at the same mode and concurrency (difference of the percentiles). " +
		"CPU µs/req is CPU time of the measured processes per request; SUT CPU % is of the pinned CPUs. " +
		"The ext_proc columns are the ext_proc server's process alone: tollgate, or the no-op server of Envoy + no-op ext_proc " +
		"(Envoy with tollgate's config and an ext_proc server that only answers, the floor of any ext_proc filter). " +
		"Its peak RSS is VmHWM since it started, file-backed pages included: the executable's and, for tollgate, " +
		"Badger's memory-mapped tables and logs, which grow with the data written; the kernel can reclaim them. " +
		"Its peak anon RSS is the highest RssAnon (heap, stacks, runtime), sampled every " + anonSampleInterval.String() + " from the target's start. " +
		"Metered: requests whose spend tollgate recorded / requests served. " +
		"⚠ marks cells where the load generator used ≥ 90 % of its CPUs: there it, not the target, set the pace.\n\n")
	for _, mode := range []string{"non-streaming", "streaming"} {
		r.table(&b, mode)
	}
	if len(r.Skipped) > 0 {
		b.WriteString("Skipped:\n\n")
		for _, sk := range r.Skipped {
			fmt.Fprintf(&b, "- %s\n", sk)
		}
		b.WriteString("\n")
	}
	b.WriteString("#### Targets (issue 6)\n\n| target | goal | measured | met |\n|---|---|---|---|\n")
	for _, c := range r.Targets {
		met := "—"
		if c.Met != nil {
			met = map[bool]string{true: "met", false: "**not met**"}[*c.Met]
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", c.Name, c.Goal, c.Measured, met)
	}
	b.WriteString("\n")
	return b.String()
}

func (r *report) table(b *strings.Builder, mode string) {
	var cells []*cell
	for i := range r.Cells {
		if r.Cells[i].Mode == mode {
			cells = append(cells, &r.Cells[i])
		}
	}
	if len(cells) == 0 {
		return
	}
	stream := mode == "streaming"
	fmt.Fprintf(b, "#### %s\n\n", strings.ToUpper(mode[:1])+mode[1:])
	b.WriteString("| target | c | req/s | p50 | p90 | p99 | +p50 | +p90 | +p99 |")
	sep := "|---|--:|--:|--:|--:|--:|--:|--:|--:|"
	if stream {
		b.WriteString(" TTFB p50 | TTFB p99 | +TTFB p50 |")
		sep += "--:|--:|--:|"
	}
	b.WriteString(" errors | SUT CPU µs/req | SUT CPU % | ext_proc CPU µs/req | ext_proc peak RSS MiB | ext_proc peak anon RSS MiB | driver CPU % | metered |\n")
	sep += "--:|--:|--:|--:|--:|--:|--:|--:|\n"
	b.WriteString(sep)
	for _, c := range cells {
		lat := c.Latency
		if lat == nil {
			lat = &percentiles{}
		}
		fmt.Fprintf(b, "| %s | %d | %.0f | %.3f | %.3f | %.3f | %s | %s | %s |", c.Label, c.Concurrency, c.Throughput,
			lat.P50, lat.P90, lat.P99, added(c.Added, func(p *percentiles) float64 { return p.P50 }),
			added(c.Added, func(p *percentiles) float64 { return p.P90 }), added(c.Added, func(p *percentiles) float64 { return p.P99 }))
		if stream {
			ttfb := c.TTFB
			if ttfb == nil {
				ttfb = &percentiles{}
			}
			fmt.Fprintf(b, " %.3f | %.3f | %s |", ttfb.P50, ttfb.P99, added(c.AddedTTFB, func(p *percentiles) float64 { return p.P50 }))
		}
		xpCPU, xpRSS, xpAnon, metered := "—", "—", "—", "—"
		if p := c.extProcServer(); p != nil {
			xpCPU, xpRSS, xpAnon = fmt.Sprintf("%.0f", p.CPUPerRequestUS), fmt.Sprintf("%.0f", p.PeakRSSMB), fmt.Sprintf("%.0f", p.PeakAnonRSSMB)
		}
		if m := c.Metering; m != nil {
			metered = fmt.Sprintf("%s/%d", fmtCount(m.Recorded), m.Served)
		}
		driver := fmt.Sprintf("%.0f", c.DriverCPUPercent)
		if c.driverBound() {
			driver += " ⚠"
		}
		fmt.Fprintf(b, " %d | %.0f | %.0f | %s | %s | %s | %s | %s |\n", c.Errors, c.SUTCPUPerRequestUS, c.SUTCPUPercent, xpCPU, xpRSS, xpAnon, driver, metered)
	}
	b.WriteString("\n")
}

func added(p *percentiles, get func(*percentiles) float64) string {
	if p == nil {
		return "—"
	}
	return fmt.Sprintf("%+.3f", get(p))
}

// describeMachine reads the CPU model, memory and kernel from /proc. It runs
// before the benchmark pins itself, so CPUs counts the whole machine.
func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), CPUModel: "unknown", Kernel: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel = procField(b, "model name")
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		kb, _, _ := strings.Cut(procField(b, "MemTotal"), " ")
		if n, err := strconv.ParseInt(kb, 10, 64); err == nil {
			m.MemoryMiB = n >> 10
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// procField returns the value of the first "name: value" line.
func procField(b []byte, name string) string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
