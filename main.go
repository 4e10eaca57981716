// Command tollgate is an Envoy ext_proc server that tracks and enforces
// per-customer LLM spend, with LiteLLM's customer and budget admin API.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	// Time zones for budget windows, also where the system has no tz database.
	_ "time/tzdata"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tollgate-dev/tollgate/admin"
	"github.com/tollgate-dev/tollgate/admin/metrics"
	"github.com/tollgate-dev/tollgate/admin/webhook"
	"github.com/tollgate-dev/tollgate/extproc"
	"github.com/tollgate-dev/tollgate/extproc/pricing"
	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/badgerstore"
)

// maxGRPCMessage bounds one ext_proc message. Envoy sends a BUFFERED body as a
// single message, up to its buffer limit (32 MiB in our configs).
const maxGRPCMessage = 64 << 20

// defaultMemoryLimit is the Go soft memory limit unless GOMEMLIMIT is set: it
// keeps Badger's compaction garbage from growing the heap (store/badgerstore/README.md).
const defaultMemoryLimit = 100 << 20

// defaultGCPercent is GOGC unless GOGC is set. Badger's memtables and caches
// make most of the live heap, so Go's default (the heap grows to twice the
// live heap) held ~80 MiB under load; 50 holds ~55 MiB, with no loss of
// throughput measured (BENCHMARKS.md).
const defaultGCPercent = 50

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tollgate:", err)
		os.Exit(1)
	}
}

// run starts tollgate and blocks until ctx is done or a server fails. It prints
// "tollgate ready grpc=ADDR admin=ADDR" on stdout once both listeners are up.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if slices.Contains(args, "--version") || slices.Contains(args, "-version") {
		fmt.Fprintln(stdout, versionString())
		return nil
	}
	cfg, warnings, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := newLogger(stderr, cfg)
	for _, w := range warnings {
		logger.Warn(w)
	}

	prices, err := loadPrices(cfg)
	if err != nil {
		return err
	}
	loc, err := time.LoadLocation(cfg.Timezone) // validated by loadConfig; "" is UTC
	if err != nil {
		return fmt.Errorf("timezone: %w", err)
	}
	if !cfg.StrictBudgets {
		logger.Warn("strict budgets are off (disable_budget_reservation): concurrent requests can each pass the budget check before their cost is recorded, and overshoot the budget")
	}

	st, err := badgerstore.Open(badgerstore.Options{
		Dir: cfg.DataDir, SyncWrites: cfg.SyncWrites, Logger: logger, Alerting: alerting(cfg),
	})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			logger.Error("close store", "err", err)
		}
	}()
	met := metrics.New(metrics.Config{Outbox: st, Logger: logger})
	// The data plane, the admin API and the webhook worker use the store
	// through its metrics; InstrumentStore keeps the outbox st has.
	mst := metrics.InstrumentStore(st, met)
	outbox := mst.(store.Outbox)

	grpcLis, err := listen(cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen grpc: %w", err)
	}
	defer grpcLis.Close()
	adminLis, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		return fmt.Errorf("listen admin: %w", err)
	}
	defer adminLis.Close()

	// WaitForHandlers: even a forced Stop at the end of the grace period
	// returns only once every handler has returned, so the spend a closing
	// stream records (bounded by the store timeout) lands before the store
	// closes.
	grpcSrv := grpc.NewServer(grpc.MaxRecvMsgSize(maxGRPCMessage), grpc.WaitForHandlers(true))
	extprocv3.RegisterExternalProcessorServer(grpcSrv, extproc.NewServer(extproc.Config{
		MasterKey:            cfg.MasterKey,
		DataPlaneAuth:        cfg.DataPlaneAuth,
		UpstreamAPIKey:       cfg.UpstreamAPIKey,
		BudgetExceededStatus: cfg.BudgetExceededStatus,
		DefaultBudgetID:      cfg.DefaultBudgetID,
		UserHeaderName:       cfg.UserHeaderName,
		Prices:               prices,
		Logger:               logger,
		MaxRequestBodyBytes:  cfg.MaxRequestBodyBytes,

		Location:                 loc,
		DisableBudgetReservation: !cfg.StrictBudgets,
		TokenCounting:            cfg.TokenCounting,
		RateWindow:               cfg.RateWindow,
		Metrics:                  met,
	}, mst))
	healthSrv := health.NewServer()
	healthpb.RegisterHealthServer(grpcSrv, healthSrv)

	// serving is true from the moment both listeners serve until shutdown starts.
	var serving atomic.Bool
	adminCfg := admin.Config{
		MasterKey: cfg.MasterKey,
		Logger:    logger,
		Ready:     readiness(&serving, st),
		Outbox:    outbox,

		Location:        loc,
		DefaultBudgetID: cfg.DefaultBudgetID,

		Metrics:               met.Handler(),
		RequireAuthForMetrics: cfg.RequireAuthForMetrics,
	}
	// The worker stops with run and must finish before the store closes.
	workerCtx, stopWorker := context.WithCancel(ctx)
	workerDone := make(chan struct{})
	defer func() {
		stopWorker()
		<-workerDone
	}()
	if cfg.WebhookEnabled {
		w := webhook.New(webhook.Config{
			URL:         cfg.WebhookURL,
			Secret:      cfg.WebhookSecret,
			MaxAttempts: cfg.WebhookMaxAttempts,
			BackoffMin:  cfg.WebhookBackoffMin,
			BackoffMax:  cfg.WebhookBackoffMax,
			Timeout:     cfg.WebhookTimeout,
			Logger:      logger,
		}, outbox)
		adminCfg.Webhook = w
		go func() {
			defer close(workerDone)
			w.Run(workerCtx)
		}()
		logger.Info("webhook alerting on", "signed", cfg.WebhookSecret != "", "budget_alert_ttl", cfg.BudgetAlertTTL.String())
	} else {
		close(workerDone)
	}

	httpSrv := &http.Server{
		Handler:           admin.New(adminCfg, mst),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	errc := make(chan error, 2)
	go func() { errc <- grpcSrv.Serve(grpcLis) }()
	go func() {
		if cfg.AdminTLSCert != "" {
			errc <- httpSrv.ServeTLS(adminLis, cfg.AdminTLSCert, cfg.AdminTLSKey)
			return
		}
		errc <- httpSrv.Serve(adminLis)
	}()
	serving.Store(true)
	logger.Info("tollgate ready", "grpc", grpcLis.Addr().String(), "admin", adminLis.Addr().String(), "data_dir", cfg.DataDir)
	fmt.Fprintf(stdout, "tollgate ready grpc=%s admin=%s\n", grpcLis.Addr(), adminLis.Addr())

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case serveErr = <-errc:
		logger.Error("server stopped", "err", serveErr)
	}
	serving.Store(false)
	healthSrv.Shutdown()

	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	stopped := make(chan struct{})
	go func() { grpcSrv.GracefulStop(); close(stopped) }()
	if err := httpSrv.Shutdown(shutCtx); err != nil {
		logger.Warn("admin shutdown", "err", err)
	}
	select {
	case <-stopped:
	case <-shutCtx.Done():
		logger.Warn("ext_proc streams still open after grace period; closing them")
		grpcSrv.Stop()
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) && !errors.Is(serveErr, grpc.ErrServerStopped) {
		return serveErr
	}
	return nil
}

