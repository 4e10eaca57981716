package window

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func loadZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return loc
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustParse(t testing.TB, s string) Duration {
	t.Helper()
	d, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestParse(t *testing.T) {
	valid := []struct {
		in   string
		want Duration
	}{
		{"30s", Duration{30, Second}},
		{"30m", Duration{30, Minute}},
		{"30h", Duration{30, Hour}},
		{"1d", Duration{1, Day}},
		{"7d", Duration{7, Day}},
		{"30d", Duration{30, Day}},
		{"1mo", Duration{1, Month}},
		{"2w", Duration{2, Week}},
		{"24h", Duration{24, Hour}},
		{"1200mo", Duration{1200, Month}},
		{"36525d", Duration{36525, Day}},
		{"3155760000s", Duration{3155760000, Second}},
	}
	for _, tc := range valid {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("Parse(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			if s := got.String(); s != tc.in {
				t.Errorf("String() = %q, want %q", s, tc.in)
			}
		})
	}
	invalid := []string{
		"", "0", "0s", "0d", "00d", "01d", "30", "d", "mo", "-1d", "+1d", "1.5h", " 1d", "1d ", "1D", "1Mo",
		"1min", "1y", "1dd", "1mo1", "1 d", "36526d", "1201mo", "5218w", "876601h", "52596001m", "3155760001s",
		"99999999999999999999s", "12345678901s", "None", "null", "１d",
	}
	tooLong := map[string]bool{"36526d": true, "1201mo": true, "5218w": true, "876601h": true, "52596001m": true, "3155760001s": true}
	for _, in := range invalid {
		t.Run("invalid "+in, func(t *testing.T) {
			d, err := Parse(in)
			if !errors.Is(err, ErrInvalid) || errors.Is(err, ErrTooLong) != tooLong[in] {
				t.Errorf("Parse(%q) = %+v, %v; want ErrInvalid, ErrTooLong %v", in, d, err, tooLong[in])
			}
		})
	}
}

func TestDurationString(t *testing.T) {
	if got := (Duration{}).String(); got != "0?" {
		t.Errorf("zero Duration String() = %q, want %q", got, "0?")
	}
}

// nextCase is one Next expectation: times are RFC 3339 with the offset the
// zone shows, so each row reads as the wall clock it tests.
type nextCase struct {
	name, dur, at, want string
}

func runNext(t *testing.T, zone string, cases []nextCase) {
	t.Helper()
	loc := loadZone(t, zone)
	for _, tc := range cases {
		t.Run(zone+" "+tc.dur+" "+tc.name, func(t *testing.T) {
			at := mustTime(t, tc.at)
			got := mustParse(t, tc.dur).Next(at, loc)
			want := mustTime(t, tc.want)
			if !got.Equal(want) {
				t.Errorf("Next(%s) = %s (%s UTC), want %s", tc.at, got.Format(time.RFC3339), got.UTC().Format(time.RFC3339), tc.want)
			}
			if got.Location() != loc {
				t.Errorf("Next returned a time in %v, want %v", got.Location(), loc)
			}
		})
	}
}

