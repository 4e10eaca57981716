package limits

import "fmt"

// Counting says which tokens count against tpm_limit: LiteLLM's
// general_settings.token_rate_limit_type.
type Counting uint8

// The ways of counting tokens against tpm_limit.
const (
	CountTotal  Counting = iota // prompt + completion (LiteLLM's current default)
	CountInput                  // prompt only
	CountOutput                 // completion only
)

// ParseCounting parses "total", "input" or "output"; "" means total.
// (LiteLLM quietly treats unknown values as total; a typo here is an error.)
func ParseCounting(s string) (Counting, error) {
	switch s {
	case "", "total":
		return CountTotal, nil
	case "input":
		return CountInput, nil
	case "output":
		return CountOutput, nil
	}
	return 0, fmt.Errorf("token_rate_limit_type %q: want total, input or output", s)
}

// String returns c's token_rate_limit_type name.
func (c Counting) String() string {
	switch c {
	case CountInput:
		return "input"
	case CountOutput:
		return "output"
	default:
		return "total"
	}
}

// Of returns the tokens that count for a request with the given prompt and
// completion tokens.
func (c Counting) Of(prompt, completion int64) int64 {
	switch c {
	case CountInput:
		return prompt
	case CountOutput:
		return completion
	default:
		return prompt + completion
	}
}
