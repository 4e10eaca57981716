package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	startTimeout = 30 * time.Second
	stopTimeout  = 15 * time.Second
	// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times: 100 on
	// every Linux architecture Go supports.
	clockTicks = 100
)

// child is a process under test: Envoy, tollgate or LiteLLM.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error // set before exited is closed
	// anon samples the peak anonymous RSS of ext_proc servers; nil for others.
	anon *anonWatch
}

// startChild starts bin pinned to cpus ("" = unpinned) with stderr, and stdout
// unless it is wanted, going to logPath. stdout, when non-nil, receives the
// child's stdout instead.
func startChild(name, cpus, bin string, args, env []string, logPath string, stdout io.Writer) (*child, error) {
	if cpus != "" {
		args = append([]string{"-c", cpus, bin}, args...)
		bin = "taskset"
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer logFile.Close() // the child has its own descriptor
	c := &child{name: name, cmd: exec.Command(bin, args...), logPath: logPath, exited: make(chan struct{})}
	c.cmd.Env = env
	c.cmd.Stderr = logFile
	c.cmd.Stdout = logFile
	if stdout != nil {
		c.cmd.Stdout = stdout
	}
	// The children die with the benchmark, so an interrupted run leaves none behind.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop ends the anonymous RSS sampling, sends SIGTERM, waits, then kills.
func (c *child) stop() error {
	if c.anon != nil {
		c.anon.close()
	}
	select {
	case <-c.exited:
		return fmt.Errorf("%s exited early: %v (log: %s)", c.name, c.waitErr, c.logPath)
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s: %w", c.name, err)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-c.exited:
		return nil
	case <-timer.C:
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("stop %s: no exit %s after SIGTERM, killed", c.name, stopTimeout)
	}
}

// logTail returns the end of the child's log for error messages.
func (c *child) logTail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return err.Error()
	}
	const n = 4 << 10
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// pollUntil calls ready every 50ms until it reports true, c exits, timeout
// passes or ctx ends.
func pollUntil(ctx context.Context, c *child, timeout time.Duration, ready func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !ready() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w\n%s", c.name, ctx.Err(), c.logTail())
		case <-c.exited:
			return fmt.Errorf("%s exited: %v\n%s", c.name, c.waitErr, c.logTail())
		case <-tick.C:
		}
	}
	return nil
}

// httpGet is a GET with a short timeout; it returns the status and body.
func httpGet(ctx context.Context, url, key string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := directClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return resp.StatusCode, body, err
}

// directClient never uses an HTTP proxy from the environment.
var directClient = &http.Client{Transport: &http.Transport{Proxy: nil}}

// childEnv is the benchmark's environment without settings that would change
// what is measured: tollgate, LiteLLM and database configuration.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "TOLLGATE_") || strings.HasPrefix(name, "LITELLM_") || name == "DATABASE_URL" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// pinSelf pins every thread of this process to cpus.
func pinSelf(cpus string) error {
	out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(os.Getpid())).CombinedOutput()
	if err != nil {
		return fmt.Errorf("taskset -a -p -c %s: %w: %s (pass -sut-cpus= -driver-cpus= to run unpinned)", cpus, err, out)
	}
	return nil
}

// cpuCount counts the CPUs in a taskset list such as "0", "0-3" or "0,2-3".
func cpuCount(list string) (int, error) {
	n := 0
	for part := range strings.SplitSeq(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return 0, fmt.Errorf("cpu list %q: bad cpu %q", list, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return 0, fmt.Errorf("cpu list %q: bad range %q", list, part)
			}
		}
		if b-a >= 1<<16 {
			return 0, fmt.Errorf("cpu list %q: range %q too large", list, part)
		}
		n += b - a + 1
	}
	return n, nil
}

// procStats is the resource use of a process and its descendants.
type procStats struct {
	// CPU is user plus system time since the process started.
	CPU time.Duration
	// PeakRSS is the sum of VmHWM (peak resident set) over the processes, bytes.
	PeakRSS int64
}

