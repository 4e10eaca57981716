package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/tiktoken-go/tokenizer"

	"github.com/tollgate-dev/tollgate/examples/mockllm"
	"github.com/tollgate-dev/tollgate/store"
)

// End-to-end tests of streaming and of every API shape: real Envoy, the
// tollgate binary and the mock upstream, with official SDKs and raw HTTP.

// price is a model's per-token prices in nano-USD, as in the embedded price
// map. A cache price of 0 means the model has none and pays the input price.
type price struct{ in, out, cacheRead, cacheWrite int64 }

var (
	gpt35Price  = price{in: 500, out: 1500}                                      // gpt-3.5-turbo, azure-gpt-3.5
	gpt4oPrice  = price{in: 2500, out: 10_000, cacheRead: 1250}                  // gpt-4o
	sonnetPrice = price{in: 3000, out: 15_000, cacheRead: 300, cacheWrite: 3750} // claude-sonnet-4-5
)

// cost prices usage as LiteLLM does: cache reads and writes are part of the
// prompt, reasoning tokens part of the completion (at the output price here).
func (p price) cost(u mockllm.Usage) store.Nano {
	read, write := p.cacheRead, p.cacheWrite
	if read == 0 {
		read = p.in
	}
	if write == 0 {
		write = p.in
	}
	return store.Nano((u.PromptTokens-u.CachedTokens-u.CacheCreationTokens)*p.in + u.CachedTokens*read +
		u.CacheCreationTokens*write + u.CompletionTokens*p.out)
}

// wantLog is the spend log a request with usage u must leave.
func wantLog(customer, model, path string, u mockllm.Usage, p price) store.SpendLog {
	return store.SpendLog{CustomerID: customer, Model: model, Path: path,
		PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.PromptTokens + u.CompletionTokens,
		CacheReadTokens: u.CachedTokens, CacheCreationTokens: u.CacheCreationTokens, ReasoningTokens: u.ReasoningTokens,
		Cost: p.cost(u)}
}

// logsByCustomer stops tollgate and returns its spend logs, by customer, with
// the fields a test cannot know (ids, times) cleared.
func (s *stack) logsByCustomer() map[string][]store.SpendLog {
	s.t.Helper()
	m := map[string][]store.SpendLog{}
	for _, l := range s.spendLogs("") {
		l.RequestID, l.ClientRequestID, l.StartTime, l.EndTime = "", "", time.Time{}, time.Time{}
		m[l.CustomerID] = append(m[l.CustomerID], l)
	}
	return m
}

// post sends a request to the public URL with the master key and returns the
// response and its body, undecoded: the client asks for identity encoding
// unless the headers ask otherwise, so Go never decompresses behind its back.
func (s *stack) post(path string, body any, headers map[string]string) (*http.Response, []byte) {
	s.t.Helper()
	b, ok := body.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(body); err != nil {
			s.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", s.url+path, bytes.NewReader(b))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+masterKey)
	req.Header.Set("Accept-Encoding", "identity")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("POST %s: read body: %v", path, err)
	}
	return resp, got
}

// mockLast is the last request the mock upstream got, with the response it
// sent back (as sent: compressed when it was).
func (s *stack) mockLast() mockllm.Request {
	s.t.Helper()
	code, _, b := httpDo(s.t, "GET", s.mockURL+"/__mock/last", nil, nil)
	if code != 200 {
		s.t.Fatalf("mock last: %d %s", code, b)
	}
	var r mockllm.Request
	mustUnmarshal(s.t, b, &r)
	return r
}

// headerOf turns a header map into an http.Header for mockllm.ReportedUsage.
func headerOf(m map[string]string) http.Header {
	h := http.Header{}
	for k, v := range m {
		h.Set(k, v)
	}
	return h
}

var blankLine = regexp.MustCompile(`\r\n\r\n|\r\r|\n\n`)

// withoutUsageChunk removes the block of an OpenAI stream that carries only
// usage (empty choices): what a client that did not ask for usage must get.
func withoutUsageChunk(t *testing.T, stream []byte) []byte {
	t.Helper()
	var out []byte
	removed := 0
	rest := stream
	for len(rest) > 0 {
		end := len(rest)
		if loc := blankLine.FindIndex(rest); loc != nil {
			end = loc[1]
		}
		block := rest[:end]
		rest = rest[end:]
		if bytes.Contains(block, []byte(`"choices":[],`)) && bytes.Contains(block, []byte(`"usage":{`)) {
			removed++
			continue
		}
		out = append(out, block...)
	}
	if removed != 1 {
		t.Fatalf("%d usage-only chunks in the mock's stream, want 1:\n%q", removed, stream)
	}
	return out
}

