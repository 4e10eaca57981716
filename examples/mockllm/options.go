package mockllm

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Request headers that shape a successful response.
const (
	// HeaderEncoding compresses the response body: gzip, deflate (zlib) or br.
	// A stream is flushed through the compressor after every piece it writes.
	HeaderEncoding = "x-mock-content-encoding"
	// HeaderChunked leaves content-length off a JSON response ("true"), so it
	// is sent with chunked transfer encoding.
	HeaderChunked = "x-mock-chunked"
	// HeaderSSE formats a stream: a comma-separated list of crlf or cr (line
	// ends; LF by default), nospace ("data:x" instead of "data: x"), comments
	// (a comment line before each event, and id and retry fields) and
	// multiline (each event's JSON split over several data lines).
	HeaderSSE = "x-mock-sse"
	// HeaderChunkBytes writes a stream in pieces of that many bytes, each
	// flushed on its own, so pieces end inside events and lines. By default
	// each event is one piece.
	HeaderChunkBytes = "x-mock-chunk-bytes"
	// HeaderGap waits that many milliseconds before each piece of a stream
	// after the first.
	HeaderGap = "x-mock-gap-ms"
	// HeaderCutAfter ends a stream cleanly after that many events: no usage,
	// no final event, no [DONE].
	HeaderCutAfter = "x-mock-cut-after"
	// HeaderAbortAfter breaks the connection after that many events, without
	// ending the response.
	HeaderAbortAfter = "x-mock-abort-after"
	// HeaderOmitUsage leaves usage out of every response ("true"), as
	// upstreams that ignore stream_options.include_usage do.
	HeaderOmitUsage = "x-mock-omit-usage"
	// HeaderCachedTokens reports that many of the prompt tokens (at most all)
	// as read from the prompt cache.
	HeaderCachedTokens = "x-mock-cached-tokens"
	// HeaderCacheCreationTokens reports that many of the prompt tokens not
	// read from the cache (at most all) as written to it (Anthropic only).
	HeaderCacheCreationTokens = "x-mock-cache-creation-tokens"
	// HeaderReasoningTokens adds that many reasoning tokens to the completion
	// tokens (chat, completions and Responses API).
	HeaderReasoningTokens = "x-mock-reasoning-tokens"
)

// options are the response-shaping headers of a request.
type options struct {
	encoding                    string
	chunked                     bool
	crlf, cr, noSpace           bool
	comments, multiline         bool
	chunkBytes                  int
	gap                         time.Duration
	cutAfter, abortAfter        int // 0: never
	omitUsage                   bool
	cachedTokens, cacheCreation int64
	reasoningTokens             int64
}

// parseOptions reads the response-shaping headers; a non-empty message is the
// client error.
func parseOptions(h http.Header) (options, string) {
	var o options
	switch o.encoding = h.Get(HeaderEncoding); o.encoding {
	case "", "gzip", "deflate", "br":
	default:
		return o, fmt.Sprintf("%s must be gzip, deflate or br, got %q", HeaderEncoding, o.encoding)
	}
	if v := h.Get(HeaderSSE); v != "" {
		for _, f := range strings.Split(v, ",") {
			switch strings.TrimSpace(f) {
			case "crlf":
				o.crlf = true
			case "cr":
				o.cr = true
			case "nospace":
				o.noSpace = true
			case "comments":
				o.comments = true
			case "multiline":
				o.multiline = true
			default:
				return o, fmt.Sprintf("%s: unknown style %q", HeaderSSE, f)
			}
		}
	}
	flags := []struct {
		name string
		dst  *bool
	}{{HeaderChunked, &o.chunked}, {HeaderOmitUsage, &o.omitUsage}}
	for _, f := range flags {
		if v := h.Get(f.name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return o, fmt.Sprintf("%s must be true or false, got %q", f.name, v)
			}
			*f.dst = b
		}
	}
	var gapMS int64
	counts := []struct {
		name string
		dst  *int64
	}{
		{HeaderCachedTokens, &o.cachedTokens}, {HeaderCacheCreationTokens, &o.cacheCreation},
		{HeaderReasoningTokens, &o.reasoningTokens}, {HeaderGap, &gapMS},
	}
	for _, c := range counts {
		if v := h.Get(c.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil || n < 0 {
				return o, fmt.Sprintf("%s must be a non-negative integer, got %q", c.name, v)
			}
			*c.dst = n
		}
	}
	o.gap = time.Duration(gapMS) * time.Millisecond
	ints := []struct {
		name string
		dst  *int
	}{{HeaderChunkBytes, &o.chunkBytes}, {HeaderCutAfter, &o.cutAfter}, {HeaderAbortAfter, &o.abortAfter}}
	for _, c := range ints {
		if v := h.Get(c.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return o, fmt.Sprintf("%s must be a positive integer, got %q", c.name, v)
			}
			*c.dst = n
		}
	}
	return o, ""
}

// Usage is the token usage the mock reports, counted as OpenAI counts it:
// PromptTokens includes CachedTokens and CacheCreationTokens, CompletionTokens
// includes ReasoningTokens. (Anthropic's input_tokens is PromptTokens −
// CachedTokens − CacheCreationTokens.)
type Usage struct {
	PromptTokens        int64
	CompletionTokens    int64
	CachedTokens        int64
	CacheCreationTokens int64
	ReasoningTokens     int64
}

// ReportedUsage returns the usage the mock reports for a request to path
// with body and header h (whether or not the response includes it). Tests
// compute the spend tollgate must record from it.
func ReportedUsage(path string, body []byte, h http.Header) Usage {
	kind, deployment := route(path)
	req, msg := parseRequest(kind, body, deployment)
	o, optMsg := parseOptions(h)
	if kind == unknownEndpoint || msg != "" || optMsg != "" {
		return Usage{}
	}
	return (&call{req: req, o: o, kind: kind}).usage()
}

// usage is the request's usage, given its options.
func (c *call) usage() Usage {
	p := c.req.promptTokens()
	u := Usage{PromptTokens: p}
	u.CachedTokens = min(c.o.cachedTokens, p)
	if c.kind == messagesEndpoint {
		u.CacheCreationTokens = min(c.o.cacheCreation, p-u.CachedTokens)
	}
	if c.kind != embeddingsEndpoint {
		u.CompletionTokens = c.req.completionTokens()
		if c.kind != messagesEndpoint {
			u.ReasoningTokens = c.o.reasoningTokens
			u.CompletionTokens += u.ReasoningTokens
		}
	}
	return u
}
