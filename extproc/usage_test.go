package extproc

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/extproc/pricing"
)

// read is what a test expects of a tally.
type read struct {
	Usage  responseUsage
	Final  bool
	Prompt bool
	Text   string
}

func readOf(t tally) read {
	return read{Usage: t.usage, Final: t.final, Prompt: t.prompt, Text: t.text.b.String()}
}

// Anthropic's input_tokens leaves out the cache reads and writes.
const anthropicResponse = `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
	"content":[{"type":"thinking","thinking":"hmm "},{"type":"text","text":"Hello"},
		{"type":"tool_use","id":"t1","name":"get","input":{"q":"x"}}],
	"stop_reason":"end_turn",
	"usage":{"input_tokens":100,"output_tokens":50,"cache_creation_input_tokens":20,"cache_read_input_tokens":300}}`

const responsesResponse = `{"id":"resp_1","object":"response","status":"completed","model":"gpt-4o-2024-08-06",
	"output":[{"type":"reasoning","summary":[{"type":"summary_text","text":"think "}]},
		{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Hi","annotations":[]}]},
		{"type":"function_call","name":"f","arguments":"{\"a\":1}"}],
	"usage":{"input_tokens":1000,"input_tokens_details":{"cached_tokens":400},"output_tokens":500,
		"output_tokens_details":{"reasoning_tokens":100},"total_tokens":1500}}`

func TestParseBody(t *testing.T) {
	tests := []struct {
		name    string
		api     api
		body    string
		want    read
		wantErr bool
	}{
		{name: "chat completion", api: apiChat, body: chatResponse, want: read{Final: true, Text: "hello", Usage: responseUsage{
			Usage:       pricing.Usage{PromptTokens: 1000, CompletionTokens: 500, CachedTokens: 400, ReasoningTokens: 100},
			TotalTokens: 1500, Model: "gpt-test-2025-01-01"}}},
		{name: "chat tool calls and refusal", api: apiChat,
			body: `{"choices":[{"message":{"content":null,"refusal":"no ","tool_calls":[{"function":{"name":"f","arguments":"{}"}}]}}],"usage":{}}`,
			want: read{Final: true, Text: "no f{}"}},
		{name: "completions", api: apiCompletions, body: `{"model":"m","choices":[{"text":"abc"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}`,
			want: read{Final: true, Text: "abc", Usage: responseUsage{Usage: pricing.Usage{PromptTokens: 3, CompletionTokens: 1}, TotalTokens: 4, Model: "m"}}},
		{name: "embeddings", api: apiEmbeddings, body: `{"model":"e","usage":{"prompt_tokens":8,"total_tokens":8}}`,
			want: read{Final: true, Usage: responseUsage{Usage: pricing.Usage{PromptTokens: 8}, TotalTokens: 8, Model: "e"}}},
		{name: "anthropic message", api: apiMessages, body: anthropicResponse, want: read{Final: true, Text: `hmm Hello{"q":"x"}`,
			Usage: responseUsage{Usage: pricing.Usage{PromptTokens: 420, CompletionTokens: 50, CachedTokens: 300, CacheCreationTokens: 20},
				TotalTokens: 470, Model: "claude-sonnet-4-5-20250929"}}},
		{name: "anthropic without cache fields", api: apiMessages, body: `{"usage":{"input_tokens":7,"output_tokens":2}}`,
			want: read{Final: true, Usage: responseUsage{Usage: pricing.Usage{PromptTokens: 7, CompletionTokens: 2}, TotalTokens: 9}}},
		{name: "responses API", api: apiResponses, body: responsesResponse, want: read{Final: true, Text: `think Hi{"a":1}`,
			Usage: responseUsage{Usage: pricing.Usage{PromptTokens: 1000, CompletionTokens: 500, CachedTokens: 400, ReasoningTokens: 100},
				TotalTokens: 1500, Model: "gpt-4o-2024-08-06"}}},
		{name: "total computed when absent", api: apiChat, body: `{"usage":{"prompt_tokens":8,"completion_tokens":2}}`,
			want: read{Final: true, Usage: responseUsage{Usage: pricing.Usage{PromptTokens: 8, CompletionTokens: 2}, TotalTokens: 10}}},
		{name: "total computed without overflow", api: apiChat, body: `{"usage":{"prompt_tokens":9223372036854775807,"completion_tokens":2}}`,
			want: read{Final: true, Usage: responseUsage{Usage: pricing.Usage{PromptTokens: math.MaxInt64, CompletionTokens: 2}, TotalTokens: math.MaxInt64}}},
		{name: "anthropic prompt saturates", api: apiMessages, body: `{"usage":{"input_tokens":9223372036854775807,"cache_read_input_tokens":5}}`,
			want: read{Final: true, Usage: responseUsage{Usage: pricing.Usage{PromptTokens: math.MaxInt64, CachedTokens: 5}, TotalTokens: math.MaxInt64}}},
		{name: "negative and non-numeric counts are 0", api: apiChat, body: `{"usage":{"prompt_tokens":-5,"completion_tokens":"7","total_tokens":null,
			"prompt_tokens_details":{"cached_tokens":true},"completion_tokens_details":[1]}}`,
			want: read{Final: true}},
		{name: "fractional counts truncated", api: apiChat, body: `{"usage":{"prompt_tokens":3.9,"completion_tokens":1e2}}`,
			want: read{Final: true, Usage: responseUsage{Usage: pricing.Usage{PromptTokens: 3, CompletionTokens: 100}, TotalTokens: 103}}},
		{name: "huge counts saturate", api: apiChat, body: `{"usage":{"prompt_tokens":1e300,"total_tokens":99999999999999999999999}}`,
			want: read{Final: true, Usage: responseUsage{Usage: pricing.Usage{PromptTokens: math.MaxInt64}, TotalTokens: math.MaxInt64}}},
		{name: "no usage keeps the model and text", api: apiChat, body: `{"model":"m","choices":[{"message":{"content":"hi"}}]}`,
			want: read{Text: "hi", Usage: responseUsage{Model: "m"}}, wantErr: true},
		{name: "the wrong API's usage is not read", api: apiMessages, body: `{"usage":{"prompt_tokens":5}}`,
			want: read{Final: true}},
		{name: "usage null", api: apiChat, body: `{"usage":null}`, wantErr: true},
		{name: "usage not an object", api: apiResponses, body: `{"usage":[1,2]}`, wantErr: true},
		{name: "not JSON", api: apiChat, body: `{"usage":{"prompt_tokens":1}`, wantErr: true},
		{name: "a JSON array", api: apiChat, body: `[{"usage":{"prompt_tokens":1}}]`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBody(tt.api, []byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseBody error = %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, readOf(got)); diff != "" {
				t.Errorf("parseBody (-want +got):\n%s", diff)
			}
		})
	}
}

