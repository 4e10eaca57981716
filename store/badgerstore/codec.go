package badgerstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/tollgate-dev/tollgate/store"
)

// Customers and spend logs are written on every RecordSpend, so they use this
// compact binary form (about ten times cheaper than encoding/json, mostly for
// the times). Budgets are admin-only and nested, so they stay JSON.
//
// A record is a format byte, a flags byte, then fields in a fixed order:
// integers as varints, strings as length-prefixed bytes, times as varint Unix
// seconds plus nanoseconds. A new field means a new format byte; older
// formats stay readable.
const (
	customerFormat byte = 2 // 1 + budget windows (WindowEnd, ModelSpend)
	logFormat      byte = 2 // 1 + budget windows (Window, ModelBudget, ModelWindow)
)

// The formats before budget windows: the same fields without the window ones.
const (
	customerFormatV1 byte = 1
	logFormatV1      byte = 1
)

// Customer flags: Blocked, then which optional fields follow.
const (
	flagBlocked = 1 << iota
	flagAlias
	flagRegion
	flagDefaultModel
	flagBudgetID
	flagWindowEnd  // format 2
	flagModelSpend // format 2
)

// Spend log flags.
const (
	flagUnpriced = 1 << iota
	flagEstimated
	flagWindow      // format 2: Window's start and end follow
	flagWindowReset // format 2
	flagModelBudget // format 2: ModelBudget and ModelWindow follow
	flagModelWindowReset
)

var errCorrupt = errors.New("corrupt record")

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendStamp(b []byte, t time.Time) []byte {
	return binary.AppendUvarint(binary.AppendVarint(b, t.Unix()), uint64(t.Nanosecond()))
}

func (r customerRec) MarshalBinary() ([]byte, error) {
	var flags byte
	if r.Blocked {
		flags |= flagBlocked
	}
	b := make([]byte, 2, 48)
	b[0] = customerFormat
	b = binary.AppendVarint(b, int64(r.Spend))
	b = appendStamp(b, r.CreatedAt)
	b = appendStamp(b, r.UpdatedAt)
	for _, f := range []struct {
		flag byte
		s    *string
	}{{flagAlias, r.Alias}, {flagRegion, r.AllowedModelRegion}, {flagDefaultModel, r.DefaultModel}, {flagBudgetID, r.BudgetID}} {
		if f.s != nil {
			flags |= f.flag
			b = appendString(b, *f.s)
		}
	}
	if !r.WindowEnd.IsZero() {
		flags |= flagWindowEnd
		b = appendStamp(b, r.WindowEnd)
	}
	if len(r.ModelSpend) > 0 {
		flags |= flagModelSpend
		b = binary.AppendUvarint(b, uint64(len(r.ModelSpend)))
		// Sorted, so the same record always encodes to the same bytes.
		for _, model := range slices.Sorted(maps.Keys(r.ModelSpend)) {
			ms := r.ModelSpend[model]
			b = appendString(b, model)
			b = binary.AppendVarint(b, int64(ms.Spend))
			b = appendStamp(b, ms.WindowEnd)
		}
	}
	b[1] = flags
	return b, nil
}

func (r *customerRec) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	format := d.byte()
	if format != customerFormat && format != customerFormatV1 {
		return fmt.Errorf("%w: unknown customer format", errCorrupt)
	}
	flags := d.byte()
	if format == customerFormatV1 && flags&(flagWindowEnd|flagModelSpend) != 0 {
		return fmt.Errorf("%w: window fields in a format 1 customer", errCorrupt)
	}
	*r = customerRec{
		Spend:     store.Nano(d.varint()),
		CreatedAt: d.stamp(),
		UpdatedAt: d.stamp(),
		Blocked:   flags&flagBlocked != 0,
	}
	r.Alias = d.optString(flags, flagAlias)
	r.AllowedModelRegion = d.optString(flags, flagRegion)
	r.DefaultModel = d.optString(flags, flagDefaultModel)
	r.BudgetID = d.optString(flags, flagBudgetID)
	if flags&flagWindowEnd != 0 {
		r.WindowEnd = d.stamp()
	}
	if flags&flagModelSpend != 0 {
		n := d.uvarint()
		if n == 0 || n > uint64(len(d.b)) {
			return fmt.Errorf("%w: model spend count", errCorrupt)
		}
		r.ModelSpend = make(map[string]store.ModelSpend, n)
		for range n {
			model := d.string()
			r.ModelSpend[model] = store.ModelSpend{Spend: store.Nano(d.varint()), WindowEnd: d.stamp()}
		}
	}
	return d.done()
}