// decodeBody undoes a content-encoding.
func decodeBody(t *testing.T, b []byte, encoding string) []byte {
	t.Helper()
	var r io.Reader
	switch encoding {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(b))
	default:
		return b
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s: %v", encoding, err)
	}
	return out
}

// bodyChunks is how many response body chunks tollgate read for customer's
// request, from its log.
func (s *stack) bodyChunks(customer string) int {
	s.t.Helper()
	re := regexp.MustCompile(`"spend recorded" .*customer=` + regexp.QuoteMeta(customer) + ` .*body_chunks=(\d+)`)
	m := re.FindStringSubmatch(s.tollgate.log.String())
	if m == nil {
		s.t.Fatalf("no spend log line for %s", customer)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// countEvents counts the events of an event stream, however its lines end.
func countEvents(stream []byte) int {
	return len(blankLine.FindAllIndex(stream, -1))
}

// Streams of every API, cut into small pieces that end inside events and
// lines, with CRLF or CR line ends, "data:" without a space, comments and
// multi-line data: what the client gets is what it would get without
// tollgate, and the spend is the mock's usage to the nano-USD.
func TestE2EStreamFormats(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	messages := []map[string]string{{"role": "user", "content": "tell me a story about streams"}}
	cases := []struct {
		customer, path, model string
		body                  map[string]any
		headers               map[string]string
		price                 price
		forced                bool // the client did not ask for usage: tollgate does, and strips it again
	}{
		{customer: "chat-crlf", path: "/v1/chat/completions", model: "azure-gpt-3.5", price: gpt35Price,
			body:    map[string]any{"messages": messages, "stream": true, "stream_options": map[string]any{"include_usage": true}},
			headers: map[string]string{mockllm.HeaderSSE: "crlf,nospace", mockllm.HeaderChunkBytes: "7"}},
		{customer: "chat-cr-forced", path: "/chat/completions", model: "azure-gpt-3.5", price: gpt35Price, forced: true,
			body:    map[string]any{"messages": messages, "stream": true},
			headers: map[string]string{mockllm.HeaderSSE: "cr,comments,multiline", mockllm.HeaderChunkBytes: "5"}},
		{customer: "completions-forced", path: "/v1/completions", model: "gpt-3.5-turbo", price: gpt35Price, forced: true,
			body:    map[string]any{"prompt": "once upon a time", "stream": true, "max_tokens": 9},
			headers: map[string]string{mockllm.HeaderSSE: "crlf", mockllm.HeaderChunkBytes: "13"}},
		{customer: "azure-deployment", path: "/openai/deployments/azure-gpt-3.5/chat/completions?api-version=2024-10-21",
			model: "azure-gpt-3.5", price: gpt35Price, forced: true,
			body:    map[string]any{"messages": messages, "stream": true},
			headers: map[string]string{mockllm.HeaderSSE: "nospace", mockllm.HeaderChunkBytes: "11"}},
		{customer: "anthropic", path: "/v1/messages", model: "claude-sonnet-4-5", price: sonnetPrice,
			body: map[string]any{"messages": messages, "stream": true, "max_tokens": 100, "system": "be brief"},
			headers: map[string]string{mockllm.HeaderSSE: "crlf,nospace", mockllm.HeaderChunkBytes: "9",
				mockllm.HeaderCachedTokens: "4", mockllm.HeaderCacheCreationTokens: "2"}},
		{customer: "responses", path: "/responses", model: "gpt-4o", price: gpt4oPrice,
			body: map[string]any{"input": "tell me a story", "stream": true, "instructions": "be brief"},
			headers: map[string]string{mockllm.HeaderSSE: "cr,comments", mockllm.HeaderChunkBytes: "17",
				mockllm.HeaderCachedTokens: "3", mockllm.HeaderReasoningTokens: "6"}},
	}
	want := map[string][]store.SpendLog{}
	for _, c := range cases {
		c.body["user"] = c.customer
		if c.path[:8] != "/openai/" {
			c.body["model"] = c.model
		}
		c.headers[mockllm.HeaderGap] = "1" // pieces reach Envoy one by one
		resp, got := s.post(c.path, c.body, c.headers)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", c.customer, resp.StatusCode, got)
		}
		last := s.mockLast()
		wantBody := last.ResponseBody
		if c.forced {
			if !strings.Contains(last.Body, `"include_usage":true`) {
				t.Errorf("%s: the upstream was not asked for usage: %s", c.customer, last.Body)
			}
			wantBody = withoutUsageChunk(t, wantBody)
		}
		if !bytes.Equal(got, wantBody) {
			t.Errorf("%s: client received\n%q\nwant\n%q", c.customer, got, wantBody)
		}
		path, _, _ := strings.Cut(c.path, "?")
		want[c.customer] = []store.SpendLog{wantLog(c.customer, c.model, path,
			mockllm.ReportedUsage(last.Path, []byte(last.Body), headerOf(c.headers)), c.price)}
		if n, events := s.bodyChunks(c.customer), countEvents(last.ResponseBody); n <= events {
			t.Errorf("%s: tollgate read %d chunks for %d events; want events split across chunks", c.customer, n, events)
		}
	}
	if diff := cmp.Diff(want, s.logsByCustomer()); diff != "" {
		t.Errorf("spend logs (-want +got):\n%s", diff)
	}
}

// teeMiddleware keeps a copy of every response body the SDK reads.
func teeMiddleware(dst *bytes.Buffer) option.Middleware {
	return func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		resp, err := next(req)
		if err == nil {
			resp.Body = struct {
				io.Reader
				io.Closer
			}{io.TeeReader(resp.Body, dst), resp.Body}
		}
		return resp, err
	}
}

