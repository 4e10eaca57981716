package mockllm_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/tollgate-dev/tollgate/examples/mockllm"
)

// TestOpenAIClient checks that the official SDK reads the mock's responses,
// streamed ones included, as OpenAI's.
func TestOpenAIClient(t *testing.T) {
	mock := mockllm.New()
	srv := httptest.NewServer(mock)
	defer srv.Close()
	client := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("sk-client"), option.WithMaxRetries(0))

	type result struct {
		Model                          string
		Content                        string
		PromptTokens, CompletionTokens int64
	}
	chatParams := openai.ChatCompletionNewParams{
		Model:     "any-model-name",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("count to three")},
		MaxTokens: openai.Int(7),
	}
	body, err := chatParams.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := result{
		Model:            "any-model-name",
		Content:          mockllm.ReplyText(body),
		PromptTokens:     mockllm.PromptTokens(body),
		CompletionTokens: mockllm.CompletionTokens(body),
	}
	if want.PromptTokens != 11 || want.CompletionTokens != 7 {
		t.Fatalf("expected usage = %d+%d, want 11+7", want.PromptTokens, want.CompletionTokens)
	}

	t.Run("chat", func(t *testing.T) {
		resp, err := client.Chat.Completions.New(t.Context(), chatParams)
		if err != nil {
			t.Fatal(err)
		}
		got := result{resp.Model, resp.Choices[0].Message.Content, resp.Usage.PromptTokens, resp.Usage.CompletionTokens}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		last, _ := mock.Last()
		if last.Header["authorization"] != "Bearer sk-client" {
			t.Errorf("authorization seen by the mock = %q", last.Header["authorization"])
		}
	})

	t.Run("chat stream", func(t *testing.T) {
		params := chatParams
		params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		stream := client.Chat.Completions.NewStreaming(t.Context(), params)
		var acc openai.ChatCompletionAccumulator
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		got := result{acc.Model, acc.Choices[0].Message.Content, acc.Usage.PromptTokens, acc.Usage.CompletionTokens}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})

	t.Run("embeddings", func(t *testing.T) {
		for _, format := range []openai.EmbeddingNewParamsEncodingFormat{openai.EmbeddingNewParamsEncodingFormatFloat, openai.EmbeddingNewParamsEncodingFormatBase64} {
			resp, err := client.Embeddings.New(t.Context(), openai.EmbeddingNewParams{
				Model:          "emb",
				Input:          openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a b", "c"}},
				EncodingFormat: format,
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Data) != 2 || resp.Usage.PromptTokens != 3 || resp.Usage.TotalTokens != 3 {
				t.Errorf("%s: got %d embeddings, usage %+v; want 2, 3 tokens", format, len(resp.Data), resp.Usage)
			}
			if format == openai.EmbeddingNewParamsEncodingFormatFloat {
				if diff := cmp.Diff([]float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8}, resp.Data[0].Embedding, cmp.Comparer(func(a, b float64) bool {
					return float32(a) == float32(b)
				})); diff != "" {
					t.Errorf("embedding (-want +got):\n%s", diff)
				}
			}
		}
	})

	t.Run("forced error", func(t *testing.T) {
		_, err := client.Chat.Completions.New(t.Context(), chatParams, option.WithHeader("x-mock-status", "429"))
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Message != "mockllm: forced status 429 (x-mock-status)" {
			t.Errorf("error = %v, want a 429 *openai.Error with the mock's message", err)
		}
	})
}

