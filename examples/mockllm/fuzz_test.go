package mockllm

import (
	"encoding/json"
	"net/http"
	"testing"
)

func FuzzRequest(f *testing.F) {
	f.Add("/v1/chat/completions", []byte(`{"model":"m","messages":[{"role":"user","content":"hi there"}],"max_tokens":3}`))
	f.Add("/v1/chat/completions", []byte(`{"model":"m","messages":[{"content":[{"type":"text","text":"a b"}]}],"stream":true,"stream_options":{"include_usage":true}}`))
	f.Add("/v1/completions", []byte(`{"model":"m","prompt":[[1,2],[3]],"max_completion_tokens":-4}`))
	f.Add("/v1/embeddings", []byte(`{"model":"m","input":["a",[1]],"encoding_format":"base64"}`))
	f.Add("/v1/chat/completions", []byte(`{"model":"m","messages":{}}`))
	f.Add("/v1/completions", []byte("\xff"))
	f.Fuzz(func(t *testing.T, path string, body []byte) {
		switch path {
		case "/v1/chat/completions", "/v1/completions", "/v1/embeddings":
		default:
			path = "/v1/chat/completions"
		}
		prompt, completion := PromptTokens(body), CompletionTokens(body)
		if prompt < 0 || completion < 0 || completion > ReplyWords {
			t.Fatalf("PromptTokens, CompletionTokens = %d, %d", prompt, completion)
		}
		got := serve(New(), "POST", path, string(body), nil)
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
			Usage map[string]int64 `json:"usage"`
		}
		if err := json.Unmarshal([]byte(got.Body), &resp); err != nil {
			t.Fatalf("response is not JSON: %v", err)
		}
		want := map[string]int64{"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
		if path == "/v1/embeddings" {
			want = map[string]int64{"prompt_tokens": prompt, "total_tokens": prompt}
		}
		for k, v := range want {
			if resp.Usage[k] != v || len(resp.Usage) != len(want) {
				t.Fatalf("usage = %v, want %v", resp.Usage, want)
			}
		}
	})
}
