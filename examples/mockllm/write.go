package mockllm

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/andybalholm/brotli"
)

// event is one server-sent event to write.
type event struct {
	name string // the event field; "" for none
	data any    // marshalled to JSON; a string is written as it is
}

// openAIEvents are OpenAI's stream events: data only, then [DONE].
func openAIEvents(chunks []any) []event {
	events := make([]event, 0, len(chunks)+1)
	for _, c := range chunks {
		events = append(events, event{data: c})
	}
	return append(events, event{data: "[DONE]"})
}

// compressor compresses a body as it is written; Flush makes everything
// written so far decodable.
type compressor interface {
	io.WriteCloser
	Flush() error
}

func newCompressor(encoding string, w io.Writer) compressor {
	switch encoding {
	case "gzip":
		return gzip.NewWriter(w)
	case "deflate":
		return zlib.NewWriter(w)
	default: // "br"; parseOptions allows nothing else
		return brotli.NewWriter(w)
	}
}

// writeJSON writes a 200 JSON response, compressed and without
// content-length when the options say so.
func (c *call) writeJSON(v any) {
	b := mustMarshal(v)
	h := c.w.Header()
	h.Set("Content-Type", "application/json")
	if c.o.encoding != "" {
		var buf bytes.Buffer
		z := newCompressor(c.o.encoding, &buf)
		_, _ = z.Write(b) // writes to a bytes.Buffer do not fail
		_ = z.Close()
		b = buf.Bytes()
		h.Set("Content-Encoding", c.o.encoding)
	}
	if c.o.chunked {
		c.w.WriteHeader(http.StatusOK)
		// Flushing the headers before the body makes net/http send it chunked.
		if err := http.NewResponseController(c.w).Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return
		}
	} else {
		h.Set("Content-Length", strconv.Itoa(len(b)))
		c.w.WriteHeader(http.StatusOK)
	}
	_, _ = c.w.Write(b)
}

// writeSSE streams events, formatted, cut into pieces, compressed, cut short
// or broken off as the options say. Each piece is flushed on its own.
func (c *call) writeSSE(events []event) {
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	if c.o.encoding != "" {
		h.Set("Content-Encoding", c.o.encoding)
	}
	c.w.WriteHeader(http.StatusOK)

	abort := c.o.abortAfter > 0 && c.o.abortAfter < len(events)
	if abort {
		events = events[:c.o.abortAfter]
	}
	if c.o.cutAfter > 0 && c.o.cutAfter < len(events) {
		events = events[:c.o.cutAfter]
	}
	var pieces [][]byte
	for i, e := range events {
		pieces = append(pieces, c.o.render(e, i))
	}
	if c.o.chunkBytes > 0 {
		pieces = cut(bytes.Join(pieces, nil), c.o.chunkBytes)
	}

	rc := http.NewResponseController(c.w)
	var out io.Writer = c.w
	var z compressor
	if c.o.encoding != "" {
		z = newCompressor(c.o.encoding, c.w)
		out = z
	}
	flush := func() bool {
		if z != nil && z.Flush() != nil {
			return false
		}
		err := rc.Flush()
		return err == nil || errors.Is(err, http.ErrNotSupported)
	}
	for i, p := range pieces {
		if i > 0 && c.o.gap > 0 && !c.sleep(c.o.gap) {
			return
		}
		if _, err := out.Write(p); err != nil || !flush() {
			return
		}
	}
	if abort {
		// Ends the connection without ending the response.
		panic(http.ErrAbortHandler)
	}
	if z != nil {
		_ = z.Close()
		flush()
	}
}

// sleep waits d; it returns false if the client went away meanwhile.
func (c *call) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.r.Context().Done():
		return false
	}
}

// render writes event i in the options' style.
func (o options) render(e event, i int) []byte {
	eol := "\n"
	switch {
	case o.crlf:
		eol = "\r\n"
	case o.cr:
		eol = "\r"
	}
	field := func(name, value string) string {
		if o.noSpace {
			return name + ":" + value + eol
		}
		return name + ": " + value + eol
	}
	var b strings.Builder
	if o.comments {
		b.WriteString(": mockllm keep-alive" + eol)
		b.WriteString(field("id", strconv.Itoa(i)))
		b.WriteString(field("retry", "1000"))
	}
	if e.name != "" {
		b.WriteString(field("event", e.name))
	}
	data, ok := e.data.(string)
	if !ok {
		data = string(mustMarshal(e.data))
	}
	lines := []string{data}
	if o.multiline {
		// json.Marshal escapes quotes in strings, so `,"` only ever separates
		// members: the lines rejoined with LF are the same JSON.
		lines = strings.SplitAfter(data, `,"`)
		for j := 1; j < len(lines); j++ {
			lines[j-1] = strings.TrimSuffix(lines[j-1], `"`)
			lines[j] = `"` + lines[j]
		}
	}
	for _, l := range lines {
		b.WriteString(field("data", l))
	}
	b.WriteString(eol)
	return []byte(b.String())
}

// cut splits b into pieces of n bytes.
func cut(b []byte, n int) [][]byte {
	var pieces [][]byte
	for len(b) > n {
		pieces = append(pieces, b[:n])
		b = b[n:]
	}
	if len(b) > 0 {
		pieces = append(pieces, b)
	}
	return pieces
}

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the mock's own types are marshalled; they always encode.
		panic(fmt.Sprintf("mockllm: marshal: %v", err))
	}
	return b
}
