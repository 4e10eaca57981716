package extproc

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/extproc/pricing"
)

func TestParseUsage(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    responseUsage
		wantErr bool
	}{
		{name: "chat completion", body: chatResponse, want: responseUsage{
			Usage:       pricing.Usage{PromptTokens: 1000, CompletionTokens: 500, CachedTokens: 400, ReasoningTokens: 100},
			TotalTokens: 1500, Model: "gpt-test-2025-01-01"}},
		{name: "embeddings", body: `{"model":"e","usage":{"prompt_tokens":8,"total_tokens":8}}`,
			want: responseUsage{Usage: pricing.Usage{PromptTokens: 8}, TotalTokens: 8, Model: "e"}},
		{name: "total computed when absent", body: `{"usage":{"prompt_tokens":8,"completion_tokens":2}}`,
			want: responseUsage{Usage: pricing.Usage{PromptTokens: 8, CompletionTokens: 2}, TotalTokens: 10}},
		{name: "total computed without overflow", body: `{"usage":{"prompt_tokens":9223372036854775807,"completion_tokens":2}}`,
			want: responseUsage{Usage: pricing.Usage{PromptTokens: math.MaxInt64, CompletionTokens: 2}, TotalTokens: math.MaxInt64}},
		{name: "negative and non-numeric counts are 0", body: `{"usage":{"prompt_tokens":-5,"completion_tokens":"7","total_tokens":null,
			"prompt_tokens_details":{"cached_tokens":true},"completion_tokens_details":[1]}}`,
			want: responseUsage{}},
		{name: "fractional counts truncated", body: `{"usage":{"prompt_tokens":3.9,"completion_tokens":1e2}}`,
			want: responseUsage{Usage: pricing.Usage{PromptTokens: 3, CompletionTokens: 100}, TotalTokens: 103}},
		{name: "huge counts saturate", body: `{"usage":{"prompt_tokens":1e300,"total_tokens":99999999999999999999999}}`,
			want: responseUsage{Usage: pricing.Usage{PromptTokens: math.MaxInt64}, TotalTokens: math.MaxInt64}},
		{name: "no usage keeps the model", body: `{"model":"m","choices":[]}`, want: responseUsage{Model: "m"}, wantErr: true},
		{name: "usage null", body: `{"usage":null}`, wantErr: true},
		{name: "usage not an object", body: `{"usage":[1,2]}`, wantErr: true},
		{name: "not JSON", body: `{"usage":{"prompt_tokens":1}`, wantErr: true},
		{name: "a JSON array", body: `[{"usage":{"prompt_tokens":1}}]`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseUsage([]byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseUsage error = %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseUsage (-want +got):\n%s", diff)
			}
		})
	}
}

func rawDeflate(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.DefaultCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecode(t *testing.T) {
	plain := []byte(`{"usage":{"prompt_tokens":1}}`)
	tests := []struct {
		name     string
		body     []byte
		encoding string
		wantErr  bool
	}{
		{name: "none", body: plain},
		{name: "identity", body: plain, encoding: "identity"},
		{name: "gzip", body: gzipped(t, string(plain)), encoding: "gzip"},
		{name: "gzip in capitals", body: gzipped(t, string(plain)), encoding: " GZIP "},
		{name: "x-gzip", body: gzipped(t, string(plain)), encoding: "x-gzip"},
		{name: "zlib deflate", body: zlibbed(t, string(plain)), encoding: "deflate"},
		{name: "raw deflate", body: rawDeflate(t, plain), encoding: "deflate"},
		{name: "truncated gzip", body: gzipped(t, string(plain))[:20], encoding: "gzip", wantErr: true},
		{name: "not gzip", body: plain, encoding: "gzip", wantErr: true},
		{name: "not deflate", body: []byte{0xff, 0xff, 0xff}, encoding: "deflate", wantErr: true},
		{name: "brotli", body: []byte{0x1b}, encoding: "br", wantErr: true},
		{name: "stacked encodings", body: plain, encoding: "gzip, br", wantErr: true},
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
			if !bytes.Equal(got, plain) {
				t.Errorf("decode = %q, want %q", got, plain)
			}
		})
	}
	t.Run("compression bomb is cut off", func(t *testing.T) {
		// gzip members concatenate: one compressed MiB of zeros, repeated.
		member := gzipped(t, string(make([]byte, 1<<20)))
		bomb := bytes.Repeat(member, maxDecodedBody>>20+1)
		if _, err := decode(bomb, "gzip"); err == nil {
			t.Error("decode inflated past maxDecodedBody")
		}
	})
}

func TestJSONUsageLeavesTheBodyAlone(t *testing.T) {
	body := gzipped(t, chatResponse)
	orig := bytes.Clone(body)
	r := &jsonUsage{encoding: "gzip"}
	r.Write(body[:10])
	r.Write(body[10:])
	got, err := r.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if got.PromptTokens != 1000 {
		t.Errorf("PromptTokens = %d, want 1000", got.PromptTokens)
	}
	if !bytes.Equal(body, orig) {
		t.Error("reading usage changed the response bytes")
	}
}

func FuzzUsage(f *testing.F) {
	f.Add([]byte(chatResponse), "")
	f.Add([]byte(`{"usage":{"prompt_tokens":-1,"completion_tokens":1e999,"total_tokens":"x"}}`), "")
	f.Add([]byte(`{"usage":{"prompt_tokens_details":{"cached_tokens":9223372036854775808}}}`), "")
	f.Add([]byte(`{"usage":{"prompt_tokens":9223372036854775807,"completion_tokens":9223372036854775807}}`), "identity")
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write([]byte(chatResponse))
	_ = zw.Close()
	f.Add(buf.Bytes(), "gzip")
	f.Add([]byte{0x78, 0x9c, 0x03, 0x00}, "deflate")
	f.Fuzz(func(t *testing.T, body []byte, encoding string) {
		r := &jsonUsage{encoding: encoding}
		r.Write(body)
		u, err := r.Usage()
		if err != nil && !errors.Is(err, errNoUsage) && u != (responseUsage{}) {
			t.Fatalf("usage %+v returned with error %v", u, err)
		}
		for name, v := range map[string]int64{
			"prompt": u.PromptTokens, "completion": u.CompletionTokens, "cached": u.CachedTokens,
			"cache creation": u.CacheCreationTokens, "reasoning": u.ReasoningTokens, "total": u.TotalTokens,
		} {
			if v < 0 {
				t.Fatalf("%s tokens %d < 0 for %q", name, v, body)
			}
		}
	})
}
