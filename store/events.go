package store

import (
	"context"
	"fmt"
	"math/bits"
	"time"
)

// EventType is a webhook event's "event" value, as in LiteLLM's WebhookEvent.
type EventType string

// The customer events tollgate sends.
const (
	EventSpendTracked           EventType = "spend_tracked"
	EventBudgetCrossed          EventType = "budget_crossed"
	EventThresholdCrossed       EventType = "threshold_crossed"
	EventSoftBudgetCrossed      EventType = "soft_budget_crossed"
	EventProjectedLimitExceeded EventType = "projected_limit_exceeded"
)

// Event is one customer webhook event in the outbox: the fields of LiteLLM's
// WebhookEvent that tollgate knows, plus delivery bookkeeping.
type Event struct {
	// ID is stable for the life of the event (retries, restarts, replays) and
	// unique across databases, so receivers can drop duplicates by it.
	ID string
	// Seq is the outbox's commit sequence: events of later commits have higher
	// Seq, and the events of one spend are consecutive in the order decided.
	Seq        uint64
	Type       EventType
	CustomerID string
	// RequestID is the spend log that caused the event.
	RequestID string
	// Spend is the request's cost for spend_tracked, and the customer's total
	// spend after the request for budget events.
	Spend      Nano
	MaxBudget  *Nano
	SoftBudget *Nano
	// Token is the hashed proxy key (LiteLLM's token); nil renders as null.
	Token *string
	// ProjectedSpend and ProjectedExceededDate are set on projected_limit_exceeded.
	ProjectedSpend        *Nano
	ProjectedExceededDate *time.Time
	Message               string
	CreatedAt             time.Time
	// Attempts, LastError and DeadAt describe the failed delivery of a dead event.
	Attempts  int
	LastError string
	DeadAt    time.Time
}

// Delivery is the outcome of delivering one pending event.
type Delivery struct {
	// Event is the event as Outbox.OutboxHeads returned it.
	Event Event
	// Attempts is how many HTTP attempts were made.
	Attempts int
	// Dead reports that every attempt failed; LastError says how the last one did.
	Dead      bool
	LastError string
}

// OutboxStats counts the outbox. Delivered and Retried count events whose
// delivery finished; Retried counts those that needed more than one attempt.
type OutboxStats struct {
	Delivered int64
	Retried   int64
	Pending   int64
	Dead      int64
}

// Outbox is the durable webhook outbox that RecordSpend fills when the store
// was opened with alerting enabled. One delivery worker drains it.
type Outbox interface {
	// OutboxHeads returns the oldest pending event of each customer whose id
	// sorts after `after` ("" = from the first), in customer id order, at most n.
	OutboxHeads(ctx context.Context, after string, n int) ([]Event, error)
	// RecordDeliveries applies outcomes in one transaction: delivered events
	// leave the outbox, dead ones move to the dead list, the counters grow.
	// Outcomes for events that are no longer pending are ignored.
	RecordDeliveries(ctx context.Context, ds []Delivery) error
	// DeadEvents returns every dead event ordered by Seq.
	DeadEvents(ctx context.Context) ([]Event, error)
	// ReplayDead makes the dead events with these ids pending again, keeping
	// their ID and Seq, all or none: a *MissingError lists unknown ids.
	ReplayDead(ctx context.Context, ids []string) ([]Event, error)
	// OutboxStats counts delivered, retried, pending and dead events.
	OutboxStats(ctx context.Context) (OutboxStats, error)
	// EventsReady receives a value after a commit made events pending. Sends
	// are coalesced and never block the writer; it is meant for one worker.
	EventsReady() <-chan struct{}
}

// Alerting is the webhook event policy a backend applies inside RecordSpend's
// transaction, where the spend before and after a request is exact under
// concurrency. It is pure: SpendEvents only reads its arguments and the marks.
type Alerting struct {
	// Enabled turns events on; when false RecordSpend writes none.
	Enabled bool
	// DefaultBudgetID is the budget of customers that have none
	// (litellm_settings.max_end_user_budget_id); "" means none.
	DefaultBudgetID string
	// BudgetAlertTTL is LiteLLM's alerting_args.budget_alert_ttl: a budget
	// event is not sent again within it, even in a new window.
	BudgetAlertTTL time.Duration
	// Token is put in every event's token: LiteLLM sends the hashed proxy
	// key. "" means null.
	Token string
}

// AlertMarks is the dedup state of one customer's budget events: for each
// alert, the window it was last sent in and when. Backends store it in the
// same transaction as the spend so an alert fires once however many requests
// cross its boundary together.
type AlertMarks map[string]AlertMark

// AlertMark is when, and in which budget window, an alert was last sent.
type AlertMark struct {
	Window string
	At     time.Time
}

// Alert keys in AlertMarks: the two thresholds are separate alerts (LiteLLM
// shares one key, so after the 85% alert the 95% one is never sent).
const (
	alertSoftBudget = "soft_budget_crossed"
	alert85         = "threshold_crossed:85"
	alert95         = "threshold_crossed:95"
	alertCrossed    = "budget_crossed"
	alertProjected  = "projected_limit_exceeded"
)

