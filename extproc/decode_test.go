package extproc

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"io"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
)

// flusher is a compressor that can end a block so everything written so far
// can be decoded: how servers stream compressed SSE.
type flusher interface {
	io.WriteCloser
	Flush() error
}

func newCompressor(t testing.TB, encoding string, w io.Writer) flusher {
	t.Helper()
	switch encoding {
	case "gzip":
		return gzip.NewWriter(w)
	case "deflate":
		return zlib.NewWriter(w)
	case "raw-deflate":
		fw, err := flate.NewWriter(w, flate.DefaultCompression)
		if err != nil {
			t.Fatal(err)
		}
		return fw
	case "br":
		return brotli.NewWriter(w)
	}
	t.Fatalf("no compressor for %q", encoding)
	return nil
}

// compress compresses the pieces, flushing after each, and returns the
// compressed bytes and the offset at which each piece's bytes end.
func compress(t testing.TB, encoding string, pieces ...string) ([]byte, []int) {
	t.Helper()
	var buf bytes.Buffer
	w := newCompressor(t, encoding, &buf)
	var ends []int
	for _, p := range pieces {
		if _, err := io.WriteString(w, p); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, buf.Len())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), ends
}

func wireEncoding(encoding string) string {
	if encoding == "raw-deflate" {
		return "deflate"
	}
	return encoding
}

func TestDecode(t *testing.T) {
	plain := `{"usage":{"prompt_tokens":1}}`
	gz, _ := compress(t, "gzip", plain)
	tests := []struct {
		name     string
		body     []byte
		encoding string
		wantErr  bool
	}{
		{name: "none", body: []byte(plain)},
		{name: "identity", body: []byte(plain), encoding: "identity"},
		{name: "gzip", body: gz, encoding: "gzip"},
		{name: "gzip in capitals", body: gz, encoding: " GZIP "},
		{name: "x-gzip", body: gz, encoding: "x-gzip"},
		{name: "zlib deflate", body: first(compress(t, "deflate", plain)), encoding: "deflate"},
		{name: "raw deflate", body: first(compress(t, "raw-deflate", plain)), encoding: "deflate"},
		{name: "brotli", body: first(compress(t, "br", plain)), encoding: "br"},
		{name: "truncated gzip", body: gz[:20], encoding: "gzip", wantErr: true},
		{name: "not gzip", body: []byte(plain), encoding: "gzip", wantErr: true},
		{name: "not deflate", body: []byte{0xff, 0xff, 0xff}, encoding: "deflate", wantErr: true},
		{name: "not brotli", body: []byte(plain), encoding: "br", wantErr: true},
		{name: "stacked encodings", body: []byte(plain), encoding: "gzip, br", wantErr: true},
		{name: "zstd", body: []byte(plain), encoding: "zstd", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decode(tt.body, tt.encoding)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("decode succeeded with %q, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if string(got) != plain {
				t.Errorf("decode = %q, want %q", got, plain)
			}
		})
	}
	t.Run("compression bomb is cut off", func(t *testing.T) {
		// gzip members concatenate: one compressed MiB of zeros, repeated.
		member, _ := compress(t, "gzip", string(make([]byte, 1<<20)))
		bomb := bytes.Repeat(member, maxDecodedBody>>20+1)
		if _, err := decode(bomb, "gzip"); err == nil {
			t.Error("decode inflated past maxDecodedBody")
		}
		d, err := newStreamDecoder("gzip")
		if err != nil {
			t.Fatal(err)
		}
		var n int
		for range maxDecodedBody>>20 + 1 {
			n += len(d.Write(member))
		}
		if _, err := d.Close(); err == nil || n > maxDecodedBody {
			t.Errorf("stream decoder inflated %d bytes, error %v; want an error and at most %d bytes", n, err, maxDecodedBody)
		}
	})
}

func first[T any](v T, _ ...any) T { return v }