func (r logRec) MarshalBinary() ([]byte, error) {
	var flags byte
	if r.Unpriced {
		flags |= flagUnpriced
	}
	if r.Estimated {
		flags |= flagEstimated
	}
	b := make([]byte, 0, 96+len(r.ClientRequestID)+len(r.CustomerID)+len(r.Model)+len(r.Path))
	b = append(b, logFormat, flags)
	b = appendString(b, r.ClientRequestID)
	b = appendString(b, r.CustomerID)
	b = appendString(b, r.Model)
	b = appendString(b, r.Path)
	for _, v := range []int64{
		r.PromptTokens, r.CompletionTokens, r.TotalTokens, r.CacheReadTokens,
		r.CacheCreationTokens, r.ReasoningTokens, int64(r.Cost),
	} {
		b = binary.AppendVarint(b, v)
	}
	b = appendStamp(b, r.StartTime)
	b = appendStamp(b, r.EndTime)
	if r.Window != (store.Window{}) {
		b[1] |= flagWindow
		if r.Window.Reset {
			b[1] |= flagWindowReset
		}
		b = appendStamp(appendStamp(b, r.Window.Start), r.Window.End)
	}
	if r.ModelBudget != "" {
		b[1] |= flagModelBudget
		if r.ModelWindow.Reset {
			b[1] |= flagModelWindowReset
		}
		b = appendString(b, r.ModelBudget)
		b = appendStamp(appendStamp(b, r.ModelWindow.Start), r.ModelWindow.End)
	}
	return b, nil
}

func (r *logRec) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	format := d.byte()
	if format != logFormat && format != logFormatV1 {
		return fmt.Errorf("%w: unknown spend log format", errCorrupt)
	}
	flags := d.byte()
	const v2 = flagWindow | flagWindowReset | flagModelBudget | flagModelWindowReset
	if format == logFormatV1 && flags&v2 != 0 || flags&flagWindowReset != 0 && flags&flagWindow == 0 ||
		flags&flagModelWindowReset != 0 && flags&flagModelBudget == 0 {
		return fmt.Errorf("%w: spend log flags", errCorrupt)
	}
	*r = logRec{
		ClientRequestID:     d.string(),
		CustomerID:          d.string(),
		Model:               d.string(),
		Path:                d.string(),
		PromptTokens:        d.varint(),
		CompletionTokens:    d.varint(),
		TotalTokens:         d.varint(),
		CacheReadTokens:     d.varint(),
		CacheCreationTokens: d.varint(),
		ReasoningTokens:     d.varint(),
		Cost:                store.Nano(d.varint()),
		StartTime:           d.stamp(),
		EndTime:             d.stamp(),
		Unpriced:            flags&flagUnpriced != 0,
		Estimated:           flags&flagEstimated != 0,
	}
	if flags&flagWindow != 0 {
		r.Window = store.Window{Start: d.stamp(), End: d.stamp(), Reset: flags&flagWindowReset != 0}
	}
	if flags&flagModelBudget != 0 {
		if r.ModelBudget = d.string(); r.ModelBudget == "" {
			return fmt.Errorf("%w: empty model budget", errCorrupt)
		}
		r.ModelWindow = store.Window{Start: d.stamp(), End: d.stamp(), Reset: flags&flagModelWindowReset != 0}
	}
	return d.done()
}

