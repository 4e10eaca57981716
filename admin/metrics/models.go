package metrics

import (
	"maps"
	"math"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate-dev/tollgate/store"
)

// Model names come from request and response bodies, so clients choose them:
// at most maxModels distinct names become label values, each at most
// maxModelBytes of UTF-8; every other name is counted as "other".
const (
	maxModels     = 256
	maxModelBytes = 128
)

// tokenKinds are the values of tollgate_tokens_total's kind label, in the
// order of modelStats.tokens.
var tokenKinds = [...]string{"prompt", "completion", "cache_read", "cache_creation", "reasoning"}

// modelStats are one model's counters. Spend is summed in nano-USD, exactly,
// and turned into USD once per scrape.
type modelStats struct {
	spend    atomic.Int64
	tokens   [len(tokenKinds)]atomic.Int64
	unpriced atomic.Int64
}

// models collects the per-model families from atomic counters, so a
// record costs a map lookup and a few atomic adds.
type models struct {
	spendDesc, tokensDesc, unpricedDesc *prometheus.Desc

	// byName is replaced, never changed: readers need no lock.
	byName atomic.Pointer[map[string]*modelStats]
	mu     sync.Mutex // serialises adding a model
}

func newModels() *models {
	ms := &models{
		spendDesc: prometheus.NewDesc("tollgate_spend_usd_total",
			"Spend recorded, in USD, by model: the sum of the spend logs written.", []string{"model"}, nil),
		tokensDesc: prometheus.NewDesc("tollgate_tokens_total",
			"Tokens recorded by model and kind. Kinds overlap: cache_read and cache_creation are part of prompt, reasoning is part of completion.",
			[]string{"model", "kind"}, nil),
		unpricedDesc: prometheus.NewDesc("tollgate_unpriced_requests_total",
			"Requests recorded at cost 0 because no price was known for the model.", []string{"model"}, nil),
	}
	ms.byName.Store(&map[string]*modelStats{})
	return ms
}

// record adds one spend log.
func (ms *models) record(l store.SpendLog) {
	s := ms.stats(l.Model)
	addSat(&s.spend, int64(l.Cost))
	for i, n := range [len(tokenKinds)]int64{
		l.PromptTokens, l.CompletionTokens, l.CacheReadTokens, l.CacheCreationTokens, l.ReasoningTokens,
	} {
		addSat(&s.tokens[i], n)
	}
	if l.Unpriced {
		s.unpriced.Add(1)
	}
}

// stats returns the counters of model, adding them on its first record.
func (ms *models) stats(model string) *modelStats {
	if s := (*ms.byName.Load())[model]; s != nil {
		return s
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	cur := *ms.byName.Load()
	if s := cur[model]; s != nil {
		return s
	}
	label := model
	if len(cur) >= maxModels || model == "" || len(model) > maxModelBytes || !utf8.ValidString(model) {
		label = other
		if s := cur[label]; s != nil {
			return s
		}
	}
	next := maps.Clone(cur)
	s := &modelStats{}
	next[label] = s
	ms.byName.Store(&next)
	return s
}

// addSat adds n > 0 to a, stopping at math.MaxInt64: counters never go down,
// whatever an upstream reports.
func addSat(a *atomic.Int64, n int64) {
	if n <= 0 {
		return
	}
	for {
		old := a.Load()
		sum := old + n
		if sum < old {
			sum = math.MaxInt64
		}
		if a.CompareAndSwap(old, sum) {
			return
		}
	}
}

// Describe implements prometheus.Collector.
func (ms *models) Describe(ch chan<- *prometheus.Desc) {
	ch <- ms.spendDesc
	ch <- ms.tokensDesc
	ch <- ms.unpricedDesc
}

// Collect implements prometheus.Collector: every family for every model seen.
func (ms *models) Collect(ch chan<- prometheus.Metric) {
	for model, s := range *ms.byName.Load() {
		ch <- prometheus.MustNewConstMetric(ms.spendDesc, prometheus.CounterValue,
			float64(s.spend.Load())/store.NanoPerUSD, model)
		for i, kind := range tokenKinds {
			ch <- prometheus.MustNewConstMetric(ms.tokensDesc, prometheus.CounterValue, float64(s.tokens[i].Load()), model, kind)
		}
		ch <- prometheus.MustNewConstMetric(ms.unpricedDesc, prometheus.CounterValue, float64(s.unpriced.Load()), model)
	}
}
