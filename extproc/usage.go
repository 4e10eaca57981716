package extproc

import (
	"errors"
	"math"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tollgate-dev/tollgate/extproc/pricing"
)

var errNoUsage = errors.New("response has no usage object")

// maxCompletionText bounds the completion text kept for local token counting;
// beyond it the text is counted and dropped, piece by piece.
const maxCompletionText = 1 << 20

// responseUsage is what a response body says about its own cost.
type responseUsage struct {
	pricing.Usage
	TotalTokens int64
	Model       string // the model the response names, "" if none
}

// tally is what a response has told so far about its cost.
type tally struct {
	usage responseUsage
	// final: usage holds the upstream's own totals for the request.
	final bool
	// prompt: usage holds the upstream's prompt tokens, but not yet its
	// completion tokens (an Anthropic stream after message_start).
	prompt bool
	// text is the completion text seen, for counting tokens locally when the
	// upstream reports none.
	text completionText
	// anthropic holds an Anthropic stream's usage fields as last reported,
	// because message_delta repeats only some of them.
	anthropic anthropicUsage
}

// completionText collects generated text. Text beyond maxCompletionText is
// counted with the tokenizer of the model seen then and dropped.
type completionText struct {
	b       strings.Builder
	counted int64 // tokens of text already dropped
	model   string
}

func (c *completionText) add(s string) {
	if c.b.Len()+len(s) > maxCompletionText {
		c.counted += countTokens(c.model, c.b.String())
		c.b.Reset()
	}
	c.b.WriteString(s)
}

// tokens counts the completion text with model's tokenizer.
func (c *completionText) tokens(model string) int64 {
	return c.counted + countTokens(model, c.b.String())
}

// anthropicUsage is Anthropic's usage object: input_tokens excludes the cache
// reads and writes, which it reports apart.
type anthropicUsage struct {
	input, output, cacheRead, cacheCreation int64
}

// update takes the fields u has; message_delta's counts are cumulative.
func (a *anthropicUsage) update(u gjson.Result) {
	for field, dst := range map[string]*int64{
		"input_tokens":                &a.input,
		"output_tokens":               &a.output,
		"cache_read_input_tokens":     &a.cacheRead,
		"cache_creation_input_tokens": &a.cacheCreation,
	} {
		if v := u.Get(field); v.Exists() {
			*dst = tokens(v)
		}
	}
}

func (a anthropicUsage) usage() pricing.Usage {
	return pricing.Usage{
		PromptTokens:        addSat(addSat(a.input, a.cacheRead), a.cacheCreation),
		CompletionTokens:    a.output,
		CachedTokens:        a.cacheRead,
		CacheCreationTokens: a.cacheCreation,
	}
}

// setUsage records the upstream's totals.
func (t *tally) setUsage(u pricing.Usage, total gjson.Result) {
	t.usage.Usage = u
	if total.Exists() {
		t.usage.TotalTokens = tokens(total)
	} else {
		t.usage.TotalTokens = addSat(u.PromptTokens, u.CompletionTokens)
	}
	t.final = true
}

// setModel records the model the response names.
func (t *tally) setModel(v gjson.Result) {
	if v.Type == gjson.String && v.Str != "" {
		t.usage.Model = v.Str
		t.text.model = v.Str
	}
}

// openAIUsage reads an OpenAI usage object: prompt_tokens, completion_tokens,
// prompt_tokens_details.cached_tokens and completion_tokens_details.reasoning_tokens
// (embeddings have only prompt_tokens and total_tokens).
func openAIUsage(u gjson.Result) pricing.Usage {
	return pricing.Usage{
		PromptTokens:     tokens(u.Get("prompt_tokens")),
		CompletionTokens: tokens(u.Get("completion_tokens")),
		CachedTokens:     tokens(u.Get("prompt_tokens_details.cached_tokens")),
		ReasoningTokens:  tokens(u.Get("completion_tokens_details.reasoning_tokens")),
	}
}

