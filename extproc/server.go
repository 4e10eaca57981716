// Package extproc is tollgate's data plane: an Envoy external-processing (ext_proc)
// gRPC service. For each LLM request it authenticates the caller, finds the
// customer, rejects blocked customers and customers over their budget (in its
// current window), model budget, rate, parallel or strict-budget limits before
// the upstream is called, and records what the response's usage cost once the
// response is in.
package extproc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate-dev/tollgate/admin/metrics"
	"github.com/tollgate-dev/tollgate/extproc/limits"
	"github.com/tollgate-dev/tollgate/extproc/pricing"
	"github.com/tollgate-dev/tollgate/store"
)

// Store is the part of store.Store the data plane uses.
type Store interface {
	GetCustomer(ctx context.Context, id string) (store.Customer, error)
	GetBudget(ctx context.Context, id string) (store.Budget, error)
	RecordSpend(ctx context.Context, l store.SpendLog) (store.SpendResult, error)
}

// Metrics receives what the data plane measures; *metrics.Metrics implements
// it. Spend, tokens and unpriced models are counted by the store it records
// through (metrics.InstrumentStore), not here.
type Metrics interface {
	// Decision counts one admission decision: a metrics.Outcome* value.
	Decision(outcome string)
	// ObservePhase records how long one ext_proc message (a metrics.Phase*
	// value) took to answer.
	ObservePhase(phase string, d time.Duration)
}

// Config configures a Server. Zero values get the defaults noted per field.
type Config struct {
	// MasterKey is the proxy key callers must present when DataPlaneAuth is on.
	MasterKey string
	// DataPlaneAuth requires MasterKey on every request that reaches the filter.
	DataPlaneAuth bool
	// UpstreamAPIKey, when set, is sent upstream where the upstream expects
	// it: "authorization: Bearer <key>", or x-api-key for Anthropic's API and
	// api-key for Azure OpenAI's. The caller's own credentials are never
	// forwarded either way.
	UpstreamAPIKey string
	// BudgetExceededStatus is the HTTP status of a budget_exceeded rejection:
	// 429 (default, current LiteLLM) or 400 (LiteLLM 2024–2025). Other values mean 429.
	BudgetExceededStatus int
	// DefaultBudgetID is LiteLLM's litellm_settings.max_end_user_budget_id: the
	// budget of customers that have none, including customers not stored yet.
	DefaultBudgetID string
	// UserHeaderName is LiteLLM's general_settings.user_header_name, a third
	// header naming the customer, after x-litellm-customer-id and x-litellm-end-user-id.
	UserHeaderName string
	// Prices prices usage; default pricing.Default().
	Prices *pricing.Table
	// Logger receives the server's logs; default discards them.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// NewID returns tollgate's own id for a request; default 128 random bits in hex.
	NewID func() string
	// StoreTimeout bounds each store call; default 1s. Envoy's message_timeout
	// (2s) must leave room for it.
	StoreTimeout time.Duration
	// MaxRequestBodyBytes is the largest LLM request body admitted; larger
	// ones get a 413 in LiteLLM's error envelope. It must not exceed Envoy's
	// buffer limit (per_connection_buffer_limit_bytes), or Envoy answers
	// first with a plain-text 413. Response bodies of known length above it
	// are read STREAMED rather than BUFFERED, so Envoy never fails them.
	// Default 32 MiB, the buffer limit in tollgate's Envoy configs.
	MaxRequestBodyBytes int64
	// Location is the time zone budget windows reset in (LiteLLM's
	// litellm_settings.timezone): daily budgets at its midnight, monthly ones
	// on the 1st. Default UTC.
	Location *time.Location
	// DisableBudgetReservation turns strict budgets off (LiteLLM's
	// general_settings.disable_budget_reservation). With them on (the zero
	// value), a request is forwarded only if its worst-case cost fits in the
	// budget next to the spend and the reservations of requests in flight.
	DisableBudgetReservation bool
	// TokenCounting says which tokens count against tpm_limit (LiteLLM's
	// general_settings.token_rate_limit_type); default total.
	TokenCounting limits.Counting
	// RateWindow is the length of an rpm/tpm window (LiteLLM's
	// LITELLM_RATE_LIMIT_WINDOW_SIZE); default 60 s.
	RateWindow time.Duration
	// Metrics receives decisions and message latencies; default none.
	Metrics Metrics
}

// DefaultMaxRequestBodyBytes is Config.MaxRequestBodyBytes's default.
const DefaultMaxRequestBodyBytes = 32 << 20

