package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tollgate-dev/tollgate/extproc/limits"
)

// config is tollgate's resolved configuration: flags > env > config.yaml > defaults.
type config struct {
	GRPCAddr             string
	AdminAddr            string
	DataDir              string
	SyncWrites           bool
	MasterKey            string
	UpstreamAPIKey       string
	DataPlaneAuth        bool
	BudgetExceededStatus int
	DefaultBudgetID      string
	UserHeaderName       string
	PricesFile           string
	PriceOverrides       map[string]priceOverride
	LogFormat            string
	LogLevel             string
	AdminTLSCert         string
	MaxRequestBodyBytes  int64
	AdminTLSKey          string
	// RequireAuthForMetrics: GET /metrics takes the master key
	// (litellm_settings.require_auth_for_metrics_endpoint).
	RequireAuthForMetrics bool

	// Budget windows and limits.
	Timezone      string          // litellm_settings.timezone, an IANA zone; "" is UTC
	StrictBudgets bool            // reservations: not general_settings.disable_budget_reservation
	TokenCounting limits.Counting // general_settings.token_rate_limit_type
	RateWindow    time.Duration   // LITELLM_RATE_LIMIT_WINDOW_SIZE; 0 is extproc's 60 s

	// Webhook alerting. Zero values of the delivery settings mean
	// admin/webhook's defaults.
	Alerting           []string // general_settings.alerting
	WebhookURL         string
	WebhookEnabled     bool          // "webhook" in Alerting and WebhookURL set
	BudgetAlertTTL     time.Duration // resolved when WebhookEnabled: LiteLLM's default is 24 h
	WebhookSecret      string
	WebhookMaxAttempts int
	WebhookBackoffMin  time.Duration
	WebhookBackoffMax  time.Duration
	WebhookTimeout     time.Duration

	// ShutdownGrace bounds how long in-flight ext_proc streams and admin
	// requests may take to finish after SIGTERM.
	ShutdownGrace time.Duration
}

// defaultShutdownGrace is config.ShutdownGrace's default: under Kubernetes'
// 30 s terminationGracePeriodSeconds, with room for the store to close.
const defaultShutdownGrace = 10 * time.Second

// defaultBudgetAlertTTL is LiteLLM's alerting_args.budget_alert_ttl default.
const defaultBudgetAlertTTL = 24 * time.Hour

// priceOverride is model_list[].litellm_params' price fields for one model_name.
type priceOverride struct {
	InputCostPerToken  *float64
	OutputCostPerToken *float64
}

// fileConfig is the subset of a LiteLLM config.yaml that tollgate applies, plus
// its own `tollgate:` section.
type fileConfig struct {
	GeneralSettings struct {
		MasterKey                string   `yaml:"master_key"`
		UserHeaderName           string   `yaml:"user_header_name"`
		DisableBudgetReservation *bool    `yaml:"disable_budget_reservation"`
		TokenRateLimitType       string   `yaml:"token_rate_limit_type"`
		Alerting                 []string `yaml:"alerting"`
		AlertingArgs             struct {
			BudgetAlertTTL *float64 `yaml:"budget_alert_ttl"` // seconds, as in LiteLLM
		} `yaml:"alerting_args"`
	} `yaml:"general_settings"`
	// EnvironmentVariables is LiteLLM's way to set env vars from the config;
	// tollgate reads WEBHOOK_URL from it (the real environment wins).
	EnvironmentVariables struct {
		WebhookURL string `yaml:"WEBHOOK_URL"`
	} `yaml:"environment_variables"`
	LiteLLMSettings struct {
		MaxEndUserBudgetID            string `yaml:"max_end_user_budget_id"`
		Timezone                      string `yaml:"timezone"`
		RequireAuthForMetricsEndpoint bool   `yaml:"require_auth_for_metrics_endpoint"`
	} `yaml:"litellm_settings"`
	ModelList []struct {
		ModelName     string `yaml:"model_name"`
		LiteLLMParams struct {
			InputCostPerToken  *float64 `yaml:"input_cost_per_token"`
			OutputCostPerToken *float64 `yaml:"output_cost_per_token"`
		} `yaml:"litellm_params"`
	} `yaml:"model_list"`
	Tollgate struct {
		DataPlaneAuth        *bool  `yaml:"data_plane_auth"`
		UpstreamAPIKey       string `yaml:"upstream_api_key"`
		BudgetExceededStatus int    `yaml:"budget_exceeded_status"`
		PricesFile           string `yaml:"prices_file"`
		WebhookSecret        string `yaml:"webhook_secret"`
		WebhookMaxAttempts   int    `yaml:"webhook_max_attempts"`
		WebhookBackoffMin    string `yaml:"webhook_backoff_min"`
		WebhookBackoffMax    string `yaml:"webhook_backoff_max"`
		WebhookTimeout       string `yaml:"webhook_timeout"`
	} `yaml:"tollgate"`
}

