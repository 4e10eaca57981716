package pricing

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/store"
)

func mustParse(t *testing.T, js string) *Table {
	t.Helper()
	tab, err := Parse(strings.NewReader(js))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return tab
}

func mustLookup(t *testing.T, tab *Table, model string) Price {
	t.Helper()
	p, ok := tab.Lookup(model)
	if !ok {
		t.Fatalf("Lookup(%q): not found", model)
	}
	return p
}

func TestCost(t *testing.T) {
	tab := mustParse(t, `{
		"plain":     {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},
		"cached":    {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05, "cache_read_input_token_cost": 1.25e-06},
		"anthropic": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
		              "cache_read_input_token_cost": 3e-07, "cache_creation_input_token_cost": 3.75e-06},
		"free-cache": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06, "cache_read_input_token_cost": 0},
		"reasoning": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06, "output_cost_per_reasoning_token": 2e-06},
		"sub-nano":  {"input_cost_per_token": 1.5e-10, "output_cost_per_token": 1.5e-10},
		"fraction":  {"input_cost_per_token": 7.5e-08, "output_cost_per_token": 3e-07, "cache_read_input_token_cost": 1.875e-08},
		"dear":      {"input_cost_per_token": 1000, "output_cost_per_token": 1000}
	}`)
	tests := []struct {
		name  string
		model string
		usage Usage
		want  store.Nano
	}{
		{"zero usage", "plain", Usage{}, 0},
		{"prompt and completion", "plain", Usage{PromptTokens: 1000, CompletionTokens: 500}, 2_000_000},
		{"cached tokens at the cache price", "cached", Usage{PromptTokens: 1000, CachedTokens: 400, CompletionTokens: 10}, 2_100_000},
		{"cached falls back to the input price", "plain", Usage{PromptTokens: 10, CachedTokens: 10}, 10_000},
		{"explicit zero cache price is free", "free-cache", Usage{PromptTokens: 10, CachedTokens: 6}, 4_000},
		// 500 uncached × 3000 + 200 read × 300 + 300 written × 3750 + 100 × 15000 nano.
		{"cache reads and writes are part of the prompt", "anthropic",
			Usage{PromptTokens: 1000, CachedTokens: 200, CacheCreationTokens: 300, CompletionTokens: 100}, 4_185_000},
		{"cache creation falls back to the input price", "plain", Usage{PromptTokens: 7, CacheCreationTokens: 7}, 7_000},
		{"cache reads and writes beyond the prompt never go negative", "anthropic",
			Usage{PromptTokens: 10, CachedTokens: 10, CacheCreationTokens: 10}, 3_000 + 37_500},
		{"cached beyond prompt never goes negative", "cached", Usage{PromptTokens: 10, CachedTokens: 20}, 25_000},
		{"reasoning at its own price", "reasoning", Usage{CompletionTokens: 100, ReasoningTokens: 40}, 140_000},
		{"reasoning without its own price is plain output", "plain", Usage{CompletionTokens: 100, ReasoningTokens: 40}, 200_000},
		{"reasoning beyond completion", "reasoning", Usage{CompletionTokens: 10, ReasoningTokens: 30}, 60_000},
		{"negative counts are zero", "plain", Usage{PromptTokens: -5, CompletionTokens: -1, CachedTokens: -3, CacheCreationTokens: -2, ReasoningTokens: -4}, 0},
		{"sub-nano price rounds down below half", "sub-nano", Usage{PromptTokens: 3}, 0},
		{"sub-nano price rounds half up", "sub-nano", Usage{PromptTokens: 10}, 2},
		{"rounded once per request, not per part", "sub-nano", Usage{PromptTokens: 3, CompletionTokens: 3}, 1},
		{"fractional cache price 18.75 nano", "fraction", Usage{PromptTokens: 1, CachedTokens: 1}, 19},
		{"fractional cache price times two", "fraction", Usage{PromptTokens: 2, CachedTokens: 2}, 38},
		{"fractional cache price times three", "fraction", Usage{PromptTokens: 3, CachedTokens: 3}, 56},
		{"one token of each", "fraction", Usage{PromptTokens: 2, CachedTokens: 1, CompletionTokens: 1}, 394},
		{"saturates instead of wrapping", "dear", Usage{PromptTokens: math.MaxInt64, CompletionTokens: math.MaxInt64}, math.MaxInt64},
		{"large but representable", "dear", Usage{PromptTokens: 1_000_000}, 1_000_000 * 1000 * store.NanoPerUSD},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustLookup(t, tab, tt.model).Cost(tt.usage); got != tt.want {
				t.Errorf("Cost(%+v) = %d, want %d", tt.usage, got, tt.want)
			}
		})
	}
}

