package extproc

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tidwall/gjson"
)

func TestForceIncludeUsage(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"no stream_options", `{"model":"m","stream":true}`, `{"stream_options":{"include_usage":true},"model":"m","stream":true}`},
		{"leading whitespace", " \n{ \"stream\": true }", " \n{\"stream_options\":{\"include_usage\":true}, \"stream\": true }"},
		{"null", `{"stream":true,"stream_options":null}`, `{"stream":true,"stream_options":{"include_usage":true}}`},
		{"empty object", `{"stream":true,"stream_options": { } }`, `{"stream":true,"stream_options": {"include_usage":true } }`},
		{"other options", `{"stream":true,"stream_options":{"x":1}}`, `{"stream":true,"stream_options":{"include_usage":true,"x":1}}`},
		{"false", `{"stream":true,"stream_options":{"include_usage":false,"x":1}}`, `{"stream":true,"stream_options":{"include_usage":true,"x":1}}`},
		{"null include_usage", `{"stream_options":{"include_usage":null},"stream":true}`, `{"stream_options":{"include_usage":true},"stream":true}`},
		{"string include_usage", `{"stream_options":{ "include_usage" : "yes" },"stream":true}`, `{"stream_options":{ "include_usage" : true },"stream":true}`},
		{"only the first of repeated stream_options", `{"stream_options":{},"stream_options":null}`,
			`{"stream_options":{"include_usage":true},"stream_options":null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := forceIncludeUsage([]byte(tt.body))
			if !ok {
				t.Fatal("not changed")
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
	for _, body := range []string{
		`{"stream":true,"stream_options":{"include_usage":true}}`,
		`{"stream":true,"stream_options":"x"}`,
		`{"stream":true,"stream_options":[1]}`,
	} {
		t.Run("unchanged "+body, func(t *testing.T) {
			if got, ok := forceIncludeUsage([]byte(body)); ok {
				t.Errorf("changed to %s", got)
			}
		})
	}
}

// FuzzForceIncludeUsage: an edited body is a JSON object asking for usage,
// with every other member as it was.
func FuzzForceIncludeUsage(f *testing.F) {
	f.Add(`{"model":"m","stream":true,"messages":[{"role":"user","content":"{\"stream_options\":1}"}]}`)
	f.Add(`{"stream_options":{"include_usage":false,"x":[1,{"include_usage":true}]}}`)
	f.Add(`{"stream_options":null}`)
	f.Add(`{"stream_options" : { } , "a":"b"}`)
	f.Add(`{"stream\u005foptions":{}}`)
	f.Fuzz(func(t *testing.T, body string) {
		if !gjson.Valid(body) || !gjson.Parse(body).IsObject() {
			return
		}
		out, ok := forceIncludeUsage([]byte(body))
		if !ok {
			return
		}
		if !gjson.ValidBytes(out) {
			t.Fatalf("%s → invalid JSON %s", body, out)
		}
		if got := gjson.GetBytes(out, "stream_options.include_usage"); got.Type != gjson.True {
			t.Fatalf("%s → %s: include_usage is %s", body, out, got.Raw)
		}
		members := func(js []byte) map[string]string {
			m := map[string]string{}
			gjson.ParseBytes(js).ForEach(func(k, v gjson.Result) bool {
				if _, seen := m[k.Str]; !seen && k.Str != "stream_options" {
					m[k.Str] = v.Raw
				}
				return true
			})
			opts := gjson.GetBytes(js, "stream_options")
			if !opts.IsObject() {
				return m
			}
			opts.ForEach(func(k, v gjson.Result) bool {
				if _, seen := m["stream_options."+k.Str]; !seen && k.Str != "include_usage" {
					m["stream_options."+k.Str] = v.Raw
				}
				return true
			})
			return m
		}
		if diff := cmp.Diff(members([]byte(body)), members(out)); diff != "" {
			t.Fatalf("%s → %s changed other members (-before +after):\n%s", body, out, diff)
		}
	})
}