// openai-go streaming: with IncludeUsage the stream is the mock's, byte for
// byte; without, the client gets the same chunks without the usage-only one.
// Spend is exact either way.
func TestE2EOpenAISDKStreaming(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	client := openai.NewClient(option.WithBaseURL(s.url+"/v1"), option.WithAPIKey(masterKey), option.WithMaxRetries(0))
	want := map[string][]store.SpendLog{}
	for _, tt := range []struct {
		customer     string
		includeUsage bool
	}{{"sdk-with-usage", true}, {"sdk-without-usage", false}} {
		t.Run(tt.customer, func(t *testing.T) {
			params := openai.ChatCompletionNewParams{
				Model:    "azure-gpt-3.5",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("Hello!")},
				User:     openai.String(tt.customer),
			}
			if tt.includeUsage {
				params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			}
			var raw bytes.Buffer
			headers := map[string]string{mockllm.HeaderSSE: "crlf", mockllm.HeaderChunkBytes: "6", mockllm.HeaderGap: "1"}
			var opts []option.RequestOption
			for k, v := range headers {
				opts = append(opts, option.WithHeader(k, v))
			}
			stream := client.Chat.Completions.NewStreaming(context.Background(), params, append(opts, option.WithMiddleware(teeMiddleware(&raw)))...)
			var acc openai.ChatCompletionAccumulator
			var chunks int
			for stream.Next() {
				chunk := stream.Current()
				acc.AddChunk(chunk)
				chunks++
				if len(chunk.Choices) == 0 && !tt.includeUsage {
					t.Errorf("got a chunk without choices: %s", chunk.RawJSON())
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			last := s.mockLast()
			wantRaw := last.ResponseBody
			if !tt.includeUsage {
				wantRaw = withoutUsageChunk(t, wantRaw)
				if acc.Usage.TotalTokens != 0 {
					t.Errorf("client without IncludeUsage got usage %+v", acc.Usage)
				}
			}
			if !bytes.Equal(raw.Bytes(), wantRaw) {
				t.Errorf("SDK received\n%q\nwant\n%q", raw.Bytes(), wantRaw)
			}
			if got := acc.Choices[0].Message.Content; got != mockllm.ReplyText([]byte(last.Body)) {
				t.Errorf("content %q", got)
			}
			u := mockllm.ReportedUsage(last.Path, []byte(last.Body), headerOf(headers))
			if tt.includeUsage && (acc.Usage.PromptTokens != u.PromptTokens || acc.Usage.CompletionTokens != u.CompletionTokens) {
				t.Errorf("SDK usage %+v, mock's %+v", acc.Usage, u)
			}
			want[tt.customer] = []store.SpendLog{wantLog(tt.customer, "azure-gpt-3.5", "/v1/chat/completions", u, gpt35Price)}
		})
	}
	if diff := cmp.Diff(want, s.logsByCustomer()); diff != "" {
		t.Errorf("spend logs (-want +got):\n%s", diff)
	}
}

// anthropic-sdk-go, streaming and not: exact spend with cache reads and
// writes, the customer from metadata.user_id, and the upstream key in
// x-api-key while the client's key goes nowhere.
func TestE2EAnthropicSDK(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{env: []string{"TOLLGATE_UPSTREAM_API_KEY=sk-ant-upstream"}})
	client := anthropic.NewClient(aoption.WithBaseURL(s.url+"/"), aoption.WithAPIKey(masterKey), aoption.WithMaxRetries(0))
	headers := map[string]string{mockllm.HeaderCachedTokens: "5", mockllm.HeaderCacheCreationTokens: "3",
		mockllm.HeaderSSE: "crlf", mockllm.HeaderChunkBytes: "10", mockllm.HeaderGap: "1"}
	var opts []aoption.RequestOption
	for k, v := range headers {
		opts = append(opts, aoption.WithHeader(k, v))
	}
	want := map[string][]store.SpendLog{}
	for _, streaming := range []bool{false, true} {
		customer := fmt.Sprintf("claude-user-streaming-%v", streaming)
		t.Run(customer, func(t *testing.T) {
			params := anthropic.MessageNewParams{
				Model:     "claude-sonnet-4-5",
				MaxTokens: 1024,
				System:    []anthropic.TextBlockParam{{Text: "You are a helpful assistant."}},
				Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hello there, Claude!"))},
				Metadata:  anthropic.MetadataParam{UserID: anthropic.String(customer)},
			}
			var msg anthropic.Message
			if streaming {
				stream := client.Messages.NewStreaming(context.Background(), params, opts...)
				for stream.Next() {
					if err := msg.Accumulate(stream.Current()); err != nil {
						t.Fatal(err)
					}
				}
				if err := stream.Err(); err != nil {
					t.Fatal(err)
				}
			} else {
				m, err := client.Messages.New(context.Background(), params, opts...)
				if err != nil {
					t.Fatal(err)
				}
				msg = *m
			}
			last := s.mockLast()
			u := mockllm.ReportedUsage(last.Path, []byte(last.Body), headerOf(headers))
			if msg.Usage.InputTokens != u.PromptTokens-8 || msg.Usage.CacheReadInputTokens != 5 ||
				msg.Usage.CacheCreationInputTokens != 3 || msg.Usage.OutputTokens != u.CompletionTokens {
				t.Errorf("SDK usage %+v, mock's %+v", msg.Usage, u)
			}
			if msg.Content[0].Text != mockllm.ReplyText([]byte(last.Body)) {
				t.Errorf("text %q", msg.Content[0].Text)
			}
			if got := last.Header["x-api-key"]; got != "sk-ant-upstream" {
				t.Errorf("x-api-key upstream = %q, want the upstream key", got)
			}
			if _, ok := last.Header["authorization"]; ok || strings.Contains(fmt.Sprint(last.Header), masterKey) {
				t.Errorf("the client's credentials reached the upstream: %v", last.Header)
			}
			want[customer] = []store.SpendLog{wantLog(customer, "claude-sonnet-4-5", "/v1/messages", u, sonnetPrice)}
		})
	}
	if diff := cmp.Diff(want, s.logsByCustomer()); diff != "" {
		t.Errorf("spend logs (-want +got):\n%s", diff)
	}
}

