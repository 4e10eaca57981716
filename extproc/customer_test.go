package extproc

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

func TestCustomerFromHeaders(t *testing.T) {
	tests := []struct {
		name       string
		hdr        map[string]string
		userHeader string
		want       string
	}{
		{"none", map[string]string{"x-other": "a"}, "", ""},
		{"customer-id", map[string]string{"x-litellm-customer-id": "a", "x-litellm-end-user-id": "b"}, "", "a"},
		{"end-user-id", map[string]string{"x-litellm-end-user-id": "b", "x-user": "c"}, "x-user", "b"},
		{"configured header", map[string]string{"x-user": "c"}, "x-user", "c"},
		{"configured header not set", map[string]string{"x-user": "c"}, "", ""},
		{"whitespace-only skipped", map[string]string{"x-litellm-customer-id": " \t", "x-litellm-end-user-id": "b"}, "", "b"},
		{"kept as sent", map[string]string{"x-litellm-customer-id": " a b "}, "", " a b "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := customerFromHeaders(headersOf(tt.hdr), tt.userHeader); got != tt.want {
				t.Errorf("customerFromHeaders = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCustomerFromBody(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"empty object", `{}`, ""},
		{"user", `{"user":"u","litellm_metadata":{"user":"l"},"metadata":{"user_id":"m"},"safety_identifier":"s"}`, "u"},
		{"litellm_metadata.user", `{"litellm_metadata":{"user":"l"},"metadata":{"user_id":"m"},"safety_identifier":"s"}`, "l"},
		{"litellm_metadata as a JSON string", `{"litellm_metadata":"{\"user\":\"l\"}","metadata":{"user_id":"m"}}`, "l"},
		{"litellm_metadata string that is not an object", `{"litellm_metadata":"[\"l\"]","metadata":{"user_id":"m"}}`, "m"},
		{"litellm_metadata string that is not JSON", `{"litellm_metadata":"user=l","safety_identifier":"s"}`, "s"},
		{"metadata.user_id", `{"metadata":{"user_id":"m"},"safety_identifier":"s"}`, "m"},
		{"metadata as a string is not read", `{"metadata":"{\"user_id\":\"m\"}","safety_identifier":"s"}`, "s"},
		{"safety_identifier", `{"safety_identifier":"s"}`, "s"},
		{"integer", `{"user":42}`, "42"},
		{"negative number as written", `{"user":-7}`, "-7"},
		{"float as written", `{"user":1.50}`, "1.50"},
		{"exponent as written", `{"user":1e3}`, "1e3"},
		{"number in litellm_metadata", `{"litellm_metadata":{"user":7}}`, "7"},
		{"whitespace-only skipped", `{"user":"  \n","safety_identifier":"s"}`, "s"},
		{"empty string skipped", `{"user":"","safety_identifier":"s"}`, "s"},
		{"true skipped", `{"user":true,"safety_identifier":"s"}`, "s"},
		{"false skipped", `{"user":false,"safety_identifier":"s"}`, "s"},
		{"null skipped", `{"user":null,"safety_identifier":"s"}`, "s"},
		{"object skipped", `{"user":{"id":"u"},"safety_identifier":"s"}`, "s"},
		{"array skipped", `{"user":["u"],"safety_identifier":"s"}`, "s"},
		{"unicode kept", `{"user":"J\u00fcrgen <j@x>"}`, "Jürgen <j@x>"},
		{"surrounding spaces kept", `{"user":" u "}`, " u "},
		{"nothing usable", `{"user":null,"metadata":{"user_id":false},"litellm_metadata":{},"safety_identifier":[]}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := customerFromBody([]byte(tt.body)); got != tt.want {
				t.Errorf("customerFromBody(%s) = %q, want %q", tt.body, got, tt.want)
			}
		})
	}
}

func FuzzCustomerFromBody(f *testing.F) {
	for _, s := range []string{
		`{"user":"u"}`, `{"user":42}`, `{"litellm_metadata":"{\"user\":\"l\"}"}`, `{"litellm_metadata":{"user":1e400}}`,
		`{"metadata":{"user_id":"m"}}`, `{"safety_identifier":" "}`, `{"user":"\ud800"}`, `[`, `{"user":`, `"x"`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		id := customerFromBody(body)
		if id != "" && strings.TrimSpace(id) == "" {
			t.Fatalf("whitespace-only id %q", id)
		}
	})
}

// headersOf builds a header list as Envoy sends it, values in raw_value.
func headersOf(m map[string]string) headers {
	var h headers
	for k, v := range m {
		h = append(h, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
	}
	return h
}
