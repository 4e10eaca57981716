// Package window computes budget windows. It parses LiteLLM's budget_duration
// strings ("30s", "1d", "7d", "1mo", …) and, in a configured time zone, finds
// when a budget resets next (budget_reset_at) and which window an instant
// belongs to. Everything here is a pure function of its arguments: no clock,
// no background job, so a window ends exactly at its reset instant.
//
// Reset instants follow LiteLLM's get_next_standardized_reset_time
// (litellm/litellm_core_utils/duration_parser.py), evaluated in the zone:
//
//   - "1d" (and "24h", "1440m", "86400s"): the next local midnight.
//   - "7d" and "1w": the next Monday 00:00 (a week later when it is Monday).
//   - "30d" and "1mo": the 1st of the next month 00:00.
//   - other "Nd" and "Nw": local midnight today plus N (or 7N) days.
//   - "Ns", "Nm", "Nh" where N divides 60, 60 or 24: the next multiple of N
//     on the wall clock ("30s" resets at :00 and :30, "6h" at 00:00, 06:00, …).
//
// Where LiteLLM is undefined or its result is not a window of the stated
// length, tollgate differs on purpose:
//
//   - "Nmo" with N > 1 (LiteLLM raises ValueError): the 1st of the month N
//     months ahead.
//   - "Ns", "Nm", "Nh" where N does not divide 60, 60 or 24 (LiteLLM's wall
//     clock arithmetic wraps, so "48h" resets daily and "90m" hourly): exactly
//     N after the current second, and every N after that.
//   - "0…" durations and strings that do not parse (LiteLLM falls back to the
//     next midnight) are errors.
//
// Clock changes: day, week and month resets are local midnights, read as
// Python's zoneinfo reads them with fold=0 (which LiteLLM uses): a midnight a
// spring-forward change skips is the first instant of that day, a repeated one
// counts once. Second, minute and hour grids reset whenever the local clock
// shows a grid time, so an hour repeated by a fall-back change has its own
// resets and grid times a spring-forward change skips have none. (LiteLLM's wall-clock arithmetic gives
// different answers inside those hours depending on when its job runs; a
// window here never depends on that.)
package window

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

var (
	// ErrInvalid means a budget_duration string does not parse.
	ErrInvalid = errors.New("invalid budget_duration")
	// ErrTooLong means a budget_duration is longer than the longest accepted;
	// such an error is ErrInvalid too.
	ErrTooLong = errors.New("longer than about 100 years")
)

// Unit is the unit of a Duration.
type Unit uint8

// The units of budget_duration, in LiteLLM's spelling: s, m, h, d, w, mo.
const (
	Second Unit = iota + 1
	Minute
	Hour
	Day
	Week
	Month
)

// units maps each unit to its suffix and the largest count accepted: about
// 100 years, so reset instants stay far from the year 9999 that RFC 3339 and
// encoding/json can still write.
var units = [...]struct {
	suffix string
	max    int
}{
	Second: {"s", 3_155_760_000},
	Minute: {"m", 52_596_000},
	Hour:   {"h", 876_600},
	Day:    {"d", 36_525},
	Week:   {"w", 5_217},
	Month:  {"mo", 1_200},
}

// Duration is a parsed budget_duration: N of Unit.
type Duration struct {
	N    int
	Unit Unit
}

// Parse parses a budget_duration: a positive whole number without leading
// zeros followed by s, m, h, d, w or mo, nothing else (no spaces, no
// upper case).
func Parse(s string) (Duration, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	digits, suffix := s[:i], s[i:]
	if digits == "" || digits[0] == '0' || len(digits) > 10 {
		return Duration{}, invalid(s)
	}
	n, err := strconv.Atoi(digits)
	if err != nil {
		return Duration{}, invalid(s)
	}
	for u := Second; u <= Month; u++ {
		if units[u].suffix != suffix {
			continue
		}
		if n > units[u].max {
			return Duration{}, fmt.Errorf("%w %q: %w (at most %d%s)", ErrInvalid, s, ErrTooLong, units[u].max, suffix)
		}
		return Duration{N: n, Unit: u}, nil
	}
	return Duration{}, invalid(s)
}

func invalid(s string) error {
	return fmt.Errorf("%w %q: want a positive whole number followed by s, m, h, d, w or mo (e.g. \"30d\", \"1mo\")", ErrInvalid, s)
}

// String returns d in budget_duration syntax.
func (d Duration) String() string {
	if d.Unit < Second || d.Unit > Month {
		return strconv.Itoa(d.N) + "?"
	}
	return strconv.Itoa(d.N) + units[d.Unit].suffix
}