func TestNextUTC(t *testing.T) {
	runNext(t, "UTC", []nextCase{
		{"mid second", "30s", "2024-05-14T10:17:45.5Z", "2024-05-14T10:18:00Z"},
		{"before half", "30s", "2024-05-14T10:17:10Z", "2024-05-14T10:17:30Z"},
		{"on a boundary", "30s", "2024-05-14T10:17:30Z", "2024-05-14T10:18:00Z"},
		{"month end", "30s", "2024-01-31T23:59:45Z", "2024-02-01T00:00:00Z"},
		{"year end", "30s", "2024-12-31T23:59:30Z", "2025-01-01T00:00:00Z"},
		{"next second", "1s", "2024-05-14T10:17:45.999Z", "2024-05-14T10:17:46Z"},
		{"uneven seconds are fixed", "7s", "2024-05-14T10:17:45.5Z", "2024-05-14T10:17:52Z"},
		{"quarter past", "30m", "2024-05-14T10:17:00Z", "2024-05-14T10:30:00Z"},
		{"half past", "30m", "2024-05-14T10:30:00Z", "2024-05-14T11:00:00Z"},
		{"minutes cross midnight", "30m", "2024-05-14T23:45:10Z", "2024-05-15T00:00:00Z"},
		{"last second of an hour", "15m", "2024-05-14T10:59:59Z", "2024-05-14T11:00:00Z"},
		{"uneven minutes are fixed", "90m", "2024-05-14T10:17:45.5Z", "2024-05-14T11:47:45Z"},
		{"hourly", "1h", "2024-05-14T10:00:00Z", "2024-05-14T11:00:00Z"},
		{"six hours cross midnight", "6h", "2024-05-14T22:00:00Z", "2024-05-15T00:00:00Z"},
		{"six hours", "6h", "2024-05-14T05:59:59Z", "2024-05-14T06:00:00Z"},
		{"half day", "12h", "2024-05-14T13:00:00Z", "2024-05-15T00:00:00Z"},
		{"24h is midnight, leap day", "24h", "2024-02-28T10:00:00Z", "2024-02-29T00:00:00Z"},
		{"30h crosses midnight", "30h", "2024-05-14T10:17:45.5Z", "2024-05-15T16:17:45Z"},
		{"48h over a leap day", "48h", "2024-02-28T23:00:00Z", "2024-03-01T23:00:00Z"},
		{"daily, leap year", "1d", "2024-02-28T10:00:00Z", "2024-02-29T00:00:00Z"},
		{"daily, common year", "1d", "2023-02-28T10:00:00Z", "2023-03-01T00:00:00Z"},
		{"daily, year end", "1d", "2024-12-31T23:59:59.9Z", "2025-01-01T00:00:00Z"},
		{"daily at midnight", "1d", "2024-05-14T00:00:00Z", "2024-05-15T00:00:00Z"},
		{"two days, leap year", "2d", "2024-02-28T10:00:00Z", "2024-03-01T00:00:00Z"},
		{"two days, common year", "2d", "2023-02-28T10:00:00Z", "2023-03-02T00:00:00Z"},
		{"ninety days", "90d", "2024-01-01T12:00:00Z", "2024-03-31T00:00:00Z"},
		{"weekly from Wednesday", "7d", "2024-05-15T10:00:00Z", "2024-05-20T00:00:00Z"},
		{"weekly from Monday midnight", "7d", "2024-05-13T00:00:00Z", "2024-05-20T00:00:00Z"},
		{"weekly from Sunday night", "7d", "2024-05-19T23:59:00Z", "2024-05-20T00:00:00Z"},
		{"1w is 7d", "1w", "2024-05-15T10:00:00Z", "2024-05-20T00:00:00Z"},
		{"two weeks from midnight", "2w", "2024-05-15T10:00:00Z", "2024-05-29T00:00:00Z"},
		{"30d is monthly", "30d", "2024-01-31T10:00:00Z", "2024-02-01T00:00:00Z"},
		{"30d from a leap day", "30d", "2024-02-29T23:59:59Z", "2024-03-01T00:00:00Z"},
		{"30d over the year end", "30d", "2024-12-15T00:00:00Z", "2025-01-01T00:00:00Z"},
		{"1mo on the 1st", "1mo", "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"},
		{"1mo at February's end, common year", "1mo", "2023-02-28T23:00:00Z", "2023-03-01T00:00:00Z"},
		{"two months over the year end", "2mo", "2024-11-15T00:00:00Z", "2025-01-01T00:00:00Z"},
		{"a year of months", "12mo", "2024-03-10T00:00:00Z", "2025-03-01T00:00:00Z"},
	})
}

