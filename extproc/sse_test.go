package extproc

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// parsed is what a parser reports for a stream: the events, and the stream
// offsets at which event blocks end.
type parsed struct {
	Events []sseEvent
	Ends   []int
}

// parseChunks feeds the stream to a parser cut at the given offsets.
func parseChunks(stream []byte, cuts ...int) parsed {
	var p sseParser
	var got parsed
	base := 0
	for _, chunk := range split(stream, cuts...) {
		p.feed(chunk, func(end int, ev *sseEvent) {
			end += base
			if stream[end-1] == '\r' && end < len(stream) && stream[end] == '\n' {
				end++ // the LF of this CRLF is in the next chunk
			}
			got.Ends = append(got.Ends, end)
			if ev != nil {
				got.Events = append(got.Events, sseEvent{Type: ev.Type, Data: bytes.Clone(ev.Data)})
			}
		})
		base += len(chunk)
	}
	return got
}

// split cuts b at the given increasing offsets.
func split(b []byte, cuts ...int) [][]byte {
	var out [][]byte
	prev := 0
	for _, c := range cuts {
		out = append(out, b[prev:c])
		prev = c
	}
	return append(out, b[prev:])
}

var lineEnd = regexp.MustCompile(`\r\n|\r|\n`)

// referenceParse is a deliberately different, whole-stream reading of the
// event stream specification, to check sseParser against.
func referenceParse(stream []byte) parsed {
	s := strings.TrimPrefix(string(stream), utf8BOM)
	var got parsed
	var data strings.Builder
	var typ string
	var dataBytes, lineStart int
	overflow := false
	offset := len(stream) - len(s)
	for _, loc := range lineEnd.FindAllStringIndex(s, -1) {
		line := s[lineStart:loc[0]]
		lineStart = loc[1]
		if len(line) > maxEventBytes {
			overflow = true
			continue
		}
		switch {
		case line == "":
			got.Ends = append(got.Ends, offset+loc[1])
			if !overflow && data.Len() > 0 {
				got.Events = append(got.Events, sseEvent{Type: typ, Data: []byte(strings.TrimSuffix(data.String(), "\n"))})
			}
			data.Reset()
			typ, dataBytes, overflow = "", 0, false
		case strings.HasPrefix(line, ":"), overflow:
		default:
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch name {
			case "event":
				typ = value
			case "data":
				if dataBytes += len(value) + 1; dataBytes > maxEventBytes {
					overflow = true
					continue
				}
				data.WriteString(value + "\n")
			}
		}
	}
	return got
}

