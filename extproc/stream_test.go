package extproc

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/store"
)

// sse writes events as an event stream with the given line end; a line
// starting "data:" in an event is written as is, anything else as a data line.
func sse(eol string, events ...string) []byte {
	var b strings.Builder
	for _, ev := range events {
		for _, line := range strings.Split(ev, "\n") {
			if !strings.HasPrefix(line, "data:") && !strings.HasPrefix(line, "event:") && !strings.HasPrefix(line, ":") {
				line = "data: " + line
			}
			b.WriteString(line + eol)
		}
		b.WriteString(eol)
	}
	return []byte(b.String())
}

// chunks cuts b into pieces of n bytes.
func chunks(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}

func chatChunk(content string) string {
	return `{"id":"c1","object":"chat.completion.chunk","model":"gpt-test-2025-01-01","choices":[{"index":0,"delta":{"content":"` + content + `"}}]}`
}

const usageChunk = `{"id":"c1","object":"chat.completion.chunk","model":"gpt-test-2025-01-01","choices":[],` +
	`"usage":{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500,` +
	`"prompt_tokens_details":{"cached_tokens":400},"completion_tokens_details":{"reasoning_tokens":100}}}`

// Anthropic's stream: the prompt's usage first, the cumulative output count last.
var anthropicStream = []string{
	"event: message_start\n" + `{"type":"message_start","message":{"id":"m1","type":"message","role":"assistant","model":"claude-test-20250101",` +
		`"content":[],"usage":{"input_tokens":100,"cache_creation_input_tokens":20,"cache_read_input_tokens":300,"output_tokens":1}}}`,
	"event: content_block_start\n" + `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
	"event: ping\n" + `{"type":"ping"}`,
	"event: content_block_delta\n" + `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hello"}}`,
	"event: content_block_delta\n" + `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" world"}}`,
	"event: content_block_stop\n" + `{"type":"content_block_stop","index":0}`,
	"event: message_delta\n" + `{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":50}}`,
	"event: message_stop\n" + `{"type":"message_stop"}`,
}

var responsesStream = []string{
	"event: response.created\n" + `{"type":"response.created","sequence_number":0,"response":{"id":"r1","model":"gpt-test-2025-01-01","status":"in_progress","usage":null}}`,
	"event: response.output_text.delta\n" + `{"type":"response.output_text.delta","sequence_number":1,"delta":"hello"}`,
	"event: response.completed\n" + `{"type":"response.completed","sequence_number":2,"response":{"id":"r1","model":"gpt-test-2025-01-01",` +
		`"status":"completed","usage":{"input_tokens":1000,"input_tokens_details":{"cached_tokens":400},"output_tokens":500,` +
		`"output_tokens_details":{"reasoning_tokens":100},"total_tokens":1500}}}`,
}

// received is what the client gets for the chunks, given the replies to them.
func received(t *testing.T, chunks [][]byte, replies []*extprocv3.ProcessingResponse) []byte {
	t.Helper()
	if len(replies) != len(chunks) {
		t.Fatalf("%d replies to %d chunks", len(replies), len(chunks))
	}
	var out []byte
	for i, r := range replies {
		m := r.GetResponseBody().GetResponse().GetBodyMutation()
		switch {
		case m == nil:
			out = append(out, chunks[i]...)
		case m.GetClearBody():
		default:
			out = append(out, m.GetBody()...)
		}
	}
	return out
}

func gzippedBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	return gzipped(t, string(b))
}