func TestShallowJSON(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		in   string
		want bool
	}{
		{`{"a":[1,{"b":[]}]}`, true},
		{deep(maxJSONDepth), true},
		{deep(maxJSONDepth + 1), false},
		{`{"a":"` + strings.Repeat("[", 2*maxJSONDepth) + `"}`, true},
		{`{"a":"\"` + strings.Repeat("{", 2*maxJSONDepth) + `"}`, true},
		{`{"a":"\\"` + strings.Repeat("{", maxJSONDepth) + `}`, false},
		{`not json at all`, true},
	}
	for _, tt := range tests {
		if got := shallowJSON([]byte(tt.in)); got != tt.want {
			t.Errorf("shallowJSON(%.40q…) = %v, want %v", tt.in, got, tt.want)
		}
	}
	// What would crash gjson with a stack overflow is refused up front.
	bomb := []byte(`{"usage":` + deep(16<<20) + `}`)
	if _, err := parseBody(apiChat, bomb); err == nil {
		t.Error("parseBody accepted a body nested 16M deep")
	}
	var tl tally
	if tl.streamEvent(apiChat, &sseEvent{Data: bomb}) || tl.final {
		t.Error("streamEvent read a body nested 16M deep")
	}
}

func TestCompletionTextIsBounded(t *testing.T) {
	var c completionText
	piece := strings.Repeat("word ", maxCompletionText/10+1) // over half the bound
	c.add(piece)
	c.add(piece)
	if c.b.Len() != len(piece) {
		t.Errorf("kept %d bytes of text, want only the last piece's %d", c.b.Len(), len(piece))
	}
	// Each piece is counted on its own, in full.
	if got, want := c.counted, countTokens("", piece); got != want || got == 0 {
		t.Errorf("counted %d tokens of dropped text, want %d", got, want)
	}
}

// FuzzParseBody: no body makes an extractor panic, report negative counts, or
// report usage together with an error other than errNoUsage.
func FuzzParseBody(f *testing.F) {
	for _, b := range []string{chatResponse, anthropicResponse, responsesResponse,
		`{"usage":{"prompt_tokens":-1,"completion_tokens":1e999,"total_tokens":"x"}}`,
		`{"usage":{"prompt_tokens_details":{"cached_tokens":9223372036854775808}}}`,
		`{"usage":{"input_tokens":9223372036854775807,"cache_read_input_tokens":9223372036854775807,"cache_creation_input_tokens":1}}`,
		`{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"{"}}]}}]}`,
	} {
		for a := apiChat; a <= apiMessages; a++ {
			f.Add(uint8(a), []byte(b))
		}
	}
	f.Fuzz(func(t *testing.T, a uint8, body []byte) {
		got, err := parseBody(api(a%6), body)
		if err != nil && !errors.Is(err, errNoUsage) && got.final {
			t.Fatalf("final usage %+v returned with error %v", got.usage, err)
		}
		if got.final != (err == nil) {
			t.Fatalf("final = %v with error %v", got.final, err)
		}
		checkCounts(t, got.usage)
	})
}

func checkCounts(t *testing.T, u responseUsage) {
	t.Helper()
	for name, v := range map[string]int64{
		"prompt": u.PromptTokens, "completion": u.CompletionTokens, "cached": u.CachedTokens,
		"cache creation": u.CacheCreationTokens, "reasoning": u.ReasoningTokens, "total": u.TotalTokens,
	} {
		if v < 0 {
			t.Fatalf("%s tokens %d < 0 in %+v", name, v, u)
		}
	}
}

func TestIsObject(t *testing.T) {
	tests := []struct {
		name, json string
		want       bool
	}{
		{"object", `{"a":1}`, true},
		{"empty object", `{}`, true},
		{"leading whitespace", " \t\r\n{}", true},
		{"array", `[{}]`, false},
		{"string", `"{}"`, false},
		{"number", `1`, false},
		{"null", `null`, false},
		{"whitespace only", " \n", false},
		{"empty", ``, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isObject([]byte(tt.json)); got != tt.want {
				t.Errorf("isObject(%q) = %v, want %v", tt.json, got, tt.want)
			}
		})
	}
}
