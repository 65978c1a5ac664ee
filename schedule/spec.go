package schedule

import (
	"fmt"
	"hash/fnv"
	"time"

	"github.com/robfig/cron/v3"
)

// Spec says when a job is next due after a time. cron.Schedule satisfies
// it.
type Spec interface {
	Next(after time.Time) time.Time
}

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse parses a cron spec ("30 2 * * *") or descriptor ("@daily",
// "@every 6h"), evaluated in tz.
func Parse(spec string, tz *time.Location) (Spec, error) {
	s, err := parser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", spec, err)
	}
	if ss, ok := s.(*cron.SpecSchedule); ok {
		ss.Location = time.UTC
		return wallSpec{ss, tz}, nil
	}
	return s, nil
}

// wallSpec evaluates a cron spec on the wall clock of tz. robfig/cron
// evaluates in absolute time, so in Europe/Amsterdam a 02:30 job is
// skipped on the day clocks go forward and runs twice on the day they go
// back; on the wall clock every wall time comes once per day: a skipped
// one runs at the equivalent instant (time.Date's normalisation), a
// repeated one runs at its first occurrence only.
type wallSpec struct {
	inner *cron.SpecSchedule // in UTC, standing for wall time
	tz    *time.Location
}

func (w wallSpec) Next(t time.Time) time.Time {
	lt := t.In(w.tz)
	wall := time.Date(lt.Year(), lt.Month(), lt.Day(), lt.Hour(), lt.Minute(), lt.Second(), lt.Nanosecond(), time.UTC)
	for i := 0; i < 1000; i++ {
		wall = w.inner.Next(wall)
		if wall.IsZero() {
			return wall
		}
		n := time.Date(wall.Year(), wall.Month(), wall.Day(), wall.Hour(), wall.Minute(), wall.Second(), 0, w.tz)
		if n.After(t) {
			return n
		}
	}
	return time.Time{}
}

// Daily is due once per calendar day in TZ at the wall-clock time Offset
// after midnight (an Offset of 24h or more falls on the next day). On the
// day a DST change skips that wall time, Go's time.Date picks one of the
// two zones; the job still runs once that day.
type Daily struct {
	Offset time.Duration
	TZ     *time.Location
}

// Next returns the first slot after t.
func (d Daily) Next(t time.Time) time.Time {
	tz := d.TZ
	if tz == nil {
		tz = time.UTC
	}
	lt := t.In(tz)
	secs := int(d.Offset / time.Second)
	for day := -1; day <= 2; day++ {
		c := time.Date(lt.Year(), lt.Month(), lt.Day()+day, 0, 0, secs, 0, tz)
		if c.After(t) {
			return c
		}
	}
	return time.Date(lt.Year(), lt.Month(), lt.Day()+3, 0, 0, secs, 0, tz)
}

// Window returns the daily slot of key inside a window that starts start
// after midnight and lasts length: start + hash(key) mod length, to the
// second. The same key always gets the same slot, and many keys spread
// evenly over the window.
func Window(key string, start, length time.Duration, tz *time.Location) Daily {
	h := fnv.New64a()
	h.Write([]byte(key))
	off := time.Duration(0)
	if secs := uint64(length / time.Second); secs > 0 {
		off = time.Duration(h.Sum64()%secs) * time.Second
	}
	return Daily{Offset: start + off, TZ: tz}
}

// NextSlot is when a job is next due after now, given when it last
// succeeded (zero: never). For a cron spec or a daily slot that is
// s.Next(now). An "@every d" job is due d after its last success (the
// interval between runs, which `kluis status` can compute from the newest
// snapshot), or d after now when that is past or unknown (a missed run is
// caught up separately).
func NextSlot(s Spec, lastSuccess, now time.Time) time.Time {
	if cd, ok := s.(cron.ConstantDelaySchedule); ok && !lastSuccess.IsZero() {
		if n := cd.Next(lastSuccess); n.After(now) {
			return n
		}
	}
	return s.Next(now)
}

// Prev returns the latest slot at or before now, or the zero time when
// there was none in the last eight days.
func Prev(s Spec, now time.Time) time.Time {
	if cd, ok := s.(cron.ConstantDelaySchedule); ok {
		return now.Add(-cd.Delay)
	}
	for _, back := range []time.Duration{25 * time.Hour, 8 * 24 * time.Hour} {
		var last time.Time
		t := now.Add(-back)
		for i := 0; i < 20000; i++ {
			n := s.Next(t)
			if n.IsZero() || n.After(now) {
				break
			}
			last, t = n, n
		}
		if !last.IsZero() {
			return last
		}
	}
	return time.Time{}
}
