package extproc

import (
	"strings"
	"sync"

	"github.com/tidwall/gjson"
	"github.com/tiktoken-go/tokenizer"
)

// Local token counting, for responses whose upstream reports no usage (it
// ignored include_usage, or the stream was cut or abandoned). The counts follow
// OpenAI's recipe for chat messages and use OpenAI's tokenizers for every model;
// for other providers' models they are an estimate, and the spend log says so.

// perMessageTokens is what each message adds around its content, and
// replyPrimingTokens what every reply is primed with (OpenAI's cookbook).
const (
	perMessageTokens   = 3
	replyPrimingTokens = 3
)

// Each codec compiles its pre-tokenizer and builds its vocabulary once.
var (
	o200k  = sync.OnceValue(func() tokenizer.Codec { return mustCodec(tokenizer.O200kBase) })
	cl100k = sync.OnceValue(func() tokenizer.Codec { return mustCodec(tokenizer.Cl100kBase) })
)

func mustCodec(e tokenizer.Encoding) tokenizer.Codec {
	c, err := tokenizer.Get(e)
	if err != nil {
		// Both encodings are embedded in the tokenizer module.
		panic("extproc: tokenizer " + string(e) + ": " + err.Error())
	}
	return c
}

// o200kPrefixes name the models that use OpenAI's o200k_base encoding; every
// other model is counted with cl100k_base.
var o200kPrefixes = []string{"gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-oss", "o1", "o3", "o4"}

func codecFor(model string) tokenizer.Codec {
	if i := strings.LastIndexByte(model, '/'); i >= 0 {
		model = model[i+1:] // openai/gpt-4o, azure/gpt-4o
	}
	for _, p := range o200kPrefixes {
		if strings.HasPrefix(model, p) {
			return o200k()
		}
	}
	return cl100k()
}

// countTokens counts the tokens of text with model's tokenizer.
func countTokens(model, text string) int64 {
	if text == "" {
		return 0
	}
	// The tokenizer fails only on invalid UTF-8 in strict mode, which is not set.
	n, _ := codecFor(model).Count(text)
	return int64(n)
}

// skippedKeys are not counted: media (images, audio, files), which upstreams
// bill in ways text tokens do not describe, and content-part types.
var skippedKeys = map[string]bool{"image_url": true, "input_audio": true, "file": true, "source": true, "image": true, "type": true}

// maxCountDepth bounds how deep valueTokens descends into nested JSON.
const maxCountDepth = 32

// estimatePrompt counts the prompt tokens of a request body of api locally.
// Chat and Anthropic messages cost perMessageTokens each plus their strings,
// and a reply is primed with replyPrimingTokens; the prompt or input of the
// other endpoints costs its strings' tokens, and each number in it (a token
// id) one token. Tool definitions count as their JSON text.
func estimatePrompt(a api, model string, body []byte) int64 {
	root := gjson.ParseBytes(body)
	var n int64
	switch a {
	case apiChat, apiMessages:
		if a == apiMessages {
			n += valueTokens(model, root.Get("system"), 0)
		}
		for _, m := range root.Get("messages").Array() {
			n += perMessageTokens + valueTokens(model, m, 0)
		}
		n += replyPrimingTokens
	case apiCompletions:
		n += valueTokens(model, root.Get("prompt"), 0)
	case apiEmbeddings:
		n += valueTokens(model, root.Get("input"), 0)
	case apiResponses:
		n += valueTokens(model, root.Get("instructions"), 0)
		if in := root.Get("input"); in.IsArray() {
			for _, item := range in.Array() {
				n += perMessageTokens + valueTokens(model, item, 0)
			}
		} else {
			n += valueTokens(model, in, 0)
		}
	}
	if tools := root.Get("tools"); tools.IsArray() {
		n += countTokens(model, tools.Raw)
	}
	return n
}

// valueTokens counts the tokens of the strings in a JSON value, and one token
// for each number, skipping skippedKeys and anything nested deeper than
// maxCountDepth.
func valueTokens(model string, v gjson.Result, depth int) int64 {
	var n int64
	switch {
	case v.Type == gjson.String:
		n = countTokens(model, v.Str)
	case v.Type == gjson.Number:
		n = 1
	case depth >= maxCountDepth:
	case v.IsArray(), v.IsObject():
		v.ForEach(func(k, e gjson.Result) bool {
			if !skippedKeys[k.Str] {
				n = addSat(n, valueTokens(model, e, depth+1))
			}
			return true
		})
	}
	return n
}
