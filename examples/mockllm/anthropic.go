package mockllm

import "fmt"

// Anthropic's Messages API (/v1/messages): usage reports the prompt's tokens
// that were neither read from nor written to the cache as input_tokens, and
// those two apart.

type anthropicMessage struct {
	ID           string           `json:"id"`
	Type         string           `json:"type"`
	Role         string           `json:"role"`
	Model        string           `json:"model"`
	Content      []anthropicBlock `json:"content"`
	StopReason   *string          `json:"stop_reason"`
	StopSequence *string          `json:"stop_sequence"`
	Usage        *anthropicUsage  `json:"usage,omitempty"`
}

type anthropicBlock struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type anthropicUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
}

func (c *call) anthropicUsage() *anthropicUsage {
	if c.o.omitUsage {
		return nil
	}
	u := c.usage()
	return &anthropicUsage{
		InputTokens:              u.PromptTokens - u.CachedTokens - u.CacheCreationTokens,
		CacheCreationInputTokens: u.CacheCreationTokens,
		CacheReadInputTokens:     u.CachedTokens,
		OutputTokens:             u.CompletionTokens,
	}
}

func (c *call) serveMessages() {
	req := c.req
	text := replyWords(req.completionTokens())
	stop := "end_turn"
	if req.completionTokens() < ReplyWords {
		stop = "max_tokens"
	}
	msg := anthropicMessage{
		ID: fmt.Sprintf("msg_mock_%d", c.seq), Type: "message", Role: "assistant", Model: req.Model,
		Content: []anthropicBlock{{Type: "text", Text: text}}, StopReason: &stop, Usage: c.anthropicUsage(),
	}
	if !req.Stream {
		c.writeJSON(msg)
		return
	}
	// The stream opens with the prompt's usage and a provisional output count,
	// and ends with the cumulative output count in message_delta.
	start := msg
	start.Content, start.StopReason = []anthropicBlock{}, nil
	var deltaUsage map[string]int64
	if u := msg.Usage; u != nil {
		first := *u
		first.OutputTokens = 1
		start.Usage = &first
		deltaUsage = map[string]int64{"output_tokens": u.OutputTokens}
	}
	events := []event{
		{"message_start", map[string]any{"type": "message_start", "message": start}},
		{"content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": anthropicBlock{Type: "text"}}},
		{"ping", map[string]any{"type": "ping"}},
	}
	for _, part := range streamParts(text) {
		events = append(events, event{"content_block_delta", map[string]any{
			"type": "content_block_delta", "index": 0, "delta": map[string]string{"type": "text_delta", "text": part}}})
	}
	delta := map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop, "stop_sequence": nil}}
	if deltaUsage != nil {
		delta["usage"] = deltaUsage
	}
	events = append(events,
		event{"content_block_stop", map[string]any{"type": "content_block_stop", "index": 0}},
		event{"message_delta", delta},
		event{"message_stop", map[string]any{"type": "message_stop"}})
	c.writeSSE(events)
}