// alerting is the store's webhook event policy. The token LiteLLM puts in
// events is the hash of the proxy key the request used; with data-plane auth
// that is always the master key, without it tollgate never sees one.
func alerting(cfg config) store.Alerting {
	a := store.Alerting{
		Enabled:         cfg.WebhookEnabled,
		DefaultBudgetID: cfg.DefaultBudgetID,
		BudgetAlertTTL:  cfg.BudgetAlertTTL,
	}
	if cfg.DataPlaneAuth {
		sum := sha256.Sum256([]byte(cfg.MasterKey))
		a.Token = hex.EncodeToString(sum[:])
	}
	return a
}

// listen accepts host:port or unix:///path.
func listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
		return net.Listen("unix", path)
	}
	return net.Listen("tcp", addr)
}

func newLogger(w io.Writer, cfg config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by loadConfig
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// loadPrices merges, in rising priority: the embedded table, the prices file,
// and config.yaml's model_list price fields.
func loadPrices(cfg config) (*pricing.Table, error) {
	t := pricing.Default()
	if cfg.PricesFile != "" {
		f, err := os.Open(cfg.PricesFile)
		if err != nil {
			return nil, fmt.Errorf("prices file: %w", err)
		}
		defer f.Close()
		fromFile, err := pricing.Parse(f)
		if err != nil {
			return nil, fmt.Errorf("prices file %s: %w", cfg.PricesFile, err)
		}
		t = t.Merge(fromFile)
	}
	for _, model := range slices.Sorted(maps.Keys(cfg.PriceOverrides)) {
		o := cfg.PriceOverrides[model]
		var err error
		if t, err = t.Override(model, o.InputCostPerToken, o.OutputCostPerToken); err != nil {
			return nil, fmt.Errorf("config model_list: %w", err)
		}
	}
	return t, nil
}

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

func versionString() string {
	v := "tollgate " + version
	if bi, ok := debug.ReadBuildInfo(); ok {
		v += " " + bi.GoVersion
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v += " " + s.Value
			}
		}
	}
	return v
}

// budgetGetter is the store read that readiness uses as a probe.
type budgetGetter interface {
	GetBudget(ctx context.Context, id string) (store.Budget, error)
}

// readiness reports ready while the listeners serve and the store answers a
// read (a missing budget is a good answer).
func readiness(serving *atomic.Bool, st budgetGetter) func(context.Context) error {
	return func(ctx context.Context) error {
		if !serving.Load() {
			return errors.New("not serving (starting or shutting down)")
		}
		if _, err := st.GetBudget(ctx, "tollgate-readiness-probe"); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("store: %w", err)
		}
		return nil
	}
}
