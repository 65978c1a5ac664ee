package repo

import (
	"fmt"
	"sort"
	"time"
)

// Retention says which snapshots to keep: the newest KeepLast, and the
// newest snapshot of each of the last KeepDaily days, KeepWeekly ISO weeks
// and KeepMonthly months that have a snapshot (days, weeks and months in
// the appliance's time zone). A policy that keeps nothing is refused.
type Retention struct {
	KeepLast    int `json:"keep_last"`
	KeepDaily   int `json:"keep_daily"`
	KeepWeekly  int `json:"keep_weekly"`
	KeepMonthly int `json:"keep_monthly"`
}

// Empty reports whether the policy keeps nothing.
func (p Retention) Empty() bool {
	return p.KeepLast <= 0 && p.KeepDaily <= 0 && p.KeepWeekly <= 0 && p.KeepMonthly <= 0
}

// Decision is one snapshot's fate under a policy.
type Decision struct {
	Snapshot SnapshotInfo
	Keep     bool
	Reasons  []string
}

// ApplyRetention decides, for snapshots in any order, which to keep. The
// result is newest first.
func ApplyRetention(snaps []SnapshotInfo, p Retention, tz *time.Location) ([]Decision, error) {
	if p.Empty() {
		return nil, fmt.Errorf("retention policy keeps no snapshot: set at least one of keep_last, keep_daily, keep_weekly, keep_monthly")
	}
	if tz == nil {
		tz = time.UTC
	}
	ds := make([]Decision, len(snaps))
	for i, s := range snaps {
		ds[i] = Decision{Snapshot: s}
	}
	sort.SliceStable(ds, func(i, j int) bool {
		return ds[i].Snapshot.Manifest.Started.After(ds[j].Snapshot.Manifest.Started)
	})
	type bucket struct {
		name string
		n    int
		key  func(time.Time) string
	}
	buckets := []bucket{
		{"last", p.KeepLast, nil},
		{"daily", p.KeepDaily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{"weekly", p.KeepWeekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }},
		{"monthly", p.KeepMonthly, func(t time.Time) string { return t.Format("2006-01") }},
	}
	for _, b := range buckets {
		seen := map[string]bool{}
		for i := range ds {
			if len(seen) >= b.n {
				break
			}
			var k string
			if b.key == nil {
				k = fmt.Sprint(i)
			} else {
				k = b.key(ds[i].Snapshot.Manifest.Started.In(tz))
			}
			if seen[k] {
				continue
			}
			seen[k] = true
			ds[i].Keep = true
			ds[i].Reasons = append(ds[i].Reasons, b.name)
		}
	}
	return ds, nil
}
