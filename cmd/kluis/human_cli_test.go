package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestHumanOutputConventions (issue 18 point 10): human output shows every
// moment in the appliance's time zone with its suffix (Europe/Amsterdam by
// default: CET or CEST), durations in one format, and counts with correct
// plurals.
func TestHumanOutputConventions(t *testing.T) {
	t.Parallel()
	e := newRepoEnv(t)
	input := e.path("in.bin")
	writeData(t, seededRand(t), input, 256<<10)
	r := e.mustRun(0, "backup", "--tenant", tenant, "--file", "db="+input)
	if !strings.Contains(r.stdout, "in 1 stream,") || regexp.MustCompile(`\d+ms|\dµs|\d\.\d{3}s`).MatchString(r.stdout) {
		t.Errorf("backup: want \"1 stream\" and a duration like 1.2s: %v", r)
	}
	stampRe := regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d (CET|CEST)\b`)
	r = e.mustRun(0, "snapshots", "--tenant", tenant)
	if !stampRe.MatchString(r.stdout) || !strings.Contains(r.stdout, "\n1 snapshot\n") {
		t.Errorf("snapshots: want times with the zone suffix and \"1 snapshot\": %v", r)
	}
	r = e.mustRun(0, "check", "--tenant", tenant)
	if !strings.Contains(r.stdout, "1 snapshot, 1 index,") {
		t.Errorf("check: want \"1 snapshot, 1 index\": %v", r)
	}
	r = e.mustRun(0, "status")
	if !stampRe.MatchString(r.stdout) {
		t.Errorf("status: want times with the zone suffix: %v", r)
	}
	r = e.mustRun(0, "config", "check")
	if !strings.Contains(r.stdout, "2 locations, 1 tenant\n") {
		t.Errorf("config check: want \"2 locations, 1 tenant\": %v", r)
	}
}
