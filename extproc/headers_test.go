package extproc

import "testing"

func TestHeadersLookup(t *testing.T) {
	h := headers{
		{Key: "x-raw", RawValue: []byte("raw")},
		{Key: "x-value", Value: "value"},
		{Key: "x-both", Value: "value", RawValue: []byte("raw")},
		{Key: "X-Upper", RawValue: []byte("upper")},
		{Key: "x-repeated", RawValue: []byte("first")},
		{Key: "x-repeated", RawValue: []byte("second")},
		{Key: "x-empty"},
	}
	tests := []struct {
		name, header string
		want         string
		wantOK       bool
	}{
		{"raw_value", "x-raw", "raw", true},
		{"value when raw_value is empty", "x-value", "value", true},
		{"raw_value wins", "x-both", "raw", true},
		{"names match in any case", "x-upper", "upper", true},
		{"first of a repeated header", "x-repeated", "first", true},
		{"present but empty", "x-empty", "", true},
		{"absent", "x-absent", "", false},
		{"no prefix match", "x-rep", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := h.lookup(tt.header)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("lookup(%q) = %q, %v; want %q, %v", tt.header, got, ok, tt.want, tt.wantOK)
			}
			if got := h.get(tt.header); got != tt.want {
				t.Errorf("get(%q) = %q, want %q", tt.header, got, tt.want)
			}
		})
	}
	if got, ok := headers(nil).lookup("x-raw"); got != "" || ok {
		t.Errorf("nil headers: lookup = %q, %v; want \"\", false", got, ok)
	}
}
