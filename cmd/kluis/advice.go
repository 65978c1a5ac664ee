package main

import (
	"fmt"

	"github.com/kluis-nl/kluis/repo"
)

// repairAdvice tells an operator what to do about locations that failed
// in rs: a location that is down needs `kluis sync` once it is back; a
// misconfigured one (no such bucket, refused credentials, wrong region, no
// Object Lock) needs its settings fixed first — waiting will not help.
func repairAdvice(rs []repo.LocationResult, tenant string) string {
	var misconfigured []string
	for _, r := range rs {
		if !r.OK && repo.Misconfigured(r.Error) {
			misconfigured = append(misconfigured, r.Location)
		}
	}
	if len(misconfigured) > 0 {
		return fmt.Sprintf("location %v has a configuration problem, not an outage: fix its settings, test with `kluis config check --online`, then run `kluis sync --tenant %s`", misconfigured, tenant)
	}
	return fmt.Sprintf("run `kluis sync --tenant %s` when the location is back (the next backup also copies what it misses)", tenant)
}
