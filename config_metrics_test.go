package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestLoadConfigMetricsAuth(t *testing.T) {
	required := writeFile(t, "config.yaml", `
general_settings:
  master_key: sk-1
litellm_settings:
  require_auth_for_metrics_endpoint: true
`)
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    bool
		wantErr string
	}{
		{name: "open by default", env: map[string]string{"TOLLGATE_MASTER_KEY": "sk-1"}, want: false},
		{name: "LiteLLM's key", args: []string{"--config", required}, want: true},
		{name: "env", env: map[string]string{"TOLLGATE_MASTER_KEY": "sk-1", "TOLLGATE_REQUIRE_AUTH_FOR_METRICS": "true"}, want: true},
		{name: "flag beats config.yaml", args: []string{"--config", required, "--require-auth-for-metrics", "false"}, want: false},
		{
			name: "not a bool", env: map[string]string{"TOLLGATE_MASTER_KEY": "sk-1", "TOLLGATE_REQUIRE_AUTH_FOR_METRICS": "yes please"},
			wantErr: `require-auth-for-metrics: "yes please" is not true or false`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, warnings, err := loadConfig(tt.args, envMap(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.RequireAuthForMetrics != tt.want {
				t.Errorf("RequireAuthForMetrics = %v, want %v", cfg.RequireAuthForMetrics, tt.want)
			}
			if len(warnings) != 0 {
				t.Errorf("warnings %q, want none", warnings)
			}
		})
	}
}

// TestMainMetrics runs tollgate in-process: /metrics is served on the admin
// port, the store behind the admin API and the webhook worker is
// instrumented (outbox operations included), and the master key is asked
// for only when configured.
func TestMainMetrics(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		wantCode int
	}{
		{"open", map[string]string{}, http.StatusOK},
		{"auth required", map[string]string{"TOLLGATE_REQUIRE_AUTH_FOR_METRICS": "true"}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.env["TOLLGATE_MASTER_KEY"] = "sk-x"
			admin := runInProcess(t, tt.env)
			code, _, body := httpDo(t, http.MethodGet, "http://"+admin+"/metrics", nil, nil)
			if code != tt.wantCode {
				t.Fatalf("GET /metrics without a key: %d, want %d (%s)", code, tt.wantCode, body)
			}
			key := map[string]string{"Authorization": "Bearer sk-x"}
			if code, _, body := httpDo(t, http.MethodPost, "http://"+admin+"/customer/new", `{"user_id":"alice"}`, key); code != http.StatusOK {
				t.Fatalf("/customer/new: %d %s", code, body)
			}
			code, _, body = httpDo(t, http.MethodGet, "http://"+admin+"/metrics", nil, key)
			if code != http.StatusOK {
				t.Fatalf("GET /metrics with the key: %d %s", code, body)
			}
			for _, line := range []string{
				`tollgate_decisions_total{outcome="allowed"} 0`,
				`tollgate_store_operation_duration_seconds_count{op="create_customer"} 1`,
				`tollgate_store_operation_errors_total{op="outbox_heads"} 0`,
				`tollgate_webhook_events{state="pending"} 0`,
			} {
				if !strings.Contains(string(body), "\n"+line+"\n") {
					t.Errorf("scrape lacks %q", line)
				}
			}
		})
	}
}

// runInProcess starts run on random ports and returns the admin address;
// the run stops, and must return nil, when the test ends.
func runInProcess(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	dir := t.TempDir() // before the cleanup below, so it is removed after run returns
	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data-dir", dir}, args...),
			envMap(env), outW, io.Discard)
		outW.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("run did not return within 20s of cancel")
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "tollgate ready ") {
				ready <- sc.Text()
			}
		}
	}()
	select {
	case line := <-ready:
		return readyAddr(t, line, "admin")
	case err := <-done:
		t.Fatalf("run returned before ready: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("not ready after 20s")
	}
	return ""
}
