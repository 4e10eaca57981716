package extproc

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tollgate-dev/tollgate/extproc/pricing"
)

// maxDecodedBody bounds how far a compressed response is inflated to find its
// usage, so a compression bomb costs memory once, not without limit.
const maxDecodedBody = 64 << 20

var errNoUsage = errors.New("response has no usage object")

// responseUsage is what a response body says about its own cost.
type responseUsage struct {
	pricing.Usage
	TotalTokens int64
	Model       string // the model the response names, "" if none
}

// usageReader reads a response body's usage as Envoy delivers the body: fed
// chunk by chunk, asked once at end of stream. Buffered JSON responses have
// one reader; streamed (SSE) responses are where another plugs in.
type usageReader interface {
	Write(chunk []byte)
	Usage() (responseUsage, error)
}

// jsonUsage reads the usage object of a whole JSON response, which may be
// content-encoded. The response itself is passed on unchanged; only a copy is
// decompressed.
type jsonUsage struct {
	encoding string
	body     []byte
}

func (r *jsonUsage) Write(chunk []byte) { r.body = append(r.body, chunk...) }

func (r *jsonUsage) Usage() (responseUsage, error) {
	body, err := decode(r.body, r.encoding)
	if err != nil {
		return responseUsage{}, err
	}
	return parseUsage(body)
}

// decode undoes a content-encoding. br is not supported yet.
func decode(body []byte, encoding string) ([]byte, error) {
	var zr io.Reader
	switch enc := strings.ToLower(strings.TrimSpace(encoding)); enc {
	case "", "identity":
		return body, nil
	case "gzip", "x-gzip":
		r, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("gzip response: %w", err)
		}
		zr = r
	case "deflate":
		// HTTP's deflate is zlib-wrapped, but some servers send raw deflate.
		if r, err := zlib.NewReader(bytes.NewReader(body)); err == nil {
			zr = r
		} else {
			zr = flate.NewReader(bytes.NewReader(body))
		}
	default:
		return nil, fmt.Errorf("content-encoding %q is not supported", enc)
	}
	out, err := io.ReadAll(io.LimitReader(zr, maxDecodedBody+1))
	if err != nil {
		return nil, fmt.Errorf("decode %s response: %w", encoding, err)
	}
	if len(out) > maxDecodedBody {
		return nil, fmt.Errorf("decoded %s response is over %d bytes", encoding, maxDecodedBody)
	}
	return out, nil
}

// parseUsage reads an OpenAI-style usage object: prompt_tokens,
// completion_tokens, total_tokens, prompt_tokens_details.cached_tokens and
// completion_tokens_details.reasoning_tokens (embeddings have only the first
// and total). Counts that are not non-negative numbers count as 0.
func parseUsage(body []byte) (responseUsage, error) {
	if !gjson.ValidBytes(body) {
		return responseUsage{}, errors.New("response body is not JSON")
	}
	root := gjson.ParseBytes(body)
	var ru responseUsage
	if m := root.Get("model"); m.Type == gjson.String {
		ru.Model = m.Str
	}
	u := root.Get("usage")
	if !u.IsObject() {
		return ru, errNoUsage
	}
	ru.PromptTokens = tokens(u.Get("prompt_tokens"))
	ru.CompletionTokens = tokens(u.Get("completion_tokens"))
	ru.CachedTokens = tokens(u.Get("prompt_tokens_details.cached_tokens"))
	ru.ReasoningTokens = tokens(u.Get("completion_tokens_details.reasoning_tokens"))
	if total := u.Get("total_tokens"); total.Exists() {
		ru.TotalTokens = tokens(total)
	} else if ru.PromptTokens > math.MaxInt64-ru.CompletionTokens {
		ru.TotalTokens = math.MaxInt64
	} else {
		ru.TotalTokens = ru.PromptTokens + ru.CompletionTokens
	}
	return ru, nil
}

// tokens reads a token count; gjson saturates numbers beyond int64.
func tokens(v gjson.Result) int64 {
	if v.Type != gjson.Number {
		return 0
	}
	return max(v.Int(), 0)
}
