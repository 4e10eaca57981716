package metrics

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate-dev/tollgate/store"
)

// Outbox is the webhook outbox count that every scrape reads.
type Outbox interface {
	OutboxStats(ctx context.Context) (store.OutboxStats, error)
}

// outboxStatsTimeout bounds the outbox count of one scrape.
const outboxStatsTimeout = 5 * time.Second

// outboxCollector reads the outbox's own counters at scrape time, once per
// scrape so the four numbers come from one read, rather than keeping a
// second count that could drift from /webhook/info.
type outboxCollector struct {
	ob                         Outbox
	events, delivered, retried *prometheus.Desc
}

func newOutboxCollector(ob Outbox) *outboxCollector {
	return &outboxCollector{
		ob: ob,
		events: prometheus.NewDesc("tollgate_webhook_events",
			"Webhook events in the outbox by state: pending (waiting for delivery) or dead (every attempt failed; replayable).",
			[]string{"state"}, nil),
		delivered: prometheus.NewDesc("tollgate_webhook_events_delivered_total",
			"Webhook events delivered (any 2xx).", nil, nil),
		retried: prometheus.NewDesc("tollgate_webhook_events_retried_total",
			"Webhook events whose delivery finished after more than one attempt, delivered or dead.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.events
	ch <- c.delivered
	ch <- c.retried
}

// Collect implements prometheus.Collector. When the count fails, the scrape
// reports the error and goes on without these families.
func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), outboxStatsTimeout)
	defer cancel()
	st, err := c.ob.OutboxStats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.events, fmt.Errorf("outbox stats: %w", err))
		return
	}
	ch <- prometheus.MustNewConstMetric(c.events, prometheus.GaugeValue, float64(st.Pending), "pending")
	ch <- prometheus.MustNewConstMetric(c.events, prometheus.GaugeValue, float64(st.Dead), "dead")
	ch <- prometheus.MustNewConstMetric(c.delivered, prometheus.CounterValue, float64(st.Delivered))
	ch <- prometheus.MustNewConstMetric(c.retried, prometheus.CounterValue, float64(st.Retried))
}
