// Package limits is tollgate's in-memory admission state, kept per process:
// per-customer request and token rates (rpm_limit, tpm_limit) over fixed
// windows, in-flight request counts (max_parallel_requests), and the
// strict-budget ledger of money set aside for requests in flight.
//
// Rates use fixed windows, as LiteLLM's v3 limiter does: a customer's window
// opens at its first request (to the whole second) and lasts Config.Window
// (60 s by default); when it has passed, the next request opens a new one.
// A fixed window needs two counters per customer instead of a log of request
// times, gives one well-defined "Limit resets at" instant for the 429 message
// and retry-after, and makes "at most rpm_limit requests per window" exact.
// Its known cost is that a customer can fit up to twice the limit into any
// 60 s that straddles two windows.
//
// Admission is "allow while used < limit, then reserve": a request is admitted
// while its window's requests and tokens are under the limits, and reserves
// one request and its estimated tokens at once, under one lock, so a burst of
// concurrent requests cannot all see room that only one of them can use. At
// the end the token reservation is replaced by the tokens actually used.
//
// Memory stays bounded by the customers active within one window: an entry
// whose window has passed and that has nothing in flight is dropped.
package limits

import (
	"hash/maphash"
	"sync"
	"time"
)

// shardCount spreads keys over independent locks so admissions of different
// customers do not contend.
const shardCount = 64

// Kind names the limit that refused a request, with LiteLLM's rate_limit_type
// spelling.
type Kind uint8

// The limits a request can be refused by.
const (
	Requests Kind = iota + 1 // rpm_limit
	Tokens                   // tpm_limit
	Parallel                 // max_parallel_requests
)

// String returns LiteLLM's rate_limit_type name of k.
func (k Kind) String() string {
	switch k {
	case Requests:
		return "requests"
	case Tokens:
		return "tokens"
	case Parallel:
		return "max_parallel_requests"
	default:
		return "unknown"
	}
}

// Limits are one customer's rate limits. A nil field is no limit; zero is a
// limit that refuses everything, as in LiteLLM.
type Limits struct {
	RPM         *int64
	TPM         *int64
	MaxParallel *int64
}

func (l Limits) none() bool { return l.RPM == nil && l.TPM == nil && l.MaxParallel == nil }

// Usage is where a key stands in its current window, for the x-ratelimit-*
// headers. A Remaining field is -1 when its limit is not set.
type Usage struct {
	RemainingRequests int64
	RemainingTokens   int64
	// ResetAt is when the current window ends.
	ResetAt time.Time
}

// Rejection says which limit refused a request.
type Rejection struct {
	Kind Kind
	// Limit is the value of the limit that was reached.
	Limit int64
	// InFlight is the key's requests in flight, for Parallel rejections.
	InFlight int64
	Usage
}