// TestDefault checks the embedded table parses and carries the prices of the
// models tollgate promises to know (per million prompt and completion tokens).
func TestTiers(t *testing.T) {
	tab := mustParse(t, `{
		"long": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
		         "cache_read_input_token_cost": 1e-07, "cache_creation_input_token_cost": 1.25e-06,
		         "input_cost_per_token_above_10_tokens": 2e-06, "output_cost_per_token_above_10_tokens": 4e-06,
		         "cache_read_input_token_cost_above_10_tokens": 2e-07,
		         "input_cost_per_token_above_1k_tokens": 3e-06,
		         "cache_creation_input_token_cost_above_1hr": 9e-06,
		         "input_cost_per_token_above_200k_tokens_priority": 9e-06},
		"orphan": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
		           "output_cost_per_token_above_10_tokens": 9e-06, "input_cost_per_token_above_20_tokens": null},
		"no-cache": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06,
		             "input_cost_per_token_above_5_tokens": 3e-06},
		"reasoning": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06, "output_cost_per_reasoning_token": 5e-06,
		              "input_cost_per_token_above_5_tokens": 2e-06, "output_cost_per_token_above_5_tokens": 3e-06}
	}`)
	tests := []struct {
		name  string
		model string
		usage Usage
		want  store.Nano
	}{
		{"at the threshold: base prices", "long", Usage{PromptTokens: 10, CompletionTokens: 1}, 10_000 + 2_000},
		{"above it: the tier's input and output", "long", Usage{PromptTokens: 11, CompletionTokens: 1}, 22_000 + 4_000},
		{"tier cache read price", "long", Usage{PromptTokens: 11, CachedTokens: 5, CompletionTokens: 0}, 6*2_000 + 5*200},
		{"cache write without a tier price keeps the base one", "long", Usage{PromptTokens: 11, CacheCreationTokens: 1}, 10*2_000 + 1_250},
		{"cache tokens count towards the threshold", "long", Usage{PromptTokens: 11, CachedTokens: 11}, 11 * 200},
		{"highest tier crossed wins; its output falls back to the base", "long", Usage{PromptTokens: 1001, CompletionTokens: 1}, 1001*3_000 + 2_000},
		{"1k is 1000 tokens", "long", Usage{PromptTokens: 1000}, 1000 * 2_000},
		{"tier fields without an input tier are ignored", "orphan", Usage{PromptTokens: 100, CompletionTokens: 1}, 100*1_000 + 2_000},
		{"tier without cache prices falls back to its input price", "no-cache", Usage{PromptTokens: 6, CachedTokens: 6}, 6 * 3_000},
		{"reasoning keeps its own price; other output at the tier's", "reasoning",
			Usage{PromptTokens: 6, CompletionTokens: 10, ReasoningTokens: 4}, 6*2_000 + 4*5_000 + 6*3_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustLookup(t, tab, tt.model).Cost(tt.usage); got != tt.want {
				t.Errorf("Cost(%+v) = %d, want %d", tt.usage, got, tt.want)
			}
		})
	}
	t.Run("embedded long-context prices", func(t *testing.T) {
		long := Usage{PromptTokens: 200_001, CachedTokens: 100_000, CacheCreationTokens: 1, CompletionTokens: 1_000}
		for model, want := range map[string]store.Nano{
			// 100,000 × 6000 + 100,000 × 600 + 1 × 7500 + 1000 × 22500 nano.
			"claude-sonnet-4-5": 600_000_000 + 60_000_000 + 7_500 + 22_500_000,
			"claude-sonnet-4-6": 600_000_000 + 60_000_000 + 7_500 + 22_500_000,
			// 100,001 × 2500 + 100,000 × 250 + 1000 × 15000 nano.
			"gemini-2.5-pro": 250_002_500 + 25_000_000 + 15_000_000,
		} {
			if got := mustLookup(t, Default(), model).Cost(long); got != want {
				t.Errorf("%s: cost = %d, want %d", model, got, want)
			}
		}
	})
	t.Run("a price override drops the tiers", func(t *testing.T) {
		in := 1e-06
		over, err := tab.Override("long", &in, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := mustLookup(t, over, "long").Cost(Usage{PromptTokens: 2000, CompletionTokens: 1}); got != 2000*1_000+2_000 {
			t.Errorf("cost = %d, want base prices", got)
		}
	})
	for _, bad := range []string{
		`{"m": {"input_cost_per_token": 1e-06, "input_cost_per_token_above_1k_tokens": -1}}`,
		`{"m": {"input_cost_per_token": 1e-06, "input_cost_per_token_above_1k_tokens": "2e-06"}}`,
		`{"m": {"input_cost_per_token": 1e-06, "input_cost_per_token_above_1k_tokens": 1e-06, "cache_read_input_token_cost_above_1k_tokens": 1e9}}`,
	} {
		if _, err := Parse(strings.NewReader(bad)); err == nil {
			t.Errorf("Parse(%s) succeeded, want an error", bad)
		}
	}
}

