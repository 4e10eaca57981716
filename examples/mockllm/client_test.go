package mockllm_test

import (
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

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
