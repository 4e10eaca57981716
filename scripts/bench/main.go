// Command bench is tollgate's load benchmark, run by `make bench`. In one run,
// on one machine, with one load generator and the same request bodies, it
// measures Envoy alone, Envoy + a no-op ext_proc server (the floor of any
// ext_proc filter), Envoy + tollgate and LiteLLM's proxy in front of the same
// fast mock upstream, non-streaming and streaming, at several concurrencies,
// and writes a markdown table (for BENCHMARKS.md) and the raw results as JSON.
//
// On a 2-core machine the systems under test (Envoy, the ext_proc servers,
// LiteLLM) are pinned to CPU 0 and the load generator with the mock upstream
// to CPU 1, so the driver never takes CPU from what it measures; see
// BENCHMARKS.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tollgate-dev/tollgate/envoy"
)

// benchKey is the master key of tollgate and LiteLLM; every request carries it.
const benchKey = "sk-bench-master-key"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the parsed flags plus what run learns before measuring.
type options struct {
	quick        bool
	targets      []string
	modes        []bool // stream?
	concurrency  []int
	rounds       int
	warmup       time.Duration
	duration     time.Duration
	maxRequests  int
	customers    int
	tollgateBin  string
	envoyBin     string
	litellmBin   string
	outDir       string
	keep         bool
	sutCPUs      string
	driverCPUs   string
	envoyWorkers int

	workDir      string
	mockAddr     string
	commit       string
	envoyVersion string
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	var targets, modes, conc string
	fs.BoolVar(&o.quick, "quick", false, "one small cell per target and mode (concurrency 4, 1s), to check the harness")
	fs.StringVar(&targets, "targets", "envoy,noop-extproc,tollgate,tollgate-nosync,litellm", "comma-separated targets: envoy, noop-extproc, tollgate, tollgate-nosync, litellm")
	fs.StringVar(&modes, "modes", "non-streaming,streaming", "comma-separated modes: non-streaming, streaming")
	fs.StringVar(&conc, "concurrency", "1,16,64", "comma-separated concurrencies")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds: each measures every cell once, targets interleaved; a cell reports the median over its rounds")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up per cell and round")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "measured time per cell and round")
	fs.IntVar(&o.maxRequests, "max-requests", 250_000, "cap on measured requests per cell and round (0 = none)")
	fs.IntVar(&o.customers, "customers", 100, "distinct customers (request bodies' user) the requests rotate through")
	fs.StringVar(&o.tollgateBin, "tollgate", "bin/tollgate", "tollgate binary")
	fs.StringVar(&o.envoyBin, "envoy", "", "Envoy binary (default: $ENVOY_BIN, .venv/bin/envoy, then $PATH)")
	fs.StringVar(&o.litellmBin, "litellm", ".venv-litellm/bin/litellm", "LiteLLM proxy CLI; the litellm target is skipped when it is missing")
	fs.StringVar(&o.outDir, "out", "bench-results", "directory for results.md and results.json")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (configs, logs, data) instead of deleting it")
	defaultSUT, defaultDriver := "", ""
	if runtime.NumCPU() >= 2 {
		defaultSUT, defaultDriver = "0", "1"
	}
	fs.StringVar(&o.sutCPUs, "sut-cpus", defaultSUT, "CPUs (taskset list) for Envoy, the ext_proc servers and LiteLLM; empty = unpinned")
	fs.StringVar(&o.driverCPUs, "driver-cpus", defaultDriver, "CPUs for this load generator and the mock upstream; empty = unpinned")
	fs.IntVar(&o.envoyWorkers, "envoy-workers", 1, "Envoy --concurrency (worker threads)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		if !set["targets"] {
			targets = "envoy,noop-extproc,tollgate,litellm"
		}
		if !set["concurrency"] {
			conc = "4"
		}
		if !set["rounds"] {
			o.rounds = 1
		}
		if !set["warmup"] {
			o.warmup = 250 * time.Millisecond
		}
		if !set["duration"] {
			o.duration = time.Second
		}
	}
	for t := range strings.SplitSeq(targets, ",") {
		if _, ok := targetLabels[t]; !ok {
			return nil, fmt.Errorf("-targets: unknown target %q", t)
		}
		if slices.Contains(o.targets, t) {
			return nil, fmt.Errorf("-targets: %q twice", t)
		}
		o.targets = append(o.targets, t)
	}
	for m := range strings.SplitSeq(modes, ",") {
		switch m {
		case "non-streaming":
			o.modes = append(o.modes, false)
		case "streaming":
			o.modes = append(o.modes, true)
		default:
			return nil, fmt.Errorf("-modes: unknown mode %q", m)
		}
	}
	for c := range strings.SplitSeq(conc, ",") {
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 || n > 4096 {
			return nil, fmt.Errorf("-concurrency: %q is not a number from 1 to 4096", c)
		}
		o.concurrency = append(o.concurrency, n)
	}
	switch {
	case o.rounds < 1:
		return nil, errors.New("-rounds must be at least 1")
	case o.warmup < 0 || o.duration <= 0:
		return nil, errors.New("-warmup must be >= 0 and -duration > 0")
	case o.customers < 1:
		return nil, errors.New("-customers must be at least 1")
	case o.envoyWorkers < 1:
		return nil, errors.New("-envoy-workers must be at least 1")
	}
	for _, cpus := range []string{o.sutCPUs, o.driverCPUs} {
		if cpus == "" {
			continue
		}
		if _, err := cpuCount(cpus); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 2 && args[0] == noopExtProcArg {
		return serveNoopExtProc(ctx, args[1], stdout)
	}
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }

	rep := &report{
		Started:  time.Now().UTC(),
		Command:  "bench " + strings.Join(args, " "),
		Machine:  describeMachine(),
		Settings: newSettings(o),
	}
	if o.envoyBin == "" {
		if o.envoyBin, err = envoy.FindBinary(); err != nil {
			return err
		}
	}
	o.envoyVersion = envoyVersion(ctx, o.envoyBin)
	o.commit = gitCommit(ctx)
	rep.Machine.Envoy, rep.Machine.Commit = o.envoyVersion, o.commit
	if slices.ContainsFunc(o.targets, func(t string) bool { return strings.HasPrefix(t, targetTollgate) }) {
		if _, err := os.Stat(o.tollgateBin); err != nil {
			return fmt.Errorf("tollgate binary: %w (run make bench, or go build -o bin/tollgate .)", err)
		}
	}

	if o.driverCPUs != "" {
		if err := pinSelf(o.driverCPUs); err != nil {
			return err
		}
		n, _ := cpuCount(o.driverCPUs)
		runtime.GOMAXPROCS(n)
	}
	// Fewer collections in the driver: its pauses would show up as latency of
	// every target alike.
	debug.SetGCPercent(400)

	if o.workDir, err = os.MkdirTemp("", "tollgate-bench-"); err != nil {
		return err
	}
	if o.keep {
		logf("work directory (kept): %s", o.workDir)
	} else {
		defer os.RemoveAll(o.workDir)
	}
	mockAddr, stopMock, err := startMock()
	if err != nil {
		return err
	}
	defer stopMock()
	o.mockAddr = mockAddr

	cells, skipped, versions, err := measureAll(ctx, o, logf)
	if err != nil {
		return err
	}
	rep.Cells, rep.Skipped, rep.Machine.LiteLLM = cells, skipped, versions[targetLiteLLM]
	rep.finish()

	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	md := rep.markdown()
	if err := os.WriteFile(filepath.Join(o.outDir, "results.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.outDir, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Fprint(stdout, md)
	logf("wrote %s and %s", filepath.Join(o.outDir, "results.md"), filepath.Join(o.outDir, "results.json"))
	return nil
}

func perRequestUS(cpu time.Duration, requests int) float64 {
	if requests == 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(requests)
}

// cpusOf is how many CPUs a pinned role has; unpinned roles count every CPU.
func cpusOf(list string) int {
	if list == "" {
		return runtime.NumCPU()
	}
	n, _ := cpuCount(list) // validated by parseFlags
	return n
}

func selfCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, err
	}
	st, err := parseStat(b)
	return st.cpu, err
}