// Server implements Envoy's ExternalProcessor service. Each stream (one HTTP
// request) gets its own processor; the Server holds only what streams share.
type Server struct {
	cfg        Config
	store      Store
	log        *slog.Logger
	masterHash [sha256.Size]byte
	// credentials is the request-header mutation of each credentialStyle,
	// made once: it depends only on the configuration.
	credentials [azureCredential + 1]*extprocv3.HeaderMutation

	// rates and ledger are the per-process admission state: rate windows
	// and requests in flight, and strict-budget reservations.
	rates  *limits.Rates
	ledger *limits.Ledger

	// defaultBudgetMissingLogged and unpricedLogged keep config problems to one
	// log line each instead of one per request.
	defaultBudgetMissingLogged atomic.Bool
	unpricedMu                 sync.Mutex
	unpricedLogged             map[string]struct{} // at most maxUnpricedLogged names
	unpricedFull               bool                // unpricedLogged is full and said so
}

// maxUnpricedLogged bounds the unpriced model names remembered for logging:
// model names come from clients, and each new one would stay in memory.
const maxUnpricedLogged = 1000

// NewServer returns a Server that reads and records through st.
func NewServer(cfg Config, st Store) *Server {
	if cfg.BudgetExceededStatus != 400 {
		cfg.BudgetExceededStatus = 429
	}
	cfg.UserHeaderName = strings.ToLower(strings.TrimSpace(cfg.UserHeaderName))
	if cfg.Prices == nil {
		cfg.Prices = pricing.Default()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = randomID
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = time.Second
	}
	if cfg.MaxRequestBodyBytes <= 0 {
		cfg.MaxRequestBodyBytes = DefaultMaxRequestBodyBytes
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Metrics == nil {
		cfg.Metrics = (*metrics.Metrics)(nil) // its methods do nothing on nil
	}
	s := &Server{
		cfg:        cfg,
		store:      st,
		log:        cfg.Logger,
		masterHash: sha256.Sum256([]byte(cfg.MasterKey)),
		rates:      limits.NewRates(limits.Config{Window: cfg.RateWindow, Now: cfg.Now}),
		ledger:     limits.NewLedger(),

		unpricedLogged: map[string]struct{}{},
	}
	for style := range s.credentials {
		s.credentials[style] = credentialMutation(cfg.UpstreamAPIKey, credentialStyle(style))
	}
	return s
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes the program instead)
	return hex.EncodeToString(b[:])
}

// Process serves one ext_proc stream: it answers every ProcessingRequest with
// exactly one ProcessingResponse of the matching kind, in order.
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	ctx := stream.Context()
	p := &processor{s: s}
	// However the stream ends, a response still streaming is charged and
	// what admission took (a parallel slot, reservations) is given back.
	defer p.finish(ctx)
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
			return nil
		}
		if err != nil {
			p.logger().Debug("ext_proc stream ended", "err", err)
			return err
		}
		resp, err := p.handle(ctx, req)
		if err != nil {
			return err
		}
		if err := stream.Send(resp); err != nil {
			p.logger().Debug("ext_proc send failed", "err", err)
			return err
		}
	}
}

// validKey compares in constant time; hashing first hides the key's length too.
func (s *Server) validKey(key string) bool {
	h := sha256.Sum256([]byte(key))
	return subtle.ConstantTimeCompare(h[:], s.masterHash[:]) == 1
}

// price picks the model to price a request by: the request's model, else the
// one the response names (a dated snapshot such as gpt-4o-2024-08-06).
func (s *Server) price(requestModel, responseModel string) (string, pricing.Price, bool) {
	for _, m := range []string{requestModel, responseModel} {
		if p, ok := s.cfg.Prices.Lookup(m); ok {
			return m, p, true
		}
	}
	if requestModel == "" {
		return responseModel, pricing.Price{}, false
	}
	return requestModel, pricing.Price{}, false
}

// logUnpriced logs the first unpriced request of each model, up to
// maxUnpricedLogged models; tollgate_unpriced_requests_total counts them all.
func (s *Server) logUnpriced(model string) {
	s.unpricedMu.Lock()
	defer s.unpricedMu.Unlock()
	if _, seen := s.unpricedLogged[model]; seen || s.unpricedFull {
		return
	}
	if len(s.unpricedLogged) == maxUnpricedLogged {
		s.unpricedFull = true
		s.log.Warn("too many unpriced models; no longer logging them", "limit", maxUnpricedLogged)
		return
	}
	s.unpricedLogged[model] = struct{}{}
	s.log.Warn("model has no price; its requests are recorded at cost 0 (add it to the prices file)", "model", model)
}