// The Responses API through openai-go, JSON and streamed: input, cached,
// output and reasoning tokens; the customer from user or safety_identifier.
func TestE2EResponsesAPI(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	client := openai.NewClient(option.WithBaseURL(s.url+"/v1"), option.WithAPIKey(masterKey), option.WithMaxRetries(0))
	headers := map[string]string{mockllm.HeaderCachedTokens: "2", mockllm.HeaderReasoningTokens: "9", mockllm.HeaderChunkBytes: "8"}
	var opts []option.RequestOption
	for k, v := range headers {
		opts = append(opts, option.WithHeader(k, v))
	}
	params := responses.ResponseNewParams{
		Model:        "gpt-4o",
		Instructions: openai.String("You are a helpful assistant."),
		Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String("Write a haiku about toll gates.")},
	}
	want := map[string][]store.SpendLog{}

	params.User = openai.String("responses-user")
	r, err := client.Responses.New(context.Background(), params, opts...)
	if err != nil {
		t.Fatal(err)
	}
	last := s.mockLast()
	u := mockllm.ReportedUsage(last.Path, []byte(last.Body), headerOf(headers))
	if r.Usage.InputTokens != u.PromptTokens || r.Usage.OutputTokensDetails.ReasoningTokens != 9 || r.OutputText() == "" {
		t.Errorf("response usage %+v, text %q; mock's %+v", r.Usage, r.OutputText(), u)
	}
	want["responses-user"] = []store.SpendLog{wantLog("responses-user", "gpt-4o", "/v1/responses", u, gpt4oPrice)}

	params.User = openai.String("")
	params.SafetyIdentifier = openai.String("responses-safety-id")
	stream := client.Responses.NewStreaming(context.Background(), params, opts...)
	var text string
	for stream.Next() {
		if ev := stream.Current(); ev.Type == "response.output_text.delta" {
			text += ev.Delta
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	last = s.mockLast()
	if text != mockllm.ReplyText([]byte(last.Body)) {
		t.Errorf("streamed text %q", text)
	}
	u = mockllm.ReportedUsage(last.Path, []byte(last.Body), headerOf(headers))
	want["responses-safety-id"] = []store.SpendLog{wantLog("responses-safety-id", "gpt-4o", "/v1/responses", u, gpt4oPrice)}

	if diff := cmp.Diff(want, s.logsByCustomer()); diff != "" {
		t.Errorf("spend logs (-want +got):\n%s", diff)
	}
}

// Compressed responses pass through byte for byte, and their usage is read
// from a decompressed copy: gzip and br, JSON (with and without a length) and
// streams. A stream tollgate must strip reaches the client decoded.
func TestE2ECompressedResponses(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	chat := func(customer string, stream, askUsage bool) map[string]any {
		b := map[string]any{"model": "azure-gpt-3.5", "user": customer,
			"messages": []map[string]string{{"role": "user", "content": "compress this please"}}}
		if stream {
			b["stream"] = true
		}
		if askUsage {
			b["stream_options"] = map[string]any{"include_usage": true}
		}
		return b
	}
	cases := []struct {
		customer, encoding string
		stream, askUsage   bool
		chunked            bool
	}{
		{customer: "gzip-json-chunked", encoding: "gzip", chunked: true},
		{customer: "br-json", encoding: "br"},
		{customer: "deflate-json", encoding: "deflate"},
		{customer: "gzip-stream", encoding: "gzip", stream: true, askUsage: true},
		{customer: "br-stream", encoding: "br", stream: true, askUsage: true},
		{customer: "br-stream-stripped", encoding: "br", stream: true},
		{customer: "gzip-stream-stripped", encoding: "gzip", stream: true},
	}
	want := map[string][]store.SpendLog{}
	for _, c := range cases {
		headers := map[string]string{mockllm.HeaderEncoding: c.encoding, "Accept-Encoding": c.encoding}
		if c.chunked {
			headers[mockllm.HeaderChunked] = "true"
		}
		if c.stream {
			headers[mockllm.HeaderChunkBytes] = "20"
			headers[mockllm.HeaderGap] = "1"
		}
		resp, got := s.post("/v1/chat/completions", chat(c.customer, c.stream, c.askUsage), headers)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", c.customer, resp.StatusCode, got)
		}
		last := s.mockLast()
		u := mockllm.ReportedUsage(last.Path, []byte(last.Body), headerOf(headers))
		want[c.customer] = []store.SpendLog{wantLog(c.customer, "azure-gpt-3.5", "/v1/chat/completions", u, gpt35Price)}
		wantBody, wantEncoding := last.ResponseBody, c.encoding
		if c.stream && !c.askUsage {
			wantBody, wantEncoding = withoutUsageChunk(t, decodeBody(t, last.ResponseBody, c.encoding)), ""
		}
		if got := resp.Header.Get("Content-Encoding"); got != wantEncoding {
			t.Errorf("%s: content-encoding %q, want %q", c.customer, got, wantEncoding)
		}
		if !bytes.Equal(got, wantBody) {
			t.Errorf("%s: body differs from what the upstream sent (%d vs %d bytes)", c.customer, len(got), len(wantBody))
		}
		if !c.stream {
			if got, want := resp.Header.Get("x-litellm-response-cost"), gpt35Price.cost(u).String(); got != want {
				t.Errorf("%s: x-litellm-response-cost %q, want %q", c.customer, got, want)
			}
		}
	}
	if diff := cmp.Diff(want, s.logsByCustomer()); diff != "" {
		t.Errorf("spend logs (-want +got):\n%s", diff)
	}
}