func TestStreamDecoder(t *testing.T) {
	pieces := []string{"data: {\"a\":1}\n\n", "data: {\"b\":2}\n\n", strings.Repeat("data: x\n\n", 5000), "data: [DONE]\n\n"}
	for _, enc := range []string{"gzip", "deflate", "raw-deflate", "br"} {
		t.Run(enc, func(t *testing.T) {
			body, ends := compress(t, enc, pieces...)
			t.Run("each flushed piece decodes as it arrives", func(t *testing.T) {
				d, err := newStreamDecoder(wireEncoding(enc))
				if err != nil {
					t.Fatal(err)
				}
				prev := 0
				for i, end := range ends {
					if got := d.Write(body[prev:end]); string(got) != pieces[i] {
						t.Fatalf("piece %d decoded to %q, want %q", i, got, pieces[i])
					}
					prev = end
				}
				if got := d.Write(body[prev:]); len(got) != 0 { // the trailer
					t.Errorf("trailer decoded to %q", got)
				}
				rest, err := d.Close()
				if err != nil || len(rest) != 0 {
					t.Errorf("Close = %q, %v; want nothing more and no error", rest, err)
				}
			})
			t.Run("any chunking decodes the same", func(t *testing.T) {
				for _, size := range []int{1, 2, 3, 7, 64, 1000, len(body)} {
					d, err := newStreamDecoder(wireEncoding(enc))
					if err != nil {
						t.Fatal(err)
					}
					var got []byte
					for i := 0; i < len(body); i += size {
						got = append(got, d.Write(body[i:min(i+size, len(body))])...)
					}
					rest, err := d.Close()
					if err != nil {
						t.Fatalf("chunks of %d: Close error %v", size, err)
					}
					if got = append(got, rest...); string(got) != strings.Join(pieces, "") {
						t.Fatalf("chunks of %d: decoded %d bytes, want %d", size, len(got), len(strings.Join(pieces, "")))
					}
				}
			})
			t.Run("a body cut short is an error", func(t *testing.T) {
				d, err := newStreamDecoder(wireEncoding(enc))
				if err != nil {
					t.Fatal(err)
				}
				got := d.Write(body[:ends[1]])
				if _, err := d.Close(); err == nil {
					t.Error("Close of a truncated body: no error")
				}
				if string(got) != pieces[0]+pieces[1] {
					t.Errorf("decoded %q before the cut", got)
				}
			})
		})
	}
	t.Run("unsupported encoding", func(t *testing.T) {
		if _, err := newStreamDecoder("zstd"); err == nil {
			t.Error("newStreamDecoder(zstd) succeeded")
		}
	})
	t.Run("garbage stops the decoder, not the caller", func(t *testing.T) {
		d, err := newStreamDecoder("gzip")
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if got := d.Write([]byte("not gzip at all, not at all")); len(got) != 0 {
				t.Errorf("Write = %q", got)
			}
		}
		if _, err := d.Close(); err == nil {
			t.Error("Close: no error")
		}
		if _, err := d.Close(); err == nil {
			t.Error("second Close: no error")
		}
	})
	t.Run("close before any input", func(t *testing.T) {
		d, err := newStreamDecoder("br")
		if err != nil {
			t.Fatal(err)
		}
		if out, err := d.Close(); err == nil || len(out) != 0 {
			t.Errorf("Close = %q, %v; want an error for an empty body", out, err)
		}
	})
}

// FuzzStreamDecoder: whatever bytes arrive, split anywhere, the stream decoder
// neither panics nor hangs, and reads what the whole-body decoder reads.
func FuzzStreamDecoder(f *testing.F) {
	for _, enc := range []string{"gzip", "deflate", "raw-deflate", "br"} {
		body, ends := compress(f, enc, "data: a\n\n", "data: b\n\n")
		f.Add(wireEncoding(enc), body, uint16(ends[0]))
		f.Add(wireEncoding(enc), body[:len(body)-1], uint16(3))
	}
	f.Add("deflate", []byte{0x78, 0x9c, 0x03, 0x00}, uint16(1))
	f.Fuzz(func(t *testing.T, enc string, body []byte, cut uint16) {
		d, err := newStreamDecoder(enc)
		if err != nil {
			return
		}
		c := int(cut) % (len(body) + 1)
		got := d.Write(body[:c])
		got = append(got, d.Write(body[c:])...)
		rest, err := d.Close()
		got = append(got, rest...)
		want, wantErr := decode(body, enc)
		if err == nil && wantErr == nil && !bytes.Equal(got, want) {
			t.Fatalf("streamed %q, whole %q", got, want)
		}
		if (err == nil) != (wantErr == nil) && len(body) > 0 {
			t.Fatalf("stream error %v, whole-body error %v", err, wantErr)
		}
		if wantErr == nil && !bytes.HasPrefix(want, got) {
			t.Fatalf("streamed %q is not a prefix of %q", got, want)
		}
	})
}
