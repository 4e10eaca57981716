package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/window"
)

// maxIDBytes bounds customer and budget ids: they become store keys and log
// fields, so an unbounded id is a cheap way to bloat both.
const maxIDBytes = 512

var (
	// decimalRE is the numeric-string syntax accepted for money: plain decimals,
	// so "NaN", "inf", hex floats and Go's digit separators are rejected.
	decimalRE = regexp.MustCompile(`^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$`)
)

// body is a request's JSON object decoded one level deep. Members stay raw so a
// handler can tell an absent field from an explicit null (/budget/update clears
// on null and keeps on absent), and unknown fields are simply never looked at.
// env is the route's envelope: it decides how field errors are rendered.
type body struct {
	env    envelope
	fields map[string]json.RawMessage
}

// readBody reads and decodes the request body as one JSON object, within limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, env envelope, limit int64) (body, error) {
	tooLarge := inEnv(env, http.StatusRequestEntityTooLarge, typeBadRequestError, "",
		fmt.Sprintf("Request body too large: the limit is %d bytes.", limit))
	if r.ContentLength > limit {
		return body{}, tooLarge
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return body{}, tooLarge
		}
		e := inEnv(env, http.StatusBadRequest, typeBadRequest, "", "Could not read the request body.")
		e.cause = fmt.Errorf("read body: %w", err)
		return body{}, e
	}
	return parseBody(data, env)
}

// parseBody decodes data as one JSON object.
func parseBody(data []byte, env envelope) (body, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		msg := "Malformed JSON in request body: " + err.Error()
		if _, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			msg = "Request body must be a JSON object."
		}
		return body{}, inEnv(env, http.StatusBadRequest, typeBadRequest, "", msg)
	}
	if fields == nil { // the body was the literal null
		return body{}, inEnv(env, http.StatusBadRequest, typeBadRequest, "", "Request body must be a JSON object.")
	}
	return body{env: env, fields: fields}, nil
}

// value returns member name as raw JSON, and whether it is present and not null.
func (b body) value(name string) (json.RawMessage, bool) {
	raw, ok := b.fields[name]
	if !ok || isNull(raw) {
		return nil, false
	}
	return raw, true
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(raw, []byte("null")) }

// missing reports an absent required field: FastAPI's 422 in the error
// envelope, a plain 400 in the detail envelope.
func (b body) missing(name string) *apiError {
	if b.env == envDetail {
		return detailEnv(http.StatusBadRequest, name+" is required")
	}
	return errorEnv(http.StatusUnprocessableEntity, typeBadRequestError, name, name+" is required")
}

// wrongType reports a member of the wrong JSON type, as pydantic would (422).
func (b body) wrongType(name, want string) *apiError {
	msg := fmt.Sprintf("%s must be %s", name, want)
	if b.env == envDetail {
		return detailEnv(http.StatusBadRequest, msg)
	}
	return errorEnv(http.StatusUnprocessableEntity, typeBadRequestError, name, msg)
}

// invalid reports a member whose value breaks a rule (400).
func (b body) invalid(name, msg string) *apiError {
	return inEnv(b.env, http.StatusBadRequest, typeBadRequest, name, msg)
}

// str returns an optional string member (nil when absent or null).
func (b body) str(name string) (*string, error) {
	raw, ok := b.value(name)
	if !ok {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, b.wrongType(name, "a string")
	}
	return &s, nil
}

// boolean returns an optional boolean member (nil when absent or null).
func (b body) boolean(name string) (*bool, error) {
	raw, ok := b.value(name)
	if !ok {
		return nil, nil
	}
	var v bool
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, b.wrongType(name, "a boolean")
	}
	return &v, nil
}

// id returns a required id member, checked with checkID.
func (b body) id(name string) (string, error) {
	if _, ok := b.value(name); !ok {
		return "", b.missing(name)
	}
	s, err := b.str(name)
	if err != nil {
		return "", err
	}
	if msg := checkID(name, *s); msg != "" {
		return "", b.invalid(name, msg)
	}
	return *s, nil
}

// ids returns a required list of ids; an empty list is refused with emptyMsg.
func (b body) ids(name, emptyMsg string) ([]string, error) {
	raw, ok := b.value(name)
	if !ok {
		return nil, b.missing(name)
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, b.wrongType(name, "a list of strings")
	}
	if len(list) == 0 {
		return nil, b.invalid(name, emptyMsg)
	}
	for _, s := range list {
		if msg := checkID(name, s); msg != "" {
			return nil, b.invalid(name, msg)
		}
	}
	return list, nil
}

