package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/envoy"
)

// Target names, in the order a full run measures them.
const (
	targetEnvoy          = "envoy"
	targetNoopExtProc    = "noop-extproc"
	targetTollgate       = "tollgate"
	targetTollgateNoSync = "tollgate-nosync"
	targetLiteLLM        = "litellm"
)

var targetLabels = map[string]string{
	targetEnvoy:          "Envoy alone",
	targetNoopExtProc:    "Envoy + no-op ext_proc",
	targetTollgate:       "Envoy + tollgate",
	targetTollgateNoSync: "Envoy + tollgate, sync writes off",
	targetLiteLLM:        "LiteLLM proxy",
}

// extProcServers name the measured processes that are ext_proc servers.
var extProcServers = []string{"tollgate", noopProcess}

// noopProcess names the no-op ext_proc server's process.
const noopProcess = "noop-extproc"

// litellmStartTimeout is longer than startTimeout: LiteLLM imports for seconds
// and compiles its bytecode on the first start.
const litellmStartTimeout = 2 * time.Minute

// system is a running target: the URL clients call and the processes measured.
type system struct {
	url   string
	procs []*child
	// tollgateAdmin is tollgate's admin API base URL; "" for other targets.
	tollgateAdmin string
	version       string
}

func (s *system) stop() error {
	var errs []error
	// Front to back, so no process sees its upstream vanish under load.
	for _, c := range s.procs {
		errs = append(errs, c.stop())
	}
	return errors.Join(errs...)
}

// startEnvoy runs Envoy from the shipped template, pinned to the SUT CPUs. Its
// access log (stdout) goes to /dev/null: formatting and writing it is part of
// the measured cost in every Envoy target alike, and keeping it would fill the disk.
func startEnvoy(ctx context.Context, o *options, name string, params envoy.Params) (*child, string, error) {
	params.ListenerAddress = "127.0.0.1:0"
	params.AdminAddress = "127.0.0.1:0"
	config, err := envoy.Render(params)
	if err != nil {
		return nil, "", err
	}
	configPath := filepath.Join(o.workDir, name+"-envoy.yaml")
	adminPath := filepath.Join(o.workDir, name+"-envoy-admin")
	if err := os.WriteFile(configPath, config, 0o600); err != nil {
		return nil, "", err
	}
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return nil, "", err
	}
	defer devNull.Close()
	c, err := startChild("envoy", o.sutCPUs, o.envoyBin, []string{
		"-c", configPath,
		"--admin-address-path", adminPath,
		"--use-dynamic-base-id",
		"--log-level", "warn",
		"--concurrency", strconv.Itoa(o.envoyWorkers),
	}, childEnv(), filepath.Join(o.workDir, name+"-envoy.log"), devNull)
	if err != nil {
		return nil, "", err
	}
	var adminURL string
	err = pollUntil(ctx, c, startTimeout, func() bool {
		b, err := os.ReadFile(adminPath)
		if err != nil || len(bytes.TrimSpace(b)) == 0 {
			return false
		}
		adminURL = "http://" + string(bytes.TrimSpace(b))
		status, _, err := httpGet(ctx, adminURL+"/ready", "")
		return err == nil && status == http.StatusOK
	})
	if err == nil {
		var status int
		var body []byte
		status, body, err = httpGet(ctx, adminURL+"/listeners?format=json", "")
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("envoy /listeners: status %d", status)
		}
		if err == nil {
			var port int
			if port, err = envoy.ListenerPort(body); err == nil {
				return c, "http://127.0.0.1:" + strconv.Itoa(port), nil
			}
		}
	}
	_ = c.stop()
	return nil, "", err
}

// startEnvoyAlone is target 1: Envoy with the same listener, routes and
// clusters as tollgate's config, minus the ext_proc filter.
func startEnvoyAlone(ctx context.Context, o *options) (*system, error) {
	c, url, err := startEnvoy(ctx, o, targetEnvoy, envoy.Params{
		// No tollgate runs; the admin routes are never called.
		TollgateAdminAddress: "127.0.0.1:9",
		UpstreamAddress:      o.mockAddr,
		WithoutExtProc:       true,
	})
	if err != nil {
		return nil, err
	}
	return &system{url: url, procs: []*child{c}, version: o.envoyVersion}, nil
}