func TestDefault(t *testing.T) {
	tab := Default()
	million := Usage{PromptTokens: 1_000_000, CompletionTokens: 1_000_000}
	tests := []struct {
		model string
		want  store.Nano // cost of `million`
	}{
		{"gpt-4o", 12_500_000_000},
		{"gpt-4o-mini", 750_000_000},
		{"gpt-4.1", 10_000_000_000},
		{"gpt-4.1-mini", 2_000_000_000},
		{"gpt-4.1-nano", 500_000_000},
		{"o3", 10_000_000_000},
		{"o4-mini", 5_500_000_000},
		{"gpt-3.5-turbo", 2_000_000_000},
		{"gpt-5", 11_250_000_000},
		{"gpt-5-mini", 2_250_000_000},
		{"gpt-5-nano", 450_000_000},
		{"text-embedding-3-small", 20_000_000},
		{"text-embedding-3-large", 130_000_000},
		{"text-embedding-ada-002", 100_000_000},
		// A million-token prompt is above the 200k long-context tier.
		{"claude-sonnet-4-5", 28_500_000_000},
		{"claude-sonnet-4-20250514", 28_500_000_000},
		{"claude-opus-4-1", 90_000_000_000},
		{"claude-opus-4-5", 30_000_000_000},
		{"claude-haiku-4-5", 6_000_000_000},
		{"claude-3-7-sonnet-20250219", 18_000_000_000},
		{"claude-3-5-sonnet-20241022", 18_000_000_000},
		{"claude-3-5-haiku-20241022", 4_800_000_000},
		{"mistral-large-latest", 2_000_000_000},
		{"mistral-medium-latest", 9_000_000_000},
		{"mistral-small-latest", 240_000_000},
		{"codestral-latest", 4_000_000_000},
		{"gemini-2.5-pro", 17_500_000_000},
		{"gemini-2.5-flash", 2_800_000_000},
		{"gemini-2.0-flash", 500_000_000},
		{"gemini/gemini-2.5-flash", 2_800_000_000},
		{"mistral/mistral-large-latest", 2_000_000_000},
		{"azure-gpt-3.5", 2_000_000_000},
		{"fake-openai-endpoint", 2_000_000_000},
		{"mistral", 240_000_000},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			if got := mustLookup(t, tab, tt.model).Cost(million); got != tt.want {
				t.Errorf("cost of 1M+1M tokens = %d, want %d", got, tt.want)
			}
		})
	}
	t.Run("demo names share their model's price", func(t *testing.T) {
		for alias, model := range map[string]string{
			"azure-gpt-3.5":        "gpt-3.5-turbo",
			"fake-openai-endpoint": "gpt-3.5-turbo",
			"mistral":              "mistral-small-latest",
		} {
			if diff := cmp.Diff(mustLookup(t, tab, model), mustLookup(t, tab, alias), cmp.AllowUnexported(Price{}, rates{}, tier{})); diff != "" {
				t.Errorf("%s vs %s (-want +got):\n%s", alias, model, diff)
			}
		}
	})
}

