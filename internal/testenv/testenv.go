// Package testenv decides what a test does when something it needs from the
// machine — a database server, a binary — is missing.
//
// Locally such a test is skipped with a reason, so `go test ./...` stays
// usable on a laptop without servers. Under the README test command and in
// CI (scripts/test.sh sets KLUIS_TEST_REQUIRE_SERVERS=1) the same condition
// is a failure, so a missing server is loud instead of silently skipping the
// integration tests (restic's RESTIC_TEST_DISALLOW_SKIP, in our words).
//
// It is also the harness core the server harnesses (internal/pgtest,
// internal/mariadbtest, internal/s3test) share: a server process started in
// a temporary directory it owns (OwnedTempDir, StartProcess), on a free
// loopback port (FreePort, RetryPortClash), waited for until ready, stopped
// and then killed (Process.Stop), and one server per test binary with a
// fallback to the machine's shared server (Shared). It owns no servers
// itself.
//
// Everything here is for tests only; the layering test (internal/layering)
// fails when a production package imports it or a harness.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// RequireEnv is the environment variable that turns missing test
// prerequisites from skips into failures when set to "1".
const RequireEnv = "KLUIS_TEST_REQUIRE_SERVERS"

const skipHint = "(run ./scripts/test.sh, or set " + RequireEnv + "=1 to make this a failure)"

// RequireServers reports whether missing servers or binaries must fail the
// test run instead of skipping (KLUIS_TEST_REQUIRE_SERVERS=1).
func RequireServers() bool {
	return os.Getenv(RequireEnv) == "1"
}

// SkipOrFail stops the test because a prerequisite is missing: it fails the
// test when RequireServers, and skips it with the reason and a hint otherwise.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if RequireServers() {
		t.Fatalf("%s (%s=1: a missing prerequisite is a failure)", msg, RequireEnv)
		return
	}
	t.Skipf("%s %s", msg, skipHint)
}
