package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// webhookSettings is the part of config that webhook alerting uses.
type webhookSettings struct {
	Alerting           []string
	WebhookURL         string
	WebhookEnabled     bool
	BudgetAlertTTL     time.Duration
	WebhookSecret      string
	WebhookMaxAttempts int
	WebhookBackoffMin  time.Duration
	WebhookBackoffMax  time.Duration
	WebhookTimeout     time.Duration
}

func webhookSettingsOf(c config) webhookSettings {
	return webhookSettings{
		c.Alerting, c.WebhookURL, c.WebhookEnabled, c.BudgetAlertTTL, c.WebhookSecret,
		c.WebhookMaxAttempts, c.WebhookBackoffMin, c.WebhookBackoffMax, c.WebhookTimeout,
	}
}

func TestLoadConfigWebhook(t *testing.T) {
	secretFile := writeFile(t, "secret", "from-file\n")
	tests := []struct {
		name         string
		yaml         string
		args         []string
		env          map[string]string
		want         webhookSettings
		wantWarnings []string
	}{
		{
			name: "the seed's setup: WEBHOOK_URL and alerting",
			yaml: "general_settings:\n  alerting: [\"webhook\"]\n",
			env:  map[string]string{"WEBHOOK_URL": "https://webhook.site/6ab090e8"},
			want: webhookSettings{Alerting: []string{"webhook"}, WebhookURL: "https://webhook.site/6ab090e8", WebhookEnabled: true, BudgetAlertTTL: 24 * time.Hour},
		},
		{
			name: "LiteLLM's alerting_args and environment_variables, tollgate's delivery settings",
			yaml: `
general_settings:
  alerting: ["slack", "webhook"]
  alerting_args:
    budget_alert_ttl: 3600
    daily_report_frequency: 43200
environment_variables:
  WEBHOOK_URL: http://127.0.0.1:8090/hook
  SLACK_WEBHOOK_URL: https://hooks.slack.com/x
tollgate:
  webhook_secret: from-yaml
  webhook_max_attempts: 7
  webhook_backoff_min: 250ms
  webhook_backoff_max: 1m
  webhook_timeout: 3s
`,
			want: webhookSettings{
				Alerting: []string{"slack", "webhook"}, WebhookURL: "http://127.0.0.1:8090/hook", WebhookEnabled: true,
				BudgetAlertTTL: time.Hour, WebhookSecret: "from-yaml", WebhookMaxAttempts: 7,
				WebhookBackoffMin: 250 * time.Millisecond, WebhookBackoffMax: time.Minute, WebhookTimeout: 3 * time.Second,
			},
			wantWarnings: []string{
				"ignored config key general_settings.alerting_args.daily_report_frequency",
				"ignored config key environment_variables.SLACK_WEBHOOK_URL",
				`general_settings.alerting: "slack" is not supported; tollgate sends only "webhook" alerts`,
			},
		},
		{
			name: "flags beat env beat config.yaml",
			yaml: `
general_settings:
  alerting: ["webhook"]
  alerting_args: {budget_alert_ttl: 0}
environment_variables: {WEBHOOK_URL: "http://from-yaml/"}
tollgate: {webhook_secret: from-yaml, webhook_max_attempts: 7, webhook_timeout: 3s}
`,
			args: []string{"--webhook-secret-file", secretFile, "--webhook-max-attempts", "2"},
			env: map[string]string{
				"WEBHOOK_URL": "http://from-env/", "TOLLGATE_WEBHOOK_SECRET": "from-env",
				"TOLLGATE_WEBHOOK_MAX_ATTEMPTS": "5", "TOLLGATE_WEBHOOK_TIMEOUT": "4s", "TOLLGATE_WEBHOOK_BACKOFF_MIN": "1ms",
			},
			want: webhookSettings{
				Alerting: []string{"webhook"}, WebhookURL: "http://from-env/", WebhookEnabled: true, WebhookSecret: "from-file",
				WebhookMaxAttempts: 2, WebhookBackoffMin: time.Millisecond, WebhookTimeout: 4 * time.Second,
			},
		},
		{
			name: "WEBHOOK_URL without alerting: off, with a warning, as in LiteLLM",
			env:  map[string]string{"WEBHOOK_URL": "http://127.0.0.1:8090/"},
			want: webhookSettings{WebhookURL: "http://127.0.0.1:8090/"},
			wantWarnings: []string{
				`WEBHOOK_URL is set but general_settings.alerting does not include "webhook": webhook alerting is off (add alerting: ["webhook"] to config.yaml, as LiteLLM requires)`,
			},
		},
		{
			name:         "alerting without WEBHOOK_URL: off, with a warning",
			yaml:         "general_settings:\n  alerting: [\"webhook\"]\n",
			want:         webhookSettings{Alerting: []string{"webhook"}},
			wantWarnings: []string{`general_settings.alerting includes "webhook" but WEBHOOK_URL is not set: webhook alerting is off`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"TOLLGATE_MASTER_KEY": "sk-1"}
			for k, v := range tt.env {
				env[k] = v
			}
			args := tt.args
			if tt.yaml != "" {
				args = append([]string{"--config", writeFile(t, "config.yaml", tt.yaml)}, args...)
			}
			got, warnings, err := loadConfig(args, envMap(env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, webhookSettingsOf(got)); d != "" {
				t.Errorf("settings (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.wantWarnings, warnings); d != "" {
				t.Errorf("warnings (-want +got):\n%s", d)
			}
		})
	}
}

func TestLoadConfigWebhookErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string
	}{
		{
			name: "bad delivery settings",
			env: map[string]string{
				"TOLLGATE_WEBHOOK_MAX_ATTEMPTS": "0", "TOLLGATE_WEBHOOK_BACKOFF_MIN": "soon",
				"TOLLGATE_WEBHOOK_TIMEOUT": "-1s",
			},
			want: []string{
				`webhook-max-attempts: "0", want a whole number of at least 1`,
				`webhook-backoff-min: "soon", want a positive duration`,
				`webhook-timeout: "-1s", want a positive duration`,
			},
		},
		{
			name: "backoff bounds the wrong way round",
			env:  map[string]string{"TOLLGATE_WEBHOOK_BACKOFF_MIN": "2s", "TOLLGATE_WEBHOOK_BACKOFF_MAX": "1s"},
			want: []string{"webhook-backoff-max 1s is below webhook-backoff-min 2s"},
		},
		{
			name: "a URL that is not http(s); the value itself is not repeated",
			env:  map[string]string{"WEBHOOK_URL": "ftp://token-abc@host/"},
			want: []string{"WEBHOOK_URL: want an absolute http:// or https:// URL"},
		},
		{
			name: "a negative TTL",
			yaml: "general_settings:\n  alerting: [webhook]\n  alerting_args: {budget_alert_ttl: -1}\n",
			env:  map[string]string{"WEBHOOK_URL": "http://x/"},
			want: []string{"general_settings.alerting_args.budget_alert_ttl: -1, want seconds between 0 and ten years"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"TOLLGATE_MASTER_KEY": "sk-1"}
			for k, v := range tt.env {
				env[k] = v
			}
			var args []string
			if tt.yaml != "" {
				args = []string{"--config", writeFile(t, "config.yaml", tt.yaml)}
			}
			_, _, err := loadConfig(args, envMap(env), io.Discard)
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "token-abc") {
				t.Errorf("error %q shows the webhook URL", err)
			}
		})
	}
}

func TestAlertingPolicy(t *testing.T) {
	base := config{MasterKey: "sk-1234", WebhookEnabled: true, DefaultBudgetID: "tier", BudgetAlertTTL: time.Hour}
	withAuth := base
	withAuth.DataPlaneAuth = true
	a := alerting(withAuth)
	// The seed's token is sha256("sk-1234").
	if a.Token != "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b" || !a.Enabled || a.DefaultBudgetID != "tier" || a.BudgetAlertTTL != time.Hour {
		t.Errorf("alerting with data-plane auth = %+v", a)
	}
	if a := alerting(base); a.Token != "" {
		t.Errorf("token without data-plane auth = %q, want none: tollgate never sees the caller's key", a.Token)
	}
}