func TestSSEParser(t *testing.T) {
	ev := func(typ, data string) sseEvent { return sseEvent{Type: typ, Data: []byte(data)} }
	tests := []struct {
		name   string
		stream string
		want   []sseEvent
	}{
		{"LF", "data: {\"a\":1}\n\ndata: [DONE]\n\n", []sseEvent{ev("", `{"a":1}`), ev("", "[DONE]")}},
		{"CRLF", "data: x\r\n\r\ndata: y\r\n\r\n", []sseEvent{ev("", "x"), ev("", "y")}},
		{"CR", "data: x\r\rdata: y\r\r", []sseEvent{ev("", "x"), ev("", "y")}},
		{"mixed line ends", "data: a\r\n\ndata: b\r\rdata: c\n\r\n", []sseEvent{ev("", "a"), ev("", "b"), ev("", "c")}},
		{"no space after the colon", "data:x\n\n", []sseEvent{ev("", "x")}},
		{"only one space is removed", "data:  x\n\n", []sseEvent{ev("", " x")}},
		{"multi-line data", "data: a\ndata:b\ndata\n\n", []sseEvent{ev("", "a\nb\n")}},
		{"empty data dispatches an empty event", "data:\n\n", []sseEvent{ev("", "")}},
		{"event type", "event: message_start\ndata: {}\n\n", []sseEvent{ev("message_start", "{}")}},
		{"event type resets", "event: a\ndata: 1\n\ndata: 2\n\n", []sseEvent{ev("a", "1"), ev("", "2")}},
		{"comments, id, retry and unknown fields", ": ping\nid: 7\nretry: 10\nfoo: bar\ndata: x\n: more\n\n", []sseEvent{ev("", "x")}},
		{"blank lines without data dispatch nothing", "\n\n: keep-alive\n\nevent: x\n\ndata: y\n\n", []sseEvent{ev("", "y")}},
		{"an unfinished event is not dispatched", "data: x\n\ndata: y\n", []sseEvent{ev("", "x")}},
		{"field names are case-sensitive", "Data: x\n\n", nil},
		{"colons in the value", "data: a:b: c\n\n", []sseEvent{ev("", "a:b: c")}},
		{"byte order mark", utf8BOM + "data: x\n\n", []sseEvent{ev("", "x")}},
		{"only the first byte order mark", utf8BOM + utf8BOM + "data: x\n\n", nil},
		{"half a byte order mark is text", "\xef\xbbdata: x\n\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream := []byte(tt.stream)
			want := parseChunks(stream)
			if diff := cmp.Diff(tt.want, want.Events); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(referenceParse(stream), want); diff != "" {
				t.Errorf("differs from the reference parser (-reference +parser):\n%s", diff)
			}
			// Every cut, and every pair of cuts, gives the same reading.
			for i := 0; i <= len(stream); i++ {
				for j := i; j <= len(stream); j++ {
					if diff := cmp.Diff(want, parseChunks(stream, i, j)); diff != "" {
						t.Fatalf("cut at %d and %d (-whole +cut):\n%s", i, j, diff)
					}
				}
			}
		})
	}
}

func TestSSEParserBounds(t *testing.T) {
	big := strings.Repeat("x", maxEventBytes)
	stream := []byte("data: " + big + "\n\ndata: a\ndata: " + big + "\n\ndata: ok\n\n")
	got := parseChunks(stream, 3, len(stream)/2)
	if diff := cmp.Diff([]sseEvent{{Data: []byte("ok")}}, got.Events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if want := []int{len(big) + 8, 2*len(big) + 24, len(stream)}; !cmp.Equal(want, got.Ends) {
		t.Errorf("block ends %v, want %v", got.Ends, want)
	}
}

// filterChunks runs a filter that drops events whose data is "drop" over the
// stream cut at the given offsets, and returns the bytes passed on and the
// events seen.
func filterChunks(stream []byte, cuts ...int) ([]byte, []string) {
	var seen []string
	f := &sseFilter{event: func(ev *sseEvent) bool {
		seen = append(seen, string(ev.Data))
		return string(ev.Data) == "drop"
	}}
	var out []byte
	for _, chunk := range split(stream, cuts...) {
		out = append(out, f.write(chunk)...)
	}
	return append(out, f.flush()...), seen
}

func TestSSEFilter(t *testing.T) {
	tests := []struct {
		name, stream, want string
	}{
		{"drops a whole block", "data: a\n\ndata: drop\n\ndata: [DONE]\n\n", "data: a\n\ndata: [DONE]\n\n"},
		{"with its comments", "data: a\n\n: ping\nevent: x\ndata: drop\n\ndata: b\n\n", "data: a\n\ndata: b\n\n"},
		{"CRLF", "data: a\r\n\r\ndata: drop\r\n\r\ndata: b\r\n\r\n", "data: a\r\n\r\ndata: b\r\n\r\n"},
		{"CR", "data: a\r\rdata: drop\r\rdata: b\r\r", "data: a\r\rdata: b\r\r"},
		{"first and last", "data: drop\n\ndata: a\n\ndata: drop\n\n", "data: a\n\n"},
		{"keeps an unfinished tail", "data: drop\n\ndata: a\n", "data: a\n"},
		{"keeps blocks without events", "\n\n: hi\n\ndata: drop\n\n\n", "\n\n: hi\n\n\n"},
		{"nothing to drop", "data: a\r\n\r\n", "data: a\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream := []byte(tt.stream)
			for i := 0; i <= len(stream); i++ {
				for j := i; j <= len(stream); j++ {
					got, _ := filterChunks(stream, i, j)
					if string(got) != tt.want {
						t.Fatalf("cut at %d and %d: got %q, want %q", i, j, got, tt.want)
					}
				}
			}
		})
	}
	t.Run("passes a finished block on at once", func(t *testing.T) {
		f := &sseFilter{event: func(*sseEvent) bool { return false }}
		if got := f.write([]byte("data: a\n\ndata: b")); string(got) != "data: a\n\n" {
			t.Errorf("first chunk: got %q", got)
		}
		if got := f.write([]byte("\n\n")); string(got) != "data: b\n\n" {
			t.Errorf("second chunk: got %q", got)
		}
	})
	t.Run("an oversized block streams through", func(t *testing.T) {
		big := "data: drop" + strings.Repeat("x", maxEventBytes)
		f := &sseFilter{event: func(*sseEvent) bool { return true }}
		out := f.write([]byte(big))
		if len(out) != len(big) {
			t.Fatalf("held %d bytes of an oversized block", len(big)-len(out))
		}
		if got := f.write([]byte("\n\ndata: drop\n\n")); string(got) != "\n\n" {
			t.Errorf("got %q after the oversized block, want its end only", got)
		}
	})
}