func modeName(stream bool) string {
	if stream {
		return "streaming"
	}
	return "non-streaming"
}

// requestBodies are the chat requests every target gets, one per customer,
// in the same order for every target.
func requestBodies(customers int, stream bool) [][]byte {
	out := make([][]byte, customers)
	for i := range out {
		extra := ""
		if stream {
			extra = `,"stream":true,"stream_options":{"include_usage":true}`
		}
		out[i] = fmt.Appendf(nil, `{"model":%q,"user":%q,"messages":[`+
			`{"role":"system","content":"You are a helpful assistant. Answer in one short sentence."},`+
			`{"role":"user","content":"Say hello to the benchmark."}]%s}`, mockModel, customerID(i), extra)
	}
	return out
}

// parseCost turns tollgate's x-litellm-response-cost (USD) into nano-USD.
func parseCost(v string) (int64, error) {
	usd, err := strconv.ParseFloat(v, 64)
	if err != nil || !(usd > 0 && usd <= 1) { // NaN fails too
		return 0, fmt.Errorf("x-litellm-response-cost %q: want a price in USD between 0 and 1", v)
	}
	return int64(usd*1e9 + 0.5), nil
}

func envoyVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "unknown"
	}
	for line := range strings.Lines(string(out)) {
		if _, v, ok := strings.Cut(line, "version: "); ok {
			return "Envoy " + strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func gitCommit(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
