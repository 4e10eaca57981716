package main

import (
	"os"
	"runtime"
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

func TestStatusBytes(t *testing.T) {
	const tollgate = "Name:\ttollgate\nVmPeak:\t 1234 kB\nVmHWM:\t   38912 kB\nVmRSS:\t 30000 kB\n" +
		"RssAnon:\t   23456 kB\nRssFile:\t    6544 kB\nRssShmem:\t       0 kB\n"
	tests := []struct {
		name      string
		in        string
		field     string
		want      int64
		wantFound bool
		wantErr   string
	}{
		{name: "VmHWM", in: tollgate, field: "VmHWM", want: 38912 << 10, wantFound: true},
		{name: "RssAnon", in: tollgate, field: "RssAnon", want: 23456 << 10, wantFound: true},
		{name: "zero", in: tollgate, field: "RssShmem", want: 0, wantFound: true},
		{name: "prefix of another name", in: "RssAnonymous:\t 5 kB\n", field: "RssAnon", wantFound: false},
		{name: "kernel thread", in: "Name:\tkthreadd\nState:\tS (sleeping)\n", field: "VmHWM", wantFound: false},
		{name: "other unit", in: "VmHWM:\t 12 MB\n", field: "VmHWM", wantErr: `VmHWM unit "MB", want kB`},
		{name: "no unit", in: "RssAnon:\t 12\n", field: "RssAnon", wantErr: `RssAnon unit "", want kB`},
		{name: "bad number", in: "RssAnon:\t x kB\n", field: "RssAnon", wantErr: `RssAnon "x": bad number`},
		{name: "negative", in: "RssAnon:\t -4 kB\n", field: "RssAnon", wantErr: `RssAnon "-4": bad number`},
		{name: "too large", in: "VmHWM:\t 1099511627777 kB\n", field: "VmHWM", wantErr: `VmHWM "1099511627777": bad number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found, err := statusBytes([]byte(tt.in), tt.field)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("statusBytes error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want || found != tt.wantFound {
				t.Errorf("statusBytes = %d, %v, %v; want %d, %v", got, found, err, tt.want, tt.wantFound)
			}
		})
	}
}

func FuzzStatusBytes(f *testing.F) {
	f.Add([]byte("VmHWM:\t   38912 kB\nRssAnon:\t 100 kB\n"))
	f.Add([]byte("RssAnon:"))
	f.Add([]byte("RssAnon: -1 kB"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, field := range []string{"VmHWM", "RssAnon"} {
			if n, _, err := statusBytes(b, field); err == nil && (n < 0 || n > 1<<50) {
				t.Errorf("statusBytes(%q, %s) = %d", b, field, n)
			}
		}
	})
}

// TestAnonWatch watches this test process while it grows its heap by 64 MiB;
// the bound is half that, so memory the runtime returns meanwhile cannot fail it.
func TestAnonWatch(t *testing.T) {
	w := watchAnon(os.Getpid(), time.Millisecond)
	before, err := w.peakNow()
	if err != nil {
		t.Fatal(err)
	}
	if before <= 0 {
		t.Fatalf("peak anonymous RSS = %d, want > 0", before)
	}
	const grow = 64 << 20
	buf := make([]byte, grow)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1 // resident only once touched
	}
	// The ticker's samples alone must see the growth.
	sampled := func() int64 {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.peak
	}
	want := before + grow/2
	for deadline := time.Now().Add(5 * time.Second); sampled() < want && time.Now().Before(deadline); {
		runtime.Gosched()
	}
	if got := sampled(); got < want {
		t.Errorf("sampled peak %d after allocating %d bytes on top of %d, want at least %d", got, grow, before, want)
	}
	runtime.KeepAlive(buf)
	w.close()
	select {
	case <-w.done:
	default:
		t.Error("close returned before the sampling goroutine ended")
	}

	gone := watchAnon(-1, time.Hour)
	defer gone.close()
	if _, err := gone.peakNow(); err == nil || !strings.Contains(err.Error(), "/proc/-1/status") {
		t.Errorf("peakNow of no process: error %v, want one naming /proc/-1/status", err)
	}
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
