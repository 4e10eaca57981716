// Package webhook delivers the outbox's events to the configured webhook:
// LiteLLM's WebhookEvent body, POSTed with go-retryablehttp (a timeout per
// attempt, exponential backoff with jitter, Retry-After honoured, a bounded
// number of attempts), signed with HMAC-SHA256 when a secret is set. Events
// of one customer are delivered one at a time, in order; other customers
// continue while one waits. Any 2xx is success; an event whose attempts all
// fail is marked dead, kept and replayable. Delivery is at least once: a
// receiver drops duplicates by the X-Tollgate-Event-Id header.
package webhook

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/tollgate-dev/tollgate/store"
)

// Outbox is the part of the store the worker drains.
type Outbox interface {
	OutboxHeads(ctx context.Context, after string, n int) ([]store.Event, error)
	RecordDeliveries(ctx context.Context, ds []store.Delivery) error
	EventsReady() <-chan struct{}
}

// Defaults for the zero values of Config.
const (
	DefaultMaxAttempts = 10
	DefaultBackoffMin  = time.Second
	DefaultBackoffMax  = 5 * time.Minute
	DefaultTimeout     = 10 * time.Second
	DefaultLanes       = 16
)

// storeRetry is how long the worker waits after a store error before trying
// again; the events stay in the outbox meanwhile.
const storeRetry = time.Second

// flushTimeout bounds recording the last outcomes after Run's context ends.
const flushTimeout = 5 * time.Second

// Config configures a Worker. Zero values get the defaults above.
type Config struct {
	// URL receives every event (WEBHOOK_URL).
	URL string
	// Secret, when set, signs every delivery (see Sign).
	Secret string
	// MaxAttempts bounds the HTTP attempts per event before it is dead.
	MaxAttempts int
	// BackoffMin and BackoffMax bound the wait between attempts: it doubles
	// from BackoffMin, with jitter, up to BackoffMax. A Retry-After header
	// replaces it, capped at BackoffMax.
	BackoffMin, BackoffMax time.Duration
	// Timeout bounds each attempt, from connecting to reading the response.
	Timeout time.Duration
	// Lanes is how many customers' events are delivered at once.
	Lanes int
	// Logger receives one line per dead event and per store error.
	Logger *slog.Logger
	// Now stamps the signature timestamps; nil means time.Now.
	Now func() time.Time
}

// Worker delivers the outbox. Create it with New and start it with Run.
type Worker struct {
	cfg    Config
	ob     Outbox
	log    *slog.Logger
	now    func() time.Time
	http   *http.Client
	cursor string // the customer after which the next scan for heads starts
}

// New returns a worker for ob.
func New(cfg Config, ob Outbox) *Worker {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(DefaultBackoffMax, cfg.BackoffMin)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Lanes <= 0 {
		cfg.Lanes = DefaultLanes
	}
	w := &Worker{cfg: cfg, ob: ob, log: cfg.Logger, now: cfg.Now}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.now == nil {
		w.now = time.Now
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = cfg.Lanes
	w.http = &http.Client{
		Transport: transport,
		Timeout:   cfg.Timeout,
		// A redirect is a failed attempt: following it would send the signed
		// body somewhere the operator did not configure.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return w
}

// outcome is what one lane reports back to Run.
type outcome struct {
	delivery store.Delivery
	// abandoned means Run's context ended mid-delivery: the event stays
	// pending and is delivered again after a restart.
	abandoned bool
}

// Run delivers events until ctx ends, then waits for the deliveries under
// way, records what they achieved, and returns. The store must stay open
// until Run returns.
func (w *Worker) Run(ctx context.Context) {
	results := make(chan outcome, w.cfg.Lanes)
	// busy holds the customers with an event in a lane or an outcome not yet
	// recorded: their next event must wait, to keep each customer in order.
	busy := map[string]bool{}
	running := 0
	var unrecorded []store.Delivery
	scan := true
	var retry <-chan time.Time
	for {
		if retry == nil && len(unrecorded) > 0 {
			if err := w.ob.RecordDeliveries(ctx, unrecorded); err != nil {
				if ctx.Err() == nil {
					w.log.Error("webhook: record deliveries", "err", err)
				}
				retry = time.After(storeRetry)
			} else {
				for _, d := range unrecorded {
					delete(busy, d.Event.CustomerID)
				}
				unrecorded = unrecorded[:0]
				scan = true
			}
		}
		if retry == nil && scan && running < w.cfg.Lanes {
			scan = false
			heads, err := w.heads(ctx, busy, w.cfg.Lanes-running)
			if err != nil && ctx.Err() == nil {
				w.log.Error("webhook: read outbox", "err", err)
				retry = time.After(storeRetry)
			}
			for _, e := range heads {
				busy[e.CustomerID] = true
				running++
				go func() { results <- w.deliverEvent(ctx, e) }()
			}
		}
		select {
		case <-ctx.Done():
			for ; running > 0; running-- {
				if o := <-results; !o.abandoned {
					unrecorded = append(unrecorded, o.delivery)
				}
			}
			w.flush(unrecorded)
			return
		case o := <-results:
			running--
			scan = true
			if o.abandoned {
				delete(busy, o.delivery.Event.CustomerID)
			} else {
				unrecorded = append(unrecorded, o.delivery)
			}
		case <-w.ob.EventsReady():
			scan = true
		case <-retry:
			retry = nil
			scan = true
		}
	}
}

// flush records the outcomes that finished as Run was stopping, so their
// events are not delivered again after a restart.
func (w *Worker) flush(ds []store.Delivery) {
	if len(ds) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if err := w.ob.RecordDeliveries(ctx, ds); err != nil {
		w.log.Warn("webhook: outcomes not recorded; those events will be delivered again", "events", len(ds), "err", err)
	}
}

// heads returns the next events to deliver: the oldest pending event of up
// to want customers that are not busy. Customers are visited round-robin
// from where the last scan stopped, so none waits behind busier ones.
func (w *Worker) heads(ctx context.Context, busy map[string]bool, want int) ([]store.Event, error) {
	var out []store.Event
	chosen := map[string]bool{}
	n := want + len(busy) // a full page has at least want customers that are not busy
	after := w.cursor
	for {
		page, err := w.ob.OutboxHeads(ctx, after, n)
		if err != nil {
			return out, err
		}
		for _, e := range page {
			if busy[e.CustomerID] || chosen[e.CustomerID] {
				continue
			}
			chosen[e.CustomerID] = true
			out = append(out, e)
			if len(out) == want {
				break
			}
		}
		if len(out) == want || after == "" {
			break
		}
		after = "" // reached the end: wrap around once
	}
	if len(out) > 0 {
		w.cursor = out[len(out)-1].CustomerID
	}
	return out, nil
}