// kind is how a duration's reset instants are laid out.
type kind uint8

const (
	kindGrid   kind = iota + 1 // every n seconds of the wall-clock day, from 00:00
	kindDays                   // n days from local midnight
	kindWeek                   // Mondays 00:00
	kindMonths                 // the 1st of every n-th month 00:00
	kindFixed                  // exactly n seconds apart
)

// layout returns d's kind and its step: seconds for kindGrid and kindFixed,
// days for kindDays, months for kindMonths.
func (d Duration) layout() (kind, int64) {
	n := int64(d.N)
	switch d.Unit {
	case Second, Minute, Hour:
		unit, per := int64(1), int64(60)
		switch d.Unit {
		case Minute:
			unit = 60
		case Hour:
			unit, per = 3600, 24
		}
		switch {
		case n*unit == 86400:
			// "24h" is LiteLLM's daily reset, the same as "1d".
			return kindDays, 1
		case per%n == 0:
			return kindGrid, n * unit
		}
		return kindFixed, n * unit
	case Day:
		switch n {
		case 7:
			return kindWeek, 7
		case 30:
			return kindMonths, 1
		}
		return kindDays, n
	case Week:
		if n == 1 {
			return kindWeek, 7
		}
		return kindDays, 7 * n
	default:
		return kindMonths, n
	}
}

// Next returns the first reset of a budget with duration d that starts at t:
// the budget_reset_at LiteLLM's /budget/new computes. It is always after t.
// A nil loc means UTC.
func (d Duration) Next(t time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	k, step := d.layout()
	y, mo, day := lt.Date()
	switch k {
	case kindGrid:
		return gridNext(lt, step)
	case kindDays:
		return resolve(y, mo, day+int(step), 0, loc)
	case kindWeek:
		// Python's weekday(): Monday is 0.
		toMonday := (7 - (int(lt.Weekday())+6)%7) % 7
		if toMonday == 0 {
			toMonday = 7
		}
		return resolve(y, mo, day+toMonday, 0, loc)
	case kindMonths:
		return resolve(y, mo+time.Month(step), 1, 0, loc)
	default:
		return t.Truncate(time.Second).Add(time.Duration(step) * time.Second).In(loc)
	}
}

// Span is one budget window: spend recorded in it counts until End.
type Span struct {
	// Start is the reset that opened the window. It is zero for the window
	// that ends at the budget's stored reset, which no reset opened.
	Start time.Time
	End   time.Time
}

// Current returns the window that contains t, for a budget with duration d
// whose stored reset (budget_reset_at) is resetAt. Windows run back to back:
// the first ends at resetAt, each next one at Next of the previous end, so a
// resetAt long past is advanced by whole windows, never by when somebody
// looked. A nil loc means UTC.
func (d Duration) Current(resetAt, t time.Time, loc *time.Location) Span {
	if loc == nil {
		loc = time.UTC
	}
	if t.Before(resetAt) {
		return Span{End: resetAt.In(loc)}
	}
	first := d.Next(resetAt, loc)
	if t.Before(first) {
		return Span{Start: resetAt.In(loc), End: first}
	}
	k, step := d.layout()
	switch k {
	case kindDays:
		// Windows are whole days from the first reset's date: the k-th after
		// it (k >= 1) runs from date+step*k to date+step*(k+1).
		y, mo, day := resetAt.In(loc).Date()
		k := (civilDay(t.In(loc).Date()) - civilDay(y, mo, day)) / step
		return Span{Start: resolve(y, mo, day+int(step*k), 0, loc), End: resolve(y, mo, day+int(step*(k+1)), 0, loc)}
	case kindMonths:
		y, mo, _ := resetAt.In(loc).Date()
		ty, tmo, _ := t.In(loc).Date()
		k := (int64(ty-y)*12 + int64(tmo-mo)) / step
		return Span{Start: resolve(y, mo+time.Month(step*k), 1, 0, loc), End: resolve(y, mo+time.Month(step*(k+1)), 1, 0, loc)}
	case kindFixed:
		start := first.Unix() + (t.Unix()-first.Unix())/step*step
		return Span{Start: time.Unix(start, 0).In(loc), End: time.Unix(start+step, 0).In(loc)}
	case kindWeek:
		y, mo, day := t.In(loc).Date()
		monday := resolve(y, mo, day-(int(t.In(loc).Weekday())+6)%7, 0, loc)
		return Span{Start: monday, End: d.Next(t, loc)}
	default:
		// Grid resets do not depend on where the windows began.
		return Span{Start: gridPrev(t.In(loc), step), End: d.Next(t, loc)}
	}
}

