package extproc

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// headers is Envoy's header list, read where it is: a request reads a few
// of its headers, so copying all of them into a map would cost more than
// scanning the list for each.
type headers []*corev3.HeaderValue

// lookup returns the first value of the header name (lower case), which
// Envoy puts in raw_value, or in value when raw_value is empty.
func (h headers) lookup(name string) (string, bool) {
	for _, hv := range h {
		if k := hv.GetKey(); k == name || len(k) == len(name) && strings.ToLower(k) == name {
			if len(hv.GetRawValue()) > 0 {
				return string(hv.GetRawValue()), true
			}
			return hv.GetValue(), true
		}
	}
	return "", false
}

// get returns the header's first value, "" when it is absent.
func (h headers) get(name string) string {
	v, _ := h.lookup(name)
	return v
}