func TestNextTokyo(t *testing.T) {
	runNext(t, "Asia/Tokyo", []nextCase{
		{"midnight is local", "1d", "2024-02-01T00:30:00+09:00", "2024-02-02T00:00:00+09:00"},
		{"late UTC evening is the next local day", "1d", "2024-01-31T15:30:00Z", "2024-02-02T00:00:00+09:00"},
		{"month starts locally", "1mo", "2024-02-01T01:00:00+09:00", "2024-03-01T00:00:00+09:00"},
		{"local month end", "1mo", "2024-01-31T23:00:00+09:00", "2024-02-01T00:00:00+09:00"},
		{"Monday locally, Sunday in UTC", "7d", "2024-05-20T00:00:00+09:00", "2024-05-27T00:00:00+09:00"},
		{"hour grid is local", "6h", "2024-05-15T05:00:00+09:00", "2024-05-15T06:00:00+09:00"},
		{"30s grid", "30s", "2024-05-15T23:59:59+09:00", "2024-05-16T00:00:00+09:00"},
	})
}

func TestNextHalfHourZones(t *testing.T) {
	runNext(t, "Asia/Kolkata", []nextCase{
		{"hour grid on the local clock", "1h", "2024-05-14T10:20:00+05:30", "2024-05-14T11:00:00+05:30"},
		{"half hour", "30m", "2024-05-14T10:20:00+05:30", "2024-05-14T10:30:00+05:30"},
		{"daily", "1d", "2024-05-14T23:59:00+05:30", "2024-05-15T00:00:00+05:30"},
	})
	runNext(t, "Asia/Kathmandu", []nextCase{
		{"hour grid on the local clock", "1h", "2024-05-14T10:17:00+05:45", "2024-05-14T11:00:00+05:45"},
	})
}

func TestNextNewYork(t *testing.T) {
	runNext(t, "America/New_York", []nextCase{
		{"day before spring forward", "1d", "2024-03-09T12:00:00-05:00", "2024-03-10T00:00:00-05:00"},
		{"spring-forward day is 23 hours", "1d", "2024-03-10T12:00:00-04:00", "2024-03-11T00:00:00-04:00"},
		{"fall-back day", "1d", "2024-11-03T12:00:00-05:00", "2024-11-04T00:00:00-05:00"},
		{"skipped 02:00 reads as 03:00 EDT", "1h", "2024-03-10T01:30:00-05:00", "2024-03-10T03:00:00-04:00"},
		{"a skipped grid time has no reset", "2h", "2024-03-10T01:30:00-05:00", "2024-03-10T04:00:00-04:00"},
		{"24h is 1d", "24h", "2024-03-09T12:00:00-05:00", "2024-03-10T00:00:00-05:00"},
		{"the repeated hour has its own reset", "1h", "2024-11-03T01:30:00-04:00", "2024-11-03T01:00:00-05:00"},
		{"second 01:30", "1h", "2024-11-03T01:30:00-05:00", "2024-11-03T02:00:00-05:00"},
		{"repeated half hour, first", "30m", "2024-11-03T01:10:00-04:00", "2024-11-03T01:30:00-04:00"},
		{"repeated half hour, second", "30m", "2024-11-03T01:10:00-05:00", "2024-11-03T01:30:00-05:00"},
		{"end of the first occurrence", "30m", "2024-11-03T01:40:00-04:00", "2024-11-03T01:00:00-05:00"},
		{"week over spring forward", "7d", "2024-03-06T12:00:00-05:00", "2024-03-11T00:00:00-04:00"},
		{"month in daylight time", "1mo", "2024-10-15T12:00:00-04:00", "2024-11-01T00:00:00-04:00"},
		{"month into standard time", "1mo", "2024-11-15T12:00:00-05:00", "2024-12-01T00:00:00-05:00"},
		{"fixed hours are absolute", "30h", "2024-03-09T12:00:00-05:00", "2024-03-10T19:00:00-04:00"},
		{"two days over spring forward", "2d", "2024-03-09T12:00:00-05:00", "2024-03-11T00:00:00-04:00"},
	})
}

