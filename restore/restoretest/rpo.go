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
		problems = append(problems, fmt.Sprintf("snapshot is %s old, over the RPO target %s", roundDur(age), roundDur(target)))
	}
	if gap > target {
		problems = append(problems, fmt.Sprintf("largest gap between snapshots is %s (%s to %s), over the RPO target %s",
			roundDur(gap), r.LargestGapFrom.Format(time.RFC3339), r.LargestGapTo.Format(time.RFC3339), roundDur(target)))
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
		roundDur(age), gaps, days(window), plural(r.SnapshotsInWindow, "snapshot"), roundDur(target))
}

// roundDur is a duration for a detail, in the one format of human output
// and the evidence summary (evidence.Duration): "0.3s", "4.2s", "12m 05s",
// "26h 00m", "5d 03h".
func roundDur(d time.Duration) string {
	return evidence.Duration(d.Seconds())
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
	return roundDur(d)
}

// plural writes "1 pack", "2 packs".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
