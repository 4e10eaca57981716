package extproc

import (
	"fmt"
	"slices"

	"github.com/tidwall/gjson"
)

// bodyReader reads a metered response body as Envoy delivers it.
type bodyReader interface {
	// write takes the next chunk, eos marking the last one. When replace is
	// true, out is sent on in place of the chunk.
	write(chunk []byte, eos bool) (out []byte, replace bool)
	// result returns what the body told about its cost, once it has ended or
	// been cut short; err says why the upstream's usage is missing.
	result() (tally, error)
	// close releases the reader's resources. It may be called more than once.
	close()
}

// jsonBody reads a whole JSON response, which may be content-encoded. The
// response is passed on unchanged; only a copy is decompressed.
type jsonBody struct {
	api      api
	encoding string
	body     []byte
	tooLarge bool
}

var _ bodyReader = (*jsonBody)(nil)

func (r *jsonBody) write(chunk []byte, _ bool) ([]byte, bool) {
	if r.tooLarge || len(r.body)+len(chunk) > maxDecodedBody {
		r.tooLarge, r.body = true, nil
		return nil, false
	}
	if r.body == nil {
		// Usually the only chunk (BUFFERED): keep it rather than copy it.
		// Nothing writes to a received message, and Clip makes a later
		// append copy instead of writing past the chunk's end.
		r.body = slices.Clip(chunk)
		return nil, false
	}
	r.body = append(r.body, chunk...)
	return nil, false
}

func (r *jsonBody) result() (tally, error) {
	if r.tooLarge {
		return tally{}, fmt.Errorf("response body is over %d bytes", maxDecodedBody)
	}
	body, err := decode(r.body, r.encoding)
	if err != nil {
		return tally{}, err
	}
	return parseBody(r.api, body)
}

func (r *jsonBody) close() {}

// sseBody reads a text/event-stream response event by event, decompressing it
// on the way when it is content-encoded. With strip set it also removes the
// usage-only chunk tollgate made an OpenAI-compatible upstream add, and then
// sends the client the decoded stream.
type sseBody struct {
	api    api
	dec    *streamDecoder // nil for an identity-encoded stream
	parser sseParser      // without strip
	filter *sseFilter     // with strip
	t      tally

	unreadable error // the stream's encoding cannot be decoded
	decodeErr  error
}

var _ bodyReader = (*sseBody)(nil)

// newSSEBody reads a stream of api with the given content-encoding. strip
// asks for the usage-only chunk to be removed; decoded reports whether the
// client will get the stream decoded, so the response must lose its
// content-encoding. A stream tollgate cannot decode is passed on untouched.
func newSSEBody(a api, encoding string, strip bool) (b *sseBody, decoded bool) {
	b = &sseBody{api: a}
	if enc := contentEncoding(encoding); enc != "" {
		var err error
		if b.dec, err = newStreamDecoder(enc); err != nil {
			b.unreadable = err
			return b, false
		}
	}
	if strip {
		b.filter = &sseFilter{event: func(ev *sseEvent) bool { return b.t.streamEvent(b.api, ev) }}
	}
	return b, strip && b.dec != nil
}

func (b *sseBody) write(chunk []byte, eos bool) ([]byte, bool) {
	if b.unreadable != nil {
		return nil, false
	}
	plain := chunk
	if b.dec != nil {
		plain = b.dec.Write(chunk)
		if eos {
			rest, err := b.dec.Close()
			plain = append(plain, rest...)
			b.decodeErr = err
		}
	}
	if b.filter == nil {
		b.parser.feed(plain, func(_ int, ev *sseEvent) {
			if ev != nil {
				b.t.streamEvent(b.api, ev)
			}
		})
		return nil, false
	}
	out := b.filter.write(plain)
	if eos {
		out = append(out, b.filter.flush()...)
	}
	return out, true
}

func (b *sseBody) result() (tally, error) {
	b.close()
	switch {
	case b.unreadable != nil:
		return b.t, b.unreadable
	case b.t.final:
		return b.t, nil
	case b.decodeErr != nil:
		return b.t, fmt.Errorf("decode stream: %w", b.decodeErr)
	}
	return b.t, errNoUsage
}

func (b *sseBody) close() {
	if b.dec != nil {
		if _, err := b.dec.Close(); err != nil && b.decodeErr == nil {
			b.decodeErr = err
		}
	}
}

// streamEvent reads one event of a stream of api into t. It reports whether
// the event is an OpenAI usage-only chunk: usage set, and no choices.
func (t *tally) streamEvent(a api, ev *sseEvent) (usageOnly bool) {
	if !shallowJSON(ev.Data) || !gjson.ValidBytes(ev.Data) {
		return false // [DONE], or a keep-alive
	}
	root := gjson.ParseBytes(ev.Data)
	switch a {
	case apiMessages:
		t.anthropicEvent(root)
	case apiResponses:
		t.responsesEvent(root)
	default:
		return t.openAIEvent(root)
	}
	return false
}

// openAIEvent reads a chat or completions chunk. With stream_options.include_usage
// the last chunk carries the usage and an empty choices array.
func (t *tally) openAIEvent(root gjson.Result) (usageOnly bool) {
	t.setModel(root.Get("model"))
	choices := root.Get("choices")
	for _, c := range choices.Array() {
		openAIChoiceText(t, c)
	}
	u := root.Get("usage")
	if !u.IsObject() {
		return false
	}
	t.setUsage(openAIUsage(u), u.Get("total_tokens"))
	return !choices.Exists() || (choices.IsArray() && len(choices.Array()) == 0)
}

// anthropicEvent reads an Anthropic Messages stream event: message_start
// reports the prompt's usage, message_delta the final (cumulative) counts.
func (t *tally) anthropicEvent(root gjson.Result) {
	switch root.Get("type").Str {
	case "message_start":
		m := root.Get("message")
		t.setModel(m.Get("model"))
		if u := m.Get("usage"); u.IsObject() {
			t.anthropic.update(u)
			t.usage.Usage = t.anthropic.usage()
			t.prompt = true
		}
	case "message_delta":
		if u := root.Get("usage"); u.IsObject() {
			t.anthropic.update(u)
			t.setUsage(t.anthropic.usage(), gjson.Result{})
		}
	case "content_block_start":
		b := root.Get("content_block")
		addText(t, b.Get("text"))
		addText(t, b.Get("thinking"))
	case "content_block_delta":
		d := root.Get("delta")
		addText(t, d.Get("text"))
		addText(t, d.Get("partial_json"))
		addText(t, d.Get("thinking"))
	}
}

// responsesEvent reads a Responses API stream event: the usage comes with the
// final response.completed (or response.incomplete, response.failed).
func (t *tally) responsesEvent(root gjson.Result) {
	switch typ := root.Get("type").Str; typ {
	case "response.created", "response.in_progress":
		t.setModel(root.Get("response.model"))
	case "response.completed", "response.incomplete", "response.failed":
		r := root.Get("response")
		t.setModel(r.Get("model"))
		if u := r.Get("usage"); u.IsObject() {
			t.setUsage(responsesUsage(u), u.Get("total_tokens"))
		}
	case "response.output_text.delta", "response.refusal.delta", "response.function_call_arguments.delta",
		"response.reasoning_text.delta", "response.reasoning_summary_text.delta":
		addText(t, root.Get("delta"))
	}
}
