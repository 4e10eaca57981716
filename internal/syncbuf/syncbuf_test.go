package syncbuf

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBuffer(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{name: "empty", writes: nil, want: ""},
		{name: "one write", writes: []string{"hello\n"}, want: "hello\n"},
		{name: "appends in order", writes: []string{"a", "b", "", "c\n"}, want: "abc\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b Buffer
			for _, w := range tt.writes {
				n, err := b.Write([]byte(w))
				if err != nil || n != len(w) {
					t.Fatalf("Write(%q) = %d, %v; want %d, nil", w, n, err, len(w))
				}
			}
			if diff := cmp.Diff(tt.want, b.String()); diff != "" {
				t.Errorf("String() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBufferConcurrent fails under -race if the mutex is missing, and checks
// that concurrent writes are neither lost nor interleaved within a write.
func TestBufferConcurrent(t *testing.T) {
	const writers, lines = 8, 100
	var b Buffer
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(&b, "w%d-%03d\n", w, i)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	sort.Strings(got)
	var want []string
	for w := range writers {
		for i := range lines {
			want = append(want, fmt.Sprintf("w%d-%03d", w, i))
		}
	}
	sort.Strings(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lines mismatch (-want +got):\n%s", diff)
	}
}