// appliedKeys are the config.yaml keys tollgate understands; every other key is
// reported once as ignored, so a LiteLLM config can be reused as it is.
var appliedKeys = []string{
	"general_settings.master_key",
	"general_settings.user_header_name",
	"litellm_settings.max_end_user_budget_id",
	"model_list[].model_name",
	"model_list[].litellm_params.input_cost_per_token",
	"model_list[].litellm_params.output_cost_per_token",
	"tollgate.data_plane_auth",
	"tollgate.upstream_api_key",
	"tollgate.budget_exceeded_status",
	"tollgate.prices_file",
	"general_settings.alerting",
	"general_settings.alerting_args.budget_alert_ttl",
	"environment_variables.WEBHOOK_URL",
	"tollgate.webhook_secret",
	"tollgate.webhook_max_attempts",
	"tollgate.webhook_backoff_min",
	"tollgate.webhook_backoff_max",
	"tollgate.webhook_timeout",
	"litellm_settings.timezone",
	"general_settings.disable_budget_reservation",
	"general_settings.token_rate_limit_type",
	"litellm_settings.require_auth_for_metrics_endpoint",
}

// loadConfig resolves the configuration. It reports every problem at once, and
// returns warnings (ignored keys) for the caller to log.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config, []string, error) {
	cfg := config{
		GRPCAddr:             "127.0.0.1:50051",
		AdminAddr:            "127.0.0.1:4001",
		DataDir:              "./data",
		SyncWrites:           true,
		DataPlaneAuth:        true,
		BudgetExceededStatus: 429,
		LogFormat:            "text",
		LogLevel:             "info",
		StrictBudgets:        true,
		ShutdownGrace:        defaultShutdownGrace,
	}
	var errs []error

	fs := flag.NewFlagSet("tollgate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", getenv("TOLLGATE_CONFIG"), "LiteLLM-style config.yaml (env TOLLGATE_CONFIG)")
	grpcAddr := fs.String("grpc-addr", "", "ext_proc gRPC listen address, host:port or unix:///path (env TOLLGATE_GRPC_ADDR; default 127.0.0.1:50051)")
	adminAddr := fs.String("admin-addr", "", "admin HTTP listen address (env TOLLGATE_ADMIN_ADDR; default 127.0.0.1:4001)")
	dataDir := fs.String("data-dir", "", "Badger data directory (env TOLLGATE_DATA_DIR; default ./data)")
	syncWrites := fs.String("sync-writes", "", "fsync every spend commit: true|false (env TOLLGATE_SYNC_WRITES; default true)")
	masterKeyFile := fs.String("master-key-file", "", "file holding the master key (env TOLLGATE_MASTER_KEY_FILE; or env TOLLGATE_MASTER_KEY / LITELLM_MASTER_KEY)")
	upstreamKeyFile := fs.String("upstream-api-key-file", "", "file holding the upstream LLM API key (env TOLLGATE_UPSTREAM_API_KEY_FILE; or env TOLLGATE_UPSTREAM_API_KEY)")
	dataPlaneAuth := fs.String("data-plane-auth", "", "require the proxy key on LLM requests: true|false (env TOLLGATE_DATA_PLANE_AUTH; default true)")
	budgetStatus := fs.String("budget-exceeded-status", "", "HTTP status for budget_exceeded: 429|400 (env TOLLGATE_BUDGET_EXCEEDED_STATUS; default 429)")
	pricesFile := fs.String("prices-file", "", "JSON price map in LiteLLM's format, merged over the embedded one (env TOLLGATE_PRICES_FILE)")
	logFormat := fs.String("log-format", "", "text|json (env TOLLGATE_LOG_FORMAT; default text)")
	maxBody := fs.String("max-request-body-bytes", "", "largest LLM request body; larger gets a 413 (env TOLLGATE_MAX_REQUEST_BODY_BYTES; default 32 MiB, must not exceed Envoy's buffer limit)")
	adminTLSCert := fs.String("admin-tls-cert", "", "PEM certificate: serve the admin API over TLS (env TOLLGATE_ADMIN_TLS_CERT; needs --admin-tls-key)")
	adminTLSKey := fs.String("admin-tls-key", "", "PEM private key for --admin-tls-cert (env TOLLGATE_ADMIN_TLS_KEY)")
	logLevel := fs.String("log-level", "", "debug|info|warn|error (env TOLLGATE_LOG_LEVEL; default info)")
	webhookSecretFile := fs.String("webhook-secret-file", "", "file holding the webhook signing secret (env TOLLGATE_WEBHOOK_SECRET_FILE; or env TOLLGATE_WEBHOOK_SECRET)")
	webhookMaxAttempts := fs.String("webhook-max-attempts", "", "HTTP attempts per webhook event before it is dead (env TOLLGATE_WEBHOOK_MAX_ATTEMPTS; default 10)")
	webhookBackoffMin := fs.String("webhook-backoff-min", "", "first wait between webhook attempts, doubling (env TOLLGATE_WEBHOOK_BACKOFF_MIN; default 1s)")
	webhookBackoffMax := fs.String("webhook-backoff-max", "", "longest wait between webhook attempts, Retry-After included (env TOLLGATE_WEBHOOK_BACKOFF_MAX; default 5m)")
	webhookTimeout := fs.String("webhook-timeout", "", "timeout of one webhook attempt (env TOLLGATE_WEBHOOK_TIMEOUT; default 10s)")
	timezone := fs.String("timezone", "", "IANA time zone budget windows reset in, e.g. America/New_York (env TOLLGATE_TIMEZONE; default UTC)")
	strictBudgets := fs.String("strict-budgets", "", "reserve each request's worst-case cost before forwarding it: true|false (env TOLLGATE_STRICT_BUDGETS; default true)")
	metricsAuth := fs.String("require-auth-for-metrics", "", "GET /metrics takes the master key: true|false (env TOLLGATE_REQUIRE_AUTH_FOR_METRICS; default false, as in LiteLLM)")
	shutdownGrace := fs.String("shutdown-grace", "", "after SIGTERM, how long in-flight requests may take before they are cut (env TOLLGATE_SHUTDOWN_GRACE; default 10s)")
	rateWindow := fs.String("rate-limit-window-size", "", "rpm/tpm window in seconds (env LITELLM_RATE_LIMIT_WINDOW_SIZE; default 60)")
	if err := fs.Parse(args); err != nil {
		return cfg, nil, err
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
	}

	var warnings []string
	var ttlSeconds *float64
	var tokenRateLimitType string
	var fileBackoffMin, fileBackoffMax, fileTimeout, fileMaxAttempts string
	if *configPath != "" {
		fc, w, err := readConfigFile(*configPath, getenv)
		warnings = w
		if err != nil {
			errs = append(errs, err)
		} else {
			cfg.MasterKey = fc.GeneralSettings.MasterKey
			cfg.UserHeaderName = fc.GeneralSettings.UserHeaderName
			cfg.DefaultBudgetID = fc.LiteLLMSettings.MaxEndUserBudgetID
			cfg.Timezone = fc.LiteLLMSettings.Timezone
			cfg.RequireAuthForMetrics = fc.LiteLLMSettings.RequireAuthForMetricsEndpoint
			if fc.GeneralSettings.DisableBudgetReservation != nil {
				cfg.StrictBudgets = !*fc.GeneralSettings.DisableBudgetReservation
			}
			tokenRateLimitType = fc.GeneralSettings.TokenRateLimitType
			if fc.Tollgate.DataPlaneAuth != nil {
				cfg.DataPlaneAuth = *fc.Tollgate.DataPlaneAuth
			}
			cfg.UpstreamAPIKey = fc.Tollgate.UpstreamAPIKey
			if fc.Tollgate.BudgetExceededStatus != 0 {
				cfg.BudgetExceededStatus = fc.Tollgate.BudgetExceededStatus
			}
			cfg.PricesFile = fc.Tollgate.PricesFile
			cfg.Alerting = fc.GeneralSettings.Alerting
			ttlSeconds = fc.GeneralSettings.AlertingArgs.BudgetAlertTTL
			cfg.WebhookURL = fc.EnvironmentVariables.WebhookURL
			cfg.WebhookSecret = fc.Tollgate.WebhookSecret
			fileBackoffMin, fileBackoffMax, fileTimeout = fc.Tollgate.WebhookBackoffMin, fc.Tollgate.WebhookBackoffMax, fc.Tollgate.WebhookTimeout
			if fc.Tollgate.WebhookMaxAttempts != 0 {
				fileMaxAttempts = strconv.Itoa(fc.Tollgate.WebhookMaxAttempts)
			}
			for i, m := range fc.ModelList {
				p := m.LiteLLMParams
				if p.InputCostPerToken == nil && p.OutputCostPerToken == nil {
					continue
				}
				if m.ModelName == "" {
					errs = append(errs, fmt.Errorf("config model_list[%d]: model_name is required with price fields", i))
					continue
				}
				if cfg.PriceOverrides == nil {
					cfg.PriceOverrides = map[string]priceOverride{}
				}
				cfg.PriceOverrides[m.ModelName] = priceOverride{InputCostPerToken: p.InputCostPerToken, OutputCostPerToken: p.OutputCostPerToken}
			}
		}
	}

	// pick returns the first non-empty value: flag, then env.
	pick := func(flagVal string, envKeys ...string) string {
		if flagVal != "" {
			return flagVal
		}
		for _, k := range envKeys {
			if v := getenv(k); v != "" {
				return v
			}
		}
		return ""
	}
	setString := func(dst *string, flagVal string, envKeys ...string) {
		if v := pick(flagVal, envKeys...); v != "" {
			*dst = v
		}
	}
	setBool := func(dst *bool, name, flagVal string, envKeys ...string) {
		v := pick(flagVal, envKeys...)
		if v == "" {
			return
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not true or false", name, v))
			return
		}
		*dst = b
	}
	setSecret := func(dst *string, name, fileFlag, fileEnv string, envKeys ...string) {
		if path := pick(fileFlag, fileEnv); path != "" {
			b, err := os.ReadFile(path)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				return
			}
			*dst = strings.TrimSpace(string(b))
			return
		}
		setString(dst, "", envKeys...)
	}

	setString(&cfg.GRPCAddr, *grpcAddr, "TOLLGATE_GRPC_ADDR")
	setString(&cfg.AdminAddr, *adminAddr, "TOLLGATE_ADMIN_ADDR")
	setString(&cfg.DataDir, *dataDir, "TOLLGATE_DATA_DIR")
	setBool(&cfg.SyncWrites, "sync-writes", *syncWrites, "TOLLGATE_SYNC_WRITES")
	setSecret(&cfg.MasterKey, "master-key-file", *masterKeyFile, "TOLLGATE_MASTER_KEY_FILE", "TOLLGATE_MASTER_KEY", "LITELLM_MASTER_KEY")
	setSecret(&cfg.UpstreamAPIKey, "upstream-api-key-file", *upstreamKeyFile, "TOLLGATE_UPSTREAM_API_KEY_FILE", "TOLLGATE_UPSTREAM_API_KEY")
	setBool(&cfg.DataPlaneAuth, "data-plane-auth", *dataPlaneAuth, "TOLLGATE_DATA_PLANE_AUTH")
	setString(&cfg.PricesFile, *pricesFile, "TOLLGATE_PRICES_FILE")
	setString(&cfg.LogFormat, *logFormat, "TOLLGATE_LOG_FORMAT")
	setString(&cfg.LogLevel, *logLevel, "TOLLGATE_LOG_LEVEL")
	if v := pick(*maxBody, "TOLLGATE_MAX_REQUEST_BODY_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("max-request-body-bytes: %q is not a positive number of bytes", v))
		} else {
			cfg.MaxRequestBodyBytes = n
		}
	}
	setBool(&cfg.RequireAuthForMetrics, "require-auth-for-metrics", *metricsAuth, "TOLLGATE_REQUIRE_AUTH_FOR_METRICS")
	setString(&cfg.AdminTLSCert, *adminTLSCert, "TOLLGATE_ADMIN_TLS_CERT")
	setString(&cfg.AdminTLSKey, *adminTLSKey, "TOLLGATE_ADMIN_TLS_KEY")
	if (cfg.AdminTLSCert == "") != (cfg.AdminTLSKey == "") {
		errs = append(errs, errors.New("admin-tls-cert and admin-tls-key: set both or neither"))
	}
	if v := pick(*budgetStatus, "TOLLGATE_BUDGET_EXCEEDED_STATUS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("budget-exceeded-status: %q is not a number", v))
		} else {
			cfg.BudgetExceededStatus = n
		}
	}

	setString(&cfg.Timezone, *timezone, "TOLLGATE_TIMEZONE")
	if cfg.Timezone != "" {
		if _, err := time.LoadLocation(cfg.Timezone); err != nil {
			errs = append(errs, fmt.Errorf("timezone: %q is not an IANA time zone such as UTC or America/New_York", cfg.Timezone))
		}
	}
	setBool(&cfg.StrictBudgets, "strict-budgets", *strictBudgets, "TOLLGATE_STRICT_BUDGETS")
	if c, err := limits.ParseCounting(tokenRateLimitType); err != nil {
		errs = append(errs, fmt.Errorf("general_settings.%w", err))
	} else {
		cfg.TokenCounting = c
	}
	if v := pick(*rateWindow, "LITELLM_RATE_LIMIT_WINDOW_SIZE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 24*3600 {
			errs = append(errs, fmt.Errorf("rate-limit-window-size: %q, want whole seconds from 1 to 86400", v))
		} else {
			cfg.RateWindow = time.Duration(n) * time.Second
		}
	}

	setSecret(&cfg.WebhookSecret, "webhook-secret-file", *webhookSecretFile, "TOLLGATE_WEBHOOK_SECRET_FILE", "TOLLGATE_WEBHOOK_SECRET")
	setString(&cfg.WebhookURL, "", "WEBHOOK_URL")
	if v := firstNonEmpty(pick(*webhookMaxAttempts, "TOLLGATE_WEBHOOK_MAX_ATTEMPTS"), fileMaxAttempts); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("webhook-max-attempts: %q, want a whole number of at least 1", v))
		}
		cfg.WebhookMaxAttempts = n
	}
	for _, d := range []struct {
		name     string
		dst      *time.Duration
		flag     string
		fromFile string
		env      string
	}{
		{"webhook-backoff-min", &cfg.WebhookBackoffMin, *webhookBackoffMin, fileBackoffMin, "TOLLGATE_WEBHOOK_BACKOFF_MIN"},
		{"webhook-backoff-max", &cfg.WebhookBackoffMax, *webhookBackoffMax, fileBackoffMax, "TOLLGATE_WEBHOOK_BACKOFF_MAX"},
		{"webhook-timeout", &cfg.WebhookTimeout, *webhookTimeout, fileTimeout, "TOLLGATE_WEBHOOK_TIMEOUT"},
		{"shutdown-grace", &cfg.ShutdownGrace, *shutdownGrace, "", "TOLLGATE_SHUTDOWN_GRACE"},
	} {
		v := firstNonEmpty(pick(d.flag, d.env), d.fromFile)
		if v == "" {
			continue
		}
		dur, err := time.ParseDuration(v)
		if err != nil || dur <= 0 {
			errs = append(errs, fmt.Errorf("%s: %q, want a positive duration such as 500ms or 2m", d.name, v))
		}
		*d.dst = dur
	}
	if cfg.WebhookBackoffMin > 0 && cfg.WebhookBackoffMax > 0 && cfg.WebhookBackoffMax < cfg.WebhookBackoffMin {
		errs = append(errs, fmt.Errorf("webhook-backoff-max %s is below webhook-backoff-min %s", cfg.WebhookBackoffMax, cfg.WebhookBackoffMin))
	}
	w, err := resolveAlerting(&cfg, ttlSeconds)
	warnings = append(warnings, w...)
	if err != nil {
		errs = append(errs, err)
	}

	if cfg.MasterKey == "" {
		errs = append(errs, errors.New("master key: set TOLLGATE_MASTER_KEY, --master-key-file or general_settings.master_key"))
	}
	if cfg.BudgetExceededStatus != 429 && cfg.BudgetExceededStatus != 400 {
		errs = append(errs, fmt.Errorf("budget-exceeded-status: %d, want 429 or 400", cfg.BudgetExceededStatus))
	}
	if !slices.Contains([]string{"text", "json"}, cfg.LogFormat) {
		errs = append(errs, fmt.Errorf("log-format: %q, want text or json", cfg.LogFormat))
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, cfg.LogLevel) {
		errs = append(errs, fmt.Errorf("log-level: %q, want debug, info, warn or error", cfg.LogLevel))
	}
	return cfg, warnings, errors.Join(errs...)
}

