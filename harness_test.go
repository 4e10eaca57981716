package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/envoy"
	"github.com/tollgate-dev/tollgate/internal/syncbuf"
)

// The end-to-end harness: the real tollgate binary, the mock upstream binary and
// a real Envoy, each on random ports, with logs printed only when a test fails.

var (
	buildOnce sync.Once
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binaries builds tollgate (with -race when the tests run with it) and mockllm once.
func binaries(t *testing.T) (tollgate, mockllm string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "tollgate-e2e-bin")
		if buildErr != nil {
			return
		}
		args := []string{"build", "-o", filepath.Join(binDir, "tollgate")}
		if raceEnabled {
			args = append(args, "-race")
		}
		for _, cmd := range [][]string{
			append(args, "."),
			{"build", "-o", filepath.Join(binDir, "mockllm"), "./examples/mockllm/cmd/mockllm"},
		} {
			out, err := exec.Command("go", cmd...).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(cmd, " "), err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "tollgate"), filepath.Join(binDir, "mockllm")
}

// proc is a child process whose output is kept for failure reports.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *syncbuf.Buffer
	done chan error
}

// startProc starts bin and waits (at most 30 s) for a stdout line starting with
// readyPrefix, which it returns.
func startProc(t *testing.T, name, bin string, args, env []string, readyPrefix string) (*proc, string) {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), log: &syncbuf.Buffer{}, done: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p.log
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.log, line)
			if !sent && strings.HasPrefix(line, readyPrefix) {
				ready <- line
				sent = true
			}
		}
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("---- %s log ----\n%s", name, p.log.String())
		}
	})
	select {
	case line := <-ready:
		return p, line
	case err := <-p.done:
		p.done <- err
		t.Fatalf("%s exited before it was ready: %v\n%s", name, err, p.log.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s not ready after 30s\n%s", name, p.log.String())
	}
	return nil, ""
}

// stop sends SIGTERM and waits at most 15 s, then kills; for a process that
// has already exited it returns at once.
func (p *proc) stop(t *testing.T) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM) // fails, harmlessly, once p has exited
	_ = p.wait(t, 15*time.Second)
}

// wait waits at most bound for p to exit, then kills it, and returns how it
// exited (nil for status 0). It reports a data race found by the race
// detector in the child.
func (p *proc) wait(t *testing.T, bound time.Duration) error {
	var err error
	select {
	case err = <-p.done:
	case <-time.After(bound):
		_ = p.cmd.Process.Kill()
		t.Errorf("%s did not exit within %v", p.name, bound)
		err = <-p.done
	}
	p.done <- err
	if strings.Contains(p.log.String(), "WARNING: DATA RACE") {
		t.Errorf("%s: the race detector found a data race", p.name)
	}
	return err
}

// readyAddr returns the value of key=VALUE in a ready line.
func readyAddr(t *testing.T, line, key string) string {
	t.Helper()
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	t.Fatalf("no %s= in %q", key, line)
	return ""
}

// httpDo sends a request and returns the status, headers and body.
func httpDo(t *testing.T, method, url string, body any, headers map[string]string) (int, http.Header, []byte) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// startEnvoy runs a real Envoy from the shipped template in front of tollgate
// and the mock upstream, and returns its public URL.
func startEnvoy(t *testing.T, extProcAddr, tollgateAdminAddr, upstreamAddr string) string {
	t.Helper()
	return envoy.StartForTest(t, envoy.StartOptions{
		Params: envoy.Params{
			ExtProcAddress:       extProcAddr,
			TollgateAdminAddress: tollgateAdminAddr,
			UpstreamAddress:      upstreamAddr,
		},
		Concurrency: 1,
		LogLevel:    "warn",
	}).URL()
}
