package mockllm

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const created = 1700000000

func newServer() *Server {
	s := New()
	s.now = func() time.Time { return time.Unix(created, 0) }
	return s
}

type response struct {
	Status      int
	ContentType string
	Body        string
}

// serve sends one request straight to s.ServeHTTP.
func serve(s *Server, method, path, body string, header map[string]string) response {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return response{Status: rec.Code, ContentType: rec.Header().Get("Content-Type"), Body: rec.Body.String()}
}

func jsonOK(body string) response {
	return response{Status: http.StatusOK, ContentType: "application/json", Body: body}
}

func jsonError(status int, typ, msg string) response {
	return response{
		Status:      status,
		ContentType: "application/json",
		Body:        fmt.Sprintf(`{"error":{"message":%q,"type":%q,"param":null,"code":null}}`, msg, typ),
	}
}

func TestTokens(t *testing.T) {
	tests := []struct {
		name           string
		body           string
		wantPrompt     int64
		wantCompletion int64
		wantReply      string
	}{
		{
			name:           "chat strings",
			body:           `{"model":"m","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"  Say hello\tto the\nworld "}]}`,
			wantPrompt:     3 + 3 + 3 + 5,
			wantCompletion: 16,
			wantReply:      replyText,
		},
		{
			name:           "chat content parts and null content",
			body:           `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"one two"},{"type":"image_url","image_url":{"url":"http://x/y z"}}]},{"role":"assistant","content":null}]}`,
			wantPrompt:     3 + 2 + 3,
			wantCompletion: 16,
			wantReply:      replyText,
		},
		{
			name:           "max_tokens cuts the reply",
			body:           `{"model":"m","prompt":"a b c","max_tokens":5}`,
			wantPrompt:     3,
			wantCompletion: 5,
			wantReply:      "This is a deterministic reply",
		},
		{
			name:           "max_completion_tokens wins over max_tokens",
			body:           `{"model":"m","prompt":["a b","c"],"max_tokens":10,"max_completion_tokens":2}`,
			wantPrompt:     3,
			wantCompletion: 2,
			wantReply:      "This is",
		},
		{
			name:           "max_tokens above the reply length",
			body:           `{"model":"m","prompt":[1,2,3],"max_tokens":100}`,
			wantPrompt:     3,
			wantCompletion: 16,
			wantReply:      replyText,
		},
		{
			name:           "max_tokens zero",
			body:           `{"model":"m","prompt":"x","max_tokens":0}`,
			wantPrompt:     1,
			wantCompletion: 0,
			wantReply:      "",
		},
		{
			name:           "embedding input",
			body:           `{"model":"m","input":["a b c","d",[7,8]]}`,
			wantPrompt:     6,
			wantCompletion: 16,
			wantReply:      replyText,
		},
		{name: "malformed", body: `{"model":`, wantPrompt: 0, wantCompletion: 0, wantReply: ""},
		{name: "not an object", body: `[1]`, wantPrompt: 0, wantCompletion: 0, wantReply: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PromptTokens([]byte(tt.body)); got != tt.wantPrompt {
				t.Errorf("PromptTokens = %d, want %d", got, tt.wantPrompt)
			}
			if got := CompletionTokens([]byte(tt.body)); got != tt.wantCompletion {
				t.Errorf("CompletionTokens = %d, want %d", got, tt.wantCompletion)
			}
			if got := ReplyText([]byte(tt.body)); got != tt.wantReply {
				t.Errorf("ReplyText = %q, want %q", got, tt.wantReply)
			}
		})
	}
	if n := len(strings.Fields(replyText)); n != ReplyWords {
		t.Errorf("replyText has %d words, want ReplyWords = %d", n, ReplyWords)
	}
}