// checkID returns why s cannot be an id, or "".
func checkID(name, s string) string {
	switch {
	case strings.TrimSpace(s) == "":
		return name + " must be a non-empty string that is not only whitespace"
	case len(s) > maxIDBytes:
		return fmt.Sprintf("%s must be at most %d bytes, got %d", name, maxIDBytes, len(s))
	}
	return ""
}

// money returns an optional USD amount member.
func (b body) money(name string) (*store.Nano, error) {
	raw, ok := b.value(name)
	if !ok {
		return nil, nil
	}
	n, msg := parseUSD(name, raw)
	if msg != "" {
		return nil, b.invalid(name, msg)
	}
	return &n, nil
}

// region returns the optional allowed_model_region, which LiteLLM types as Literal["eu","us"].
func (b body) region() (*string, error) {
	const name = "allowed_model_region"
	s, err := b.str(name)
	if err != nil || s == nil {
		return nil, err
	}
	if *s != "eu" && *s != "us" {
		return nil, b.invalid(name, fmt.Sprintf("allowed_model_region must be 'eu' or 'us'. Received: %s", *s))
	}
	return s, nil
}

// parseUSD accepts a JSON number or a numeric string, as pydantic's lax float
// does, and returns a problem message (with LiteLLM's wording) instead of an error.
func parseUSD(name string, raw json.RawMessage) (store.Nano, string) {
	received := string(raw)
	var f float64
	switch {
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil || !decimalRE.MatchString(s) {
			return 0, fmt.Sprintf("%s must be a non-negative finite number. Received: %s", name, s)
		}
		// ParseFloat yields ±Inf with a range error on overflow; the checks below catch it.
		f, _ = strconv.ParseFloat(s, 64)
		received = pyFloat(f)
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		f, _ = strconv.ParseFloat(string(raw), 64)
		received = pyFloat(f)
	default:
		return 0, fmt.Sprintf("%s must be a non-negative finite number. Received: %s", name, received)
	}
	// NaN cannot get here: neither JSON numbers nor decimalRE strings parse to it.
	if math.IsInf(f, 0) || f < 0 {
		return 0, fmt.Sprintf("%s must be a non-negative finite number. Received: %s", name, received)
	}
	n, err := store.NanoFromUSD(f)
	if err != nil { // only the store's ceiling is left to trip
		return 0, fmt.Sprintf("%s must be at most 1000000000.0 USD. Received: %s", name, received)
	}
	return n, ""
}

// pyFloat is store.PyFloat extended to the infinities that overflowing input
// parses to, which Python prints as inf and -inf.
func pyFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return store.PyFloat(f)
}

// parseCount accepts a JSON integer (or an integral number such as 10.0) or an
// integer string, at least 0.
func parseCount(name string, raw json.RawMessage) (int64, string) {
	bad := fmt.Sprintf("%s must be a non-negative integer. Received: %s", name, raw)
	text := string(raw)
	if raw[0] == '"' {
		if json.Unmarshal(raw, &text) != nil {
			return 0, bad
		}
		bad = fmt.Sprintf("%s must be a non-negative integer. Received: %s", name, text)
	} else if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return 0, bad
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		if raw[0] == '"' {
			return 0, bad
		}
		// An integral float such as 1e3 or 10.0, which pydantic accepts as an int.
		f, ferr := strconv.ParseFloat(text, 64)
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) >= math.MaxInt64 {
			return 0, bad
		}
		n = int64(f)
	}
	if n < 0 {
		return 0, bad
	}
	return n, ""
}

// parseDuration checks a budget_duration string: what window.Parse accepts,
// so every stored duration has a schedule.
func parseDuration(name string, raw json.RawMessage) (string, string) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		_, err := window.Parse(s)
		switch {
		case err == nil:
			return s, ""
		case errors.Is(err, window.ErrTooLong):
			return "", fmt.Sprintf("%s must be at most about 100 years (36525d, 1200mo). Received: %s", name, s)
		}
	} else {
		s = string(raw)
	}
	return "", fmt.Sprintf("%s must be a positive whole number followed by s, m, h, d, w or mo (e.g. \"30d\", \"1mo\"). Received: %s", name, s)
}

// parseTime checks an RFC 3339 timestamp and returns it in UTC.
func parseTime(name string, raw json.RawMessage) (time.Time, string) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return t.UTC(), ""
		}
	} else {
		s = string(raw)
	}
	return time.Time{}, fmt.Sprintf("%s must be an RFC 3339 date-time such as \"2026-01-31T00:00:00Z\". Received: %s", name, s)
}

// column decodes one optional member into a field of an S. A value sets the
// field and an explicit null clears it. The write is returned rather than done
// so it can be replayed when the store retries a transaction.
type column[S any] struct {
	name string
	// decode returns the write raw implies, or a problem message naming label.
	decode func(label string, raw json.RawMessage) (func(*S), string)
}