// firstNonEmpty returns the first non-empty string.
func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// resolveAlerting decides whether webhook alerting is on. Like LiteLLM, it
// needs both general_settings.alerting: ["webhook"] and WEBHOOK_URL; one
// without the other is a warning, not an error, so a LiteLLM config with
// slack alerting still starts.
func resolveAlerting(cfg *config, ttlSeconds *float64) ([]string, error) {
	var warnings []string
	for _, a := range cfg.Alerting {
		if a != "webhook" {
			warnings = append(warnings, fmt.Sprintf("general_settings.alerting: %q is not supported; tollgate sends only \"webhook\" alerts", a))
		}
	}
	hasWebhook := slices.Contains(cfg.Alerting, "webhook")
	switch {
	case cfg.WebhookURL != "" && !hasWebhook:
		warnings = append(warnings, `WEBHOOK_URL is set but general_settings.alerting does not include "webhook": webhook alerting is off (add alerting: ["webhook"] to config.yaml, as LiteLLM requires)`)
	case cfg.WebhookURL == "" && hasWebhook:
		warnings = append(warnings, `general_settings.alerting includes "webhook" but WEBHOOK_URL is not set: webhook alerting is off`)
	}
	if cfg.WebhookURL != "" {
		u, err := url.Parse(cfg.WebhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// The URL may carry a token; name the problem, not the value.
			return warnings, errors.New("WEBHOOK_URL: want an absolute http:// or https:// URL")
		}
	}
	cfg.WebhookEnabled = hasWebhook && cfg.WebhookURL != ""
	if !cfg.WebhookEnabled {
		return warnings, nil
	}
	cfg.BudgetAlertTTL = defaultBudgetAlertTTL
	if ttlSeconds != nil {
		s := *ttlSeconds
		if math.IsNaN(s) || s < 0 || s > 10*365*24*3600 {
			return warnings, fmt.Errorf("general_settings.alerting_args.budget_alert_ttl: %v, want seconds between 0 and ten years", s)
		}
		cfg.BudgetAlertTTL = time.Duration(s * float64(time.Second))
	}
	return warnings, nil
}

