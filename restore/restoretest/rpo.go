package restoretest

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/evidence"
)

// measureRPO measures the recovery point of a tested snapshot (taken at
// snap) at test time now against target: the snapshot's age, and the
// largest gap between consecutive snapshots at the tested location
// (times, any order) over window. The gap that crosses the window's
// start counts when an older snapshot exists: a backup missed just
// inside the window is still a gap inside it. A snapshot's time is when
// its consistent read began, the point in time it restores to.
func measureRPO(snap time.Time, times []time.Time, now time.Time, window, target time.Duration) (evidence.RPO, string) {
	ts := append([]time.Time(nil), times...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	start := now.Add(-window)
	r := evidence.RPO{
		TargetSeconds:      target.Seconds(),
		SnapshotAgeSeconds: now.Sub(snap).Seconds(),
		WindowDays:         window.Hours() / 24,
	}
	var gap time.Duration
	for i, t := range ts {
		if t.Before(start) || t.After(now) {
			continue
		}
		r.SnapshotsInWindow++
		if i == 0 {
			continue
		}
		if d := t.Sub(ts[i-1]); d > gap {
			gap = d
			r.LargestGapFrom, r.LargestGapTo = ts[i-1].UTC(), t.UTC()
		}
	}
	r.LargestGapSeconds = gap.Seconds()
	age := now.Sub(snap)
	var problems []string
	if age > target {
		problems = append(problems, fmt.Sprintf("snapshot is %s old, over the RPO target %s", roundDur(age), target))
	}
	if gap > target {
		problems = append(problems, fmt.Sprintf("largest gap between snapshots is %s (%s to %s), over the RPO target %s",
			roundDur(gap), r.LargestGapFrom.Format(time.RFC3339), r.LargestGapTo.Format(time.RFC3339), target))
	}
	r.OK = len(problems) == 0
	if !r.OK {
		return r, strings.Join(problems, "; ")
	}
	gaps := fmt.Sprintf("largest gap %s", roundDur(gap))
	if gap == 0 {
		gaps = "no gap to measure"
	}
	return r, fmt.Sprintf("snapshot age %s; %s over %s (%s in the window); target %s",
		roundDur(age), gaps, days(window), plural(r.SnapshotsInWindow, "snapshot"), target)
}

// roundDur rounds a duration for a detail: to the minute from an hour,
// the second from a minute, the millisecond below.
func roundDur(d time.Duration) time.Duration {
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute)
	case d >= time.Minute:
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// days writes a whole number of days as "30 days", anything else as a
// duration.
func days(d time.Duration) string {
	if d == 24*time.Hour {
		return "1 day"
	}
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// plural writes "1 pack", "2 packs".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