func TestResponses(t *testing.T) {
	const chat = `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the world"}]}`
	const chatWant = `{"id":"chatcmpl-mock-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini",` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":"This is a deterministic reply from mockllm, the tollgate mock upstream for offline tests and demos."},"logprobs":null,"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":14,"completion_tokens":16,"total_tokens":30}}`
	const completion = `{"model":"my-finetune","prompt":"Once upon a time","max_tokens":3}`
	const completionWant = `{"id":"cmpl-mock-1","object":"text_completion","created":1700000000,"model":"my-finetune",` +
		`"choices":[{"text":"This is a","index":0,"logprobs":null,"finish_reason":"length"}],` +
		`"usage":{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7}}`
	const embeddings = `{"model":"text-embedding-3-small","input":["hello world","bye"]}`
	const vector = `[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8]`
	const embeddingsWant = `{"object":"list","data":[{"object":"embedding","index":0,"embedding":` + vector + `},{"object":"embedding","index":1,"embedding":` + vector + `}],` +
		`"model":"text-embedding-3-small","usage":{"prompt_tokens":3,"total_tokens":3}}`
	const base64Vector = `"zczMPc3MTD6amZk+zczMPgAAAD+amRk/MzMzP83MTD8="`

	tests := []struct {
		name   string
		method string
		path   string
		body   string
		header map[string]string
		want   response
	}{
		{name: "chat", method: "POST", path: "/v1/chat/completions", body: chat, want: jsonOK(chatWant)},
		{name: "chat without /v1", method: "POST", path: "/chat/completions", body: chat, want: jsonOK(chatWant)},
		{name: "completion", method: "POST", path: "/v1/completions", body: completion, want: jsonOK(completionWant)},
		{name: "completion without /v1", method: "POST", path: "/completions", body: completion, want: jsonOK(completionWant)},
		{name: "embeddings", method: "POST", path: "/v1/embeddings", body: embeddings, want: jsonOK(embeddingsWant)},
		{name: "embeddings without /v1", method: "POST", path: "/embeddings", body: embeddings, want: jsonOK(embeddingsWant)},
		{
			name: "embeddings base64", method: "POST", path: "/v1/embeddings",
			body: `{"model":"e","input":[[1,2,3]],"encoding_format":"base64"}`,
			want: jsonOK(`{"object":"list","data":[{"object":"embedding","index":0,"embedding":` + base64Vector + `}],"model":"e","usage":{"prompt_tokens":3,"total_tokens":3}}`),
		},
		{
			name: "forced status", method: "POST", path: "/v1/chat/completions", body: chat,
			header: map[string]string{"x-mock-status": "429"},
			want:   jsonError(429, "invalid_request_error", "mockllm: forced status 429 (x-mock-status)"),
		},
		{
			name: "forced server error skips parsing", method: "POST", path: "/v1/embeddings", body: `not json`,
			header: map[string]string{"x-mock-status": "503"},
			want:   jsonError(503, "server_error", "mockllm: forced status 503 (x-mock-status)"),
		},
		{
			name: "bad forced status", method: "POST", path: "/v1/chat/completions", body: chat,
			header: map[string]string{"x-mock-status": "200"},
			want:   jsonError(400, "invalid_request_error", `x-mock-status must be a status code from 400 to 599, got "200"`),
		},
		{
			name: "bad delay", method: "POST", path: "/v1/chat/completions", body: chat,
			header: map[string]string{"x-mock-delay-ms": "-1"},
			want:   jsonError(400, "invalid_request_error", `x-mock-delay-ms must be a non-negative integer, got "-1"`),
		},
		{
			name: "bad hold", method: "POST", path: "/v1/chat/completions", body: chat,
			header: map[string]string{"x-mock-hold": "later"},
			want:   jsonError(400, "invalid_request_error", `x-mock-hold must be true or false, got "later"`),
		},
		{
			name: "malformed json", method: "POST", path: "/v1/chat/completions", body: `{"model":"m",`,
			want: jsonError(400, "invalid_request_error", "We could not parse the JSON body of your request: unexpected end of JSON input"),
		},
		{
			name: "missing model", method: "POST", path: "/v1/chat/completions", body: `{"messages":[{"role":"user","content":"hi"}]}`,
			want: jsonError(400, "invalid_request_error", "you must provide a model parameter"),
		},
		{
			name: "chat without messages", method: "POST", path: "/v1/chat/completions", body: `{"model":"m","messages":[]}`,
			want: jsonError(400, "invalid_request_error", "messages must be a non-empty array"),
		},
		{
			name: "completion without prompt", method: "POST", path: "/v1/completions", body: `{"model":"m"}`,
			want: jsonError(400, "invalid_request_error", "you must provide a prompt parameter"),
		},
		{
			name: "embeddings without input", method: "POST", path: "/v1/embeddings", body: `{"model":"m","input":[]}`,
			want: jsonError(400, "invalid_request_error", "input must be a non-empty string or array"),
		},
		{
			name: "embeddings stream", method: "POST", path: "/v1/embeddings", body: `{"model":"m","input":"x","stream":true}`,
			want: jsonError(400, "invalid_request_error", "embeddings do not support stream"),
		},
		{
			name: "embeddings bad format", method: "POST", path: "/v1/embeddings", body: `{"model":"m","input":"x","encoding_format":"int8"}`,
			want: jsonError(400, "invalid_request_error", `encoding_format must be float or base64, got "int8"`),
		},
		{
			name: "wrong method", method: "GET", path: "/v1/chat/completions",
			want: jsonError(405, "invalid_request_error", "method GET not allowed"),
		},
		{
			name: "unknown path", method: "POST", path: "/v1/audio/speech", body: `{}`,
			want: jsonError(404, "invalid_request_error", "unknown path /v1/audio/speech"),
		},
		{
			name: "Azure deployment names the model", method: "POST", path: "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21",
			body: `{"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the world"}]}`,
			want: jsonOK(chatWant),
		},
		{
			name: "Azure: the body's model wins", method: "POST", path: "/openai/deployments/other/chat/completions", body: chat,
			want: jsonOK(chatWant),
		},
		{
			name: "Azure v1 path", method: "POST", path: "/openai/v1/completions", body: completion, want: jsonOK(completionWant),
		},
		{
			name: "Azure deployment without an endpoint", method: "POST", path: "/openai/deployments/gpt-4o-mini", body: chat,
			want: jsonError(404, "invalid_request_error", "unknown path /openai/deployments/gpt-4o-mini"),
		},
		{
			name: "anthropic", method: "POST", path: "/v1/messages",
			body:   `{"model":"claude-x","max_tokens":4,"system":"be terse","messages":[{"role":"user","content":"hi there"}]}`,
			header: map[string]string{HeaderCachedTokens: "2", HeaderCacheCreationTokens: "1"},
			// Prompt 2 + 3 + 2 = 7 tokens: 2 read from the cache, 1 written to it, 4 neither.
			want: jsonOK(`{"id":"msg_mock_1","type":"message","role":"assistant","model":"claude-x",` +
				`"content":[{"type":"text","text":"This is a deterministic"}],"stop_reason":"max_tokens","stop_sequence":null,` +
				`"usage":{"input_tokens":4,"cache_creation_input_tokens":1,"cache_read_input_tokens":2,"output_tokens":4}}`),
		},
		{
			name: "anthropic needs max_tokens", method: "POST", path: "/messages", body: `{"model":"c","messages":[{"role":"user","content":"x"}]}`,
			want: jsonError(400, "invalid_request_error", "max_tokens: field required"),
		},
		{
			name: "responses", method: "POST", path: "/v1/responses",
			body:   `{"model":"gpt-x","instructions":"be terse","input":[{"role":"user","content":[{"type":"input_text","text":"hi there"}]}]}`,
			header: map[string]string{HeaderCachedTokens: "9", HeaderReasoningTokens: "5"},
			want: jsonOK(`{"id":"resp_mock_1","object":"response","created_at":1700000000,"status":"completed","incomplete_details":null,"model":"gpt-x",` +
				`"output":[{"id":"msg_mock_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"` + replyText + `","annotations":[]}]}],` +
				`"usage":{"input_tokens":4,"input_tokens_details":{"cached_tokens":4},"output_tokens":21,"output_tokens_details":{"reasoning_tokens":5},"total_tokens":25}}`),
		},
		{
			name: "responses cut by max_output_tokens, without usage", method: "POST", path: "/responses",
			body: `{"model":"gpt-x","input":"hi","max_output_tokens":2}`, header: map[string]string{HeaderOmitUsage: "true"},
			want: jsonOK(`{"id":"resp_mock_1","object":"response","created_at":1700000000,"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"model":"gpt-x",` +
				`"output":[{"id":"msg_mock_1","type":"message","status":"incomplete","role":"assistant","content":[{"type":"output_text","text":"This is","annotations":[]}]}],"usage":null}`),
		},
		{
			name: "responses need input", method: "POST", path: "/v1/responses", body: `{"model":"m"}`,
			want: jsonError(400, "invalid_request_error", "you must provide an input parameter"),
		},
		{
			name: "chat usage details", method: "POST", path: "/v1/chat/completions", body: `{"model":"m","messages":[{"role":"user","content":"a"}],"max_tokens":1}`,
			header: map[string]string{HeaderCachedTokens: "3", HeaderReasoningTokens: "10"},
			want: jsonOK(`{"id":"chatcmpl-mock-1","object":"chat.completion","created":1700000000,"model":"m",` +
				`"choices":[{"index":0,"message":{"role":"assistant","content":"This"},"logprobs":null,"finish_reason":"length"}],` +
				`"usage":{"prompt_tokens":4,"completion_tokens":11,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":10}}}`),
		},
		{
			name: "usage omitted", method: "POST", path: "/v1/embeddings", body: `{"model":"e","input":"x"}`, header: map[string]string{HeaderOmitUsage: "1"},
			want: jsonOK(`{"object":"list","data":[{"object":"embedding","index":0,"embedding":` + vector + `}],"model":"e"}`),
		},
		{
			name: "bad option", method: "POST", path: "/v1/chat/completions", body: chat, header: map[string]string{HeaderEncoding: "zstd"},
			want: jsonError(400, "invalid_request_error", `x-mock-content-encoding must be gzip, deflate or br, got "zstd"`),
		},
		{
			name: "bad sse style", method: "POST", path: "/v1/chat/completions", body: chat, header: map[string]string{HeaderSSE: "crlf,fancy"},
			want: jsonError(400, "invalid_request_error", `x-mock-sse: unknown style "fancy"`),
		},
		{
			name: "bad chunk size", method: "POST", path: "/v1/chat/completions", body: chat, header: map[string]string{HeaderChunkBytes: "0"},
			want: jsonError(400, "invalid_request_error", `x-mock-chunk-bytes must be a positive integer, got "0"`),
		},
		{
			name: "bad count", method: "POST", path: "/v1/chat/completions", body: chat, header: map[string]string{HeaderCachedTokens: "-1"},
			want: jsonError(400, "invalid_request_error", `x-mock-cached-tokens must be a non-negative integer, got "-1"`),
		},
		{
			name: "bad flag", method: "POST", path: "/v1/chat/completions", body: chat, header: map[string]string{HeaderChunked: "yes"},
			want: jsonError(400, "invalid_request_error", `x-mock-chunked must be true or false, got "yes"`),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer()
			got := serve(s, tt.method, tt.path, tt.body, tt.header)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
			// Every request outside /__mock/ counts, whatever its outcome.
			path, _, _ := strings.Cut(tt.path, "?")
			if diff := cmp.Diff(Stats{Requests: 1, ByPath: map[string]int64{path: 1}, MaxInFlight: 1}, s.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStreaming(t *testing.T) {
	chunk := func(object, choices string) string {
		return fmt.Sprintf(`data: {"id":"%s","object":"%s","created":1700000000,"model":"m",%s}`+"\n\n",
			map[string]string{"chat.completion.chunk": "chatcmpl-mock-1", "text_completion": "cmpl-mock-1"}[object], object, choices)
	}
	chatDelta := func(delta, finish string) string {
		return chunk("chat.completion.chunk", `"choices":[{"index":0,"delta":`+delta+`,"logprobs":null,"finish_reason":`+finish+`}]`)
	}
	text := func(text, finish string) string {
		return chunk("text_completion", `"choices":[{"text":"`+text+`","index":0,"logprobs":null,"finish_reason":`+finish+`}]`)
	}
	const done = "data: [DONE]\n\n"

	tests := []struct {
		name string
		path string
		body string
		want string
	}{
		{
			name: "chat with usage",
			path: "/v1/chat/completions",
			body: `{"model":"m","messages":[{"role":"user","content":"hi there"}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":6}`,
			want: chatDelta(`{"role":"assistant","content":""}`, "null") +
				chatDelta(`{"content":"This is a deterministic"}`, "null") +
				chatDelta(`{"content":" reply from"}`, "null") +
				chatDelta(`{}`, `"length"`) +
				chunk("chat.completion.chunk", `"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11}`) +
				done,
		},
		{
			name: "chat without usage",
			path: "/chat/completions",
			body: `{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}`,
			want: chatDelta(`{"role":"assistant","content":""}`, "null") +
				chatDelta(`{"content":"This is a deterministic"}`, "null") +
				chatDelta(`{"content":" reply from mockllm, the"}`, "null") +
				chatDelta(`{"content":" tollgate mock upstream for"}`, "null") +
				chatDelta(`{"content":" offline tests and demos."}`, "null") +
				chatDelta(`{}`, `"stop"`) +
				done,
		},
		{
			name: "completion with usage",
			path: "/v1/completions",
			body: `{"model":"m","prompt":"a b","stream":true,"stream_options":{"include_usage":true},"max_tokens":5}`,
			want: text("This is a deterministic", "null") +
				text(" reply", "null") +
				text("", `"length"`) +
				chunk("text_completion", `"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":5,"total_tokens":7}`) +
				done,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := serve(newServer(), "POST", tt.path, tt.body, nil)
			want := response{Status: 200, ContentType: "text/event-stream; charset=utf-8", Body: tt.want}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIntrospection(t *testing.T) {
	const serverError = `{"error":{"message":"mockllm: forced status 500 (x-mock-status)","type":"server_error","param":null,"code":null}}`
	s := newServer()
	if got, want := serve(s, "GET", "/__mock/last", "", nil), jsonError(404, "invalid_request_error", "no request received yet"); !cmp.Equal(want, got) {
		t.Errorf("last before any request: %s", cmp.Diff(want, got))
	}
	serve(s, "POST", "/v1/embeddings", `{"model":"m","input":"x"}`, nil)
	serve(s, "POST", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		map[string]string{"Authorization": "Bearer sk-upstream", "X-Litellm-Customer-Id": "alice"})
	serve(s, "POST", "/v1/chat/completions", `{}`, map[string]string{"x-mock-status": "500"})

	steps := []struct {
		name, method, path string
		want               response
	}{
		{
			name: "stats", method: "GET", path: "/__mock/stats",
			want: jsonOK(`{"requests":3,"by_path":{"/v1/chat/completions":2,"/v1/embeddings":1},"in_flight":0,"max_in_flight":1,"held":0}`),
		},
		{
			name: "last", method: "GET", path: "/__mock/last",
			want: jsonOK(`{"method":"POST","path":"/v1/chat/completions","headers":{"host":"example.com","x-mock-status":"500"},"body":"{}",` +
				`"response_body":"` + base64.StdEncoding.EncodeToString([]byte(serverError)) + `"}`),
		},
		{name: "stats rejects POST", method: "POST", path: "/__mock/stats", want: jsonError(405, "invalid_request_error", "method not allowed")},
		{name: "reset rejects GET", method: "GET", path: "/__mock/reset", want: jsonError(405, "invalid_request_error", "method not allowed")},
		{name: "release rejects GET", method: "GET", path: "/__mock/release", want: jsonError(405, "invalid_request_error", "method not allowed")},
		{name: "release with none held", method: "POST", path: "/__mock/release", want: jsonOK(`{"released":0}`)},
		{name: "unknown", method: "GET", path: "/__mock/nope", want: jsonError(404, "invalid_request_error", "unknown path /__mock/nope")},
		{name: "reset", method: "POST", path: "/__mock/reset", want: response{Status: 204}},
		{name: "stats after reset", method: "GET", path: "/__mock/stats", want: jsonOK(`{"requests":0,"by_path":{},"in_flight":0,"max_in_flight":0,"held":0}`)},
		{name: "last after reset", method: "GET", path: "/__mock/last", want: jsonError(404, "invalid_request_error", "no request received yet")},
	}
	for _, st := range steps {
		// Steps share s and run in order; introspection requests are not counted.
		if diff := cmp.Diff(st.want, serve(s, st.method, st.path, "", nil)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", st.name, diff)
		}
	}
}

func TestLastIsACopy(t *testing.T) {
	s := newServer()
	serve(s, "POST", "/v1/chat/completions", `{}`, map[string]string{"Authorization": "Bearer k"})
	last, ok := s.Last()
	if !ok {
		t.Fatal("Last() found no request")
	}
	last.Header["authorization"] = "changed"
	last.ResponseBody[0] = 'X'
	again, _ := s.Last()
	want := Request{Method: "POST", Path: "/v1/chat/completions", Header: map[string]string{"authorization": "Bearer k", "host": "example.com"}, Body: "{}",
		ResponseBody: []byte(`{"error":{"message":"you must provide a model parameter","type":"invalid_request_error","param":null,"code":null}}`)}
	if diff := cmp.Diff(want, again); diff != "" {
		t.Errorf("Last() (-want +got):\n%s", diff)
	}
}

func TestDelay(t *testing.T) {
	s := newServer()
	start := time.Now()
	got := serve(s, "POST", "/v1/chat/completions", `{}`, map[string]string{"x-mock-delay-ms": "50", "x-mock-status": "502"})
	if elapsed := time.Since(start); elapsed < 50*time.Millisecond {
		t.Errorf("answered after %v, want at least 50ms", elapsed)
	}
	if got.Status != http.StatusBadGateway {
		t.Errorf("status = %d, want 502", got.Status)
	}
}

func TestConcurrentRequests(t *testing.T) {
	s := newServer()
	srv := httptest.NewServer(s)
	defer srv.Close()
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			resp, err := http.Post(srv.URL+"/v1/completions", "application/json", strings.NewReader(`{"model":"m","prompt":"p","stream":true}`))
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			_ = s.Requests()
			_, _ = s.Last()
		})
	}
	wg.Wait()
	if got := s.Requests(); got != n {
		t.Errorf("Requests() = %d, want %d", got, n)
	}
}

// TestInFlight: concurrent requests are counted while they are served, and
// the peak stays after they end, until Reset.
func TestInFlight(t *testing.T) {
	s := newServer()
	var wg sync.WaitGroup
	release := make(chan struct{})
	for range 3 {
		wg.Go(func() {
			ctx, cancel := contextUntil(release)
			defer cancel()
			req := httptest.NewRequestWithContext(ctx, "POST", "/v1/chat/completions", strings.NewReader(`{"model":"m","messages":[]}`))
			req.Header.Set("x-mock-delay-ms", "60000") // held until the client goes away
			s.ServeHTTP(httptest.NewRecorder(), req)
		})
	}
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for s.Stats().InFlight != 3 {
		select {
		case <-deadline:
			t.Fatalf("in flight = %d, want 3", s.Stats().InFlight)
		case <-tick.C:
		}
	}
	close(release)
	wg.Wait()
	if got := s.Stats(); got.InFlight != 0 || got.MaxInFlight != 3 {
		t.Errorf("after: in flight %d, peak %d; want 0 and 3", got.InFlight, got.MaxInFlight)
	}
	s.Reset()
	if got := s.Stats().MaxInFlight; got != 0 {
		t.Errorf("peak after Reset = %d, want 0", got)
	}
}

// TestHold: held requests are answered only after Release, which frees just
// the requests held at that moment; a held request whose client goes away is
// no longer counted.
func TestHold(t *testing.T) {
	s := newServer()
	const chat = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	waitHeld := func(want int64) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for s.Stats().Held != want {
			select {
			case <-deadline:
				t.Fatalf("held = %d, want %d", s.Stats().Held, want)
			case <-tick.C:
			}
		}
	}
	hold := map[string]string{"x-mock-hold": "true"}
	answered := make(chan response, 3)
	for range 3 {
		go func() { answered <- serve(s, "POST", "/v1/chat/completions", chat, hold) }()
	}
	waitHeld(3)
	if got := serve(s, "POST", "/v1/chat/completions", chat, map[string]string{"x-mock-hold": "false"}); got.Status != http.StatusOK {
		t.Errorf("x-mock-hold false: status %d, want 200 without waiting", got.Status)
	}
	if len(answered) != 0 {
		t.Fatalf("%d held requests answered before Release", len(answered))
	}

	// A client that hangs up while held.
	ctx, hangUp := context.WithCancel(context.Background())
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		req := httptest.NewRequestWithContext(ctx, "POST", "/v1/chat/completions", strings.NewReader(chat))
		req.Header.Set("x-mock-hold", "true")
		s.ServeHTTP(httptest.NewRecorder(), req)
	}()
	waitHeld(4)
	hangUp()
	<-gone
	waitHeld(3)

	if got, want := serve(s, "POST", "/__mock/release", "", nil), jsonOK(`{"released":3}`); !cmp.Equal(want, got) {
		t.Errorf("release (-want +got):\n%s", cmp.Diff(want, got))
	}
	for range 3 {
		if got := <-answered; got.Status != http.StatusOK {
			t.Errorf("released request: status %d, want 200: %s", got.Status, got.Body)
		}
	}
	if got := s.Stats(); got.Held != 0 || got.InFlight != 0 {
		t.Errorf("after release: held %d, in flight %d; want 0 and 0", got.Held, got.InFlight)
	}

	// A request held after Release waits for the next one.
	go func() { answered <- serve(s, "POST", "/v1/chat/completions", chat, hold) }()
	waitHeld(1)
	if n := s.Release(); n != 1 {
		t.Errorf("second Release() = %d, want 1", n)
	}
	if got := <-answered; got.Status != http.StatusOK {
		t.Errorf("request held after the first release: status %d, want 200", got.Status)
	}
}

// contextUntil is a context that ends when done is closed.
func contextUntil(done <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
