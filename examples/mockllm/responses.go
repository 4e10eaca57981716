package mockllm

import "fmt"

// OpenAI's Responses API (/v1/responses): the stream's last event,
// response.completed (or response.incomplete when max_output_tokens cut the
// reply), carries the whole response with its usage.

type responseObject struct {
	ID                string             `json:"id"`
	Object            string             `json:"object"`
	CreatedAt         int64              `json:"created_at"`
	Status            string             `json:"status"`
	IncompleteDetails *incompleteDetails `json:"incomplete_details"`
	Model             string             `json:"model"`
	Output            []responseItem     `json:"output"`
	Usage             *responsesUsage    `json:"usage"`
}

type incompleteDetails struct {
	Reason string `json:"reason"`
}

type responseItem struct {
	ID      string         `json:"id"`
	Type    string         `json:"type"`
	Status  string         `json:"status"`
	Role    string         `json:"role"`
	Content []responsePart `json:"content"`
}

type responsePart struct {
	Type        string `json:"type"`
	Text        string `json:"text"`
	Annotations []any  `json:"annotations"`
}

type responsesUsage struct {
	InputTokens         int64         `json:"input_tokens"`
	InputTokensDetails  promptDetails `json:"input_tokens_details"`
	OutputTokens        int64         `json:"output_tokens"`
	OutputTokensDetails outputDetails `json:"output_tokens_details"`
	TotalTokens         int64         `json:"total_tokens"`
}

func (c *call) serveResponses() {
	req := c.req
	text := replyWords(req.completionTokens())
	resp := responseObject{
		ID: fmt.Sprintf("resp_mock_%d", c.seq), Object: "response", CreatedAt: c.created, Status: "completed", Model: req.Model,
	}
	final := "response.completed"
	if req.completionTokens() < ReplyWords {
		resp.Status, resp.IncompleteDetails, final = "incomplete", &incompleteDetails{Reason: "max_output_tokens"}, "response.incomplete"
	}
	itemID := fmt.Sprintf("msg_mock_%d", c.seq)
	part := responsePart{Type: "output_text", Text: text, Annotations: []any{}}
	item := responseItem{ID: itemID, Type: "message", Status: resp.Status, Role: "assistant", Content: []responsePart{part}}
	done := resp
	done.Output = []responseItem{item}
	if !c.o.omitUsage {
		u := c.usage()
		done.Usage = &responsesUsage{
			InputTokens: u.PromptTokens, InputTokensDetails: promptDetails{CachedTokens: u.CachedTokens},
			OutputTokens: u.CompletionTokens, OutputTokensDetails: outputDetails{ReasoningTokens: u.ReasoningTokens},
			TotalTokens: u.PromptTokens + u.CompletionTokens,
		}
	}
	if !req.Stream {
		c.writeJSON(done)
		return
	}
	start := resp
	start.Status, start.IncompleteDetails, start.Output = "in_progress", nil, []responseItem{}
	seq := 0
	ev := func(typ string, fields map[string]any) event {
		fields["type"], fields["sequence_number"] = typ, seq
		seq++
		return event{typ, fields}
	}
	pos := func(fields map[string]any) map[string]any {
		fields["item_id"], fields["output_index"], fields["content_index"] = itemID, 0, 0
		return fields
	}
	empty := item
	empty.Status, empty.Content = "in_progress", []responsePart{}
	events := []event{
		ev("response.created", map[string]any{"response": start}),
		ev("response.in_progress", map[string]any{"response": start}),
		ev("response.output_item.added", map[string]any{"output_index": 0, "item": empty}),
		ev("response.content_part.added", pos(map[string]any{"part": responsePart{Type: "output_text", Annotations: []any{}}})),
	}
	for _, p := range streamParts(text) {
		events = append(events, ev("response.output_text.delta", pos(map[string]any{"delta": p})))
	}
	events = append(events,
		ev("response.output_text.done", pos(map[string]any{"text": text})),
		ev("response.content_part.done", pos(map[string]any{"part": part})),
		ev("response.output_item.done", map[string]any{"output_index": 0, "item": item}),
		ev(final, map[string]any{"response": done}))
	c.writeSSE(events)
}
