package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
)

// The mock upstream answers every POST with the same prebuilt chat completion,
// so its cost per request is a few microseconds and the same for every target.
// examples/mockllm is more faithful but records each request under a mutex and
// marshals every reply; here the upstream must be as cheap as possible, since
// it shares the load generator's core.

const (
	mockModel      = "gpt-4o-mini"
	mockPrompt     = 12 // tokens reported as usage; tollgate prices them
	mockCompletion = 16
)

// mockContent is the reply, in the chunks the streamed answer sends it in.
var mockContent = []string{"Hello, benchmark!", " This reply comes", " from the tollgate", " bench mock upstream."}

func mockChatJSON() []byte {
	return fmt.Appendf(nil, `{"id":"chatcmpl-bench","object":"chat.completion","created":1767225600,"model":%q,`+
		`"choices":[{"index":0,"message":{"role":"assistant","content":%q},"logprobs":null,"finish_reason":"stop"}],`+
		`"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
		mockModel, strings.Join(mockContent, ""), mockPrompt, mockCompletion, mockPrompt+mockCompletion)
}

// mockSSEEvents are the streamed answer's events, each written and flushed on
// its own as a real upstream does: a role chunk, the content chunks, the finish
// chunk, the usage chunk (stream_options.include_usage) and [DONE].
func mockSSEEvents() [][]byte {
	chunk := func(choices, usage string) []byte {
		return fmt.Appendf(nil, `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1767225600,"model":%q,"choices":%s%s}`+"\n\n",
			mockModel, choices, usage)
	}
	events := [][]byte{chunk(`[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]`, "")}
	for _, c := range mockContent {
		events = append(events, chunk(fmt.Sprintf(`[{"index":0,"delta":{"content":%q},"logprobs":null,"finish_reason":null}]`, c), ""))
	}
	events = append(events,
		chunk(`[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]`, ""),
		chunk(`[]`, fmt.Sprintf(`,"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}`, mockPrompt, mockCompletion, mockPrompt+mockCompletion)),
		[]byte("data: [DONE]\n\n"),
	)
	return events
}

// mockUpstream is the OpenAI-compatible upstream every target forwards to.
type mockUpstream struct {
	chat    []byte
	chatLen string
	events  [][]byte
	bufs    sync.Pool
}

func newMockUpstream() *mockUpstream {
	chat := mockChatJSON()
	return &mockUpstream{
		chat:    chat,
		chatLen: fmt.Sprint(len(chat)),
		events:  mockSSEEvents(),
		bufs:    sync.Pool{New: func() any { return new(bytes.Buffer) }},
	}
}

func (m *mockUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	buf := m.bufs.Get().(*bytes.Buffer)
	defer m.bufs.Put(buf)
	buf.Reset()
	if _, err := io.Copy(buf, io.LimitReader(r.Body, 1<<20)); err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	h := w.Header()
	if !gjson.GetBytes(buf.Bytes(), "stream").Bool() {
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{m.chatLen}
		_, _ = w.Write(m.chat)
		return
	}
	h["Content-Type"] = []string{"text/event-stream"}
	h["Cache-Control"] = []string{"no-cache"}
	rc := http.NewResponseController(w)
	for _, e := range m.events {
		if _, err := w.Write(e); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// startMock serves a mockUpstream on a random loopback port.
func startMock() (addr string, stop func(), err error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("mock upstream: %w", err)
	}
	srv := &http.Server{Handler: newMockUpstream(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis) // ends with ErrServerClosed when stop is called
	}()
	return lis.Addr().String(), func() { _ = srv.Close(); <-done }, nil
}