// responsesUsage reads the Responses API's usage object: input_tokens,
// input_tokens_details.cached_tokens, output_tokens and
// output_tokens_details.reasoning_tokens.
func responsesUsage(u gjson.Result) pricing.Usage {
	return pricing.Usage{
		PromptTokens:     tokens(u.Get("input_tokens")),
		CompletionTokens: tokens(u.Get("output_tokens")),
		CachedTokens:     tokens(u.Get("input_tokens_details.cached_tokens")),
		ReasoningTokens:  tokens(u.Get("output_tokens_details.reasoning_tokens")),
	}
}

// parseBody reads a whole (decoded) JSON response of api: its model, usage and
// generated text. It returns errNoUsage, with the rest filled in, when the
// body carries no usage.
func parseBody(a api, body []byte) (tally, error) {
	var t tally
	if !shallowJSON(body) || !gjson.ValidBytes(body) {
		return t, errors.New("response body is not JSON, or nests too deep")
	}
	root := gjson.ParseBytes(body)
	t.setModel(root.Get("model"))
	u := root.Get("usage")
	switch a {
	case apiMessages:
		for _, block := range root.Get("content").Array() {
			anthropicBlockText(&t, block)
		}
		if u.IsObject() {
			t.anthropic.update(u)
			t.setUsage(t.anthropic.usage(), gjson.Result{})
		}
	case apiResponses:
		for _, item := range root.Get("output").Array() {
			responsesItemText(&t, item)
		}
		if u.IsObject() {
			t.setUsage(responsesUsage(u), u.Get("total_tokens"))
		}
	default:
		for _, c := range root.Get("choices").Array() {
			openAIChoiceText(&t, c)
		}
		if u.IsObject() {
			t.setUsage(openAIUsage(u), u.Get("total_tokens"))
		}
	}
	if !t.final {
		return t, errNoUsage
	}
	return t, nil
}

// openAIChoiceText collects the generated text of a chat or completions
// choice, whole (message) or streamed (delta).
func openAIChoiceText(t *tally, c gjson.Result) {
	addText(t, c.Get("text"))
	for _, m := range []gjson.Result{c.Get("message"), c.Get("delta")} {
		if !m.IsObject() {
			continue
		}
		for _, field := range []string{"content", "refusal", "reasoning_content", "function_call.arguments"} {
			addText(t, m.Get(field))
		}
		for _, call := range m.Get("tool_calls").Array() {
			addText(t, call.Get("function.name"))
			addText(t, call.Get("function.arguments"))
		}
	}
}

// anthropicBlockText collects the text of an Anthropic content block: text,
// thinking, or a tool call's input.
func anthropicBlockText(t *tally, block gjson.Result) {
	addText(t, block.Get("text"))
	addText(t, block.Get("thinking"))
	if in := block.Get("input"); in.IsObject() {
		t.text.add(in.Raw)
	}
}

// responsesItemText collects the text of a Responses API output item:
// messages, function calls and reasoning summaries.
func responsesItemText(t *tally, item gjson.Result) {
	for _, part := range item.Get("content").Array() {
		addText(t, part.Get("text"))
		addText(t, part.Get("refusal"))
	}
	addText(t, item.Get("arguments"))
	for _, s := range item.Get("summary").Array() {
		addText(t, s.Get("text"))
	}
}

func addText(t *tally, v gjson.Result) {
	if v.Type == gjson.String {
		t.text.add(v.Str)
	}
}

// maxJSONDepth bounds the nesting of the JSON tollgate parses. gjson recurses
// once per level, and the 16 million levels a 32 MiB body can hold would
// overflow a goroutine's stack and crash the process. Python's json, behind
// most LLM APIs, gives up near 1,000 levels anyway.
const maxJSONDepth = 1000

// shallowJSON reports whether b nests arrays and objects at most maxJSONDepth
// deep; it does not check that b is JSON.
func shallowJSON(b []byte) bool {
	depth, inString, escaped := 0, false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			if depth++; depth > maxJSONDepth {
				return false
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return true
}

// tokens reads a token count. Counts that are not non-negative numbers count
// as 0; fractions are truncated and gjson saturates numbers beyond int64.
func tokens(v gjson.Result) int64 {
	if v.Type != gjson.Number {
		return 0
	}
	return max(v.Int(), 0)
}

// addSat adds two non-negative counts, saturating instead of overflowing.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