var cl100k = sync.OnceValue(func() tokenizer.Codec {
	c, err := tokenizer.Get(tokenizer.Cl100kBase)
	if err != nil {
		panic(err)
	}
	return c
})

// tokens counts text as OpenAI's cl100k_base tokenizer does.
func tokens(t *testing.T, text string) int64 {
	t.Helper()
	n, err := cl100k().Count(text)
	if err != nil {
		t.Fatal(err)
	}
	return int64(n)
}

// chatPromptTokens is OpenAI's count of a one-message chat prompt: 3 per
// message, its role and content, and 3 to prime the reply.
func chatPromptTokens(t *testing.T, content string) int64 {
	return 3 + tokens(t, "user") + tokens(t, content) + 3
}

// streamedText is the generated text of a chat stream's events.
func streamedText(t *testing.T, stream []byte) string {
	t.Helper()
	var text strings.Builder
	for _, line := range regexp.MustCompile(`\r\n|\r|\n`).Split(string(stream), -1) {
		data, ok := strings.CutPrefix(line, "data:")
		if !ok || strings.TrimSpace(data) == "[DONE]" {
			continue
		}
		var chunk struct {
			Choices []struct{ Delta struct{ Content string } }
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			t.Fatalf("chunk %q: %v", data, err)
		}
		for _, c := range chunk.Choices {
			text.WriteString(c.Delta.Content)
		}
	}
	return text.String()
}

