package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    statFields
		wantErr string
	}{
		{
			name: "envoy",
			in:   "4242 (envoy) S 4200 4242 4200 0 -1 4194560 1234 0 0 0 250 37 0 0 20 0 9 0 1000 2038144000 19941 18446744073709551615",
			want: statFields{ppid: 4200, cpu: 2870 * time.Millisecond},
		},
		{
			name: "name with spaces and parentheses",
			in:   "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 5",
			want: statFields{ppid: 1, cpu: 70 * time.Millisecond},
		},
		{name: "no name", in: "7 a R 1", wantErr: "no command name"},
		{name: "short", in: "7 (a) R 1 7 7", wantErr: "want at least 13"},
		{name: "bad ppid", in: "7 (a) R x 7 7 0 -1 0 0 0 0 0 3 4", wantErr: "ppid"},
		{name: "bad utime", in: "7 (a) R 1 7 7 0 -1 0 0 0 0 0 -3 4", wantErr: "utime"},
		{name: "overflow", in: "7 (a) R 1 7 7 0 -1 0 0 0 0 0 9223372036854775807 4", wantErr: "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("parseStat error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseStat = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("4242 (envoy) S 4200 4242 4200 0 -1 4194560 1234 0 0 0 250 37 0 0 20 0 9 0 1000"))
	f.Add([]byte("1 ((()) R 0 0 0 0 0 0 0 0 0 0 1 1"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseStat(b)
		if err == nil && st.cpu < 0 {
			t.Errorf("parseStat(%q) cpu = %v", b, st.cpu)
		}
	})
}

func TestParseVmHWM(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr string
	}{
		{name: "process", in: "Name:\ttollgate\nVmPeak:\t 1234 kB\nVmHWM:\t   38912 kB\nVmRSS:\t 30000 kB\n", want: 38912 << 10},
		{name: "kernel thread", in: "Name:\tkthreadd\nState:\tS (sleeping)\n", want: 0},
		{name: "other unit", in: "VmHWM:\t 12 MB\n", wantErr: "unit"},
		{name: "bad number", in: "VmHWM:\t x kB\n", wantErr: "bad number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseVmHWM([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("parseVmHWM error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseVmHWM = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func FuzzParseVmHWM(f *testing.F) {
	f.Add([]byte("VmHWM:\t   38912 kB\n"))
	f.Add([]byte("VmHWM:"))
	f.Add([]byte("VmHWM: -1 kB"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, err := parseVmHWM(b); err == nil && n < 0 {
			t.Errorf("parseVmHWM(%q) = %d", b, n)
		}
	})
}

func TestCPUCount(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{in: "0", want: 1},
		{in: "1", want: 1},
		{in: "0-3", want: 4},
		{in: "0,2-3", want: 3},
		{in: "", wantErr: true},
		{in: "a", wantErr: true},
		{in: "3-1", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "0-99999999", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := cpuCount(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("cpuCount(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func FuzzCPUCount(f *testing.F) {
	for _, s := range []string{"0", "0-3", "0,2-3", "1-", ","} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := cpuCount(s); err == nil && n < 1 {
			t.Errorf("cpuCount(%q) = %d", s, n)
		}
	})
}

// TestReadTree reads this test process: it has used some CPU and has a peak RSS.
func TestReadTree(t *testing.T) {
	st, err := readTree(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PeakRSS <= 0 {
		t.Errorf("PeakRSS = %d, want > 0", st.PeakRSS)
	}
	// Burn CPU until the tick-granular counter moves, bounded.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		after, err := readTree(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if after.CPU > st.CPU {
			return
		}
	}
	t.Errorf("CPU time did not grow while the test spun for 5s")
}

func TestChildEnv(t *testing.T) {
	t.Setenv("TOLLGATE_DATA_DIR", "/elsewhere")
	t.Setenv("LITELLM_MASTER_KEY", "x")
	t.Setenv("DATABASE_URL", "postgres://")
	t.Setenv("BENCH_KEEP_ME", "1")
	env := strings.Join(childEnv("EXTRA=1"), "\n")
	for _, gone := range []string{"TOLLGATE_DATA_DIR=", "LITELLM_MASTER_KEY=", "DATABASE_URL="} {
		if strings.Contains(env, gone) {
			t.Errorf("childEnv kept %s", gone)
		}
	}
	for _, kept := range []string{"BENCH_KEEP_ME=1", "EXTRA=1"} {
		if !strings.Contains(env, kept) {
			t.Errorf("childEnv dropped %s", kept)
		}
	}
}
