// Package pricing turns an LLM request's token usage into money. Prices come
// in LiteLLM's model_prices_and_context_window.json format and are held as
// integer pico-USD per token, so per-token prices finer than one nano-USD
// (1.875e-08 USD) stay exact and a request's cost is rounded only once.
package pricing

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/bits"
	"strings"
	"sync"

	"github.com/tollgate-dev/tollgate/store"
)

// picoPerUSD converts a USD price to pico-USD; picoPerNano converts pico to store.Nano.
const (
	picoPerUSD  = 1e12
	picoPerNano = 1000
)

// maxUSDPerToken rejects prices that cannot be real (and would overflow int64
// pico-USD near 9.2e6 USD): the dearest real models cost well under 1e-3.
const maxUSDPerToken = 1000

// sampleSpec is the documentation entry at the top of LiteLLM's file.
const sampleSpec = "sample_spec"

//go:embed models.json
var modelsJSON []byte

// defaultTable parses the embedded file once; a broken file is a programming
// error that TestDefault catches.
var defaultTable = sync.OnceValue(func() *Table {
	t, err := Parse(bytes.NewReader(modelsJSON))
	if err != nil {
		panic(fmt.Sprintf("pricing: embedded models.json: %v", err))
	}
	return t
})

// Usage is the token usage of one request. CachedTokens are part of
// PromptTokens; ReasoningTokens are part of CompletionTokens (OpenAI's usage
// shape). CacheCreationTokens are billed on top of PromptTokens.
type Usage struct {
	PromptTokens        int64
	CompletionTokens    int64
	CachedTokens        int64
	CacheCreationTokens int64
	ReasoningTokens     int64
}

// Price is one model's per-token prices in pico-USD. The zero Price is free.
type Price struct {
	input, output int64
	// The optional prices keep whether they were set, because "absent" falls
	// back to another price while an explicit 0 means free.
	cacheRead, cacheCreation, reasoning          int64
	hasCacheRead, hasCacheCreation, hasReasoning bool
}

// Cost prices u and rounds once, half up, to nano-USD. Negative token counts
// count as 0; a cost beyond the range of store.Nano saturates.
func (p Price) Cost(u Usage) store.Nano {
	prompt := max(u.PromptTokens, 0)
	cached := max(u.CachedTokens, 0)
	completion := max(u.CompletionTokens, 0)
	reasoning := max(u.ReasoningTokens, 0)

	var s sum
	s.add(max(prompt-cached, 0), p.input)
	s.add(cached, pick(p.hasCacheRead, p.cacheRead, p.input))
	s.add(max(u.CacheCreationTokens, 0), pick(p.hasCacheCreation, p.cacheCreation, p.input))
	if p.hasReasoning {
		s.add(reasoning, p.reasoning)
		s.add(max(completion-reasoning, 0), p.output)
	} else {
		s.add(completion, p.output)
	}
	return s.nano()
}

func pick(has bool, v, fallback int64) int64 {
	if has {
		return v
	}
	return fallback
}

// sum is an unsigned 128-bit pico-USD accumulator: upstream token counts are
// untrusted, and tokens × price can exceed int64 long before it exceeds this.
type sum struct{ hi, lo uint64 }

func (s *sum) add(tokens, pico int64) {
	hi, lo := bits.Mul64(uint64(tokens), uint64(pico))
	var carry uint64
	s.lo, carry = bits.Add64(s.lo, lo, 0)
	s.hi, _ = bits.Add64(s.hi, hi, carry)
}

func (s sum) nano() store.Nano {
	lo, carry := bits.Add64(s.lo, picoPerNano/2, 0)
	hi := s.hi + carry
	if hi >= picoPerNano {
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, picoPerNano)
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return store.Nano(q)
}

// Table maps model names to prices. It is immutable, so it is safe for
// concurrent use; Merge and Override return new tables.
type Table struct {
	prices map[string]Price
}

// Default returns the price table embedded in tollgate.
func Default() *Table { return defaultTable() }