func optional[S, V any](name string, field func(*S) **V, parse func(string, json.RawMessage) (V, string)) column[S] {
	return column[S]{name: name, decode: func(label string, raw json.RawMessage) (func(*S), string) {
		if isNull(raw) {
			return func(s *S) { *field(s) = nil }, ""
		}
		v, msg := parse(label, raw)
		return func(s *S) { *field(s) = &v }, msg
	}}
}

// budgetColumns are BudgetNewRequest's settable columns (all but budget_id), in its field order.
var budgetColumns = []column[store.Budget]{
	optional("max_budget", func(b *store.Budget) **store.Nano { return &b.MaxBudget }, parseUSD),
	optional("soft_budget", func(b *store.Budget) **store.Nano { return &b.SoftBudget }, parseUSD),
	optional("max_parallel_requests", func(b *store.Budget) **int64 { return &b.MaxParallelRequests }, parseCount),
	optional("tpm_limit", func(b *store.Budget) **int64 { return &b.TPMLimit }, parseCount),
	optional("rpm_limit", func(b *store.Budget) **int64 { return &b.RPMLimit }, parseCount),
	optional("budget_duration", func(b *store.Budget) **string { return &b.BudgetDuration }, parseDuration),
	{name: "model_max_budget", decode: func(label string, raw json.RawMessage) (func(*store.Budget), string) {
		var m map[string]store.ModelBudget // stays nil for an explicit null
		var msg string
		if !isNull(raw) {
			m, msg = parseModelBudgets(label, raw)
		}
		return func(b *store.Budget) { b.ModelMaxBudget = m }, msg
	}},
	optional("budget_reset_at", func(b *store.Budget) **time.Time { return &b.BudgetResetAt }, parseTime),
}

// modelBudgetColumns are the members of one model_max_budget entry (LiteLLM's BudgetConfig).
var modelBudgetColumns = []column[store.ModelBudget]{
	optional("max_budget", func(m *store.ModelBudget) **store.Nano { return &m.MaxBudget }, parseUSD),
	optional("budget_duration", func(m *store.ModelBudget) **string { return &m.BudgetDuration }, parseDuration),
	optional("tpm_limit", func(m *store.ModelBudget) **int64 { return &m.TPMLimit }, parseCount),
	optional("rpm_limit", func(m *store.ModelBudget) **int64 { return &m.RPMLimit }, parseCount),
}

// parseModelBudgets checks model_max_budget:
// {"<model>": {"max_budget": .., "budget_duration": .., "tpm_limit": .., "rpm_limit": ..}}.
func parseModelBudgets(name string, raw json.RawMessage) (map[string]store.ModelBudget, string) {
	var entries map[string]json.RawMessage
	if raw[0] != '{' || json.Unmarshal(raw, &entries) != nil {
		return nil, fmt.Sprintf(`%s must be an object mapping model names to limits, e.g. {"gpt-4o": {"max_budget": 10, "budget_duration": "1d"}}`, name)
	}
	out := make(map[string]store.ModelBudget, len(entries))
	// Sorted so that the problem reported does not depend on map order.
	for _, model := range slices.Sorted(maps.Keys(entries)) {
		if strings.TrimSpace(model) == "" {
			return nil, name + " model names must be non-empty"
		}
		label := fmt.Sprintf("%s[%q]", name, model)
		var members map[string]json.RawMessage
		if v := entries[model]; v[0] != '{' || json.Unmarshal(v, &members) != nil {
			return nil, label + ` must be an object such as {"max_budget": 10, "budget_duration": "1d"}`
		}
		var mb store.ModelBudget
		for _, c := range modelBudgetColumns {
			v, ok := members[c.name]
			if !ok {
				continue
			}
			write, msg := c.decode(label+"."+c.name, v)
			if msg != "" {
				return nil, msg
			}
			write(&mb)
		}
		out[model] = mb
	}
	return out, ""
}

// budgetPatch is the set of budget columns a request named.
type budgetPatch []func(*store.Budget)

func (p budgetPatch) apply(b *store.Budget) {
	for _, write := range p {
		write(b)
	}
}

// budgetPatch decodes the budget columns present in the body. set reports
// whether any of them holds a non-null value.
func (b body) budgetPatch() (p budgetPatch, set bool, err error) {
	for _, c := range budgetColumns {
		raw, ok := b.fields[c.name]
		if !ok {
			continue
		}
		write, msg := c.decode(c.name, raw)
		if msg != "" {
			return nil, false, b.invalid(c.name, msg)
		}
		p = append(p, write)
		set = set || !isNull(raw)
	}
	return p, set, nil
}
