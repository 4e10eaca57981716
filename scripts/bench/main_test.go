package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/extproc/pricing"
)

// buildTollgate builds the tollgate binary, with -race when the tests run with it.
func buildTollgate(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tollgate")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, "github.com/tollgate-dev/tollgate")...).CombinedOutput()
	if err != nil {
		t.Fatalf("go build tollgate: %v\n%s", err, out)
	}
	return bin
}

// TestQuickRun runs `bench -quick` end to end against the real Envoy, the
// no-op ext_proc server (this test binary, see TestMain) and the real
// tollgate binary (LiteLLM is left out: it is not installed in CI), so the
// harness cannot rot. It checks what was measured, not how fast.
func TestQuickRun(t *testing.T) {
	bin := buildTollgate(t)
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"-quick", "-targets", "envoy,noop-extproc,tollgate", "-tollgate", bin, "-out", out,
		// Unpinned: other test binaries share the machine.
		"-sut-cpus=", "-driver-cpus="}
	if err := run(t.Context(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	t.Logf("stderr:\n%s", stderr.String())

	raw, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	if stdout.String() != string(md) {
		t.Errorf("stdout is not results.md:\n%s", stdout.String())
	}
	for _, want := range []string{"| Envoy alone | 4 |", "| Envoy + no-op ext_proc | 4 |", "| Envoy + tollgate | 4 |", "#### Streaming", "#### Targets (issue 6)"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}

	type shape struct {
		Target, Mode string
		Concurrency  int
		Processes    []string
		HasTTFB      bool
		HasAdded     bool
		HasMetering  bool
	}
	var got []shape
	for _, c := range rep.Cells {
		s := shape{Target: c.Target, Mode: c.Mode, Concurrency: c.Concurrency,
			HasTTFB: c.TTFB != nil, HasAdded: c.Added != nil, HasMetering: c.Metering != nil}
		for _, p := range c.Processes {
			s.Processes = append(s.Processes, p.Name)
		}
		got = append(got, s)
	}
	want := []shape{
		{Target: "envoy", Mode: "non-streaming", Concurrency: 4, Processes: []string{"envoy"}},
		{Target: "envoy", Mode: "streaming", Concurrency: 4, Processes: []string{"envoy"}, HasTTFB: true},
		{Target: "noop-extproc", Mode: "non-streaming", Concurrency: 4, Processes: []string{"envoy", "noop-extproc"}, HasAdded: true},
		{Target: "noop-extproc", Mode: "streaming", Concurrency: 4, Processes: []string{"envoy", "noop-extproc"}, HasTTFB: true, HasAdded: true},
		{Target: "tollgate", Mode: "non-streaming", Concurrency: 4, Processes: []string{"envoy", "tollgate"}, HasAdded: true, HasMetering: true},
		{Target: "tollgate", Mode: "streaming", Concurrency: 4, Processes: []string{"envoy", "tollgate"}, HasTTFB: true, HasAdded: true, HasMetering: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("cells (-want +got):\n%s", diff)
	}

	price, ok := pricing.Default().Lookup(mockModel)
	if !ok {
		t.Fatalf("no price for %s", mockModel)
	}
	wantCost := int64(price.Cost(pricing.Usage{PromptTokens: mockPrompt, CompletionTokens: mockCompletion}))
	for _, c := range rep.Cells {
		name := c.Target + "/" + c.Mode
		if c.Errors != 0 || c.Requests == 0 || c.Throughput <= 0 {
			t.Errorf("%s: %d requests, %d errors (%s), %.0f req/s; want requests and no errors", name, c.Requests, c.Errors, c.FirstError, c.Throughput)
		}
		if c.Latency == nil || c.Latency.P50 <= 0 || c.Latency.P50 > c.Latency.P99 {
			t.Errorf("%s: latency %+v", name, c.Latency)
		}
		for _, p := range c.Processes {
			if p.PeakRSSMB <= 0 || p.CPUSeconds < 0 {
				t.Errorf("%s: process %+v", name, p)
			}
			// Only the ext_proc servers' anonymous RSS is sampled.
			if isServer := slices.Contains(extProcServers, p.Name); isServer != (p.PeakAnonRSSMB > 0) {
				t.Errorf("%s: process %s has peak anonymous RSS %v MiB; want > 0 only for ext_proc servers", name, p.Name, p.PeakAnonRSSMB)
			}
		}
		if m := c.Metering; m != nil {
			if m.CostNano != wantCost {
				t.Errorf("%s: cost per request %d nano-USD, want %d", name, m.CostNano, wantCost)
			}
			// Streamed responses are not metered by every build; a
			// non-streamed one always is, exactly once.
			if c.Mode == "non-streaming" && (m.Served == 0 || m.Recorded != float64(m.Served)) {
				t.Errorf("%s: recorded %v of %d served requests", name, m.Recorded, m.Served)
			}
		}
	}
	var lostUpdate *check
	for i := range rep.Targets {
		if strings.HasPrefix(rep.Targets[i].Name, "Every served non-streaming request") {
			lostUpdate = &rep.Targets[i]
		}
	}
	if lostUpdate == nil || lostUpdate.Met == nil || !*lostUpdate.Met {
		t.Errorf("metering target = %+v, want met", lostUpdate)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(*options) string
		wantErr string
	}{
		{
			name: "defaults",
			check: func(o *options) string {
				return cmp.Diff([]any{[]string{"envoy", "noop-extproc", "tollgate", "tollgate-nosync", "litellm"}, []bool{false, true}, []int{1, 16, 64}, 3, time.Second, 3 * time.Second},
					[]any{o.targets, o.modes, o.concurrency, o.rounds, o.warmup, o.duration})
			},
		},
		{
			name: "quick",
			args: []string{"-quick"},
			check: func(o *options) string {
				return cmp.Diff([]any{[]string{"envoy", "noop-extproc", "tollgate", "litellm"}, []int{4}, 1, 250 * time.Millisecond, time.Second},
					[]any{o.targets, o.concurrency, o.rounds, o.warmup, o.duration})
			},
		},
		{
			name: "quick keeps explicit flags",
			args: []string{"-quick", "-targets", "envoy", "-concurrency", "2,3", "-duration", "3s", "-modes", "streaming"},
			check: func(o *options) string {
				return cmp.Diff([]any{[]string{"envoy"}, []int{2, 3}, 3 * time.Second, []bool{true}},
					[]any{o.targets, o.concurrency, o.duration, o.modes})
			},
		},
		{
			name: "unpinned",
			args: []string{"-sut-cpus=", "-driver-cpus="},
			check: func(o *options) string {
				return cmp.Diff([]string{"", ""}, []string{o.sutCPUs, o.driverCPUs})
			},
		},
		{name: "unknown target", args: []string{"-targets", "envoy,nginx"}, wantErr: `unknown target "nginx"`},
		{name: "target twice", args: []string{"-targets", "envoy,envoy"}, wantErr: `"envoy" twice`},
		{name: "unknown mode", args: []string{"-modes", "batch"}, wantErr: `unknown mode "batch"`},
		{name: "zero concurrency", args: []string{"-concurrency", "0"}, wantErr: "not a number from 1 to 4096"},
		{name: "zero duration", args: []string{"-duration", "0s"}, wantErr: "-duration > 0"},
		{name: "bad cpus", args: []string{"-sut-cpus", "1-0"}, wantErr: "bad range"},
		{name: "no customers", args: []string{"-customers", "0"}, wantErr: "-customers"},
		{name: "no rounds", args: []string{"-rounds", "0"}, wantErr: "-rounds"},
		{name: "extra argument", args: []string{"now"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			o, err := parseFlags(tt.args, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("parseFlags error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags: %v", err)
			}
			if diff := tt.check(o); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseCost(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "1.14e-05", want: 11400},
		{in: "0.000114", want: 114000},
		{in: "0.5", want: 500_000_000},
		{in: "0.0", wantErr: true},
		{in: "", wantErr: true},
		{in: "NaN", wantErr: true},
		{in: "2", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseCost(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseCost(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func FuzzParseCost(f *testing.F) {
	for _, s := range []string{"1.14e-05", "0.0", "NaN", "-1", "1e-300"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseCost(s)
		if err == nil && (got < 0 || got > 1e9) {
			t.Errorf("parseCost(%q) = %d", s, got)
		}
	})
}

func TestRequestBodies(t *testing.T) {
	got := requestBodies(2, true)
	want := []string{
		`{"model":"gpt-4o-mini","user":"bench-customer-0000","messages":[{"role":"system","content":"You are a helpful assistant. Answer in one short sentence."},{"role":"user","content":"Say hello to the benchmark."}],"stream":true,"stream_options":{"include_usage":true}}`,
		`{"model":"gpt-4o-mini","user":"bench-customer-0001","messages":[{"role":"system","content":"You are a helpful assistant. Answer in one short sentence."},{"role":"user","content":"Say hello to the benchmark."}],"stream":true,"stream_options":{"include_usage":true}}`,
	}
	var gotS []string
	for _, b := range got {
		if !json.Valid(b) {
			t.Errorf("invalid JSON: %s", b)
		}
		gotS = append(gotS, string(b))
	}
	if diff := cmp.Diff(want, gotS); diff != "" {
		t.Errorf("bodies (-want +got):\n%s", diff)
	}
}

func TestReadyField(t *testing.T) {
	const line = "tollgate ready grpc=127.0.0.1:5001 admin=127.0.0.1:5002"
	got := []string{readyField(line, "grpc"), readyField(line, "admin"), readyField(line, "http")}
	if diff := cmp.Diff([]string{"127.0.0.1:5001", "127.0.0.1:5002", ""}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