func FuzzSSEParser(f *testing.F) {
	f.Add([]byte("data: {\"a\":1}\n\ndata: [DONE]\n\n"), uint16(3), uint16(9))
	f.Add([]byte("event: x\r\ndata:y\r\n\r\n: c\rdata: z\r\r"), uint16(1), uint16(17))
	f.Add([]byte(utf8BOM+"data\n\ndata:\r\n\r"), uint16(2), uint16(2))
	f.Add([]byte("data: a\r"), uint16(8), uint16(8))
	f.Fuzz(func(t *testing.T, stream []byte, c1, c2 uint16) {
		i, j := int(c1)%(len(stream)+1), int(c2)%(len(stream)+1)
		if i > j {
			i, j = j, i
		}
		want := referenceParse(stream)
		if diff := cmp.Diff(want, parseChunks(stream)); diff != "" {
			t.Fatalf("differs from the reference parser (-reference +parser):\n%s", diff)
		}
		if diff := cmp.Diff(want, parseChunks(stream, i, j)); diff != "" {
			t.Fatalf("cut at %d and %d (-reference +parser):\n%s", i, j, diff)
		}
	})
}

func FuzzSSEFilter(f *testing.F) {
	f.Add([]byte("data: a\n\ndata: drop\n\ndata: b\n\n"), uint16(4), uint16(15))
	f.Add([]byte("data: drop\r\r\ndata: b\r\n\r\n"), uint16(12), uint16(12))
	f.Add([]byte("data: drop\r\n\r\n"), uint16(13), uint16(14))
	f.Fuzz(func(t *testing.T, stream []byte, c1, c2 uint16) {
		i, j := int(c1)%(len(stream)+1), int(c2)%(len(stream)+1)
		if i > j {
			i, j = j, i
		}
		whole, seen := filterChunks(stream)
		cut, seenCut := filterChunks(stream, i, j)
		if !bytes.Equal(whole, cut) {
			t.Fatalf("cut at %d and %d: %q, whole: %q", i, j, cut, whole)
		}
		if diff := cmp.Diff(seen, seenCut); diff != "" {
			t.Fatalf("events seen differ when cut (-whole +cut):\n%s", diff)
		}
		// The filtered stream reads as the original without the dropped events.
		var kept []string
		for _, ev := range seen {
			if ev != "drop" {
				kept = append(kept, ev)
			}
		}
		var reread []string
		for _, ev := range referenceParse(whole).Events {
			reread = append(reread, string(ev.Data))
		}
		if diff := cmp.Diff(kept, reread); diff != "" {
			t.Fatalf("filtered stream %q reads differently (-want +got):\n%s", whole, diff)
		}
		if len(kept) == len(seen) && !bytes.Equal(whole, stream) {
			t.Fatalf("nothing dropped, yet the stream changed: %q → %q", stream, whole)
		}
	})
}
