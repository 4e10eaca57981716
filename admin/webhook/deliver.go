package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/tollgate-dev/tollgate/store"
)

// userAgent identifies tollgate's deliveries to receivers.
const userAgent = "tollgate-webhook/1"

// maxRetryAfter bounds the Retry-After seconds parsed, so the duration
// arithmetic cannot overflow; BackoffMax caps the wait far below it anyway.
const maxRetryAfter = 1 << 30

// deliverEvent delivers e with retries and reports the outcome.
func (w *Worker) deliverEvent(ctx context.Context, e store.Event) outcome {
	attempts, err := w.deliver(ctx, e.ID, PayloadOf(e))
	if ctx.Err() != nil && err != nil {
		return outcome{delivery: store.Delivery{Event: e, Attempts: attempts}, abandoned: true}
	}
	d := store.Delivery{Event: e, Attempts: attempts}
	if err != nil {
		d.Dead, d.LastError = true, err.Error()
		w.log.Warn("webhook: event dead after every attempt failed; replay it with POST /webhook/dead/replay",
			"event_id", e.ID, "customer_id", e.CustomerID, "event", e.Type, "attempts", attempts, "err", err)
	}
	return outcome{delivery: d}
}

// deliver POSTs one event until an attempt gets a 2xx or MaxAttempts are
// spent, and returns how many attempts it made.
func (w *Worker) deliver(ctx context.Context, id string, p Payload) (attempts int, err error) {
	body, err := p.MarshalJSON()
	if err != nil {
		return 0, fmt.Errorf("encode event: %w", err)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, body)
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	w.sign(req.Request, id, body)
	client := &retryablehttp.Client{
		HTTPClient:   w.http,
		RetryMax:     w.cfg.MaxAttempts - 1,
		RetryWaitMin: w.cfg.BackoffMin,
		RetryWaitMax: w.cfg.BackoffMax,
		CheckRetry:   retryUnlessDelivered,
		Backoff:      w.backoff,
		// The last response reaches us so its status can be reported.
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
		RequestLogHook: func(_ retryablehttp.Logger, _ *http.Request, attempt int) {
			attempts = attempt + 1
		},
		// Each attempt carries a fresh timestamp, so receivers that reject
		// old timestamps accept late retries.
		PrepareRetry: func(r *http.Request) error {
			r.Header = r.Header.Clone()
			w.sign(r, id, body)
			return nil
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		return attempts, describe(err)
	}
	defer resp.Body.Close()
	// Draining lets the connection be reused; the body means nothing to us.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return attempts, fmt.Errorf("HTTP %s", resp.Status)
	}
	return attempts, nil
}

// Send makes one attempt, without retries, to deliver p under id: the test
// of GET /health/services?service=webhook. It returns the receiver's status
// (0 when there was no response).
func (w *Worker) Send(ctx context.Context, id string, p Payload) (int, error) {
	body, err := p.MarshalJSON()
	if err != nil {
		return 0, fmt.Errorf("encode event: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	w.sign(req, id, body)
	resp, err := w.http.Do(req)
	if err != nil {
		return 0, describe(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("HTTP %s", resp.Status)
	}
	return resp.StatusCode, nil
}

// sign sets the headers of one attempt.
func (w *Worker) sign(r *http.Request, id string, body []byte) {
	ts := w.now().Unix()
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", userAgent)
	r.Header.Set(HeaderEventID, id)
	r.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	if w.cfg.Secret != "" {
		r.Header.Set(HeaderSignature, Sign(w.cfg.Secret, ts, body))
	}
}

// describe drops the URL from transport errors: a webhook URL often carries
// a secret token in its path, and these errors are logged and stored.
func describe(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// retryUnlessDelivered retries every failure (LiteLLM counts only 200 as
// delivered; tollgate any 2xx) except those no retry can fix, such as a
// malformed URL or an untrusted certificate, and stops when ctx ends.
func retryUnlessDelivered(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if err != nil {
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	}
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	return resp.StatusCode < 200 || resp.StatusCode > 299, nil
}

// backoff is the wait before retry attempt+1: Retry-After when the receiver
// sent one (capped at max), otherwise min doubled per attempt up to max, of
// which a random half is taken off ("equal jitter") so retries of many
// events do not arrive in step.
func (w *Worker) backoff(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), w.now()); ok {
			return min(d, hi)
		}
	}
	d := hi
	if attempt < 62 && lo<<attempt > 0 && lo<<attempt < hi {
		d = lo << attempt
	}
	return d/2 + rand.N(d/2+1)
}

// retryAfter parses a Retry-After header: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, false
		}
		return time.Duration(min(secs, maxRetryAfter)) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(at.Sub(now), 0), true
}