func TestNextEurope(t *testing.T) {
	runNext(t, "Europe/London", []nextCase{
		{"first 01:00 of a fall-back day", "30m", "2024-10-27T00:50:00+01:00", "2024-10-27T01:00:00+01:00"},
		{"second 01:10", "30m", "2024-10-27T01:10:00+00:00", "2024-10-27T01:30:00+00:00"},
		{"first 01:40 is followed by the repeat", "30m", "2024-10-27T01:40:00+01:00", "2024-10-27T01:00:00+00:00"},
	})
	runNext(t, "Europe/Berlin", []nextCase{
		{"skipped 02:00 reads as 03:00 CEST", "1h", "2024-03-31T01:30:00+01:00", "2024-03-31T03:00:00+02:00"},
	})
}

func TestNextSantiago(t *testing.T) {
	// Chile moves its clocks at midnight, so some local days have no 00:00.
	runNext(t, "America/Santiago", []nextCase{
		{"skipped midnight is the day's first instant", "1d", "2024-09-07T12:00:00-04:00", "2024-09-08T01:00:00-03:00"},
		{"24h is 1d on a skipped midnight", "24h", "2024-09-07T12:00:00-04:00", "2024-09-08T01:00:00-03:00"},
		{"midnight after a repeated hour", "1d", "2024-04-06T23:30:00-03:00", "2024-04-07T00:00:00-04:00"},
		{"first 23:30 is followed by the repeat", "1h", "2024-04-06T23:30:00-03:00", "2024-04-06T23:00:00-04:00"},
		{"second 23:30", "1h", "2024-04-06T23:30:00-04:00", "2024-04-07T00:00:00-04:00"},
		{"month from a skipped-midnight day", "1mo", "2024-09-08T12:00:00-03:00", "2024-10-01T00:00:00-03:00"},
	})
}

func TestNextNilLocationIsUTC(t *testing.T) {
	got := mustParse(t, "1d").Next(mustTime(t, "2024-05-14T10:00:00+09:00"), nil)
	if want := mustTime(t, "2024-05-15T00:00:00Z"); !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("Next with nil loc = %v, want %v in UTC", got, want)
	}
}