// startNoopExtProc is Envoy with tollgate's shipped config in front of the
// no-op ext_proc server: what any ext_proc filter with tollgate's processing
// modes costs at least. The server is this binary in its serving mode, pinned
// with Envoy like tollgate, so its CPU is measured where tollgate's is.
func startNoopExtProc(ctx context.Context, o *options) (*system, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("no-op ext_proc: %w", err)
	}
	c, err := startReadyChild(noopProcess, o.sutCPUs, self, []string{noopExtProcArg, "127.0.0.1:0"},
		childEnv(), filepath.Join(o.workDir, targetNoopExtProc+".log"), noopReady)
	if err != nil {
		return nil, err
	}
	ready, err := waitReadyLine(ctx, c)
	if err != nil {
		_ = c.stop()
		return nil, err
	}
	grpcAddr := readyField(ready, "grpc")
	if grpcAddr == "" {
		_ = c.stop()
		return nil, fmt.Errorf("no-op ext_proc ready line %q: want grpc=", ready)
	}
	e, url, err := startEnvoy(ctx, o, targetNoopExtProc, envoy.Params{
		ExtProcAddress: grpcAddr,
		// No tollgate runs; the admin routes are never called.
		TollgateAdminAddress: "127.0.0.1:9",
		UpstreamAddress:      o.mockAddr,
	})
	if err != nil {
		_ = c.stop()
		return nil, err
	}
	return &system{url: url, procs: []*child{e, c.child}, version: o.envoyVersion}, nil
}

// startTollgate is target 2: the tollgate binary with a fresh data directory
// and data-plane auth on (its default), behind Envoy with the shipped config.
// Every benchmark customer is created first with a budget no run exhausts, so
// each request reads the customer and its budget, and records its spend.
func startTollgate(ctx context.Context, o *options, name string, syncWrites bool) (*system, error) {
	dataDir := filepath.Join(o.workDir, name+"-data")
	c, err := startReadyChild("tollgate", o.sutCPUs, o.tollgateBin, []string{
		"--grpc-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0",
		"--data-dir", dataDir,
		"--sync-writes=" + strconv.FormatBool(syncWrites),
	}, childEnv("TOLLGATE_MASTER_KEY="+benchKey), filepath.Join(o.workDir, name+"-tollgate.log"), tollgateReady)
	if err != nil {
		return nil, err
	}
	ready, err := waitReadyLine(ctx, c)
	if err != nil {
		_ = c.stop()
		return nil, err
	}
	grpcAddr, adminAddr := readyField(ready, "grpc"), readyField(ready, "admin")
	if grpcAddr == "" || adminAddr == "" {
		_ = c.stop()
		return nil, fmt.Errorf("tollgate ready line %q: want grpc= and admin=", ready)
	}
	e, url, err := startEnvoy(ctx, o, name, envoy.Params{
		ExtProcAddress:       grpcAddr,
		TollgateAdminAddress: adminAddr,
		UpstreamAddress:      o.mockAddr,
	})
	if err != nil {
		_ = c.stop()
		return nil, err
	}
	s := &system{url: url, procs: []*child{e, c.child}, tollgateAdmin: "http://" + adminAddr, version: "tollgate " + o.commit}
	if err := seedCustomers(ctx, s.tollgateAdmin, o.customers); err != nil {
		_ = s.stop()
		return nil, err
	}
	return s, nil
}

// tollgateReady is what tollgate prints on stdout once it serves.
const tollgateReady = "tollgate ready "

// startReadyChild is startChild for a child that prints a line starting
// with readyPrefix on stdout once it serves; waitReadyLine returns that line.
func startReadyChild(name, cpus, bin string, args, env []string, logPath, readyPrefix string) (*readyChild, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer pw.Close()
	c, err := startChild(name, cpus, bin, args, env, logPath, pw)
	if err != nil {
		pr.Close()
		return nil, err
	}
	rc := &readyChild{child: c, lines: make(chan string, 1)}
	go func() {
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			if line := sc.Text(); !sent && strings.HasPrefix(line, readyPrefix) {
				rc.lines <- line
				sent = true
			}
		}
	}()
	return rc, nil
}

// readyChild is a child that announces readiness with a line on stdout.
type readyChild struct {
	*child
	lines chan string
}

