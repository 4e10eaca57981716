package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	want := &percentiles{P50: 50, P90: 90, P99: 99, Max: 100, Mean: 50.5}
	if diff := cmp.Diff(want, summarize(d)); diff != "" {
		t.Errorf("summarize (-want +got):\n%s", diff)
	}
	if got := summarize(nil); got != nil {
		t.Errorf("summarize(nil) = %+v, want nil", got)
	}
	one := summarize([]time.Duration{3 * time.Millisecond})
	if diff := cmp.Diff(&percentiles{P50: 3, P90: 3, P99: 3, Max: 3, Mean: 3}, one); diff != "" {
		t.Errorf("summarize(one) (-want +got):\n%s", diff)
	}
}

func TestCheckResponse(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		stream  bool
		body    string
		wantErr string
	}{
		{name: "completion", status: 200, body: string(mockChatJSON())},
		{name: "stream", status: 200, stream: true, body: "data: {}\n\ndata: [DONE]\n\n"},
		{name: "stream crlf", status: 200, stream: true, body: "data: {}\r\n\r\ndata: [DONE]\r\n\r\n"},
		{name: "rejected", status: 401, body: `{"error":{}}`, wantErr: "status 401"},
		{name: "cut stream", status: 200, stream: true, body: "data: {}\n\n", wantErr: "[DONE]"},
		{name: "not a completion", status: 200, body: `{"ok":true}`, wantErr: "not a chat completion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkResponse(tt.status, tt.stream, []byte(tt.body))
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("checkResponse: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("checkResponse error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestMockUpstream(t *testing.T) {
	addr, stop, err := startMock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	post := func(body string) (*http.Response, []byte) {
		t.Helper()
		resp, err := directClient.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	type usage struct{ PromptTokens, CompletionTokens, TotalTokens int }
	wantUsage := usage{PromptTokens: mockPrompt, CompletionTokens: mockCompletion, TotalTokens: mockPrompt + mockCompletion}

	t.Run("non-streaming", func(t *testing.T) {
		resp, body := post(string(requestBodies(1, false)[0]))
		var got struct {
			Model   string
			Choices []struct{ Message struct{ Content string } }
			Usage   struct {
				PromptTokens     int `json:"prompt_tokens"`
				CompletionTokens int `json:"completion_tokens"`
				TotalTokens      int `json:"total_tokens"`
			}
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		if resp.Header.Get("Content-Type") != "application/json" || len(got.Choices) != 1 {
			t.Fatalf("got %s %s", resp.Header.Get("Content-Type"), body)
		}
		if diff := cmp.Diff([]any{mockModel, strings.Join(mockContent, ""), wantUsage},
			[]any{got.Model, got.Choices[0].Message.Content, usage(got.Usage)}); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})

	t.Run("streaming", func(t *testing.T) {
		// LiteLLM's SDK writes "stream": true with a space; both must stream.
		for _, body := range []string{string(requestBodies(1, true)[0]), `{"model": "m", "stream": true}`} {
			resp, b := post(body)
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Fatalf("content-type %q", ct)
			}
			var content strings.Builder
			var gotUsage usage
			var events []string
			sc := bufio.NewScanner(bytes.NewReader(b))
			for sc.Scan() {
				data, ok := strings.CutPrefix(sc.Text(), "data: ")
				if !ok {
					continue
				}
				events = append(events, data)
				if data == "[DONE]" {
					continue
				}
				var chunk struct {
					Choices []struct{ Delta struct{ Content string } }
					Usage   *struct {
						PromptTokens     int `json:"prompt_tokens"`
						CompletionTokens int `json:"completion_tokens"`
						TotalTokens      int `json:"total_tokens"`
					}
				}
				if err := json.Unmarshal([]byte(data), &chunk); err != nil {
					t.Fatalf("chunk %q: %v", data, err)
				}
				for _, c := range chunk.Choices {
					content.WriteString(c.Delta.Content)
				}
				if chunk.Usage != nil {
					gotUsage = usage(*chunk.Usage)
				}
			}
			if diff := cmp.Diff([]any{8, "[DONE]", strings.Join(mockContent, ""), wantUsage},
				[]any{len(events), events[len(events)-1], content.String(), gotUsage}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		}
	})

	t.Run("GET", func(t *testing.T) {
		resp, err := directClient.Get("http://" + addr + "/v1/chat/completions")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("status %d, want 405", resp.StatusCode)
		}
	})
}

// TestRunLoad drives the mock directly: every request is measured after the
// warm-up, and the cap on measured requests holds.
func TestRunLoad(t *testing.T) {
	addr, stop, err := startMock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	for _, stream := range []bool{false, true} {
		t.Run(modeName(stream), func(t *testing.T) {
			started := false
			res := runLoad(t.Context(), loadSpec{
				URL: "http://" + addr + "/v1/chat/completions", Key: "k", Bodies: requestBodies(3, stream), Stream: stream,
				Concurrency: 3, Warmup: 50 * time.Millisecond, Duration: 10 * time.Second, MaxRequests: 60,
				onMeasureStart: func() { started = true },
			})
			if res.Errors != 0 || !started {
				t.Fatalf("errors %d (%s), measure start called %v", res.Errors, res.FirstError, started)
			}
			wantTTFB := 0
			if stream {
				wantTTFB = 60
			}
			if diff := cmp.Diff([]int{60, wantTTFB}, []int{len(res.Latencies), len(res.TTFB)}); diff != "" {
				t.Errorf("measured requests, TTFB samples (-want +got):\n%s", diff)
			}
			if res.OK < 60 || res.Window <= 0 || res.Window >= 10*time.Second {
				t.Errorf("OK %d, window %v: want at least 60 and the cap to end the cell early", res.OK, res.Window)
			}
		})
	}
}