func TestCurrent(t *testing.T) {
	cases := []struct {
		name, zone, dur, resetAt, at string
		start, end                   string // start "" is the first window, which no reset opened
	}{
		{"before the stored reset", "UTC", "1mo", "2024-03-01T00:00:00Z", "2024-02-15T00:00:00Z", "", "2024-03-01T00:00:00Z"},
		{"at the stored reset", "UTC", "1mo", "2024-03-01T00:00:00Z", "2024-03-01T00:00:00Z", "2024-03-01T00:00:00Z", "2024-04-01T00:00:00Z"},
		{"just before the stored reset", "UTC", "30s", "2024-03-01T00:00:30Z", "2024-03-01T00:00:29.999999999Z", "", "2024-03-01T00:00:30Z"},
		{"stored reset years old", "UTC", "1mo", "2020-01-01T00:00:00Z", "2024-02-29T12:00:00Z", "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"},
		{"30s months later", "UTC", "30s", "2024-01-01T00:00:00Z", "2024-06-01T10:17:45Z", "2024-06-01T10:17:30Z", "2024-06-01T10:18:00Z"},
		{"30s on a boundary", "UTC", "30s", "2024-01-01T00:00:00Z", "2024-06-01T10:17:30Z", "2024-06-01T10:17:30Z", "2024-06-01T10:18:00Z"},
		{"off-grid stored reset", "UTC", "30s", "2024-01-01T00:00:07Z", "2024-01-01T00:00:10Z", "2024-01-01T00:00:07Z", "2024-01-01T00:00:30Z"},
		{"weekly from a Wednesday reset", "UTC", "7d", "2024-01-03T00:00:00Z", "2024-01-04T00:00:00Z", "2024-01-03T00:00:00Z", "2024-01-08T00:00:00Z"},
		{"weekly a week later", "UTC", "7d", "2024-01-03T00:00:00Z", "2024-01-10T00:00:00Z", "2024-01-08T00:00:00Z", "2024-01-15T00:00:00Z"},
		{"weekly on a Monday", "UTC", "7d", "2024-01-03T00:00:00Z", "2024-01-08T00:00:00Z", "2024-01-08T00:00:00Z", "2024-01-15T00:00:00Z"},
		{"weekly on a Sunday night", "UTC", "1w", "2024-01-03T00:00:00Z", "2024-01-14T23:59:59Z", "2024-01-08T00:00:00Z", "2024-01-15T00:00:00Z"},
		{"two days over a leap day", "UTC", "2d", "2024-02-27T00:00:00Z", "2024-03-01T10:00:00Z", "2024-02-29T00:00:00Z", "2024-03-02T00:00:00Z"},
		{"two days at a reset", "UTC", "2d", "2024-02-27T00:00:00Z", "2024-02-29T00:00:00Z", "2024-02-29T00:00:00Z", "2024-03-02T00:00:00Z"},
		{"two days from an afternoon reset", "UTC", "2d", "2024-02-27T15:00:00Z", "2024-02-28T00:00:00Z", "2024-02-27T15:00:00Z", "2024-02-29T00:00:00Z"},
		{"ninety days a year on", "UTC", "90d", "2023-01-01T00:00:00Z", "2024-01-01T00:00:00Z", "2023-12-27T00:00:00Z", "2024-03-26T00:00:00Z"},
		{"two months, first window", "UTC", "2mo", "2024-01-01T00:00:00Z", "2024-02-10T00:00:00Z", "2024-01-01T00:00:00Z", "2024-03-01T00:00:00Z"},
		{"two months, later window", "UTC", "2mo", "2024-01-01T00:00:00Z", "2024-04-15T00:00:00Z", "2024-03-01T00:00:00Z", "2024-05-01T00:00:00Z"},
		{"two months at a reset", "UTC", "2mo", "2024-01-01T00:00:00Z", "2024-05-01T00:00:00Z", "2024-05-01T00:00:00Z", "2024-07-01T00:00:00Z"},
		{"fixed 45 minutes", "UTC", "45m", "2024-05-14T10:00:00Z", "2024-05-14T13:50:00Z", "2024-05-14T13:45:00Z", "2024-05-14T14:30:00Z"},
		{"fixed 30 hours", "UTC", "30h", "2024-05-14T10:00:00Z", "2024-05-20T00:00:00Z", "2024-05-19T10:00:00Z", "2024-05-20T16:00:00Z"},
		{"daily over spring forward", "America/New_York", "1d", "2024-03-09T00:00:00-05:00", "2024-03-10T23:30:00-04:00", "2024-03-10T00:00:00-05:00", "2024-03-11T00:00:00-04:00"},
		{"hourly in the repeated hour", "America/New_York", "1h", "2024-01-01T00:00:00-05:00", "2024-11-03T01:30:00-05:00", "2024-11-03T01:00:00-05:00", "2024-11-03T02:00:00-05:00"},
		{"hourly after a skipped hour", "America/New_York", "1h", "2024-01-01T00:00:00-05:00", "2024-03-10T03:30:00-04:00", "2024-03-10T03:00:00-04:00", "2024-03-10T04:00:00-04:00"},
		{"two-hourly over a skipped grid time", "America/New_York", "2h", "2024-01-01T00:00:00-05:00", "2024-03-10T03:30:00-04:00", "2024-03-10T00:00:00-05:00", "2024-03-10T04:00:00-04:00"},
		{"monthly in Tokyo", "Asia/Tokyo", "1mo", "2023-12-01T00:00:00+09:00", "2024-02-29T23:59:59+09:00", "2024-02-01T00:00:00+09:00", "2024-03-01T00:00:00+09:00"},
		{"monthly in Tokyo, UTC still February", "Asia/Tokyo", "1mo", "2023-12-01T00:00:00+09:00", "2024-02-29T15:00:00Z", "2024-03-01T00:00:00+09:00", "2024-04-01T00:00:00+09:00"},
		{"two days in Santiago over a skipped midnight", "America/Santiago", "2d", "2024-09-06T00:00:00-04:00", "2024-09-08T12:00:00-03:00", "2024-09-08T01:00:00-03:00", "2024-09-10T00:00:00-03:00"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			loc := loadZone(t, tc.zone)
			got := mustParse(t, tc.dur).Current(mustTime(t, tc.resetAt), mustTime(t, tc.at), loc)
			var want Span
			if tc.start != "" {
				want.Start = mustTime(t, tc.start)
			}
			want.End = mustTime(t, tc.end)
			if !got.Start.Equal(want.Start) || !got.End.Equal(want.End) {
				t.Errorf("Current = [%s, %s), want [%s, %s)", fmtTime(got.Start), fmtTime(got.End), fmtTime(want.Start), fmtTime(want.End))
			}
		})
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "zero"
	}
	return t.Format(time.RFC3339)
}