func waitReadyLine(ctx context.Context, c *readyChild) (string, error) {
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case line := <-c.lines:
		return line, nil
	case <-c.exited:
		return "", fmt.Errorf("%s exited: %v\n%s", c.name, c.waitErr, c.logTail())
	case <-timer.C:
		return "", fmt.Errorf("%s not ready after %s\n%s", c.name, startTimeout, c.logTail())
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// readyField returns VALUE of key=VALUE in a ready line.
func readyField(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// customerID names the i-th benchmark customer.
func customerID(i int) string { return fmt.Sprintf("bench-customer-%04d", i) }

func seedCustomers(ctx context.Context, adminURL string, n int) error {
	for i := range n {
		body := fmt.Sprintf(`{"user_id":%q,"max_budget":1000000}`, customerID(i))
		status, resp, err := httpPost(ctx, adminURL+"/customer/new", benchKey, body)
		if err != nil {
			return fmt.Errorf("seed customers: %w", err)
		}
		if status != http.StatusOK {
			return fmt.Errorf("seed customers: /customer/new: status %d: %s", status, resp)
		}
	}
	return nil
}

func httpPost(ctx context.Context, url, key, body string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := directClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// totalSpend sums every customer's spend, in nano-USD, from /customer/list.
// Each customer's spend is a whole number of nano-USD shown as a float, so
// rounding each one back is exact.
func totalSpend(ctx context.Context, adminURL string) (int64, error) {
	status, body, err := httpGet(ctx, adminURL+"/customer/list", benchKey)
	if err != nil {
		return 0, fmt.Errorf("customer list: %w", err)
	}
	if status != http.StatusOK {
		return 0, fmt.Errorf("customer list: status %d: %.200s", status, body)
	}
	var rows []struct {
		Spend float64 `json:"spend"`
	}
	if err := json.Unmarshal(body, &rows); err != nil {
		return 0, fmt.Errorf("customer list: %w", err)
	}
	var sum int64
	for _, r := range rows {
		sum += int64(math.Round(r.Spend * 1e9))
	}
	return sum, nil
}

// litellmConfig points LiteLLM's one model at the mock as an OpenAI-compatible
// upstream. No database: LiteLLM then checks the master key and forwards, but
// stores no customer spend, so it does less work per request than tollgate.
const litellmConfig = `model_list:
  - model_name: %s
    litellm_params:
      model: openai/%s
      api_base: http://%s/v1
      api_key: sk-bench-upstream
general_settings:
  master_key: %s
litellm_settings:
  telemetry: false
`

// startLiteLLM is target 3: LiteLLM's proxy with one worker, pinned like Envoy.
func startLiteLLM(ctx context.Context, o *options) (*system, error) {
	if _, err := os.Stat(o.litellmBin); err != nil {
		return nil, fmt.Errorf("%w: %s not found (make bench installs it into .venv-litellm; pass -litellm PATH)", errSkip, o.litellmBin)
	}
	configPath := filepath.Join(o.workDir, "litellm.yaml")
	if err := os.WriteFile(configPath, fmt.Appendf(nil, litellmConfig, mockModel, mockModel, o.mockAddr, benchKey), 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	c, err := startChild("litellm", o.sutCPUs, o.litellmBin, []string{
		"--config", configPath, "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--num_workers", "1",
	}, childEnv(
		// The bundled price map: no fetch from the internet at startup.
		"LITELLM_LOCAL_MODEL_COST_MAP=True",
	), filepath.Join(o.workDir, "litellm.log"), nil)
	if err != nil {
		return nil, err
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	err = pollUntil(ctx, c, litellmStartTimeout, func() bool {
		status, _, err := httpGet(ctx, url+"/health/liveliness", "")
		return err == nil && status == http.StatusOK
	})
	if err != nil {
		_ = c.stop()
		return nil, fmt.Errorf("%w: %v", errSkip, err)
	}
	return &system{url: url, procs: []*child{c}}, nil
}

// errSkip marks a target that cannot run here; the run goes on without it.
var errSkip = errors.New("skipped")

// freePort returns a loopback port that was free a moment ago; LiteLLM cannot
// listen on port 0 and report the port it got.
func freePort() (int, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer lis.Close()
	return lis.Addr().(*net.TCPAddr).Port, nil
}
