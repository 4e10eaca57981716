package store

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// Nano is an amount of money in nano-USD (1e-9 USD). All sums are integer sums;
// float USD appears only at the JSON edge.
type Nano int64

// NanoPerUSD is the number of Nano in one US dollar.
const NanoPerUSD = 1_000_000_000

// maxUSD is the largest amount NanoFromUSD accepts: about 9.2 billion USD fits in
// int64 nano-USD; we stop well before the edge.
const maxUSD = 1e9

// ErrBadAmount means a USD amount is NaN, infinite, or too large.
var ErrBadAmount = errors.New("amount must be a finite number of at most 1e9 USD")

// NanoFromUSD converts a USD amount to Nano, rounding half away from zero.
func NanoFromUSD(usd float64) (Nano, error) {
	if math.IsNaN(usd) || math.IsInf(usd, 0) || math.Abs(usd) > maxUSD {
		return 0, ErrBadAmount
	}
	return Nano(math.Round(usd * NanoPerUSD)), nil
}

// USD returns the amount in US dollars, for display and JSON only.
func (n Nano) USD() float64 { return float64(n) / NanoPerUSD }

// String formats the amount in USD the way Python's repr(float) does
// ("0.0", "4.0", "0.001413", "1e-05"), which LiteLLM's messages use.
func (n Nano) String() string { return PyFloat(n.USD()) }

// PyFloat formats f like Python's repr(float).
func PyFloat(f float64) string {
	if f == 0 {
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	// Python switches to exponent notation below 1e-4 and from 1e16 on.
	if exp < -4 || exp >= 16 {
		return e
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return s
		}
	}
	return s + ".0"
}
