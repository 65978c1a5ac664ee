package main

import (
	"time"

	"github.com/kluis-nl/kluis/evidence"
)

// stampFormat is how every human output shows a moment: in the appliance's
// time zone (appliance.time_zone), with its abbreviation, e.g.
// "2026-12-02 16:30 CET". --json carries RFC 3339.
const stampFormat = "2006-01-02 15:04 MST"

// humanTime formats t in tz; the zero time is "-".
func humanTime(t time.Time, tz *time.Location) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(tz).Format(stampFormat)
}

// humanDuration is every duration in human output, in the evidence
// reports' format: "4.2s", "38s", "12m 05s", "26h 00m", "5d 03h".
func humanDuration(d time.Duration) string {
	return evidence.Duration(d.Seconds())
}
