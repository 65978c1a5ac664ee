package restoretest_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/restore/restoretest"
)

// Issue 14 point 4: the newest manifest deleted at one location. The
// older "latest" there is within the RPO target, so without the ledger
// the restore test of that location would sign a PASS; it FAILs with
// check stale. The other location passes.
func TestStaleLocationFails(t *testing.T) {
	e := sqliteEnv(t)
	e.clk.Advance(2 * time.Hour)
	newest := e.backup("praktijk-a")
	if err := os.Remove(e.path("loc-a", "praktijk-a", "snapshots", newest.Snapshot)); err != nil {
		t.Fatal(err)
	}
	rep := e.run(restoretest.Options{Location: "amsterdam"})
	wantVerdict(t, rep, evidence.Fail, evidence.CheckStale)
	if c := checkOf(t, rep, evidence.CheckStale); !strings.Contains(c.Detail, newest.ID.Short()) || !strings.Contains(c.Detail, "history is missing") {
		t.Errorf("stale detail does not name the missing snapshot: %q", c.Detail)
	}
	rep = e.run(restoretest.Options{Location: "groningen"})
	wantVerdict(t, rep, evidence.Pass)
	if c := checkOf(t, rep, evidence.CheckStale); !c.OK || !strings.Contains(c.Detail, newest.ID.Short()) {
		t.Errorf("stale at groningen: %+v", c)
	}
}