// readTree reads the stats of pid and every process descending from it.
func readTree(pid int) (procStats, error) {
	pids, err := descendants(pid)
	if err != nil {
		return procStats{}, err
	}
	var total procStats
	for _, p := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			if p == pid {
				return procStats{}, fmt.Errorf("read stats: %w", err)
			}
			continue // a child that just exited
		}
		st, err := parseStat(stat)
		if err != nil {
			return procStats{}, fmt.Errorf("/proc/%d/stat: %w", p, err)
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			continue
		}
		hwm, _, err := statusBytes(status, "VmHWM")
		if err != nil {
			return procStats{}, fmt.Errorf("/proc/%d/status: %w", p, err)
		}
		total.CPU += st.cpu
		total.PeakRSS += hwm
	}
	return total, nil
}

// descendants returns pid followed by every process below it.
func descendants(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		if st, err := parseStat(stat); err == nil {
			children[st.ppid] = append(children[st.ppid], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out, nil
}

type statFields struct {
	ppid int
	cpu  time.Duration
}

// parseStat reads the parent pid and utime+stime from /proc/PID/stat. The
// command name (field 2) is in parentheses and may itself contain spaces and
// parentheses, so fields are counted from the last ')'.
func parseStat(b []byte) (statFields, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return statFields{}, errors.New("no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name: state(3) ppid(4) ... utime(14) stime(15).
	if len(f) < 13 {
		return statFields{}, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return statFields{}, fmt.Errorf("ppid: %w", err)
	}
	utime, err := strconv.ParseUint(f[11], 10, 63)
	if err != nil {
		return statFields{}, fmt.Errorf("utime: %w", err)
	}
	stime, err := strconv.ParseUint(f[12], 10, 63)
	if err != nil {
		return statFields{}, fmt.Errorf("stime: %w", err)
	}
	ticks := utime + stime
	if ticks > uint64(1<<63-1)/uint64(time.Second/clockTicks) {
		return statFields{}, errors.New("cpu time out of range")
	}
	return statFields{ppid: ppid, cpu: time.Duration(ticks) * (time.Second / clockTicks)}, nil
}

// statusBytes returns the value of a "Name:   N kB" line of /proc/PID/status
// in bytes, and whether the line is there: zombies and kernel threads have no
// memory lines.
func statusBytes(b []byte, name string) (int64, bool, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), name+":")
		if !ok {
			continue
		}
		num, unit, _ := strings.Cut(strings.TrimSpace(v), " ")
		if strings.TrimSpace(unit) != "kB" {
			return 0, true, fmt.Errorf("%s unit %q, want kB", name, unit)
		}
		kb, err := strconv.ParseInt(num, 10, 64)
		if err != nil || kb < 0 || kb > 1<<40 {
			return 0, true, fmt.Errorf("%s %q: bad number", name, num)
		}
		return kb << 10, true, nil
	}
	return 0, false, nil
}

// anonSampleInterval is how often an anonWatch samples. RssAnon has no
// high-water mark of its own, so a peak between samples is missed; 100 ms is
// short next to how fast a Go heap grows and shrinks under a steady load.
const anonSampleInterval = 100 * time.Millisecond

// anonWatch keeps the highest RssAnon of one process. VmHWM counts resident
// file pages too: the executable's and tollgate's memory-mapped Badger tables
// and logs, which grow with the data written and which the kernel can
// reclaim. RssAnon is the heap, stacks and runtime the process itself holds.
type anonWatch struct {
	pid  int
	quit chan struct{}
	done chan struct{}

	mu   sync.Mutex
	peak int64
}

// watchAnon samples pid's RssAnon every interval until close.
func watchAnon(pid int, interval time.Duration) *anonWatch {
	w := &anonWatch{pid: pid, quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-w.quit:
				return
			case <-tick.C:
				// A failed sample is left out: the process may be stopping.
				// The sample peakNow takes at the end of every round reports errors.
				_, _ = w.peakNow()
			}
		}
	}()
	return w
}

// peakNow samples once more and returns the highest RssAnon seen, bytes.
func (w *anonWatch) peakNow() (int64, error) {
	path := fmt.Sprintf("/proc/%d/status", w.pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("sample anonymous RSS: %w", err)
	}
	n, ok, err := statusBytes(b, "RssAnon")
	if err == nil && !ok {
		err = errors.New("no RssAnon line")
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.peak = max(w.peak, n)
	return w.peak, nil
}

// close stops the sampling and waits for it to end.
func (w *anonWatch) close() {
	close(w.quit)
	<-w.done
}