// entry is the part of a LiteLLM price-map entry tollgate uses; other fields
// (max_tokens, litellm_provider, supports_*, …) are ignored.
type entry struct {
	Input         *float64 `json:"input_cost_per_token"`
	Output        *float64 `json:"output_cost_per_token"`
	CacheRead     *float64 `json:"cache_read_input_token_cost"`
	CacheCreation *float64 `json:"cache_creation_input_token_cost"`
	Reasoning     *float64 `json:"output_cost_per_reasoning_token"`
}

// Parse reads a price map in LiteLLM's model_prices_and_context_window.json
// format. Models with neither an input nor an output token price (images,
// audio by the second, …) are left out, so they stay unpriced rather than
// becoming free.
func Parse(r io.Reader) (*Table, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read price map: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("parse price map: %w", err)
	}
	if raw == nil {
		return nil, errors.New("parse price map: not a JSON object")
	}
	t := &Table{prices: make(map[string]Price, len(raw))}
	for name, msg := range raw {
		if name == sampleSpec {
			continue
		}
		var e entry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("model %q: %w", name, err)
		}
		if e.Input == nil && e.Output == nil {
			continue
		}
		p, err := e.price()
		if err != nil {
			return nil, fmt.Errorf("model %q: %w", name, err)
		}
		t.prices[name] = p
	}
	return t, nil
}

func (e entry) price() (Price, error) {
	var p Price
	var err error
	if p.input, _, err = picoUSD("input_cost_per_token", e.Input); err != nil {
		return Price{}, err
	}
	if p.output, _, err = picoUSD("output_cost_per_token", e.Output); err != nil {
		return Price{}, err
	}
	if p.cacheRead, p.hasCacheRead, err = picoUSD("cache_read_input_token_cost", e.CacheRead); err != nil {
		return Price{}, err
	}
	if p.cacheCreation, p.hasCacheCreation, err = picoUSD("cache_creation_input_token_cost", e.CacheCreation); err != nil {
		return Price{}, err
	}
	if p.reasoning, p.hasReasoning, err = picoUSD("output_cost_per_reasoning_token", e.Reasoning); err != nil {
		return Price{}, err
	}
	return p, nil
}

// picoUSD converts a USD-per-token price; nil means "not set".
func picoUSD(field string, usd *float64) (int64, bool, error) {
	if usd == nil {
		return 0, false, nil
	}
	f := *usd
	if math.IsNaN(f) || f < 0 || f > maxUSDPerToken {
		return 0, false, fmt.Errorf("%s: %v is not a price between 0 and %d USD", field, f, maxUSDPerToken)
	}
	return int64(math.Round(f * picoPerUSD)), true, nil
}

// Merge returns a new table with the prices of both; o's price wins for a
// model in both.
func (t *Table) Merge(o *Table) *Table {
	m := maps.Clone(t.prices)
	maps.Copy(m, o.prices)
	return &Table{prices: m}
}

// Override returns a new table in which model costs the given USD prices per
// token, as LiteLLM's model_list[].litellm_params.input_cost_per_token and
// output_cost_per_token set them. A nil price keeps the one model already has
// (found as Lookup finds it), or 0 when it has none; its cache and reasoning
// prices are kept.
func (t *Table) Override(model string, inputCostPerToken, outputCostPerToken *float64) (*Table, error) {
	in, setIn, err := picoUSD("input_cost_per_token", inputCostPerToken)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", model, err)
	}
	out, setOut, err := picoUSD("output_cost_per_token", outputCostPerToken)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", model, err)
	}
	p, _ := t.Lookup(model)
	if setIn {
		p.input = in
	}
	if setOut {
		p.output = out
	}
	m := maps.Clone(t.prices)
	m[model] = p
	return &Table{prices: m}, nil
}

// Lookup finds model's price: by its exact name, else without its provider
// prefixes ("openai/gpt-4o", "openrouter/openai/gpt-4o" → "gpt-4o").
func (t *Table) Lookup(model string) (Price, bool) {
	for name := model; ; {
		if p, ok := t.prices[name]; ok {
			return p, true
		}
		var found bool
		if _, name, found = strings.Cut(name, "/"); !found {
			return Price{}, false
		}
	}
}
