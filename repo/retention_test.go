package repo_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/repo"
)

func snapAt(ts ...time.Time) []repo.SnapshotInfo {
	out := make([]repo.SnapshotInfo, len(ts))
	for i, t := range ts {
		var id repo.Hash
		copy(id[:], fmt.Sprintf("%032d", i))
		out[i] = repo.SnapshotInfo{ID: id, Manifest: &repo.Manifest{Started: t}}
	}
	return out
}

// daily returns one snapshot a day at hh:mm UTC for n days, newest on
// last, skipping the days in gaps (0 = last).
func daily(last time.Time, n int, gaps ...int) []time.Time {
	var out []time.Time
	for d := n - 1; d >= 0; d-- {
		if slices.Contains(gaps, d) {
			continue
		}
		out = append(out, last.AddDate(0, 0, -d))
	}
	return out
}

func TestApplyRetention(t *testing.T) {
	ams, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatal(err)
	}
	last := time.Date(2025, 6, 30, 1, 30, 0, 0, time.UTC) // a Monday
	d := func(s string) time.Time {
		tt, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tt
	}
	cases := []struct {
		name   string
		times  []time.Time
		policy repo.Retention
		tz     *time.Location
		// keep lists the kept snapshots as times in RFC 3339 (UTC), newest
		// first; or, when keepN >= 0, only their number is checked.
		keep  []string
		keepN int
	}{
		{
			name: "keep last 3 of 100 days", times: daily(last, 100), policy: repo.Retention{KeepLast: 3},
			keep: []string{"2025-06-30T01:30:00Z", "2025-06-29T01:30:00Z", "2025-06-28T01:30:00Z"}, keepN: -1,
		},
		{
			name: "keep daily 7 of 100 days", times: daily(last, 100), policy: repo.Retention{KeepDaily: 7}, keepN: 7,
		},
		{
			name: "daily counts days with a snapshot, gaps reach further back", times: daily(last, 100, 1, 2, 5),
			policy: repo.Retention{KeepDaily: 4},
			keep:   []string{"2025-06-30T01:30:00Z", "2025-06-27T01:30:00Z", "2025-06-26T01:30:00Z", "2025-06-24T01:30:00Z"}, keepN: -1,
		},
		{
			name: "several a day: the newest of each day",
			times: []time.Time{
				d("2025-06-30T06:00:00Z"), d("2025-06-30T12:00:00Z"), d("2025-06-30T18:00:00Z"),
				d("2025-06-29T06:00:00Z"), d("2025-06-29T18:00:00Z"),
				d("2025-06-28T06:00:00Z"),
			},
			policy: repo.Retention{KeepDaily: 2},
			keep:   []string{"2025-06-30T18:00:00Z", "2025-06-29T18:00:00Z"}, keepN: -1,
		},
		{
			name: "keep last and daily overlap",
			times: []time.Time{
				d("2025-06-30T06:00:00Z"), d("2025-06-30T12:00:00Z"), d("2025-06-30T18:00:00Z"),
				d("2025-06-29T06:00:00Z"), d("2025-06-29T18:00:00Z"),
			},
			policy: repo.Retention{KeepLast: 2, KeepDaily: 2},
			keep:   []string{"2025-06-30T18:00:00Z", "2025-06-30T12:00:00Z", "2025-06-29T18:00:00Z"}, keepN: -1,
		},
		{
			name: "weekly: the newest of each ISO week", times: daily(last, 100), policy: repo.Retention{KeepWeekly: 3},
			// Monday 30 June is a week on its own; then the Sundays before.
			keep: []string{"2025-06-30T01:30:00Z", "2025-06-29T01:30:00Z", "2025-06-22T01:30:00Z"}, keepN: -1,
		},
		{
			name: "monthly", times: daily(last, 100), policy: repo.Retention{KeepMonthly: 4},
			keep: []string{"2025-06-30T01:30:00Z", "2025-05-31T01:30:00Z", "2025-04-30T01:30:00Z", "2025-03-31T01:30:00Z"}, keepN: -1,
		},
		{
			name: "a policy larger than the history keeps everything", times: daily(last, 10),
			policy: repo.Retention{KeepLast: 50, KeepDaily: 50}, keepN: 10,
		},
		{
			name: "daily 7 weekly 4 monthly 12 of 100 days", times: daily(last, 100),
			policy: repo.Retention{KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 12},
			// 7 days (24–30 June); of the 4 newest weeks, the two not yet
			// kept (their newest days: 22 and 15 June); of 12 months, the 4
			// with a snapshot, June already kept (31 May, 30 April, 31
			// March).
			keepN: 7 + 2 + 3,
		},
		{
			// 00:30 in Amsterdam is the previous day in UTC: in Amsterdam
			// these are one snapshot each on 1, 2 and 3 July; in UTC two on
			// 1 July and one on 2 July.
			name: "days are Amsterdam days",
			times: []time.Time{
				d("2025-06-30T22:30:00Z"), // 1 July 00:30 CEST
				d("2025-07-01T21:00:00Z"), // 1 July 23:00 CEST
				d("2025-07-01T22:30:00Z"), // 2 July 00:30 CEST
				d("2025-07-02T22:30:00Z"), // 3 July 00:30 CEST
			},
			policy: repo.Retention{KeepDaily: 3}, tz: ams,
			keep: []string{"2025-07-02T22:30:00Z", "2025-07-01T22:30:00Z", "2025-07-01T21:00:00Z"}, keepN: -1,
		},
		{
			name: "the same snapshots in UTC days",
			times: []time.Time{
				d("2025-06-30T22:30:00Z"), d("2025-07-01T21:00:00Z"), d("2025-07-01T22:30:00Z"), d("2025-07-02T22:30:00Z"),
			},
			policy: repo.Retention{KeepDaily: 3}, tz: time.UTC,
			keep: []string{"2025-07-02T22:30:00Z", "2025-07-01T22:30:00Z", "2025-06-30T22:30:00Z"}, keepN: -1,
		},
		{
			// Summer time ends on 26 October 2025 at 03:00 CEST: 22:30 UTC
			// is 00:30 CEST on the 26th before, 23:30 CET on the 26th after.
			name: "across the end of summer time",
			times: []time.Time{
				d("2025-10-24T22:30:00Z"), // 25 Oct 00:30 CEST
				d("2025-10-25T22:30:00Z"), // 26 Oct 00:30 CEST
				d("2025-10-26T22:30:00Z"), // 26 Oct 23:30 CET
				d("2025-10-27T22:30:00Z"), // 27 Oct 23:30 CET
			},
			policy: repo.Retention{KeepDaily: 3}, tz: ams,
			keep: []string{"2025-10-27T22:30:00Z", "2025-10-26T22:30:00Z", "2025-10-24T22:30:00Z"}, keepN: -1,
		},
		{
			// Summer time starts on 30 March 2025 at 02:00 CET.
			name: "across the start of summer time",
			times: []time.Time{
				d("2025-03-29T22:59:00Z"), // 29 Mar 23:59 CET
				d("2025-03-29T23:30:00Z"), // 30 Mar 00:30 CET
				d("2025-03-30T21:59:00Z"), // 30 Mar 23:59 CEST
				d("2025-03-30T22:30:00Z"), // 31 Mar 00:30 CEST
			},
			policy: repo.Retention{KeepDaily: 3}, tz: ams,
			keep: []string{"2025-03-30T22:30:00Z", "2025-03-30T21:59:00Z", "2025-03-29T22:59:00Z"}, keepN: -1,
		},
		{
			// ISO week 1 of 2026 starts on Monday 29 December 2025.
			name: "weeks across a year end in Amsterdam",
			times: []time.Time{
				d("2025-12-27T12:00:00Z"), d("2025-12-28T22:30:00Z"), // 28 Dec 23:30 CET: week 52
				d("2025-12-28T23:30:00Z"), // 29 Dec 00:30 CET: week 1 of 2026
				d("2026-01-02T12:00:00Z"),
			},
			policy: repo.Retention{KeepWeekly: 2}, tz: ams,
			keep: []string{"2026-01-02T12:00:00Z", "2025-12-28T22:30:00Z"}, keepN: -1,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			snaps := snapAt(c.times...)
			// Input order must not matter.
			rand.New(rand.NewPCG(1, 1)).Shuffle(len(snaps), func(i, j int) { snaps[i], snaps[j] = snaps[j], snaps[i] })
			ds, err := repo.ApplyRetention(snaps, c.policy, c.tz)
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) != len(snaps) {
				t.Fatalf("%d decisions for %d snapshots", len(ds), len(snaps))
			}
			var kept []string
			for i, dd := range ds {
				if i > 0 && dd.Snapshot.Manifest.Started.After(ds[i-1].Snapshot.Manifest.Started) {
					t.Fatal("decisions are not newest first")
				}
				if dd.Keep != (len(dd.Reasons) > 0) {
					t.Errorf("%v: keep %v with reasons %v", dd.Snapshot.Manifest.Started, dd.Keep, dd.Reasons)
				}
				if dd.Keep {
					kept = append(kept, dd.Snapshot.Manifest.Started.UTC().Format(time.RFC3339))
				}
			}
			if c.keepN >= 0 {
				if len(kept) != c.keepN {
					t.Errorf("kept %d: %v; want %d", len(kept), kept, c.keepN)
				}
				return
			}
			if strings.Join(kept, " ") != strings.Join(c.keep, " ") {
				t.Errorf("kept %v\nwant %v", kept, c.keep)
			}
		})
	}
}