// decoder reads fields in order; after the first malformed field every read
// returns a zero value and done reports the error.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) byte() byte {
	if d.bad || len(d.b) == 0 {
		d.bad = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) varint() int64 {
	if d.bad {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.bad {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.b)) {
		d.bad = true
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) optString(flags, flag byte) *string {
	if flags&flag == 0 {
		return nil
	}
	s := d.string()
	return &s
}

func (d *decoder) stamp() time.Time {
	sec, nsec := d.varint(), d.uvarint()
	if nsec >= 1e9 {
		d.bad = true
	}
	if d.bad {
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

func (d *decoder) done() error {
	if d.bad || len(d.b) != 0 {
		return errCorrupt
	}
	return nil
}

// Event records: the outbox is written on every priced request.
const (
	eventFormat byte = 1
	marksFormat byte = 1
)

// Event flags: which optional fields follow.
const (
	flagMaxBudget = 1 << iota
	flagSoftBudget
	flagToken
	flagProjectedSpend
	flagProjectedDate
)

func (r eventRec) MarshalBinary() ([]byte, error) {
	var flags byte
	b := make([]byte, 2, 96+len(r.Type)+len(r.CustomerID)+len(r.RequestID)+len(r.Message)+len(r.LastError))
	b[0] = eventFormat
	b = appendString(b, r.Type)
	b = appendString(b, r.CustomerID)
	b = appendString(b, r.RequestID)
	b = binary.AppendVarint(b, int64(r.Spend))
	for _, f := range []struct {
		flag byte
		n    *store.Nano
	}{{flagMaxBudget, r.MaxBudget}, {flagSoftBudget, r.SoftBudget}, {flagProjectedSpend, r.ProjectedSpend}} {
		if f.n != nil {
			flags |= f.flag
			b = binary.AppendVarint(b, int64(*f.n))
		}
	}
	if r.Token != nil {
		flags |= flagToken
		b = appendString(b, *r.Token)
	}
	if r.ProjectedDate != nil {
		flags |= flagProjectedDate
		b = appendStamp(b, *r.ProjectedDate)
	}
	b = appendString(b, r.Message)
	b = appendStamp(b, r.CreatedAt)
	b = binary.AppendUvarint(b, uint64(r.Attempts))
	b = appendString(b, r.LastError)
	b = appendStamp(b, r.DeadAt)
	b[1] = flags
	return b, nil
}

func (r *eventRec) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	if d.byte() != eventFormat {
		return fmt.Errorf("%w: unknown event format", errCorrupt)
	}
	flags := d.byte()
	*r = eventRec{
		Type:       d.string(),
		CustomerID: d.string(),
		RequestID:  d.string(),
		Spend:      store.Nano(d.varint()),
	}
	r.MaxBudget = d.optNano(flags, flagMaxBudget)
	r.SoftBudget = d.optNano(flags, flagSoftBudget)
	r.ProjectedSpend = d.optNano(flags, flagProjectedSpend)
	r.Token = d.optString(flags, flagToken)
	if flags&flagProjectedDate != 0 {
		t := d.stamp()
		r.ProjectedDate = &t
	}
	r.Message = d.string()
	r.CreatedAt = d.stamp()
	attempts := d.uvarint()
	if attempts > 1<<31 {
		d.bad = true
	}
	r.Attempts = int(attempts)
	r.LastError = d.string()
	r.DeadAt = d.stamp()
	return d.done()
}

func (d *decoder) optNano(flags, flag byte) *store.Nano {
	if flags&flag == 0 {
		return nil
	}
	n := store.Nano(d.varint())
	return &n
}

// marksRec is one customer's alert marks, written sorted by alert so the same
// marks always encode to the same bytes.
type marksRec store.AlertMarks

func (r marksRec) MarshalBinary() ([]byte, error) {
	b := []byte{marksFormat}
	b = binary.AppendUvarint(b, uint64(len(r)))
	for _, alert := range slices.Sorted(maps.Keys(r)) {
		m := r[alert]
		b = appendString(b, alert)
		b = appendString(b, m.Window)
		b = appendStamp(b, m.At)
	}
	return b, nil
}

func (r *marksRec) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	if d.byte() != marksFormat {
		return fmt.Errorf("%w: unknown alert marks format", errCorrupt)
	}
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return errCorrupt
	}
	m := make(marksRec, n)
	for range n {
		alert := d.string()
		m[alert] = store.AlertMark{Window: d.string(), At: d.stamp()}
	}
	*r = m
	return d.done()
}
