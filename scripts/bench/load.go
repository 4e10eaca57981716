package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// requestTimeout bounds one request, so a stuck target ends a cell instead of the run.
const requestTimeout = 30 * time.Second

// loadSpec is one cell of closed-loop load: Concurrency workers, each on its
// own keep-alive connection, send the next body as soon as the previous
// answer is read in full. Requests started during Warmup are not measured.
type loadSpec struct {
	URL         string
	Key         string
	Bodies      [][]byte
	Stream      bool
	Concurrency int
	Warmup      time.Duration
	Duration    time.Duration
	// MaxRequests caps the measured requests; 0 means no cap.
	MaxRequests int
	// onMeasureStart runs once, when the measured window opens (CPU snapshots).
	onMeasureStart func()
}

// loadResult is what one cell measured.
type loadResult struct {
	// Latencies are the full response times of the measured successful requests;
	// TTFB their times to the first body byte (streaming only).
	Latencies []time.Duration
	TTFB      []time.Duration
	// Window is the measured wall time: from the window's start until the last
	// measured request finished.
	Window time.Duration
	// OK counts every successful request, warm-up included (metering checks).
	OK int
	// Errors counts measured and warm-up failures alike; FirstError is the first.
	Errors     int
	FirstError string
	// CostHeader is an x-litellm-response-cost value seen (tollgate's buffered responses).
	CostHeader string
}

// runLoad runs one cell.
func runLoad(ctx context.Context, spec loadSpec) loadResult {
	start := time.Now()
	measureStart := start.Add(spec.Warmup)
	measureEnd := measureStart.Add(spec.Duration)
	var next, measured atomic.Int64
	workers := make([]*worker, spec.Concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		w := newWorker(spec)
		workers[i] = w
		wg.Go(func() {
			for ctx.Err() == nil {
				now := time.Now()
				if !now.Before(measureEnd) {
					return
				}
				measure := !now.Before(measureStart)
				if measure && spec.MaxRequests > 0 && measured.Add(1) > int64(spec.MaxRequests) {
					return
				}
				body := spec.Bodies[int(next.Add(1)-1)%len(spec.Bodies)]
				w.record(measure, w.do(ctx, body))
			}
		})
	}
	if spec.onMeasureStart != nil {
		timer := time.NewTimer(time.Until(measureStart))
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
		}
		spec.onMeasureStart()
	}
	wg.Wait()

	res := loadResult{Window: time.Since(measureStart)}
	for _, w := range workers {
		res.Latencies = append(res.Latencies, w.latencies...)
		res.TTFB = append(res.TTFB, w.ttfb...)
		res.OK += w.ok
		res.Errors += w.errors
		if res.FirstError == "" {
			res.FirstError = w.firstError
		}
		if res.CostHeader == "" {
			res.CostHeader = w.costHeader
		}
		w.client.CloseIdleConnections()
	}
	return res
}

// worker owns one connection and its samples; only its goroutine touches it.
type worker struct {
	spec   loadSpec
	client *http.Client
	header http.Header
	buf    bytes.Buffer
	first  []byte

	latencies, ttfb []time.Duration
	ok, errors      int
	firstError      string
	costHeader      string
}

func newWorker(spec loadSpec) *worker {
	tr := &http.Transport{
		Proxy:               nil, // never send benchmark traffic through an HTTP_PROXY
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        1,
		MaxIdleConnsPerHost: 1,
		MaxConnsPerHost:     1,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
	}
	return &worker{
		spec:   spec,
		client: &http.Client{Transport: tr, Timeout: requestTimeout},
		header: http.Header{
			"Content-Type":  {"application/json"},
			"Authorization": {"Bearer " + spec.Key},
		},
		first: make([]byte, 32<<10),
	}
}

// sample is the outcome of one request.
type sample struct {
	total, ttfb time.Duration
	header      http.Header
	err         error
}

func (w *worker) record(measure bool, s sample) {
	if s.err != nil {
		w.errors++
		if w.firstError == "" {
			w.firstError = s.err.Error()
		}
		return
	}
	w.ok++
	if cost := s.header.Get("x-litellm-response-cost"); cost != "" {
		w.costHeader = cost
	}
	if !measure {
		return
	}
	w.latencies = append(w.latencies, s.total)
	if w.spec.Stream {
		w.ttfb = append(w.ttfb, s.ttfb)
	}
}

// do sends one request and reads the whole answer. TTFB is the time until the
// first body byte arrived: for a streamed answer, the first SSE event.
func (w *worker) do(ctx context.Context, body []byte) sample {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.spec.URL, bytes.NewReader(body))
	if err != nil {
		return sample{err: err}
	}
	req.Header = w.header
	start := time.Now()
	resp, err := w.client.Do(req)
	if err != nil {
		return sample{err: err}
	}
	defer resp.Body.Close()
	w.buf.Reset()
	n, err := io.ReadAtLeast(resp.Body, w.first, 1)
	ttfb := time.Since(start)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return sample{err: fmt.Errorf("read response: %w", err)}
	}
	w.buf.Write(w.first[:n])
	if _, err := w.buf.ReadFrom(resp.Body); err != nil {
		return sample{err: fmt.Errorf("read response: %w", err)}
	}
	total := time.Since(start)
	if err := checkResponse(resp.StatusCode, w.spec.Stream, w.buf.Bytes()); err != nil {
		return sample{err: err}
	}
	return sample{total: total, ttfb: ttfb, header: resp.Header}
}

// checkResponse makes sure a request was really served: a 200 with a complete
// chat completion, or a stream that ran to [DONE].
func checkResponse(status int, stream bool, body []byte) error {
	if status != http.StatusOK {
		return fmt.Errorf("status %d: %.200s", status, body)
	}
	if stream {
		if !bytes.HasSuffix(bytes.TrimRight(body, "\r\n"), []byte("data: [DONE]")) {
			return fmt.Errorf("stream did not end with [DONE]: %.200q", body)
		}
		return nil
	}
	if !bytes.Contains(body, []byte(`"choices"`)) || !bytes.Contains(body, []byte(`"usage"`)) {
		return fmt.Errorf("not a chat completion: %.200s", body)
	}
	return nil
}

// percentiles summarizes latencies in milliseconds.
type percentiles struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// summarize returns nearest-rank percentiles; it sorts d.
func summarize(d []time.Duration) *percentiles {
	if len(d) == 0 {
		return nil
	}
	slices.Sort(d)
	var sum time.Duration
	for _, v := range d {
		sum += v
	}
	return &percentiles{
		P50:  ms(rank(d, 50)),
		P90:  ms(rank(d, 90)),
		P99:  ms(rank(d, 99)),
		Max:  ms(d[len(d)-1]),
		Mean: ms(sum / time.Duration(len(d))),
	}
}

// rank is the nearest-rank percentile p of sorted d.
func rank(d []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p/100*float64(len(d)))) - 1
	return d[max(i, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
