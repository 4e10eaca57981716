// Package pricing turns an LLM request's token usage into money. Prices come
// in LiteLLM's model_prices_and_context_window.json format and are held as
// integer pico-USD per token, so per-token prices finer than one nano-USD
// (1.875e-08 USD) stay exact and a request's cost is rounded only once.
package pricing

import (
	"bytes"
	"cmp"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/bits"
	"regexp"
	"slices"
	"strconv"
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

// Usage is the token usage of one request, counted as LiteLLM counts it:
// CachedTokens (cache reads) and CacheCreationTokens (cache writes) are part of
// PromptTokens, ReasoningTokens are part of CompletionTokens. Anthropic's
// input_tokens is therefore PromptTokens − CachedTokens − CacheCreationTokens.
type Usage struct {
	PromptTokens        int64
	CompletionTokens    int64
	CachedTokens        int64
	CacheCreationTokens int64
	ReasoningTokens     int64
}

// Price is one model's per-token prices in pico-USD. The zero Price is free.
type Price struct {
	rates
	reasoning    int64
	hasReasoning bool
	// tiers are LiteLLM's long-context prices (input_cost_per_token_above_200k_tokens
	// and friends), highest threshold first.
	tiers []tier
	// maxOutput is the most tokens one response of the model can have
	// (max_output_tokens); 0 when the price map does not say.
	maxOutput int64
}

// MaxOutputTokens returns the most completion tokens one response of the
// model can have, from the price map's max_output_tokens (else its legacy
// max_tokens); 0 when the map does not say. Strict budgets reserve it for
// requests that set no max_tokens.
func (p Price) MaxOutputTokens() int64 { return p.maxOutput }

// rates are the prices that change with a long-context tier.
type rates struct {
	input, output int64
	// The optional prices keep whether they were set, because "absent" falls
	// back to another price while an explicit 0 means free.
	cacheRead, cacheCreation       int64
	hasCacheRead, hasCacheCreation bool
}

// tier replaces the rates of a request whose prompt has more than above tokens.
type tier struct {
	above int64
	rates
}

// Cost prices u and rounds once, half up, to nano-USD, as LiteLLM's
// generic_cost_per_token does: prompt tokens that are neither cache reads nor
// cache writes at the input price, cache reads and writes at their own prices
// (the input price when the model has none), reasoning tokens at the reasoning
// price (the output price when the model has none) and the other completion
// tokens at the output price. A prompt above a tier's threshold is priced at
// that tier's rates. Negative token counts count as 0; a cost beyond the range
// of store.Nano saturates.
func (p Price) Cost(u Usage) store.Nano {
	prompt := max(u.PromptTokens, 0)
	cached := max(u.CachedTokens, 0)
	creation := max(u.CacheCreationTokens, 0)
	completion := max(u.CompletionTokens, 0)
	reasoning := max(u.ReasoningTokens, 0)
	r := p.ratesFor(prompt)

	var s sum
	s.add(max(prompt-cached-creation, 0), r.input)
	s.add(cached, pick(r.hasCacheRead, r.cacheRead, r.input))
	s.add(creation, pick(r.hasCacheCreation, r.cacheCreation, r.input))
	if p.hasReasoning {
		s.add(reasoning, p.reasoning)
		s.add(max(completion-reasoning, 0), r.output)
	} else {
		s.add(completion, r.output)
	}
	return s.nano()
}

// ratesFor returns the rates of the highest tier whose threshold the prompt
// is above, else the base rates.
func (p Price) ratesFor(promptTokens int64) rates {
	for _, t := range p.tiers {
		if promptTokens > t.above {
			return t.rates
		}
	}
	return p.rates
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
// (litellm_provider, supports_*, …) are ignored.
type entry struct {
	Input         *float64 `json:"input_cost_per_token"`
	Output        *float64 `json:"output_cost_per_token"`
	CacheRead     *float64 `json:"cache_read_input_token_cost"`
	CacheCreation *float64 `json:"cache_creation_input_token_cost"`
	Reasoning     *float64 `json:"output_cost_per_reasoning_token"`
	// MaxOutput and MaxTokens (its older name) are numbers in LiteLLM's map,
	// but some entries hold strings; those are ignored rather than fatal.
	MaxOutput any `json:"max_output_tokens"`
	MaxTokens any `json:"max_tokens"`
}

// tierKey matches LiteLLM's long-context price fields, such as
// input_cost_per_token_above_200k_tokens or cache_read_input_token_cost_above_128_tokens.
var tierKey = regexp.MustCompile(`^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost|cache_creation_input_token_cost)_above_([0-9]{1,9})(k?)_tokens$`)

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
		if p.tiers, err = parseTiers(msg, p.rates); err != nil {
			return nil, fmt.Errorf("model %q: %w", name, err)
		}
		t.prices[name] = p
	}
	return t, nil
}

// parseTiers reads an entry's long-context tiers. As in LiteLLM, a tier exists
// where its input price is set; its output and cache prices default to the
// base ones.
func parseTiers(msg json.RawMessage, base rates) ([]tier, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(msg, &raw); err != nil {
		return nil, err
	}
	type tierField struct {
		key string
		usd *float64
	}
	byThreshold := map[int64]map[string]tierField{}
	for k, v := range raw {
		m := tierKey.FindStringSubmatch(k)
		if m == nil {
			continue
		}
		var usd *float64
		if err := json.Unmarshal(v, &usd); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		above, _ := strconv.ParseInt(m[2], 10, 64) // at most 9 digits: always parses
		if m[3] == "k" {
			above *= 1000
		}
		if byThreshold[above] == nil {
			byThreshold[above] = map[string]tierField{}
		}
		byThreshold[above][m[1]] = tierField{k, usd}
	}
	var tiers []tier
	for above, f := range byThreshold {
		t := tier{above: above, rates: base}
		in := f["input_cost_per_token"]
		var ok bool
		var err error
		if t.input, ok, err = picoUSD(in.key, in.usd); err != nil {
			return nil, err
		} else if !ok {
			continue
		}
		for name, dst := range map[string]struct {
			price *int64
			has   *bool
		}{
			"output_cost_per_token":           {&t.output, nil},
			"cache_read_input_token_cost":     {&t.cacheRead, &t.hasCacheRead},
			"cache_creation_input_token_cost": {&t.cacheCreation, &t.hasCacheCreation},
		} {
			v, ok, err := picoUSD(f[name].key, f[name].usd)
			if err != nil {
				return nil, err
			}
			if ok {
				*dst.price = v
				if dst.has != nil {
					*dst.has = true
				}
			}
		}
		tiers = append(tiers, t)
	}
	slices.SortFunc(tiers, func(a, b tier) int { return cmp.Compare(b.above, a.above) })
	return tiers, nil
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
	p.maxOutput = tokenCount(e.MaxOutput)
	if p.maxOutput == 0 {
		p.maxOutput = tokenCount(e.MaxTokens)
	}
	return p, nil
}

// maxTokenCount bounds a token limit from the price map: the largest real
// ones are in the millions.
const maxTokenCount = 1 << 40

// tokenCount reads a positive whole token count; anything else is 0.
func tokenCount(v any) int64 {
	f, ok := v.(float64)
	if !ok || f < 1 || f > maxTokenCount || f != math.Trunc(f) {
		return 0
	}
	return int64(f)
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
// prices are kept. Setting either price drops the model's long-context tiers,
// which priced the model the override replaces.
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
	if setIn || setOut {
		p.tiers = nil
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
