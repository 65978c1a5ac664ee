package restoretest_test

import (
	"database/sql"
	"os"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/restore/restoretest"
	"github.com/kluis-nl/kluis/synth"
)

// TestPostgresPassOnRowDeltas: after a working day the tenant's tables are
// row deltas on the first night; the restore test fetches and verifies
// their chains, restores them with matching fingerprints, from each
// location.
func TestPostgresPassOnRowDeltas(t *testing.T) {
	e := newPGEnv(t)
	dsn, err := os.ReadFile(e.path("tenant.dsn"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", strings.TrimSpace(string(dsn)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := synth.WorkingDay(testCtx(t), db, synth.Postgres, synth.Tiny, 7, 1); err != nil {
		t.Fatal(err)
	}
	res := e.backup("praktijk-pg")
	r, err := e.a.OpenOrInitRepo(testCtx(t), "praktijk-pg")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := r.FindSnapshot(testCtx(t), res.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	deltas := 0
	for _, s := range snap.Manifest.Streams {
		if s.IsDelta() {
			deltas++
		}
	}
	if deltas == 0 {
		t.Fatal("the second snapshot holds no row delta")
	}
	rep := e.runPG(restoretest.Options{Snapshot: res.Snapshot})
	wantVerdict(t, rep, evidence.Pass)
	if rep.Snapshot.ID != res.Snapshot {
		t.Fatalf("tested snapshot %s, want the delta snapshot %s", rep.Snapshot.ID, res.Snapshot)
	}
	wantVerdict(t, e.runPG(restoretest.Options{Snapshot: res.Snapshot, Previous: []evidence.Report{*rep}}), evidence.Pass)
}