// When the upstream reports no usage (it ignores include_usage, or the stream
// ends early), tollgate counts the tokens itself and marks the log estimated.
func TestE2ENoUsageFromUpstream(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	const content = "How many tokens are in this sentence, do you think?"
	estimated := func(customer string, completion int64) []store.SpendLog {
		p := chatPromptTokens(t, content)
		return []store.SpendLog{{CustomerID: customer, Model: "azure-gpt-3.5", Path: "/v1/chat/completions",
			PromptTokens: p, CompletionTokens: completion, TotalTokens: p + completion,
			Cost: store.Nano(p*gpt35Price.in + completion*gpt35Price.out), Estimated: true}}
	}
	cases := []struct {
		customer string
		stream   bool
		headers  map[string]string
	}{
		{"ignores-include-usage", true, map[string]string{mockllm.HeaderOmitUsage: "true", mockllm.HeaderChunkBytes: "9"}},
		{"stream-cut-short", true, map[string]string{mockllm.HeaderCutAfter: "3"}},
		{"json-without-usage", false, map[string]string{mockllm.HeaderOmitUsage: "true"}},
	}
	want := map[string][]store.SpendLog{}
	for _, c := range cases {
		body := map[string]any{"model": "azure-gpt-3.5", "user": c.customer, "stream": c.stream,
			"messages": []map[string]string{{"role": "user", "content": content}}}
		resp, got := s.post("/v1/chat/completions", body, c.headers)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", c.customer, resp.StatusCode, got)
		}
		last := s.mockLast()
		if !bytes.Equal(got, last.ResponseBody) {
			t.Errorf("%s: client received\n%q\nwant the upstream's\n%q", c.customer, got, last.ResponseBody)
		}
		text := mockllm.ReplyText([]byte(last.Body))
		if c.stream {
			text = streamedText(t, got)
		}
		want[c.customer] = estimated(c.customer, tokens(t, text))
		if !c.stream {
			if got, want := resp.Header.Get("x-litellm-response-cost"), want[c.customer][0].Cost.String(); got != want {
				t.Errorf("%s: x-litellm-response-cost %q, want %q", c.customer, got, want)
			}
		}
	}
	if diff := cmp.Diff(want, s.logsByCustomer()); diff != "" {
		t.Errorf("spend logs (-want +got):\n%s", diff)
	}
}

