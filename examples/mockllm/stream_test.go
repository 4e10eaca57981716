package mockllm

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/google/go-cmp/cmp"
)

// pieceRecorder is a ResponseWriter that keeps each flushed piece apart.
type pieceRecorder struct {
	header http.Header
	pieces [][]byte
	cur    []byte
}

func (p *pieceRecorder) Header() http.Header { return p.header }
func (p *pieceRecorder) WriteHeader(int)     {}
func (p *pieceRecorder) Write(b []byte) (int, error) {
	p.cur = append(p.cur, b...)
	return len(b), nil
}

func (p *pieceRecorder) Flush() {
	if len(p.cur) > 0 {
		p.pieces = append(p.pieces, p.cur)
		p.cur = nil
	}
}

func (p *pieceRecorder) body() []byte { return bytes.Join(append(p.pieces, p.cur), nil) }

// servePieces sends one request to a new mock and records the flushed pieces.
func servePieces(t *testing.T, path, body string, header map[string]string) *pieceRecorder {
	t.Helper()
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := &pieceRecorder{header: http.Header{}}
	newServer().ServeHTTP(rec, req)
	return rec
}

type sseEvent struct {
	Name string
	Data string // compacted JSON, or the raw data when it is not JSON
}

var lineEnd = regexp.MustCompile(`\r\n|\r|\n`)

// readEvents parses an event stream as the specification says (any line end,
// optional space, comments, multi-line data).
func readEvents(t *testing.T, stream []byte) []sseEvent {
	t.Helper()
	var events []sseEvent
	var name string
	var data []string
	for _, line := range lineEnd.Split(string(stream), -1) {
		switch {
		case line == "":
			if data != nil {
				d := strings.Join(data, "\n")
				var buf bytes.Buffer
				if json.Compact(&buf, []byte(d)) == nil {
					d = buf.String()
				}
				events = append(events, sseEvent{name, d})
			}
			name, data = "", nil
		case strings.HasPrefix(line, ":"):
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				name = value
			case "data":
				data = append(data, value)
			}
		}
	}
	return events
}

const streamChat = `{"model":"m","messages":[{"role":"user","content":"hi there"}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":9}`

