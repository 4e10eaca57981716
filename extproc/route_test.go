package extproc

import "testing"

func TestParseRoute(t *testing.T) {
	tests := []struct {
		path string
		want route
	}{
		{"/v1/chat/completions", route{api: apiChat}},
		{"/chat/completions", route{api: apiChat}},
		{"/v1/completions", route{api: apiCompletions}},
		{"/completions", route{api: apiCompletions}},
		{"/v1/embeddings", route{api: apiEmbeddings}},
		{"/embeddings", route{api: apiEmbeddings}},
		{"/v1/responses", route{api: apiResponses}},
		{"/responses", route{api: apiResponses}},
		{"/v1/messages", route{api: apiMessages}},
		{"/messages", route{api: apiMessages}},
		{"/openai/deployments/my-gpt/chat/completions", route{api: apiChat, deployment: "my-gpt"}},
		{"/openai/deployments/my-gpt/completions", route{api: apiCompletions, deployment: "my-gpt"}},
		{"/openai/deployments/emb/embeddings", route{api: apiEmbeddings, deployment: "emb"}},
		{"/openai/v1/chat/completions", route{api: apiChat}},
		{"/openai/v1/responses", route{api: apiResponses}},
		{"/openai/responses", route{api: apiResponses}},
		{"/openai/deployments/my-gpt/responses", route{}},
		{"/openai/deployments/my-gpt/messages", route{}},
		{"/openai/deployments//chat/completions", route{}},
		{"/openai/deployments/my-gpt", route{}},
		{"/openai/v1/messages", route{}},
		{"/openai/chat/completions", route{}},
		{"/v1/messages/count_tokens", route{}},
		{"/v1/chat/completions/extra", route{}},
		{"/v1/models", route{}},
		{"/v1", route{}},
		{"/v1v1/chat/completions", route{}},
		{"/v2/chat/completions", route{}},
		{"", route{}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := parseRoute(tt.path); got != tt.want {
				t.Errorf("parseRoute(%q) = %+v, want %+v", tt.path, got, tt.want)
			}
		})
	}
}

func TestCredentialStyle(t *testing.T) {
	tests := []struct {
		name string
		path string
		hdr  map[string]string
		want credentialStyle
	}{
		{"openai", "/v1/chat/completions", nil, bearerCredential},
		{"anthropic messages", "/v1/messages", nil, anthropicCredential},
		{"anthropic count_tokens", "/v1/messages/count_tokens", map[string]string{"anthropic-version": "2023-06-01"}, anthropicCredential},
		{"azure deployment", "/openai/deployments/d/chat/completions", nil, azureCredential},
		{"azure v1", "/openai/v1/responses", nil, azureCredential},
		{"other path", "/v1/models", nil, bearerCredential},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := credentialStyleFor(parseRoute(tt.path), tt.path, headersOf(tt.hdr)); got != tt.want {
				t.Errorf("credentialStyleFor = %d, want %d", got, tt.want)
			}
		})
	}
}
