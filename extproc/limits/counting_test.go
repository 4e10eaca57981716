package limits

import "testing"

func TestCounting(t *testing.T) {
	cases := []struct {
		in   string
		want Counting
		of   int64 // Of(30, 12)
	}{
		{"", CountTotal, 42},
		{"total", CountTotal, 42},
		{"input", CountInput, 30},
		{"output", CountOutput, 12},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			c, err := ParseCounting(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if c != tc.want {
				t.Errorf("ParseCounting(%q) = %v, want %v", tc.in, c, tc.want)
			}
			if got := c.Of(30, 12); got != tc.of {
				t.Errorf("Of(30, 12) = %d, want %d", got, tc.of)
			}
			if tc.in != "" && c.String() != tc.in {
				t.Errorf("String() = %q, want %q", c.String(), tc.in)
			}
		})
	}
	for _, bad := range []string{"Total", "tokens", "both", " total"} {
		if _, err := ParseCounting(bad); err == nil {
			t.Errorf("ParseCounting(%q) accepted", bad)
		}
	}
}