// Config configures Rates.
type Config struct {
	// Window is the length of a rate window; default 60 s.
	Window time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Rates tracks request and token rates and in-flight requests per key
// (a customer id). It is safe for concurrent use.
type Rates struct {
	window time.Duration
	now    func() time.Time
	seed   maphash.Seed
	shards [shardCount]rateShard
}

type rateShard struct {
	mu        sync.Mutex
	entries   map[string]*rateEntry
	lastSweep time.Time
}

// rateEntry is one key's state. Tokens reserved by requests in flight belong
// to no window: they count in whichever window is current until settled.
type rateEntry struct {
	windowStart time.Time // zero: no window open
	requests    int64     // admitted in the current window
	tokens      int64     // settled in the current window
	reserved    int64     // estimated tokens of requests in flight
	inFlight    int64
}

// NewRates returns an empty Rates.
func NewRates(cfg Config) *Rates {
	if cfg.Window <= 0 {
		cfg.Window = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Rates{window: cfg.Window, now: cfg.Now, seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].entries = make(map[string]*rateEntry)
	}
	return r
}

// Window returns the length of a rate window.
func (r *Rates) Window() time.Duration { return r.window }

func (r *Rates) shard(key string) *rateShard {
	return &r.shards[maphash.String(r.seed, key)%shardCount]
}

// roll opens a new window when the current one has passed.
func (e *rateEntry) roll(now time.Time, window time.Duration) {
	if e.windowStart.IsZero() || !now.Before(e.windowStart.Add(window)) {
		e.windowStart = now.Truncate(time.Second)
		e.requests, e.tokens = 0, 0
	}
}

func (e *rateEntry) usage(lim Limits, window time.Duration) Usage {
	u := Usage{RemainingRequests: -1, RemainingTokens: -1, ResetAt: e.windowStart.Add(window)}
	if lim.RPM != nil {
		u.RemainingRequests = max(0, *lim.RPM-e.requests)
	}
	if lim.TPM != nil {
		u.RemainingTokens = max(0, *lim.TPM-e.tokens-e.reserved)
	}
	return u
}

// idle reports whether dropping e changes nothing: nothing in flight, and no
// window whose counts still matter.
func (e *rateEntry) idle(now time.Time, window time.Duration) bool {
	if e.inFlight > 0 || e.reserved > 0 {
		return false
	}
	return e.requests == 0 && e.tokens == 0 || !now.Before(e.windowStart.Add(window))
}

// Admit admits one request for key under lim, reserving tokens (the request's
// estimated tokens, counted the way the tpm limit counts them), or says which
// limit refuses it. Limits are checked in the order max_parallel_requests,
// rpm, tpm, and a refused request changes nothing. The returned Ticket must be
// finished with Done or Cancel; it is nil (and finishing it does nothing) when
// lim sets no limit at all.
func (r *Rates) Admit(key string, lim Limits, tokens int64) (*Ticket, *Rejection) {
	if lim.none() {
		return nil, nil
	}
	tokens = max(0, tokens)
	now := r.now()
	s := r.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(now, r.window)
	e := s.entries[key]
	if e == nil {
		e = &rateEntry{}
		s.entries[key] = e
	}
	e.roll(now, r.window)
	reject := func(k Kind, limit int64) (*Ticket, *Rejection) {
		rej := &Rejection{Kind: k, Limit: limit, InFlight: e.inFlight, Usage: e.usage(lim, r.window)}
		if e.idle(now, r.window) {
			delete(s.entries, key)
		}
		return nil, rej
	}
	switch {
	case lim.MaxParallel != nil && e.inFlight >= *lim.MaxParallel:
		return reject(Parallel, *lim.MaxParallel)
	case lim.RPM != nil && e.requests >= *lim.RPM:
		return reject(Requests, *lim.RPM)
	case lim.TPM != nil && e.tokens+e.reserved >= *lim.TPM:
		return reject(Tokens, *lim.TPM)
	}
	if lim.TPM == nil {
		tokens = 0
	}
	e.requests++
	e.reserved += tokens
	e.inFlight++
	return &Ticket{r: r, s: s, key: key, e: e, windowStart: e.windowStart, reserved: tokens, Usage: e.usage(lim, r.window)}, nil
}

// sweep drops idle entries, at most once per window per shard, so a shard
// holds only keys active within about two windows.
func (s *rateShard) sweep(now time.Time, window time.Duration) {
	if now.Sub(s.lastSweep) < window {
		return
	}
	s.lastSweep = now
	for k, e := range s.entries {
		if e.idle(now, window) {
			delete(s.entries, k)
		}
	}
}

// Len returns the number of keys tracked, for tests and metrics.
func (r *Rates) Len() int {
	n := 0
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		n += len(s.entries)
		s.mu.Unlock()
	}
	return n
}

// InFlight returns key's requests in flight.
func (r *Rates) InFlight(key string) int64 {
	s := r.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[key]; e != nil {
		return e.inFlight
	}
	return 0
}

// Ticket is one admitted request. Done or Cancel finishes it; whichever comes
// first counts and later calls do nothing, so a caller can finish a ticket on
// every path (including a deferred one) without leaking or double counting.
// All methods accept a nil *Ticket.
type Ticket struct {
	r           *Rates
	s           *rateShard
	key         string
	e           *rateEntry // stays in the map while the ticket is open: its inFlight > 0
	windowStart time.Time
	reserved    int64
	finished    bool // guarded by s.mu

	// Usage is where the key stood right after this request was admitted.
	Usage
}

// Done finishes a request that reached the upstream: its token reservation is
// replaced by tokens (the tokens it used, counted as the tpm limit counts
// them; 0 when unknown) in the current window, and it stops being in flight.
// The request itself stays counted against rpm.
func (t *Ticket) Done(tokens int64) {
	if t == nil {
		return
	}
	now := t.r.now()
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	if t.finished {
		return
	}
	t.finished = true
	e := t.e
	e.roll(now, t.r.window)
	e.reserved -= t.reserved
	e.tokens += max(0, tokens)
	e.inFlight--
	t.dropIfIdle(now)
}

// Cancel finishes a request that tollgate refused after admitting it (a later
// check failed), so it never reached the upstream: it gives back its
// reservation and, while its window is still current, its request count.
func (t *Ticket) Cancel() {
	if t == nil {
		return
	}
	now := t.r.now()
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	if t.finished {
		return
	}
	t.finished = true
	e := t.e
	e.reserved -= t.reserved
	e.inFlight--
	if e.windowStart.Equal(t.windowStart) {
		e.requests--
	}
	t.dropIfIdle(now)
}

// dropIfIdle removes the ticket's entry when nothing about it matters any
// more. The caller holds t.s.mu.
func (t *Ticket) dropIfIdle(now time.Time) {
	if t.e.idle(now, t.r.window) && t.s.entries[t.key] == t.e {
		delete(t.s.entries, t.key)
	}
}