func TestStreamedResponses(t *testing.T) {
	const askUsage = `{"model":"gpt-test","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`
	const noUsage = `{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	withUsage := sse("\n", chatChunk("hello"), chatChunk(" world"), usageChunk, "[DONE]")
	withoutUsage := sse("\n", chatChunk("hello"), chatChunk(" world"), "[DONE]")
	chatLog := store.SpendLog{RequestID: "tg-1", CustomerID: "alice", Model: "gpt-test", Path: "/v1/chat/completions",
		PromptTokens: 1000, CompletionTokens: 500, TotalTokens: 1500, CacheReadTokens: 400, ReasoningTokens: 100,
		Cost: 2_400_000, StartTime: t0, EndTime: t0.Add(time.Second)}
	// "hello world" is 2 tokens; chatBody's prompt 8 (chatBodyPromptTokens).
	estimated := store.SpendLog{RequestID: "tg-1", CustomerID: "alice", Model: "gpt-test", Path: "/v1/chat/completions",
		PromptTokens: 8, CompletionTokens: 2, TotalTokens: 10, Cost: 8*1500 + 2*2000, Estimated: true,
		StartTime: t0, EndTime: t0.Add(time.Second)}
	anthropicLog := store.SpendLog{RequestID: "tg-1", CustomerID: "alice", Model: "claude-test", Path: "/v1/messages",
		PromptTokens: 420, CompletionTokens: 50, TotalTokens: 470, CacheReadTokens: 300, CacheCreationTokens: 20,
		Cost: 100*3000 + 300*300 + 20*3750 + 50*15000, StartTime: t0, EndTime: t0.Add(time.Second)}

	tests := []struct {
		name     string
		path     string
		body     string
		encoding string
		stream   []byte // as the upstream sends it, before any encoding
		size     int    // chunk size
		// wantRequest is whether the request body is rewritten.
		wantRequest bool
		// wantDecoded: the client gets the stream decoded, without content-encoding.
		wantDecoded bool
		want        []byte // what the client receives
		wantLog     store.SpendLog
	}{
		{name: "client asked for usage: stream untouched", body: askUsage, stream: withUsage, size: 7,
			want: withUsage, wantLog: chatLog},
		{name: "CRLF, no space after data:, split everywhere", body: askUsage, size: 1,
			stream: []byte(strings.ReplaceAll(string(sse("\r\n", chatChunk("hello"), usageChunk, "[DONE]")), "data: ", "data:")),
			want:   []byte(strings.ReplaceAll(string(sse("\r\n", chatChunk("hello"), usageChunk, "[DONE]")), "data: ", "data:")), wantLog: chatLog},
		{name: "CR line ends", body: askUsage, size: 5, stream: sse("\r", chatChunk("hi"), usageChunk), want: sse("\r", chatChunk("hi"), usageChunk),
			wantLog: chatLog},
		{name: "usage forced: the usage-only chunk is removed", body: noUsage, stream: withUsage, size: 11,
			wantRequest: true, want: withoutUsage, wantLog: chatLog},
		{name: "usage forced, CRLF split between CR and LF", body: noUsage, size: 3,
			stream:      sse("\r\n", chatChunk("a"), usageChunk, "[DONE]"),
			wantRequest: true, want: sse("\r\n", chatChunk("a"), "[DONE]"), wantLog: chatLog},
		{name: "usage forced, ignored by the upstream: counted locally", body: noUsage, stream: withoutUsage, size: 16,
			wantRequest: true, want: withoutUsage, wantLog: estimated},
		{name: "client asked, upstream sent none: counted locally", body: askUsage, stream: withoutUsage, size: 1000,
			want: withoutUsage, wantLog: estimated},
		{name: "gzip, client asked for usage: compressed bytes pass untouched", body: askUsage, encoding: "gzip",
			stream: withUsage, size: 9, wantLog: chatLog},
		{name: "gzip, usage forced: decoded for the client, usage chunk removed", body: noUsage, encoding: "gzip",
			stream: withUsage, size: 9, wantRequest: true, wantDecoded: true, want: withoutUsage, wantLog: chatLog},
		{name: "brotli, usage forced", body: noUsage, encoding: "br",
			stream: withUsage, size: 4, wantRequest: true, wantDecoded: true, want: withoutUsage, wantLog: chatLog},
		{name: "deflate, client asked for usage", body: askUsage, encoding: "deflate", stream: withUsage, size: 20, wantLog: chatLog},
		{name: "undecodable encoding: untouched, counted locally", body: noUsage, encoding: "zstd", stream: []byte("\x28\xb5\x2f\xfd"),
			size: 2, wantRequest: true, wantLog: func() store.SpendLog {
				l := estimated
				l.CompletionTokens, l.TotalTokens, l.Cost = 0, 8, 8*1500
				return l
			}()},
		{name: "anthropic stream", path: "/v1/messages", body: `{"model":"claude-test","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			stream: sse("\n", anthropicStream...), size: 13, want: sse("\n", anthropicStream...), wantLog: anthropicLog},
		{name: "anthropic stream ended before message_delta: prompt as reported, output counted", path: "/v1/messages",
			body:   `{"model":"claude-test","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			stream: sse("\n", anthropicStream[:5]...), size: 50, want: sse("\n", anthropicStream[:5]...),
			wantLog: func() store.SpendLog {
				l := anthropicLog
				l.CompletionTokens, l.TotalTokens, l.Estimated = 2, 422, true
				l.Cost = 100*3000 + 300*300 + 20*3750 + 2*15000
				return l
			}()},
		{name: "responses API stream", path: "/v1/responses", body: `{"model":"gpt-test","stream":true,"input":"hi"}`,
			stream: sse("\n", responsesStream...), size: 64, want: sse("\n", responsesStream...),
			wantLog: func() store.SpendLog { l := chatLog; l.Path = "/v1/responses"; return l }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = "/v1/chat/completions"
			}
			wire := tt.stream
			switch tt.encoding {
			case "gzip":
				wire = gzippedBytes(t, tt.stream)
			case "br":
				wire = brotlied(t, string(tt.stream))
			case "deflate":
				wire = zlibbed(t, string(tt.stream))
			}
			want := tt.want
			if want == nil {
				want = wire
			}
			pieces := chunks(wire, tt.size)
			respHdr := []string{":status", "200", "content-type", "text/event-stream; charset=utf-8", "content-length", "77"}
			if tt.encoding != "" {
				respHdr = append(respHdr, "content-encoding", tt.encoding)
			}
			msgs := []*extprocv3.ProcessingRequest{
				reqHeaders("POST", path, "authorization", "Bearer sk-master", "x-litellm-customer-id", "alice"),
				reqBody(tt.body),
				respHeaders(false, respHdr...),
			}
			for i, c := range pieces {
				msgs = append(msgs, respBody(c, i == len(pieces)-1))
			}
			st := newFakeStore()
			got := exchange(t, startServer(t, testConfig(t), st), msgs...)

			if mutated := got[1].GetRequestBody().GetResponse() != nil; mutated != tt.wantRequest {
				t.Errorf("request body rewritten: %v, want %v", mutated, tt.wantRequest)
			}
			wantHeaders := &extprocv3.ProcessingResponse{
				Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{
					Response: &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{RemoveHeaders: []string{"content-length"}}},
				}},
				ModeOverride: &filterv3.ProcessingMode{ResponseBodyMode: filterv3.ProcessingMode_STREAMED},
			}
			if tt.wantDecoded {
				wantHeaders.GetResponseHeaders().Response.HeaderMutation.RemoveHeaders = []string{"content-length", "content-encoding"}
			}
			if diff := diffResponses([]*extprocv3.ProcessingResponse{wantHeaders}, got[2:3]); diff != "" {
				t.Errorf("response headers reply (-want +got):\n%s", diff)
			}
			for i, r := range got[3:] {
				if r.GetResponseBody().GetResponse().GetHeaderMutation() != nil {
					t.Errorf("reply %d to a streamed body sets headers, which Envoy ignores", i)
				}
				if !tt.wantRequest && r.GetResponseBody().GetResponse() != nil {
					t.Errorf("reply %d changes a stream the client asked usage for", i)
				}
			}
			if got := received(t, pieces, got[3:]); !bytes.Equal(got, want) {
				t.Errorf("client received\n%q\nwant\n%q", got, want)
			}
			if diff := cmp.Diff([]store.SpendLog{tt.wantLog}, st.recorded()); diff != "" {
				t.Errorf("spend logs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIncludeUsage(t *testing.T) {
	forced := func(body string, withLength bool) *extprocv3.ProcessingResponse {
		common := &extprocv3.CommonResponse{
			BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: []byte(body)}},
		}
		if withLength {
			common.HeaderMutation = &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
				wantSet("content-length", strconv.Itoa(len(body)))}}
		}
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{
			RequestBody: &extprocv3.BodyResponse{Response: common}}}
	}
	chunked := wantRequestHeaders(wantStripped())
	chunked.ModeOverride = &filterv3.ProcessingMode{
		RequestBodyMode:  filterv3.ProcessingMode_BUFFERED_PARTIAL,
		ResponseBodyMode: filterv3.ProcessingMode_BUFFERED,
	}
	tests := []struct {
		name    string
		path    string
		headers []string
		body    string
		want    []*extprocv3.ProcessingResponse
	}{
		{name: "chat stream: set, content-length fixed", body: `{"model":"m","stream":true}`,
			want: []*extprocv3.ProcessingResponse{wantRequestHeaders(wantStripped()),
				forced(`{"stream_options":{"include_usage":true},"model":"m","stream":true}`, true)}},
		{name: "completions stream", path: "/v1/completions", body: `{"stream":true,"stream_options":{"include_usage":false}}`,
			want: []*extprocv3.ProcessingResponse{wantRequestHeaders(wantStripped()),
				forced(`{"stream":true,"stream_options":{"include_usage":true}}`, true)}},
		{name: "Azure deployment stream", path: "/openai/deployments/d/chat/completions", body: `{"stream":true}`,
			want: []*extprocv3.ProcessingResponse{wantRequestHeaders(wantStripped()),
				forced(`{"stream_options":{"include_usage":true},"stream":true}`, true)}},
		{name: "chunked upload: no content-length to fix", headers: []string{"content-length", ""}, body: `{"stream":true}`,
			want: []*extprocv3.ProcessingResponse{chunked, forced(`{"stream_options":{"include_usage":true},"stream":true}`, false)}},
		{name: "already asked", body: `{"stream":true,"stream_options":{"include_usage":true}}`,
			want: []*extprocv3.ProcessingResponse{wantRequestHeaders(wantStripped()), wantRequestBody()}},
		{name: "not streaming", body: `{"stream":false}`,
			want: []*extprocv3.ProcessingResponse{wantRequestHeaders(wantStripped()), wantRequestBody()}},
		{name: "stream as a string is not streaming", body: `{"stream":"true"}`,
			want: []*extprocv3.ProcessingResponse{wantRequestHeaders(wantStripped()), wantRequestBody()}},
		{name: "anthropic streams always carry usage", path: "/v1/messages", body: `{"stream":true}`,
			want: []*extprocv3.ProcessingResponse{wantRequestHeaders(wantStripped()), wantRequestBody()}},
		{name: "responses streams always carry usage", path: "/v1/responses", body: `{"stream":true}`,
			want: []*extprocv3.ProcessingResponse{wantRequestHeaders(wantStripped()), wantRequestBody()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = "/v1/chat/completions"
			}
			got := exchange(t, startServer(t, testConfig(t), newFakeStore()),
				reqHeaders("POST", path, append([]string{"authorization", "Bearer sk-master"}, tt.headers...)...), reqBody(tt.body))
			if diff := diffResponses(tt.want, got); diff != "" {
				t.Errorf("responses (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRequestBodyLimit(t *testing.T) {
	const limit = 100
	tooLarge := wantImmediate(413,
		`{"error":{"message":"Request body is too large: the limit is 100 bytes.","type":"invalid_request_error","param":null,"code":"413"}}`,
		"tollgate_body_too_large")
	chunked := wantRequestHeaders(wantStripped())
	chunked.ModeOverride = &filterv3.ProcessingMode{
		RequestBodyMode:  filterv3.ProcessingMode_BUFFERED_PARTIAL,
		ResponseBodyMode: filterv3.ProcessingMode_BUFFERED,
	}
	partialBody := func(body string, eos bool) *extprocv3.ProcessingRequest {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
			RequestBody: &extprocv3.HttpBody{Body: []byte(body), EndOfStream: eos}}}
	}
	small := `{"model":"gpt-test"}`
	tests := []struct {
		name string
		msgs []*extprocv3.ProcessingRequest
		want []*extprocv3.ProcessingResponse
	}{
		{"announced length over the limit: 413 before the body",
			[]*extprocv3.ProcessingRequest{llmHeaders("content-length", "101")}, []*extprocv3.ProcessingResponse{tooLarge}},
		{"announced length at the limit",
			[]*extprocv3.ProcessingRequest{llmHeaders("content-length", "100"), reqBody(small)},
			[]*extprocv3.ProcessingResponse{wantRequestHeaders(wantStripped()), wantRequestBody()}},
		{"body longer than announced",
			[]*extprocv3.ProcessingRequest{llmHeaders("content-length", "20"), reqBody(small + strings.Repeat(" ", 100))},
			[]*extprocv3.ProcessingResponse{wantRequestHeaders(wantStripped()), tooLarge}},
		{"chunked upload that fits",
			[]*extprocv3.ProcessingRequest{llmHeaders("content-length", ""), partialBody(small, true)},
			[]*extprocv3.ProcessingResponse{chunked, wantRequestBody()}},
		{"chunked upload Envoy could not buffer",
			[]*extprocv3.ProcessingRequest{llmHeaders("content-length", ""), partialBody(`{"model":`, false)},
			[]*extprocv3.ProcessingResponse{chunked, tooLarge}},
		{"chunked upload over the limit",
			[]*extprocv3.ProcessingRequest{llmHeaders("content-length", ""), partialBody(small+strings.Repeat(" ", 100), true)},
			[]*extprocv3.ProcessingResponse{chunked, tooLarge}},
		{"a request without a body is not partial",
			[]*extprocv3.ProcessingRequest{{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
				Headers: headerList(":method", "POST", ":path", "/v1/chat/completions", "authorization", "Bearer sk-master"), EndOfStream: true}}}},
			[]*extprocv3.ProcessingResponse{wantRequestHeaders(wantStripped())}},
		{"paths not metered are not limited",
			[]*extprocv3.ProcessingRequest{reqHeaders("POST", "/v1/files", "authorization", "Bearer sk-master", "content-length", "999999")},
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.MaxRequestBodyBytes = limit
			got := exchange(t, startServer(t, cfg, newFakeStore()), tt.msgs...)
			if tt.want == nil {
				if got[0].GetImmediateResponse() != nil {
					t.Errorf("rejected: %v", got[0])
				}
				return
			}
			if diff := diffResponses(tt.want, got); diff != "" {
				t.Errorf("responses (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("default limit", func(t *testing.T) {
		if got := NewServer(Config{}, newFakeStore()).cfg.MaxRequestBodyBytes; got != 32<<20 {
			t.Errorf("default MaxRequestBodyBytes = %d, want 32 MiB", got)
		}
	})
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// TestAbandonedStream: when Envoy cancels the ext_proc stream mid-response (the
// client hung up), the prompt and the text streamed so far are charged.
func TestAbandonedStream(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		body    string
		events  []string
		wantLog store.SpendLog
	}{
		{name: "chat: prompt and streamed text counted locally", body: `{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			events: []string{chatChunk("hello"), chatChunk(" world")},
			wantLog: store.SpendLog{RequestID: "tg-1", CustomerID: "alice", Model: "gpt-test", Path: "/v1/chat/completions",
				PromptTokens: 8, CompletionTokens: 2, TotalTokens: 10, Cost: 8*1500 + 2*2000, Estimated: true, StartTime: t0, EndTime: t0.Add(time.Second)}},
		{name: "usage already in: charged as reported", body: `{"model":"gpt-test","stream":true,"messages":[]}`,
			events: []string{chatChunk("hello"), usageChunk},
			wantLog: store.SpendLog{RequestID: "tg-1", CustomerID: "alice", Model: "gpt-test", Path: "/v1/chat/completions",
				PromptTokens: 1000, CompletionTokens: 500, TotalTokens: 1500, CacheReadTokens: 400, ReasoningTokens: 100,
				Cost: 2_400_000, StartTime: t0, EndTime: t0.Add(time.Second)}},
		{name: "anthropic: the reported prompt, the streamed text counted", path: "/v1/messages",
			body: `{"model":"claude-test","stream":true,"messages":[]}`, events: anthropicStream[:5],
			wantLog: store.SpendLog{RequestID: "tg-1", CustomerID: "alice", Model: "claude-test", Path: "/v1/messages",
				PromptTokens: 420, CompletionTokens: 2, TotalTokens: 422, CacheReadTokens: 300, CacheCreationTokens: 20,
				Cost: 100*3000 + 300*300 + 20*3750 + 2*15000, Estimated: true, StartTime: t0, EndTime: t0.Add(time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = "/v1/chat/completions"
			}
			st := newFakeStore()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			stream, err := startServer(t, testConfig(t), st).Process(ctx)
			if err != nil {
				t.Fatal(err)
			}
			msgs := []*extprocv3.ProcessingRequest{
				reqHeaders("POST", path, "authorization", "Bearer sk-master", "x-litellm-customer-id", "alice"),
				reqBody(tt.body),
				respHeaders(false, ":status", "200", "content-type", "text/event-stream", "content-encoding", "gzip"),
			}
			// A compressed stream too, whose decoder must be stopped.
			for _, c := range chunks(gzippedBytes(t, sse("\n", tt.events...)), 10) {
				msgs = append(msgs, respBody(c, false))
			}
			for _, m := range msgs {
				if err := stream.Send(m); err != nil {
					t.Fatal(err)
				}
				if _, err := stream.Recv(); err != nil {
					t.Fatal(err)
				}
			}
			if n := len(st.recorded()); n != 0 {
				t.Fatalf("%d spend logs before the stream ended", n)
			}
			cancel() // what Envoy does when the client goes away
			waitFor(t, "the spend log", func() bool { return len(st.recorded()) == 1 })
			if diff := cmp.Diff([]store.SpendLog{tt.wantLog}, st.recorded()); diff != "" {
				t.Errorf("spend logs (-want +got):\n%s", diff)
			}
		})
	}
}