func TestLookup(t *testing.T) {
	tab := mustParse(t, `{
		"gpt-4o":       {"input_cost_per_token": 1e-06},
		"azure/gpt-4o": {"input_cost_per_token": 2e-06}
	}`)
	one := Usage{PromptTokens: 1}
	tests := []struct {
		model  string
		want   store.Nano
		wantOK bool
	}{
		{"gpt-4o", 1000, true},
		{"openai/gpt-4o", 1000, true},
		{"openrouter/openai/gpt-4o", 1000, true},
		{"azure/gpt-4o", 2000, true},
		{"GPT-4O", 0, false},
		{"gpt-4o-mini", 0, false},
		{"gpt-4o/", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			p, ok := tab.Lookup(tt.model)
			if ok != tt.wantOK {
				t.Fatalf("Lookup(%q) ok = %v, want %v", tt.model, ok, tt.wantOK)
			}
			if got := p.Cost(one); got != tt.want {
				t.Errorf("Lookup(%q) cost of one prompt token = %d, want %d", tt.model, got, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	t.Run("ignores sample_spec, unknown fields and models without token prices", func(t *testing.T) {
		tab := mustParse(t, `{
			"sample_spec": {"input_cost_per_token": "documentation, not a number"},
			"m": {"input_cost_per_token": 1e-06, "output_cost_per_token": null, "supports_vision": true,
			      "search_context_cost_per_query": {"low": 0.01}, "max_output_tokens": 10},
			"dall-e-2": {"input_cost_per_image": 0.02, "mode": "image_generation"},
			"embed": {"input_cost_per_token": 2e-08}
		}`)
		for _, name := range []string{"sample_spec", "dall-e-2"} {
			if _, ok := tab.Lookup(name); ok {
				t.Errorf("Lookup(%q) found a price", name)
			}
		}
		if got := mustLookup(t, tab, "m").Cost(Usage{PromptTokens: 2, CompletionTokens: 5}); got != 2000 {
			t.Errorf("m cost = %d, want 2000", got)
		}
		if got := mustLookup(t, tab, "embed").Cost(Usage{PromptTokens: 100}); got != 2000 {
			t.Errorf("embed cost = %d, want 2000", got)
		}
	})
	errTests := []struct {
		name string
		in   string
	}{
		{"empty", ``},
		{"not an object", `[1, 2]`},
		{"null", `null`},
		{"trailing garbage", `{} {}`},
		{"entry not an object", `{"m": 3}`},
		{"price is a string", `{"m": {"input_cost_per_token": "1e-06"}}`},
		{"negative price", `{"m": {"input_cost_per_token": -1e-06}}`},
		{"negative optional price", `{"m": {"input_cost_per_token": 1e-06, "cache_read_input_token_cost": -1}}`},
		{"absurd price", `{"m": {"output_cost_per_token": 1e7}}`},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse(strings.NewReader(tt.in)); err == nil {
				t.Errorf("Parse(%q) succeeded, want an error", tt.in)
			}
		})
	}
}

func TestMaxOutputTokens(t *testing.T) {
	tab := mustParse(t, `{
		"new":      {"input_cost_per_token": 1e-06, "max_output_tokens": 16384, "max_tokens": 4096},
		"legacy":   {"input_cost_per_token": 1e-06, "max_tokens": 4096},
		"text":     {"input_cost_per_token": 1e-06, "max_output_tokens": "16k"},
		"fraction": {"input_cost_per_token": 1e-06, "max_output_tokens": 10.5},
		"none":     {"input_cost_per_token": 1e-06}
	}`)
	want := map[string]int64{"new": 16384, "legacy": 4096, "text": 0, "fraction": 0, "none": 0}
	for model, n := range want {
		if got := mustLookup(t, tab, model).MaxOutputTokens(); got != n {
			t.Errorf("%s: MaxOutputTokens = %d, want %d", model, got, n)
		}
	}
	in := 2e-06
	over, err := tab.Override("new", &in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustLookup(t, over, "new").MaxOutputTokens(); got != 16384 {
		t.Errorf("after a price override: MaxOutputTokens = %d, want 16384 kept", got)
	}
	if got := mustLookup(t, Default(), "gpt-4o").MaxOutputTokens(); got != 16384 {
		t.Errorf("embedded gpt-4o: MaxOutputTokens = %d, want 16384", got)
	}
}

func TestMerge(t *testing.T) {
	base := mustParse(t, `{"a": {"input_cost_per_token": 1e-06}, "b": {"input_cost_per_token": 2e-06}}`)
	over := mustParse(t, `{"b": {"input_cost_per_token": 5e-06}, "c": {"input_cost_per_token": 7e-06}}`)
	merged := base.Merge(over)
	one := Usage{PromptTokens: 1}
	for model, want := range map[string]store.Nano{"a": 1000, "b": 5000, "c": 7000} {
		if got := mustLookup(t, merged, model).Cost(one); got != want {
			t.Errorf("merged %s = %d, want %d", model, got, want)
		}
	}
	if got := mustLookup(t, base, "b").Cost(one); got != 2000 {
		t.Errorf("base b changed to %d by Merge", got)
	}
	if _, ok := base.Lookup("c"); ok {
		t.Error("Merge added c to the base table")
	}
}

func TestOverride(t *testing.T) {
	base := mustParse(t, `{"m": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "cache_read_input_token_cost": 1e-07}}`)
	f := func(v float64) *float64 { return &v }
	u := Usage{PromptTokens: 10, CachedTokens: 4, CompletionTokens: 5}
	tests := []struct {
		name       string
		model      string
		in, out    *float64
		lookup     string
		want       store.Nano
		wantErrors bool
	}{
		{name: "input only keeps output and cache prices", model: "m", in: f(3e-06), lookup: "m", want: 18_000 + 400 + 10_000},
		{name: "both", model: "m", in: f(0), out: f(1e-06), lookup: "m", want: 400 + 5_000},
		{name: "neither keeps the price", model: "m", lookup: "m", want: 6_000 + 400 + 10_000},
		{name: "new deployment name", model: "my-gpt", in: f(1e-06), out: f(1e-06), lookup: "my-gpt", want: 15_000},
		{name: "alias takes the prefixed model's other prices", model: "openai/m", out: f(0), lookup: "openai/m", want: 6_000 + 400},
		{name: "negative", model: "m", in: f(-1), wantErrors: true},
		{name: "NaN", model: "m", out: f(math.NaN()), wantErrors: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := base.Override(tt.model, tt.in, tt.out)
			if tt.wantErrors {
				if err == nil {
					t.Fatal("Override succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Override: %v", err)
			}
			if cost := mustLookup(t, got, tt.lookup).Cost(u); cost != tt.want {
				t.Errorf("cost = %d, want %d", cost, tt.want)
			}
			if cost := mustLookup(t, base, "m").Cost(u); cost != 16_400 {
				t.Errorf("base table changed: cost = %d, want 16400", cost)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(string(modelsJSON))
	f.Add(`{"m": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "cache_read_input_token_cost": 1.875e-08,
		"cache_creation_input_token_cost": 3.75e-06, "output_cost_per_reasoning_token": 2e-06}}`)
	f.Add(`{"sample_spec": {}, "x": {"input_cost_per_token": 0}}`)
	f.Add(`{"m": {"input_cost_per_token": 1e-400}}`)
	f.Add(`{"m": {"output_cost_per_token": 999.9999999}}`)
	f.Add(`[]`)
	f.Add(`{"m": {"input_cost_per_token": 1e-06, "input_cost_per_token_above_128k_tokens": 2e-06,
		"output_cost_per_token_above_128k_tokens": 3e-06, "cache_read_input_token_cost_above_128k_tokens": null,
		"input_cost_per_token_above_200_tokens": 0, "input_cost_per_token_above_999999999k_tokens": 1}}`)
	f.Fuzz(func(t *testing.T, in string) {
		tab, err := Parse(strings.NewReader(in))
		if err != nil {
			return
		}
		merged := tab.Merge(tab)
		for name, p := range tab.prices {
			for _, r := range append([]tier{{rates: p.rates}}, p.tiers...) {
				if r.input < 0 || r.output < 0 || r.cacheRead < 0 || r.cacheCreation < 0 || p.reasoning < 0 {
					t.Fatalf("%q: negative price %+v", name, p)
				}
			}
			for i := 1; i < len(p.tiers); i++ {
				if p.tiers[i-1].above <= p.tiers[i].above {
					t.Fatalf("%q: tiers out of order: %+v", name, p.tiers)
				}
			}
			for _, prompt := range []int64{0, 1, 1000, 200_001, math.MaxInt64} {
				u := Usage{PromptTokens: prompt, CompletionTokens: 7, CachedTokens: 3, CacheCreationTokens: 5, ReasoningTokens: 2}
				if c := p.Cost(u); c < 0 {
					t.Fatalf("%q: negative cost %d", name, c)
				}
			}
			if _, ok := merged.Lookup(name); !ok {
				t.Fatalf("%q lost by Merge", name)
			}
		}
	})
}
