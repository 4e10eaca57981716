package extproc

import (
	"testing"

	"github.com/tiktoken-go/tokenizer"
)

func TestEstimatePrompt(t *testing.T) {
	const tools = `[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]`
	cl, err := tokenizer.Get(tokenizer.Cl100kBase)
	if err != nil {
		t.Fatal(err)
	}
	toolTokens, err := cl.Count(tools)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		api   api
		model string
		body  string
		want  int64
	}{
		// OpenAI's cookbook example: 3 per message, role and content, 3 to prime the reply.
		{"chat", apiChat, "gpt-3.5-turbo",
			`{"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hello!"}]}`, 19},
		{"chat with o200k", apiChat, "openai/gpt-4o",
			`{"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hello!"}]}`, 19},
		{"content parts; images and types not counted", apiChat, "gpt-4o",
			`{"messages":[{"role":"user","content":[{"type":"text","text":"Hello!"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}`, 3 + 1 + 2 + 3},
		{"tools count as their JSON", apiChat, "claude-x", `{"messages":[],"tools":` + tools + `}`, 3 + int64(toolTokens)},
		{"anthropic system and messages", apiMessages, "claude-sonnet-4-5",
			`{"system":"You are a helpful assistant.","messages":[{"role":"user","content":"Hello!"}]}`, 6 + 6 + 3},
		{"anthropic system blocks, image source skipped", apiMessages, "claude-sonnet-4-5",
			`{"system":[{"type":"text","text":"hello world"}],"messages":[{"role":"user","content":[{"type":"image","source":{"data":"AAAA"}}]}]}`, 2 + 4 + 3},
		{"completions prompt", apiCompletions, "gpt-3.5-turbo-instruct", `{"prompt":"hello world"}`, 2},
		{"completions prompts and token ids", apiCompletions, "", `{"prompt":["hello world","what time is it",[1,2,3]]}`, 2 + 4 + 3},
		{"embeddings", apiEmbeddings, "text-embedding-3-small", `{"input":["hello world","Hello!"]}`, 4},
		{"responses string input", apiResponses, "gpt-4o", `{"instructions":"You are a helpful assistant.","input":"Hello!"}`, 8},
		{"responses items", apiResponses, "gpt-4o",
			`{"instructions":"You are a helpful assistant.","input":[{"role":"user","content":[{"type":"input_text","text":"Hello!"}]}]}`, 6 + 3 + 1 + 2},
		{"not JSON", apiChat, "", `{"messages":`, 3},
		{"nested too deep is not counted", apiCompletions, "",
			`{"prompt":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := estimatePrompt(tt.api, tt.model, []byte(tt.body)); got != tt.want {
				t.Errorf("estimatePrompt = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestCodecFor(t *testing.T) {
	for model, want := range map[string]string{
		"gpt-4o": "o200k_base", "gpt-4o-mini": "o200k_base", "azure/gpt-4.1": "o200k_base", "o3-mini": "o200k_base",
		"gpt-5.1": "o200k_base", "gpt-4": "cl100k_base", "gpt-3.5-turbo": "cl100k_base", "claude-sonnet-4-5": "cl100k_base",
		"": "cl100k_base", "text-embedding-3-small": "cl100k_base",
	} {
		if got := codecFor(model).GetName(); got != want {
			t.Errorf("codecFor(%q) = %s, want %s", model, got, want)
		}
	}
}