// TestAnthropicClient checks that the official Anthropic SDK reads the mock's
// Messages API, JSON and streamed, with the usage ReportedUsage computes.
func TestAnthropicClient(t *testing.T) {
	mock := mockllm.New()
	srv := httptest.NewServer(mock)
	defer srv.Close()
	client := anthropic.NewClient(aoption.WithBaseURL(srv.URL+"/"), aoption.WithAPIKey("sk-ant"), aoption.WithMaxRetries(0))
	params := anthropic.MessageNewParams{
		Model:     "claude-sonnet-4-5",
		MaxTokens: 1024,
		System:    []anthropic.TextBlockParam{{Text: "be brief"}},
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("count to three"))},
		Metadata:  anthropic.MetadataParam{UserID: anthropic.String("cust-1")},
	}
	header := http.Header{}
	header.Set(mockllm.HeaderCachedTokens, "2")
	header.Set(mockllm.HeaderCacheCreationTokens, "3")
	type result struct {
		Text                                            string
		Input, Output, CacheRead, CacheCreation, Prompt int64
	}
	check := func(t *testing.T, m anthropic.Message) {
		t.Helper()
		last, _ := mock.Last()
		u := mockllm.ReportedUsage(last.Path, []byte(last.Body), header)
		want := result{Text: mockllm.ReplyText([]byte(last.Body)), Input: u.PromptTokens - u.CachedTokens - u.CacheCreationTokens,
			Output: u.CompletionTokens, CacheRead: 2, CacheCreation: 3, Prompt: 2 + 3 + 3}
		got := result{Text: m.Content[0].Text, Input: m.Usage.InputTokens, Output: m.Usage.OutputTokens,
			CacheRead: m.Usage.CacheReadInputTokens, CacheCreation: m.Usage.CacheCreationInputTokens, Prompt: u.PromptTokens}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if last.Header["authorization"] != "Bearer sk-ant" || !strings.Contains(last.Body, `"user_id":"cust-1"`) {
			t.Errorf("request seen by the mock: %+v", last)
		}
	}
	opts := []aoption.RequestOption{aoption.WithHeader(mockllm.HeaderCachedTokens, "2"), aoption.WithHeader(mockllm.HeaderCacheCreationTokens, "3")}
	t.Run("message", func(t *testing.T) {
		m, err := client.Messages.New(t.Context(), params, opts...)
		if err != nil {
			t.Fatal(err)
		}
		check(t, *m)
	})
	t.Run("stream", func(t *testing.T) {
		stream := client.Messages.NewStreaming(t.Context(), params, opts...)
		var m anthropic.Message
		for stream.Next() {
			if err := m.Accumulate(stream.Current()); err != nil {
				t.Fatal(err)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		check(t, m)
	})
}

// TestResponsesClient checks that openai-go reads the mock's Responses API.
func TestResponsesClient(t *testing.T) {
	srv := httptest.NewServer(mockllm.New())
	defer srv.Close()
	client := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("sk-client"), option.WithMaxRetries(0))
	params := responses.ResponseNewParams{
		Model:        "gpt-4o",
		Instructions: openai.String("be brief"),
		Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String("count to three")},
	}
	opts := []option.RequestOption{option.WithHeader(mockllm.HeaderCachedTokens, "1"), option.WithHeader(mockllm.HeaderReasoningTokens, "7")}
	want := [4]int64{5, 1, 16 + 7, 7} // input, cached, output, reasoning
	t.Run("response", func(t *testing.T) {
		r, err := client.Responses.New(t.Context(), params, opts...)
		if err != nil {
			t.Fatal(err)
		}
		got := [4]int64{r.Usage.InputTokens, r.Usage.InputTokensDetails.CachedTokens, r.Usage.OutputTokens, r.Usage.OutputTokensDetails.ReasoningTokens}
		if got != want || r.OutputText() != mockllm.ReplyText([]byte(`{}`)) {
			t.Errorf("usage %v, text %q; want %v", got, r.OutputText(), want)
		}
	})
	t.Run("stream", func(t *testing.T) {
		stream := client.Responses.NewStreaming(t.Context(), params, opts...)
		var text string
		var got [4]int64
		for stream.Next() {
			switch ev := stream.Current(); ev.Type {
			case "response.output_text.delta":
				text += ev.Delta
			case "response.completed":
				u := ev.Response.Usage
				got = [4]int64{u.InputTokens, u.InputTokensDetails.CachedTokens, u.OutputTokens, u.OutputTokensDetails.ReasoningTokens}
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if got != want || text != mockllm.ReplyText([]byte(`{}`)) {
			t.Errorf("usage %v, text %q; want %v", got, text, want)
		}
	})
}
