package extproc

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// readStream runs a stream of api through an sseBody cut at the given
// offsets, and returns what it read and the bytes it passed on.
func readStream(a api, strip bool, stream []byte, cuts ...int) (read, []byte, error) {
	b, _ := newSSEBody(a, "", strip)
	var out []byte
	pieces := split(stream, cuts...)
	for i, c := range pieces {
		o, replace := b.write(c, i == len(pieces)-1)
		if !replace {
			o = c
		}
		out = append(out, o...)
	}
	t, err := b.result()
	return readOf(t), out, err
}

// FuzzStreamUsage: the usage read from a stream of any API does not depend on
// how the stream is cut into chunks, is never negative, and removing the
// usage-only chunk never changes what else the client gets.
func FuzzStreamUsage(f *testing.F) {
	f.Add(uint8(apiChat), false, sse("\n", chatChunk("hello"), usageChunk, "[DONE]"), uint16(5), uint16(90))
	f.Add(uint8(apiChat), true, sse("\r\n", chatChunk("hello"), usageChunk, "[DONE]"), uint16(1), uint16(2))
	f.Add(uint8(apiCompletions), true, sse("\r", `{"choices":[{"text":"a"}]}`, `{"usage":{"prompt_tokens":1}}`), uint16(9), uint16(30))
	f.Add(uint8(apiMessages), false, sse("\n", anthropicStream...), uint16(100), uint16(400))
	f.Add(uint8(apiResponses), false, sse("\n", responsesStream...), uint16(3), uint16(300))
	f.Add(uint8(apiMessages), false, []byte("data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":-3,\"input_tokens\":1e30}}\n\n"), uint16(0), uint16(0))
	f.Fuzz(func(t *testing.T, a uint8, strip bool, stream []byte, c1, c2 uint16) {
		i, j := int(c1)%(len(stream)+1), int(c2)%(len(stream)+1)
		if i > j {
			i, j = j, i
		}
		ap := api(a%5 + 1)
		whole, wholeOut, wholeErr := readStream(ap, strip, stream)
		cut, cutOut, cutErr := readStream(ap, strip, stream, i, j)
		if diff := cmp.Diff(whole, cut); diff != "" {
			t.Fatalf("cut at %d and %d reads differently (-whole +cut):\n%s", i, j, diff)
		}
		if (wholeErr == nil) != (cutErr == nil) || (wholeErr == nil) != whole.Final {
			t.Fatalf("errors %v and %v with final %v", wholeErr, cutErr, whole.Final)
		}
		if !bytes.Equal(wholeOut, cutOut) {
			t.Fatalf("cut at %d and %d passes on %q, whole %q", i, j, cutOut, wholeOut)
		}
		if !strip && !bytes.Equal(wholeOut, stream) {
			t.Fatalf("stream changed without strip: %q → %q", stream, wholeOut)
		}
		checkCounts(t, whole.Usage)
	})
}