// waitForCustomer polls /customer/info until the customer has been recorded.
func (s *stack) waitForCustomer(id string) {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, _, _ := s.do("GET", "/customer/info?end_user_id="+id, nil)
		if code == 200 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("customer %s not recorded within 15s", id)
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-s.t.Context().Done():
			s.t.Fatal(s.t.Context().Err())
		}
	}
}

// A client that hangs up after a few chunks, and a stream the upstream breaks
// off, are charged for the prompt and what was streamed: no free generations.
func TestE2EStreamAbandoned(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	const content = "Write me a long, slow answer."
	body := func(customer string) map[string]any {
		return map[string]any{"model": "azure-gpt-3.5", "user": customer, "stream": true,
			"messages": []map[string]string{{"role": "user", "content": content}}}
	}
	full := tokens(t, mockllm.ReplyText([]byte(`{}`)))

	// stream sends a request and reads its stream until it has three events
	// or the stream breaks, then hangs up.
	stream := func(customer string, header map[string]string) []byte {
		b, err := json.Marshal(body(customer))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "POST", s.url+"/v1/chat/completions", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+masterKey)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var received bytes.Buffer
		sc := bufio.NewScanner(io.TeeReader(resp.Body, &received))
		for events := 0; events < 3 && sc.Scan(); {
			if sc.Text() == "" {
				events++
			}
		}
		return received.Bytes()
	}
	// The client reads three events, then goes away; the mock would have
	// taken 300 ms more for each further event.
	seen := tokens(t, streamedText(t, stream("hangs-up", map[string]string{mockllm.HeaderGap: "300"})))
	// The upstream breaks the connection after three events.
	gotBroken := tokens(t, streamedText(t, stream("upstream-breaks", map[string]string{mockllm.HeaderAbortAfter: "3"})))
	broken := tokens(t, streamedText(t, s.mockLast().ResponseBody))

	s.waitForCustomer("hangs-up")
	s.waitForCustomer("upstream-breaks")
	logs := s.logsByCustomer()
	prompt := chatPromptTokens(t, content)
	// What the client got had passed through tollgate; a broken stream may
	// lose its last chunk between Envoy and tollgate.
	for customer, bounds := range map[string][2]int64{"hangs-up": {seen, full - 1}, "upstream-breaks": {gotBroken, broken}} {
		if len(logs[customer]) != 1 {
			t.Fatalf("%s: %d spend logs, want 1", customer, len(logs[customer]))
		}
		l := logs[customer][0]
		if !l.Estimated || l.PromptTokens != prompt || l.CompletionTokens < bounds[0] || l.CompletionTokens > bounds[1] ||
			l.Cost != store.Nano(l.PromptTokens*gpt35Price.in+l.CompletionTokens*gpt35Price.out) {
			t.Errorf("%s: spend log %+v; want estimated, %d prompt tokens, %d to %d completion tokens, priced",
				customer, l, prompt, bounds[0], bounds[1])
		}
	}
}

// rawRequest writes an HTTP/1.1 request head to Envoy, then body (in a
// goroutine, ignoring errors: Envoy may answer before reading it all), and
// returns the status and body of the response.
func (s *stack) rawRequest(head string, body func(io.Writer)) (int, []byte) {
	s.t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(60 * time.Second)); err != nil {
		s.t.Fatal(err)
	}
	if _, err := io.WriteString(conn, head); err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		go body(conn)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		s.t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("read body: %v", err)
	}
	return resp.StatusCode, b
}