// budgetPrefix starts every customer budget message, in LiteLLM's style
// ("User Budget: ", "Key Budget: ", ...).
const budgetPrefix = "Customer Budget: "

// SpendEvents returns the events that recording l caused, in order: c is the
// customer after the increment, b its budget (its own or the default; nil for
// none), and marks its dedup state, updated in place (nil only when b is nil).
//
// spend_tracked follows every priced request (cost 0 included, as LiteLLM
// sends it whenever a cost was computed). Budget events fire on the first
// spend at or past their boundary that is not deduplicated: at most once per
// customer, alert and budget window (l.Window), and not again within
// BudgetAlertTTL.
func (a Alerting) SpendEvents(l SpendLog, c Customer, b *Budget, marks AlertMarks, now time.Time) []Event {
	if !a.Enabled || l.CustomerID == "" {
		return nil
	}
	base := Event{CustomerID: c.UserID, RequestID: l.RequestID}
	if a.Token != "" {
		base.Token = &a.Token
	}
	if b != nil {
		base.MaxBudget, base.SoftBudget = copyNano(b.MaxBudget), copyNano(b.SoftBudget)
	}
	var out []Event
	if !l.Unpriced {
		e := base
		e.Type, e.Spend = EventSpendTracked, l.Cost
		e.Message = fmt.Sprintf("Customer spend tracked. Customer=%s, spend=%s", c.UserID, l.Cost)
		out = append(out, e)
	}
	if b == nil {
		return out
	}
	// The window the spend was recorded in, as the caller found it.
	w := l.Window
	fire := func(alert string, typ EventType, message string) *Event {
		if m, ok := marks[alert]; ok && (m.Window == w.ID() || now.Sub(m.At) < a.BudgetAlertTTL) {
			return nil
		}
		marks[alert] = AlertMark{Window: w.ID(), At: now}
		e := base
		e.Type, e.Spend, e.Message = typ, c.Spend, message
		out = append(out, e)
		return &out[len(out)-1]
	}
	spend := c.Spend
	if soft := b.SoftBudget; soft != nil && spend >= *soft {
		fire(alertSoftBudget, EventSoftBudgetCrossed, budgetPrefix+"Soft Budget Crossed\n Total Soft Budget:`"+soft.String()+"`")
	}
	limit := b.MaxBudget
	if limit == nil {
		return out
	}
	// LiteLLM's wording, trailing space included.
	if *limit > 0 && reached(spend, *limit, 85) {
		fire(alert85, EventThresholdCrossed, budgetPrefix+"15% Threshold Crossed")
	}
	if *limit > 0 && reached(spend, *limit, 95) {
		fire(alert95, EventThresholdCrossed, budgetPrefix+"5% Threshold Crossed ")
	}
	if spend >= *limit {
		fire(alertCrossed, EventBudgetCrossed, budgetPrefix+"Budget Crossed\n Total Budget:`"+limit.String()+"`")
		return out
	}
	if projected, at, ok := project(spend, *limit, w, now); ok {
		if e := fire(alertProjected, EventProjectedLimitExceeded, budgetPrefix+"Projected Limit Exceeded"); e != nil {
			e.ProjectedSpend, e.ProjectedExceededDate = &projected, &at
		}
	}
	return out
}

// reached reports spend ≥ pct% of limit, exactly (128-bit products).
func reached(spend, limit Nano, pct uint64) bool {
	if spend < 0 {
		return false
	}
	sh, sl := bits.Mul64(uint64(spend), 100)
	lh, ll := bits.Mul64(uint64(limit), pct)
	return sh > lh || (sh == lh && sl >= ll)
}

// project extrapolates the spend rate so far in window w to its end: the
// spend projected at the end, and when spend reaches limit. ok is false
// unless that moment comes before the window ends.
func project(spend, limit Nano, w Window, now time.Time) (projected Nano, at time.Time, ok bool) {
	if !w.Bounded() || spend <= 0 || !now.After(w.Start) || !now.Before(w.End) {
		return 0, time.Time{}, false
	}
	elapsed := uint64(now.Sub(w.Start))
	// When spend reaches limit at the current rate: elapsed × limit / spend after the start.
	toLimit, fits := mulDiv(elapsed, uint64(limit), uint64(spend))
	if !fits || !w.Start.Add(time.Duration(toLimit)).Before(w.End) {
		return 0, time.Time{}, false
	}
	p, fits := mulDiv(uint64(spend), uint64(w.End.Sub(w.Start)), elapsed)
	if !fits {
		p = 1<<63 - 1
	}
	return Nano(p), w.Start.Add(time.Duration(toLimit)).UTC().Truncate(time.Second), true
}

// mulDiv returns a×b/c rounded down; fits is false when the result does not
// fit in an int64.
func mulDiv(a, b, c uint64) (q uint64, fits bool) {
	hi, lo := bits.Mul64(a, b)
	if hi >= c {
		return 0, false
	}
	q, _ = bits.Div64(hi, lo, c)
	return q, q <= 1<<63-1
}

func copyNano(p *Nano) *Nano {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