// TestCurrentMatchesStepping checks Current against its definition (step from
// the stored reset with Next until past t) and that Next always moves
// forward, over random times in several zones, many near clock changes.
func TestCurrentMatchesStepping(t *testing.T) {
	zones := []string{"UTC", "Asia/Tokyo", "America/New_York", "Europe/London", "America/Santiago", "Asia/Kathmandu", "Australia/Lord_Howe"}
	durations := []string{"1s", "30s", "7s", "1m", "30m", "45m", "90m", "1h", "6h", "24h", "30h", "1d", "2d", "7d", "1w", "2w", "30d", "1mo", "2mo", "90d"}
	nominal := map[Unit]time.Duration{Second: time.Second, Minute: time.Minute, Hour: time.Hour, Day: 24 * time.Hour, Week: 7 * 24 * time.Hour, Month: 31 * 24 * time.Hour}
	rng := rand.New(rand.NewPCG(1, 2))
	base := mustTime(t, "2023-01-01T00:00:00Z")
	span := 3 * 365 * 24 * time.Hour
	for _, zone := range zones {
		loc := loadZone(t, zone)
		for _, ds := range durations {
			d := mustParse(t, ds)
			length := time.Duration(d.N) * nominal[d.Unit]
			t.Run(zone+" "+ds, func(t *testing.T) {
				for i := range 60 {
					resetAt := base.Add(time.Duration(rng.Int64N(int64(span))))
					if i%2 == 1 {
						// Land near a clock change of the zone, if it has any.
						if _, end := resetAt.In(loc).ZoneBounds(); !end.IsZero() {
							resetAt = end.Add(time.Duration(rng.Int64N(int64(6*time.Hour))) - 3*time.Hour - length)
						}
					}
					at := resetAt.Add(time.Duration(rng.Int64N(int64(40*length))) - 2*length)
					want := Span{End: resetAt}
					for !at.Before(want.End) {
						next := d.Next(want.End, loc)
						if !next.After(want.End) {
							t.Fatalf("Next(%s) = %s, not after it", fmtTime(want.End.In(loc)), fmtTime(next))
						}
						want = Span{Start: want.End, End: next}
					}
					got := d.Current(resetAt, at, loc)
					if !got.Start.Equal(want.Start) || !got.End.Equal(want.End) {
						t.Fatalf("Current(resetAt %s, at %s) = [%s, %s); stepping gives [%s, %s)",
							fmtTime(resetAt.In(loc)), fmtTime(at.In(loc)), fmtTime(got.Start), fmtTime(got.End),
							fmtTime(want.Start.In(loc)), fmtTime(want.End.In(loc)))
					}
					if !got.End.After(at) || got.Start.After(at) {
						t.Fatalf("Current(%s) = [%s, %s) does not contain it", fmtTime(at), fmtTime(got.Start), fmtTime(got.End))
					}
				}
			})
		}
	}
}