// Request and response bodies of several MiB go through; a request body over
// the limit gets tollgate's 413 envelope whether or not it announced its
// length; a response over Envoy's buffer is read streamed instead of failing.
func TestE2ELargeBodies(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	want := map[string][]store.SpendLog{}

	// An 8 MiB prompt, with a length, uploaded chunked, and streamed (so
	// tollgate rewrites all 8 MiB to ask for usage).
	big := strings.Repeat("word ", 8<<20/5)
	for _, tt := range []struct{ chunked, stream bool }{{false, false}, {true, false}, {false, true}} {
		chunked := tt.chunked
		customer := fmt.Sprintf("big-prompt-chunked-%v-stream-%v", tt.chunked, tt.stream)
		b, err := json.Marshal(map[string]any{"model": "azure-gpt-3.5", "user": customer, "stream": tt.stream,
			"messages": []map[string]string{{"role": "user", "content": big}}})
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = bytes.NewReader(b)
		if chunked {
			r = io.MultiReader(r) // hides the length: sent chunked
		}
		req, err := http.NewRequest("POST", s.url+"/v1/chat/completions", r)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+masterKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", customer, resp.StatusCode, out)
		}
		u := mockllm.ReportedUsage("/v1/chat/completions", b, nil)
		if u.PromptTokens != 3+8<<20/5 {
			t.Fatalf("test setup: %d prompt tokens", u.PromptTokens)
		}
		want[customer] = []store.SpendLog{wantLog(customer, "azure-gpt-3.5", "/v1/chat/completions", u, gpt35Price)}
	}

	// Embedding responses of about 5 MiB (buffered, with the cost header) and
	// of about 36 MiB, over Envoy's 32 MiB buffer (read streamed).
	for _, n := range []int{60_000, 420_000} {
		customer := fmt.Sprintf("embeddings-%d", n)
		input := make([]string, n)
		for i := range input {
			input[i] = "a b"
		}
		body := map[string]any{"model": "text-embedding-3-small", "user": customer, "input": input}
		resp, got := s.post("/v1/embeddings", body, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %.300s", customer, resp.StatusCode, got)
		}
		last := s.mockLast()
		if !bytes.Equal(got, last.ResponseBody) {
			t.Errorf("%s: %d bytes received, the upstream sent %d", customer, len(got), len(last.ResponseBody))
		}
		u := mockllm.ReportedUsage(last.Path, []byte(last.Body), nil)
		want[customer] = []store.SpendLog{wantLog(customer, "text-embedding-3-small", "/v1/embeddings", u, price{in: 20})}
		if hasCost := resp.Header.Get("x-litellm-response-cost") != ""; hasCost != (len(got) < 32<<20) {
			t.Errorf("%s: %d bytes, cost header %q", customer, len(got), resp.Header.Get("x-litellm-response-cost"))
		}
	}

	// Over the 32 MiB limit: announced, rejected before the body; chunked,
	// rejected once Envoy's buffer is full. Neither reaches the upstream.
	before := s.mockRequests()
	head := "POST /v1/chat/completions HTTP/1.1\r\nHost: tollgate\r\nAuthorization: Bearer " + masterKey +
		"\r\nContent-Type: application/json\r\n"
	wantEnvelope := map[string]any{"message": "Request body is too large: the limit is 33554432 bytes.",
		"type": "invalid_request_error", "param": nil, "code": "413"}
	code, b := s.rawRequest(head+"Content-Length: 40000000\r\n\r\n", nil)
	if code != 413 {
		t.Errorf("announced 40 MB: %d %s, want 413", code, b)
	} else if diff := cmp.Diff(wantEnvelope, errorEnvelope(t, b)); diff != "" {
		t.Errorf("announced 40 MB (-want +got):\n%s", diff)
	}
	code, b = s.rawRequest(head+"Transfer-Encoding: chunked\r\n\r\n", func(w io.Writer) {
		piece := fmt.Sprintf("%x\r\n%s\r\n", 1<<20, strings.Repeat("x", 1<<20))
		for range 40 {
			if _, err := io.WriteString(w, piece); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, "0\r\n\r\n")
	})
	if code != 413 {
		t.Errorf("chunked 40 MiB: %d %.300s, want 413", code, b)
	} else if diff := cmp.Diff(wantEnvelope, errorEnvelope(t, b)); diff != "" {
		t.Errorf("chunked 40 MiB (-want +got):\n%s", diff)
	}
	if got := s.mockRequests(); got != before {
		t.Errorf("the upstream saw %d oversized requests", got-before)
	}

	if diff := cmp.Diff(want, s.logsByCustomer()); diff != "" {
		t.Errorf("spend logs (-want +got):\n%s", diff)
	}
}
