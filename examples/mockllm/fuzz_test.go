package mockllm

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func FuzzRequest(f *testing.F) {
	f.Add("/v1/chat/completions", []byte(`{"model":"m","messages":[{"role":"user","content":"hi there"}],"max_tokens":3}`))
	f.Add("/v1/chat/completions", []byte(`{"model":"m","messages":[{"content":[{"type":"text","text":"a b"}]}],"stream":true,"stream_options":{"include_usage":true}}`))
	f.Add("/v1/completions", []byte(`{"model":"m","prompt":[[1,2],[3]],"max_completion_tokens":-4}`))
	f.Add("/v1/embeddings", []byte(`{"model":"m","input":["a",[1]],"encoding_format":"base64"}`))
	f.Add("/v1/chat/completions", []byte(`{"model":"m","messages":{}}`))
	f.Add("/v1/completions", []byte("\xff"))
	f.Add("/v1/messages", []byte(`{"model":"c","max_tokens":3,"system":[{"type":"text","text":"a b"}],"messages":[{"role":"user","content":"x"}]}`))
	f.Add("/v1/responses", []byte(`{"model":"r","input":[{"role":"user","content":"a b c"}],"max_output_tokens":2}`))
	f.Add("/openai/deployments/d/embeddings", []byte(`{"input":"a b"}`))
	f.Fuzz(func(t *testing.T, path string, body []byte) {
		switch path {
		case "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages", "/v1/responses", "/openai/deployments/d/embeddings":
		default:
			path = "/v1/chat/completions"
		}
		header := map[string]string{HeaderCachedTokens: "2", HeaderCacheCreationTokens: "1", HeaderReasoningTokens: "3"}
		h := http.Header{}
		for k, v := range header {
			h.Set(k, v)
		}
		u := ReportedUsage(path, body, h)
		if u.PromptTokens < u.CachedTokens+u.CacheCreationTokens || u.CompletionTokens < u.ReasoningTokens || u.CachedTokens < 0 {
			t.Fatalf("ReportedUsage = %+v", u)
		}
		prompt, completion := PromptTokens(body), CompletionTokens(body)
		if prompt < 0 || completion < 0 || completion > ReplyWords {
			t.Fatalf("PromptTokens, CompletionTokens = %d, %d", prompt, completion)
		}
		got := serve(New(), "POST", path, string(body), header)
		switch got.Status {
		case http.StatusBadRequest:
			return
		case http.StatusOK:
		default:
			t.Fatalf("status %d: %s", got.Status, got.Body)
		}
		if got.ContentType != "application/json" {
			return // a stream; TestStreaming covers its shape
		}
		var resp struct {
			Usage map[string]any `json:"usage"`
		}
		if err := json.Unmarshal([]byte(got.Body), &resp); err != nil {
			t.Fatalf("response is not JSON: %v", err)
		}
		// The response's usage, in each API's shape, is what ReportedUsage says.
		p, c := float64(u.PromptTokens), float64(u.CompletionTokens)
		var want map[string]any
		switch path {
		case "/v1/embeddings", "/openai/deployments/d/embeddings":
			want = map[string]any{"prompt_tokens": p, "total_tokens": p}
		case "/v1/messages":
			want = map[string]any{"input_tokens": p - float64(u.CachedTokens+u.CacheCreationTokens), "output_tokens": c,
				"cache_read_input_tokens": float64(u.CachedTokens), "cache_creation_input_tokens": float64(u.CacheCreationTokens)}
		case "/v1/responses":
			want = map[string]any{"input_tokens": p, "output_tokens": c, "total_tokens": p + c,
				"input_tokens_details":  map[string]any{"cached_tokens": float64(u.CachedTokens)},
				"output_tokens_details": map[string]any{"reasoning_tokens": 3.0}}
		default:
			want = map[string]any{"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c,
				"prompt_tokens_details":     map[string]any{"cached_tokens": float64(u.CachedTokens)},
				"completion_tokens_details": map[string]any{"reasoning_tokens": 3.0}}
		}
		if diff := cmp.Diff(want, resp.Usage); diff != "" {
			t.Fatalf("usage (-want +got):\n%s", diff)
		}
		if path != "/v1/messages" && u.PromptTokens != prompt {
			t.Fatalf("ReportedUsage prompt %d, PromptTokens %d", u.PromptTokens, prompt)
		}
	})
}
