package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/extproc/limits"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func ptr[T any](v T) *T { return &v }

func TestLoadConfigPrecedence(t *testing.T) {
	yamlPath := writeFile(t, "config.yaml", `
general_settings:
  master_key: os.environ/MY_KEY
  user_header_name: x-customer
  database_url: postgres://ignored
litellm_settings:
  max_end_user_budget_id: default-tier
  drop_params: true
model_list:
  - model_name: my-model
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_API_KEY
      input_cost_per_token: 0.5
      output_cost_per_token: 0.25
  - model_name: other
    litellm_params:
      model: openai/gpt-4o-mini
tollgate:
  data_plane_auth: false
  budget_exceeded_status: 400
  upstream_api_key: from-file
`)
	tests := []struct {
		name         string
		args         []string
		env          map[string]string
		want         config
		wantWarnings []string
	}{
		{
			name: "defaults",
			env:  map[string]string{"TOLLGATE_MASTER_KEY": "sk-1"},
			want: config{
				GRPCAddr: "127.0.0.1:50051", AdminAddr: "127.0.0.1:4001", DataDir: "./data", SyncWrites: true,
				MasterKey: "sk-1", DataPlaneAuth: true, BudgetExceededStatus: 429, LogFormat: "text", LogLevel: "info",
				StrictBudgets: true, ShutdownGrace: 10 * time.Second,
			},
		},
		{
			name: "shutdown grace: flag beats env",
			args: []string{"--shutdown-grace", "1500ms"},
			env:  map[string]string{"TOLLGATE_MASTER_KEY": "sk-1", "TOLLGATE_SHUTDOWN_GRACE": "3s"},
			want: config{
				GRPCAddr: "127.0.0.1:50051", AdminAddr: "127.0.0.1:4001", DataDir: "./data", SyncWrites: true,
				MasterKey: "sk-1", DataPlaneAuth: true, BudgetExceededStatus: 429, LogFormat: "text", LogLevel: "info",
				StrictBudgets: true, ShutdownGrace: 1500 * time.Millisecond,
			},
		},
		{
			name: "config file then env then flags",
			args: []string{"--config", yamlPath, "--grpc-addr", "unix:///tmp/t.sock", "--budget-exceeded-status", "429"},
			env:  map[string]string{"MY_KEY": "sk-yaml", "TOLLGATE_GRPC_ADDR": "127.0.0.1:1", "TOLLGATE_ADMIN_ADDR": "127.0.0.1:2", "TOLLGATE_UPSTREAM_API_KEY": "sk-up-env"},
			want: config{
				GRPCAddr: "unix:///tmp/t.sock", AdminAddr: "127.0.0.1:2", DataDir: "./data", SyncWrites: true,
				MasterKey: "sk-yaml", UpstreamAPIKey: "sk-up-env", DataPlaneAuth: false, BudgetExceededStatus: 429,
				DefaultBudgetID: "default-tier", UserHeaderName: "x-customer",
				PriceOverrides: map[string]priceOverride{"my-model": {InputCostPerToken: ptr(0.5), OutputCostPerToken: ptr(0.25)}},
				LogFormat:      "text", LogLevel: "info", StrictBudgets: true, ShutdownGrace: 10 * time.Second,
			},
			wantWarnings: []string{
				"ignored config key general_settings.database_url",
				"ignored config key litellm_settings.drop_params",
				"ignored config key model_list[].litellm_params.model",
				"ignored config key model_list[].litellm_params.api_key",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warnings, err := loadConfig(tt.args, envMap(tt.env), io.Discard)
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantWarnings, warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadConfigSecretsFromFiles(t *testing.T) {
	keyFile := writeFile(t, "master", "sk-from-file\n")
	upFile := writeFile(t, "upstream", "sk-up\n")
	got, _, err := loadConfig([]string{"--master-key-file", keyFile}, envMap(map[string]string{
		"TOLLGATE_MASTER_KEY":            "sk-env-loses",
		"TOLLGATE_UPSTREAM_API_KEY_FILE": upFile,
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got.MasterKey != "sk-from-file" || got.UpstreamAPIKey != "sk-up" {
		t.Errorf("MasterKey=%q UpstreamAPIKey=%q, want sk-from-file and sk-up", got.MasterKey, got.UpstreamAPIKey)
	}
}

func TestLoadConfigReportsEveryError(t *testing.T) {
	_, _, err := loadConfig([]string{"--budget-exceeded-status", "418", "--log-format", "xml", "--sync-writes", "maybe", "--shutdown-grace", "0s", "extra"}, envMap(nil), io.Discard)
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{
		"unexpected arguments: extra",
		`sync-writes: "maybe" is not true or false`,
		"master key: set TOLLGATE_MASTER_KEY",
		"budget-exceeded-status: 418, want 429 or 400",
		`log-format: "xml", want text or json`,
		`shutdown-grace: "0s", want a positive duration`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestLoadConfigBadFile(t *testing.T) {
	bad := writeFile(t, "bad.yaml", "general_settings: [unclosed\n")
	_, _, err := loadConfig([]string{"--config", bad}, envMap(map[string]string{"TOLLGATE_MASTER_KEY": "k"}), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "bad.yaml") {
		t.Errorf("err = %v, want a parse error naming the file", err)
	}
}

// budgetSettings are the budget window and limit settings of a config.
type budgetSettings struct {
	Timezone      string
	StrictBudgets bool
	TokenCounting limits.Counting
	RateWindow    time.Duration
}

func TestLoadConfigBudgetSettings(t *testing.T) {
	yamlPath := writeFile(t, "config.yaml", `
litellm_settings:
  timezone: Asia/Tokyo
general_settings:
  master_key: sk-1
  disable_budget_reservation: true
  token_rate_limit_type: output
`)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want budgetSettings
	}{
		{"defaults", nil, map[string]string{"TOLLGATE_MASTER_KEY": "k"}, budgetSettings{StrictBudgets: true}},
		{"LiteLLM's keys", []string{"--config", yamlPath}, nil,
			budgetSettings{Timezone: "Asia/Tokyo", TokenCounting: limits.CountOutput}},
		{"env beats the file", []string{"--config", yamlPath},
			map[string]string{"TOLLGATE_TIMEZONE": "America/New_York", "TOLLGATE_STRICT_BUDGETS": "true", "LITELLM_RATE_LIMIT_WINDOW_SIZE": "5"},
			budgetSettings{Timezone: "America/New_York", StrictBudgets: true, TokenCounting: limits.CountOutput, RateWindow: 5 * time.Second}},
		{"flags beat env", []string{"--config", yamlPath, "--timezone", "Europe/London", "--strict-budgets", "false", "--rate-limit-window-size", "2"},
			map[string]string{"TOLLGATE_TIMEZONE": "America/New_York", "TOLLGATE_STRICT_BUDGETS": "true", "LITELLM_RATE_LIMIT_WINDOW_SIZE": "5"},
			budgetSettings{Timezone: "Europe/London", TokenCounting: limits.CountOutput, RateWindow: 2 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := loadConfig(tt.args, envMap(tt.env), io.Discard)
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			settings := budgetSettings{got.Timezone, got.StrictBudgets, got.TokenCounting, got.RateWindow}
			if diff := cmp.Diff(tt.want, settings); diff != "" {
				t.Errorf("settings (-want +got):\n%s", diff)
			}
		})
	}

	bad := writeFile(t, "bad.yaml", "general_settings:\n  token_rate_limit_type: tokens\n")
	_, _, err := loadConfig([]string{"--config", bad, "--timezone", "Mars/Olympus", "--rate-limit-window-size", "0"},
		envMap(map[string]string{"TOLLGATE_MASTER_KEY": "k"}), io.Discard)
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{
		`timezone: "Mars/Olympus" is not an IANA time zone`,
		`general_settings.token_rate_limit_type "tokens": want total, input or output`,
		`rate-limit-window-size: "0", want whole seconds from 1 to 86400`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
