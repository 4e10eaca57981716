package badgerstore

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/store"
)

var (
	t0       = time.Date(2026, 9, 1, 12, 0, 0, 123456789, time.UTC)
	preEpoch = time.Date(1900, 1, 1, 0, 0, 0, 1, time.UTC)
)

func TestCustomerRecRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		rec  customerRec
	}{
		{"zero", customerRec{}},
		{"every field", customerRec{
			Alias: ptr("Alice"), Spend: 1_413_000, AllowedModelRegion: ptr("eu"), DefaultModel: ptr("gpt-4o"),
			BudgetID: ptr("pro"), Blocked: true, CreatedAt: t0, UpdatedAt: t0.Add(time.Hour),
		}},
		{"empty strings are not nil", customerRec{Alias: ptr(""), AllowedModelRegion: ptr(""), DefaultModel: ptr(""), BudgetID: ptr("")}},
		{"negative spend and old times", customerRec{Spend: -5, CreatedAt: preEpoch, UpdatedAt: time.Unix(-1, 999_999_999).UTC()}},
		{"only some strings", customerRec{DefaultModel: ptr("m"), Spend: 1 << 62}},
		{"budget windows", customerRec{Spend: 9, WindowEnd: t0, CreatedAt: preEpoch, ModelSpend: map[string]store.ModelSpend{
			"gpt-4o": {Spend: 4, WindowEnd: t0.Add(time.Hour)}, "forever": {Spend: 2}, "": {Spend: -1, WindowEnd: preEpoch},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.rec.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got customerRec
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if d := cmp.Diff(tt.rec, got); d != "" {
				t.Errorf("round trip (-want +got):\n%s", d)
			}
		})
	}
}

func TestLogRecRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		rec  logRec
	}{
		{"zero", logRec{}},
		{"every field", logRec{
			ClientRequestID: "x-1", CustomerID: "alice", Model: "gpt-4o", Path: "/v1/chat/completions",
			PromptTokens: 1, CompletionTokens: 2, TotalTokens: 3, CacheReadTokens: 4, CacheCreationTokens: 5,
			ReasoningTokens: 6, Cost: 7, Unpriced: true, Estimated: true, StartTime: t0, EndTime: t0.Add(time.Millisecond),
		}},
		{"unicode and large numbers", logRec{Model: "modèle-✓", PromptTokens: 1 << 40, Cost: -1, StartTime: preEpoch}},
		{"budget windows", logRec{CustomerID: "alice", Cost: 3,
			Window:      store.Window{Start: t0, End: t0.Add(time.Hour), Reset: true},
			ModelBudget: "gpt-4o", ModelWindow: store.Window{Start: preEpoch, End: t0}}},
		{"a first window and a one-time reset", logRec{
			Window:      store.Window{Start: t0, End: t0.Add(time.Hour)},
			ModelBudget: "m", ModelWindow: store.Window{Start: t0, Reset: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.rec.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got logRec
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if d := cmp.Diff(tt.rec, got); d != "" {
				t.Errorf("round trip (-want +got):\n%s", d)
			}
		})
	}
}

// TestDecodeFormat1: records written before budget windows still read.
func TestDecodeFormat1(t *testing.T) {
	cust := customerRec{Alias: ptr("Alice"), Spend: 5, BudgetID: ptr("pro"), CreatedAt: t0, UpdatedAt: t0}
	b, err := cust.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	b[0] = customerFormatV1 // without window fields the layouts are the same
	var gotCust customerRec
	if err := gotCust.UnmarshalBinary(b); err != nil {
		t.Fatalf("format 1 customer: %v", err)
	}
	if d := cmp.Diff(cust, gotCust); d != "" {
		t.Errorf("format 1 customer (-want +got):\n%s", d)
	}
	l := logRec{CustomerID: "alice", Model: "m", Cost: 7, Unpriced: true, StartTime: t0, EndTime: t0}
	if b, err = l.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	b[0] = logFormatV1
	var gotLog logRec
	if err := gotLog.UnmarshalBinary(b); err != nil {
		t.Fatalf("format 1 log: %v", err)
	}
	if d := cmp.Diff(l, gotLog); d != "" {
		t.Errorf("format 1 log (-want +got):\n%s", d)
	}
}

func TestDecodeRejectsCorrupt(t *testing.T) {
	good, err := customerRec{Alias: ptr("Alice"), Spend: 5, CreatedAt: t0}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	goodLog, err := logRec{Model: "m", StartTime: t0}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		b    []byte
		log  bool
	}{
		{"empty", nil, false},
		{"unknown format", append([]byte{9}, good[1:]...), false},
		{"truncated", good[:len(good)-1], false},
		{"trailing byte", append(append([]byte{}, good...), 0), false},
		{"flag without its string", []byte{customerFormat, flagAlias, 0, 0, 0, 0, 0}, false},
		{"nanoseconds out of range", append(binary.AppendUvarint([]byte{customerFormat, 0, 0, 0}, 1e9), 0, 0), false},
		{"log empty", nil, true},
		{"log truncated", goodLog[:len(goodLog)-2], true},
		{"log string longer than record", []byte{logFormat, 0, 100, 'a'}, true},
		{"window flag in format 1", append([]byte{customerFormatV1, flagWindowEnd}, good[2:]...), false},
		{"model spend count of zero", append(append([]byte{customerFormat, flagModelSpend}, good[2:]...), 0), false},
		{"log window flag in format 1", append([]byte{logFormatV1, flagWindow}, goodLog[2:]...), true},
		{"log window reset without a window", append([]byte{logFormat, flagWindowReset}, goodLog[2:]...), true},
		{"log empty model budget", append(append([]byte{logFormat, flagModelBudget}, goodLog[2:]...), 0, 0, 0, 0, 0, 0, 0), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.log {
				err = new(logRec).UnmarshalBinary(tt.b)
			} else {
				err = new(customerRec).UnmarshalBinary(tt.b)
			}
			if !errors.Is(err, errCorrupt) {
				t.Errorf("error = %v, want errCorrupt", err)
			}
		})
	}
}

// FuzzCustomerRec: decoding never panics, and what decodes re-encodes to a
// record that decodes the same.
func FuzzCustomerRec(f *testing.F) {
	for _, r := range []customerRec{{}, {Alias: ptr("a"), BudgetID: ptr(""), Spend: -3, Blocked: true, CreatedAt: t0},
		{Spend: 1, WindowEnd: t0, ModelSpend: map[string]store.ModelSpend{"m": {Spend: 2, WindowEnd: t0}}}} {
		b, _ := r.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{customerFormat, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r customerRec
		if r.UnmarshalBinary(b) != nil {
			return
		}
		again, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var r2 customerRec
		if err := r2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if d := cmp.Diff(r, r2); d != "" {
			t.Errorf("(-first +second):\n%s", d)
		}
	})
}

func FuzzLogRec(f *testing.F) {
	for _, r := range []logRec{{}, {CustomerID: "c", Model: "m", Cost: 9, Estimated: true, StartTime: t0, EndTime: preEpoch},
		{Window: store.Window{Start: t0, End: t0, Reset: true}, ModelBudget: "m", ModelWindow: store.Window{End: t0}}} {
		b, _ := r.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{logFormat, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r logRec
		if r.UnmarshalBinary(b) != nil {
			return
		}
		again, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var r2 logRec
		if err := r2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if d := cmp.Diff(r, r2); d != "" {
			t.Errorf("(-first +second):\n%s", d)
		}
	})
}