func TestStreamOptions(t *testing.T) {
	plain := servePieces(t, "/v1/chat/completions", streamChat, nil)
	want := readEvents(t, plain.body())
	if len(want) != 7 || want[6].Data != "[DONE]" || len(plain.pieces) != 7 {
		t.Fatalf("default stream: %d events in %d pieces: %v", len(want), len(plain.pieces), want)
	}
	tests := []struct {
		name   string
		header map[string]string
		check  func(t *testing.T, rec *pieceRecorder)
	}{
		{"CRLF, no space, comments, multi-line data", map[string]string{HeaderSSE: "crlf,nospace,comments,multiline"}, func(t *testing.T, rec *pieceRecorder) {
			b := string(rec.body())
			if strings.Contains(b, "data: ") || strings.Contains(b, "\n\n") || !strings.Contains(b, "\r\n\r\n") ||
				!strings.Contains(b, ": mockllm keep-alive\r\nid:0\r\nretry:1000\r\ndata:") {
				t.Errorf("not in the asked style:\n%q", b)
			}
			if n := strings.Count(b, "data:"); n <= 2*len(want) {
				t.Errorf("%d data lines for %d events: JSON not split over lines", n, len(want))
			}
		}},
		{"CR line ends", map[string]string{HeaderSSE: "cr"}, func(t *testing.T, rec *pieceRecorder) {
			if b := rec.body(); bytes.Contains(b, []byte("\n")) || !bytes.Contains(b, []byte("\r\r")) {
				t.Errorf("not CR-only:\n%q", b)
			}
		}},
		{"pieces of 7 bytes", map[string]string{HeaderChunkBytes: "7"}, func(t *testing.T, rec *pieceRecorder) {
			for i, p := range rec.pieces[:len(rec.pieces)-1] {
				if len(p) != 7 {
					t.Fatalf("piece %d has %d bytes", i, len(p))
				}
			}
			if !bytes.Equal(rec.body(), plain.body()) {
				t.Error("the pieces do not add up to the stream")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := servePieces(t, "/v1/chat/completions", streamChat, tt.header)
			if diff := cmp.Diff(want, readEvents(t, rec.body())); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			tt.check(t, rec)
		})
	}

	t.Run("cut after 2 events", func(t *testing.T) {
		got := readEvents(t, servePieces(t, "/v1/chat/completions", streamChat, map[string]string{HeaderCutAfter: "2"}).body())
		if diff := cmp.Diff(want[:2], got); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
	t.Run("usage omitted although asked for", func(t *testing.T) {
		got := readEvents(t, servePieces(t, "/v1/chat/completions", streamChat, map[string]string{HeaderOmitUsage: "true"}).body())
		if diff := cmp.Diff(append(want[:5:5], want[6]), got); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
	for _, enc := range []string{"gzip", "br"} {
		t.Run(enc+": every piece decodes as it arrives", func(t *testing.T) {
			rec := servePieces(t, "/v1/chat/completions", streamChat, map[string]string{HeaderEncoding: enc, HeaderChunkBytes: "50"})
			if got := rec.header.Get("Content-Encoding"); got != enc {
				t.Errorf("Content-Encoding = %q", got)
			}
			decode := func(b []byte) []byte {
				var r io.Reader = brotli.NewReader(bytes.NewReader(b))
				if enc == "gzip" {
					zr, err := gzip.NewReader(bytes.NewReader(b))
					if err != nil {
						t.Fatal(err)
					}
					r = zr
				}
				out, _ := io.ReadAll(r) // a prefix ends unexpectedly
				return out
			}
			// Each flushed piece makes its 50 bytes of plaintext readable.
			var prefix []byte
			for i, p := range rec.pieces[:len(rec.pieces)-1] {
				prefix = append(prefix, p...)
				if got, want := decode(prefix), plain.body()[:min(50*(i+1), len(plain.body()))]; !bytes.Equal(got, want) {
					t.Fatalf("after piece %d decoded %q, want %q", i, got, want)
				}
			}
			got := decode(rec.body())
			if !bytes.Equal(got, plain.body()) {
				t.Errorf("decoded %q", got)
			}
		})
	}
}

func TestStreamShapes(t *testing.T) {
	t.Run("anthropic", func(t *testing.T) {
		body := `{"model":"claude","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}`
		events := readEvents(t, servePieces(t, "/v1/messages", body, map[string]string{HeaderCachedTokens: "1"}).body())
		var names []string
		for _, e := range events {
			names = append(names, e.Name)
		}
		want := []string{"message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta",
			"content_block_stop", "message_delta", "message_stop"}
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		if !strings.Contains(events[0].Data, `"usage":{"input_tokens":3,"cache_creation_input_tokens":0,"cache_read_input_tokens":1,"output_tokens":1}`) ||
			!strings.Contains(events[6].Data, `"usage":{"output_tokens":5}`) || !strings.Contains(events[6].Data, `"stop_reason":"max_tokens"`) {
			t.Errorf("usage: %s … %s", events[0].Data, events[6].Data)
		}
	})
	t.Run("responses", func(t *testing.T) {
		body := `{"model":"gpt","stream":true,"input":"hi"}`
		events := readEvents(t, servePieces(t, "/v1/responses", body, nil).body())
		var text string
		for i, e := range events {
			var ev struct {
				Type  string
				Seq   int `json:"sequence_number"`
				Delta string
			}
			if err := json.Unmarshal([]byte(e.Data), &ev); err != nil || ev.Type != e.Name || ev.Seq != i {
				t.Errorf("event %d: %s (%v)", i, e.Data, err)
			}
			text += ev.Delta
		}
		if last := events[len(events)-1]; last.Name != "response.completed" ||
			!strings.Contains(last.Data, `"usage":{"input_tokens":1,"input_tokens_details":{"cached_tokens":0},"output_tokens":16,`) {
			t.Errorf("last event: %+v", last)
		}
		if text != replyText {
			t.Errorf("text %q", text)
		}
	})
}

func TestAbortAfter(t *testing.T) {
	srv := httptest.NewServer(newServer())
	defer srv.Close()
	req, err := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(streamChat))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(HeaderAbortAfter, "3")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("read error %v, want io.ErrUnexpectedEOF", err)
	}
	if n := len(readEvents(t, b)); n != 3 {
		t.Errorf("%d events before the break, want 3", n)
	}
}

func TestJSONOptions(t *testing.T) {
	srv := httptest.NewServer(newServer())
	defer srv.Close()
	const chat = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	post := func(header map[string]string) (*http.Response, []byte) {
		req, err := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(chat))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept-Encoding", "identity") // no transparent decoding
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
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
	_, plain := post(nil)
	resp, b := post(map[string]string{HeaderChunked: "true", HeaderEncoding: "gzip"})
	if resp.ContentLength != -1 || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("content-length %d, content-encoding %q; want chunked gzip", resp.ContentLength, resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	// Each response has its own id.
	if want := strings.Replace(string(plain), "chatcmpl-mock-1", "chatcmpl-mock-2", 1); string(got) != want {
		t.Errorf("decoded %s, want %s", got, want)
	}
	resp, b = post(map[string]string{HeaderEncoding: "deflate"})
	if resp.ContentLength != int64(len(b)) {
		t.Errorf("content-length %d for %d bytes", resp.ContentLength, len(b))
	}
}