func TestApplyRetentionReasons(t *testing.T) {
	last := time.Date(2025, 6, 30, 1, 30, 0, 0, time.UTC)
	ds, err := repo.ApplyRetention(snapAt(daily(last, 40)...), repo.Retention{KeepLast: 1, KeepDaily: 2, KeepMonthly: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ds[0].Reasons, ","); got != "last,daily,monthly" {
		t.Errorf("newest snapshot kept for %q, want last,daily,monthly", got)
	}
	if got := strings.Join(ds[1].Reasons, ","); got != "daily" {
		t.Errorf("second snapshot kept for %q, want daily", got)
	}
}

// A policy that keeps nothing would forget every snapshot: refused.
func TestApplyRetentionRefusesEmptyPolicy(t *testing.T) {
	snaps := snapAt(daily(time.Now(), 5)...)
	for _, p := range []repo.Retention{{}, {KeepLast: -1}, {KeepLast: 0, KeepDaily: -3, KeepWeekly: 0, KeepMonthly: -1}} {
		ds, err := repo.ApplyRetention(snaps, p, nil)
		if err == nil || ds != nil {
			t.Errorf("policy %+v: %d decisions, err %v; want a refusal", p, len(ds), err)
		} else if !strings.Contains(err.Error(), "keep_last") {
			t.Errorf("refusal does not say what to set: %v", err)
		}
	}
	if ds, err := repo.ApplyRetention(nil, repo.Retention{KeepLast: 1}, nil); err != nil || len(ds) != 0 {
		t.Errorf("no snapshots: %v, %v", ds, err)
	}
}