func TestResolve(t *testing.T) {
	ny := loadZone(t, "America/New_York")
	london := loadZone(t, "Europe/London")
	berlin := loadZone(t, "Europe/Berlin")
	cases := []struct {
		name string
		y    int
		mo   time.Month
		d    int
		sec  int
		loc  *time.Location
		want string
	}{
		{"ordinary", 2024, 5, 14, 10 * 3600, ny, "2024-05-14T10:00:00-04:00"},
		{"skipped, negative offset: offset before", 2024, 3, 10, 2*3600 + 1800, ny, "2024-03-10T03:30:00-04:00"},
		{"skipped, positive offset: offset before", 2024, 3, 31, 2*3600 + 1800, berlin, "2024-03-31T03:30:00+02:00"},
		{"repeated, negative offset: first", 2024, 11, 3, 3600 + 1800, ny, "2024-11-03T01:30:00-04:00"},
		{"repeated, positive offset: first", 2024, 10, 27, 3600 + 1800, london, "2024-10-27T01:30:00+01:00"},
		{"day overflow normalises", 2024, 2, 30, 0, time.UTC, "2024-03-01T00:00:00Z"},
		{"second overflow normalises", 2024, 12, 31, 86400, time.UTC, "2025-01-01T00:00:00Z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := resolve(tc.y, tc.mo, tc.d, tc.sec, tc.loc)
			if want := mustTime(t, tc.want); !got.Equal(want) {
				t.Errorf("resolve = %s, want %s", got.Format(time.RFC3339), tc.want)
			}
		})
	}
}

func TestFloorDiv(t *testing.T) {
	cases := [][3]int64{{7, 2, 3}, {-7, 2, -4}, {-8, 2, -4}, {0, 5, 0}, {-1, 60, -1}}
	for _, c := range cases {
		if got := floorDiv(c[0], c[1]); got != c[2] {
			t.Errorf("floorDiv(%d, %d) = %d, want %d", c[0], c[1], got, c[2])
		}
	}
}

func TestLayout(t *testing.T) {
	cases := []struct {
		dur  string
		kind kind
		step int64
	}{
		{"30s", kindGrid, 30},
		{"7s", kindFixed, 7},
		{"60s", kindGrid, 60},
		{"120s", kindFixed, 120},
		{"20m", kindGrid, 1200},
		{"120m", kindFixed, 7200},
		{"8h", kindGrid, 8 * 3600},
		{"5h", kindFixed, 5 * 3600},
		{"48h", kindFixed, 48 * 3600},
		{"24h", kindDays, 1},
		{"1440m", kindDays, 1},
		{"86400s", kindDays, 1},
		{"1d", kindDays, 1},
		{"7d", kindWeek, 7},
		{"30d", kindMonths, 1},
		{"31d", kindDays, 31},
		{"1w", kindWeek, 7},
		{"3w", kindDays, 21},
		{"1mo", kindMonths, 1},
		{"3mo", kindMonths, 3},
	}
	for _, tc := range cases {
		t.Run(tc.dur, func(t *testing.T) {
			k, step := mustParse(t, tc.dur).layout()
			if diff := cmp.Diff([2]int64{int64(tc.kind), tc.step}, [2]int64{int64(k), step}); diff != "" {
				t.Errorf("layout (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"30s", "30m", "30h", "1d", "7d", "30d", "1mo", "2w", "0d", "1.5h", "", "mo", "01d", "1dd", "36526d"} {
		f.Add(s)
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		f.Fatal(err)
	}
	at := time.Date(2024, 11, 3, 5, 40, 0, 0, time.UTC) // 01:40 EDT, inside the repeated hour
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) error %v is not ErrInvalid", s, err)
			}
			return
		}
		if d.N <= 0 || d.String() != s {
			t.Fatalf("Parse(%q) = %+v, String %q", s, d, d.String())
		}
		for _, loc := range []*time.Location{time.UTC, ny} {
			next := d.Next(at, loc)
			if !next.After(at) {
				t.Fatalf("%s: Next(%v) = %v, not after it", s, at, next)
			}
			if span := d.Current(at.Add(-time.Hour), at, loc); !span.End.After(at) || span.Start.After(at) {
				t.Fatalf("%s: Current = %+v, does not contain %v", s, span, at)
			}
		}
	})
}

