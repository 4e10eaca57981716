package store

import (
	"errors"
	"math"
	"testing"
)

func TestPyFloat(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0.0"},
		{4, "4.0"},
		{0.001413, "0.001413"},
		{0.0001, "0.0001"},
		{0.00001, "1e-05"},
		{8e-05, "8e-05"},
		{123456789, "123456789.0"},
		{1e16, "1e+16"},
		{9999999999999998, "9999999999999998.0"},
		{-2.5, "-2.5"},
	}
	for _, tt := range tests {
		if got := PyFloat(tt.in); got != tt.want {
			t.Errorf("PyFloat(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNanoFromUSD(t *testing.T) {
	tests := []struct {
		in      float64
		want    Nano
		wantErr bool
	}{
		{0, 0, false},
		{4, 4_000_000_000, false},
		{0.001413, 1_413_000, false},
		{1.5e-9, 2, false},
		{0.4e-9, 0, false},
		{-1, -1_000_000_000, false},
		{math.NaN(), 0, true},
		{math.Inf(1), 0, true},
		{2e9, 0, true},
	}
	for _, tt := range tests {
		got, err := NanoFromUSD(tt.in)
		if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrBadAmount)) {
			t.Errorf("NanoFromUSD(%v) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("NanoFromUSD(%v) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
