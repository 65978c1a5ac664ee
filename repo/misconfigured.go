package repo

import (
	"errors"
	"strings"
)

// ErrMisconfigured marks a location error that waiting will not fix: a
// bucket that does not exist, credentials it refuses, a region it does not
// serve, Object Lock configured for a bucket without it. Backends wrap
// such errors with it (errors.Is) and say which setting to check, so an
// operator is not told to "run sync when the location is back".
var ErrMisconfigured = errors.New("a configuration problem, not an outage: fix the location's settings and test them with `kluis config check --online`")

// Misconfigured reports whether a location error message (as carried in a
// LocationResult) is a configuration problem.
func Misconfigured(msg string) bool {
	return strings.Contains(msg, ErrMisconfigured.Error())
}