// Prev returns the reset before end on d's schedule: where a window of d
// that ends at end began. For an end on the schedule, Next(Prev(end)) is end.
// It dates the first window of a budget, which no reset opened. A nil loc
// means UTC.
func (d Duration) Prev(end time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	le := end.In(loc)
	k, step := d.layout()
	y, mo, day := le.Date()
	switch k {
	case kindGrid:
		return gridPrev(le.Add(-time.Nanosecond), step)
	case kindDays:
		return resolve(y, mo, day-int(step), 0, loc)
	case kindWeek:
		monday := day - (int(le.Weekday())+6)%7
		if m := resolve(y, mo, monday, 0, loc); m.Before(end) {
			return m
		}
		return resolve(y, mo, monday-7, 0, loc)
	case kindMonths:
		if first := resolve(y, mo, 1, 0, loc); first.Before(end) {
			return resolve(y, mo-time.Month(step-1), 1, 0, loc)
		}
		return resolve(y, mo-time.Month(step), 1, 0, loc)
	default:
		return end.Truncate(time.Second).Add(-time.Duration(step) * time.Second).In(loc)
	}
}

// gridNext returns the first instant after t at which t's location shows a
// multiple of step seconds since local midnight. step divides a day, so within
// one zone period (one UTC offset) those instants are step seconds apart.
func gridNext(t time.Time, step int64) time.Time {
	x := t
	for {
		_, off := x.Zone()
		_, end := x.ZoneBounds()
		wall := x.Unix() + int64(off)
		next := floorDiv(wall, step)*step + step - int64(off)
		if end.IsZero() || next < end.Unix() {
			return time.Unix(next, 0).In(t.Location())
		}
		// The clock changes first. The change's instant is a reset when the
		// new wall clock shows a grid time; otherwise look on from there.
		_, offEnd := end.Zone()
		if (end.Unix()+int64(offEnd))%step == 0 {
			return end
		}
		x = end
	}
}

// gridPrev returns the last instant at or before t at which t's location
// showed a multiple of step seconds since local midnight: gridNext backwards.
func gridPrev(t time.Time, step int64) time.Time {
	x := t
	for {
		_, off := x.Zone()
		start, _ := x.ZoneBounds()
		prev := floorDiv(x.Unix()+int64(off), step)*step - int64(off)
		if start.IsZero() || prev >= start.Unix() {
			return time.Unix(prev, 0).In(t.Location())
		}
		// The clock changed after the last grid time of the old period: the
		// change's instant counts when the new wall clock shows a grid time.
		if (start.Unix()+int64(off))%step == 0 {
			return start
		}
		x = start.Add(-time.Second)
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// civilDay numbers calendar days, so that the difference of two is the number
// of days between them whatever the time zone did in between.
func civilDay(y int, mo time.Month, d int) int64 {
	return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
}

// resolve returns the instant at which loc's wall clock shows the given date
// and second of the day (both may overflow; they are normalised), choosing as
// Python's zoneinfo does with fold=0: a time repeated by a fall-back change is
// its first occurrence, and a time skipped by a spring-forward change is read
// with the UTC offset from before the change. time.Date leaves both cases
// unspecified (and differs in practice).
func resolve(y int, mo time.Month, d, secOfDay int, loc *time.Location) time.Time {
	wall := time.Date(y, mo, d, 0, 0, secOfDay, 0, time.UTC)
	w := wall.Unix()
	t := time.Date(wall.Year(), wall.Month(), wall.Day(), wall.Hour(), wall.Minute(), wall.Second(), 0, loc)
	_, off := t.Zone()
	start, _ := t.ZoneBounds()
	if tw := wallSeconds(t); tw != w {
		// A skipped time. Go picked an instant next to the gap: before it
		// (its wall clock reads earlier, and its offset is the one before the
		// change) or after it.
		before := off
		if tw > w {
			_, before = start.Add(-time.Nanosecond).Zone()
		}
		return time.Unix(w-int64(before), 0).In(loc)
	}
	// A repeated time has its earlier occurrence in the previous period.
	if !start.IsZero() {
		_, prev := start.Add(-time.Nanosecond).Zone()
		if e := time.Unix(w-int64(prev), 0).In(loc); e.Before(start) && wallSeconds(e) == w {
			return e
		}
	}
	return t
}

// wallSeconds is t's wall clock, to the second, counted as if it were UTC.
func wallSeconds(t time.Time) int64 {
	_, off := t.Zone()
	return t.Unix() + int64(off)
}