// Current runs on every admission of a customer whose budget has a duration.
func BenchmarkCurrent(b *testing.B) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		b.Fatal(err)
	}
	resetAt := time.Date(2020, 1, 1, 5, 0, 0, 0, time.UTC)
	at := time.Date(2026, 5, 14, 15, 4, 5, 0, time.UTC)
	for _, ds := range []string{"30s", "1d", "2d", "7d", "1mo", "45m"} {
		d, err := Parse(ds)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(ds, func(b *testing.B) {
			for b.Loop() {
				d.Current(resetAt, at, ny)
			}
		})
	}
}

func TestPrev(t *testing.T) {
	cases := []struct {
		name, zone, dur, end, want string
	}{
		{"30s grid", "UTC", "30s", "2024-06-01T10:18:00Z", "2024-06-01T10:17:30Z"},
		{"30s off grid", "UTC", "30s", "2024-06-01T10:17:45Z", "2024-06-01T10:17:30Z"},
		{"hour after a skipped hour", "America/New_York", "1h", "2024-03-10T03:00:00-04:00", "2024-03-10T01:00:00-05:00"},
		{"daily", "UTC", "1d", "2024-03-01T00:00:00Z", "2024-02-29T00:00:00Z"},
		{"two days", "UTC", "2d", "2024-03-02T00:00:00Z", "2024-02-29T00:00:00Z"},
		{"week from Monday", "UTC", "7d", "2024-01-15T00:00:00Z", "2024-01-08T00:00:00Z"},
		{"week from mid-week", "UTC", "1w", "2024-01-17T12:00:00Z", "2024-01-15T00:00:00Z"},
		{"month from the 1st", "UTC", "1mo", "2024-03-01T00:00:00Z", "2024-02-01T00:00:00Z"},
		{"month from mid-month", "UTC", "30d", "2024-03-15T00:00:00Z", "2024-03-01T00:00:00Z"},
		{"two months from the 1st", "UTC", "2mo", "2024-01-01T00:00:00Z", "2023-11-01T00:00:00Z"},
		{"two months from mid-month", "UTC", "2mo", "2024-03-15T00:00:00Z", "2024-02-01T00:00:00Z"},
		{"fixed", "UTC", "45m", "2024-05-14T14:30:00Z", "2024-05-14T13:45:00Z"},
		{"month in Tokyo", "Asia/Tokyo", "1mo", "2024-03-01T00:00:00+09:00", "2024-02-01T00:00:00+09:00"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := mustParse(t, tc.dur).Prev(mustTime(t, tc.end), loadZone(t, tc.zone))
			if want := mustTime(t, tc.want); !got.Equal(want) {
				t.Errorf("Prev(%s) = %s, want %s", tc.end, fmtTime(got), tc.want)
			}
		})
	}
}

// TestPrevInvertsNext: for every reset on a schedule, the reset before it
// leads back to it.
func TestPrevInvertsNext(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	base := mustTime(t, "2023-01-01T00:00:00Z")
	for _, zone := range []string{"UTC", "America/New_York", "Europe/London", "America/Santiago", "Australia/Lord_Howe"} {
		loc := loadZone(t, zone)
		for _, ds := range []string{"1s", "30s", "7s", "30m", "45m", "1h", "6h", "30h", "1d", "2d", "7d", "2w", "1mo", "2mo"} {
			d := mustParse(t, ds)
			for range 200 {
				end := d.Next(base.Add(time.Duration(rng.Int64N(int64(3*365*24*time.Hour)))), loc)
				prev := d.Prev(end, loc)
				if !prev.Before(end) {
					t.Fatalf("%s %s: Prev(%s) = %s, not before it", zone, ds, fmtTime(end), fmtTime(prev))
				}
				if next := d.Next(prev, loc); !next.Equal(end) {
					t.Fatalf("%s %s: Next(Prev(%s)) = Next(%s) = %s", zone, ds, fmtTime(end), fmtTime(prev), fmtTime(next))
				}
			}
		}
	}
}