// readConfigFile decodes a LiteLLM-style config.yaml. String values of the form
// "os.environ/NAME" are read from the environment, as LiteLLM does.
func readConfigFile(path string, getenv func(string) string) (fileConfig, []string, error) {
	var fc fileConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return fc, nil, fmt.Errorf("config: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return fc, nil, fmt.Errorf("config %s: %w", path, err)
	}
	if len(root.Content) == 0 {
		return fc, nil, nil
	}
	var ignored []string
	seen := map[string]bool{}
	walkYAML(root.Content[0], "", func(key string, n *yaml.Node) {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
			if name, ok := strings.CutPrefix(n.Value, "os.environ/"); ok {
				n.Value = getenv(name)
			}
		}
		if isApplied(key) || seen[key] {
			return
		}
		seen[key] = true
		ignored = append(ignored, "ignored config key "+key)
	})
	if err := root.Content[0].Decode(&fc); err != nil {
		return fc, ignored, fmt.Errorf("config %s: %w", path, err)
	}
	return fc, ignored, nil
}

// isApplied reports whether key is applied or is a parent of an applied key.
func isApplied(key string) bool {
	for _, k := range appliedKeys {
		if k == key || strings.HasPrefix(k, key+".") || strings.HasPrefix(k, key+"[]") {
			return true
		}
	}
	return false
}

// walkYAML calls fn for every mapping value (and sequence item) under n with a
// dotted key path; sequence items are written "[]".
func walkYAML(n *yaml.Node, prefix string, fn func(key string, n *yaml.Node)) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if prefix != "" {
				key = prefix + "." + key
			}
			fn(key, n.Content[i+1])
			walkYAML(n.Content[i+1], key, fn)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind == yaml.ScalarNode {
				fn(prefix, c)
			}
			walkYAML(c, prefix+"[]", fn)
		}
	}
}
