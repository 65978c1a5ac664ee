package backup_test

import (
	"testing"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/source/postgres"
	"github.com/kluis-nl/kluis/synth"
)

// A restore whose read budget is one byte (every stream reader over it
// from its first segment, so each holds only the segment its loader waits
// for) still restores a practice after three working days — tables as row
// deltas, whose chain parts are read at once and feed one merge — with
// every table's fingerprint proven and every row as it was, from both
// locations and from each alone, four tables at a time.
func TestRestoreTinyReadBudget(t *testing.T) {
	ctx := testCtx(t)
	srv := pgtest.Start(t)
	srcDSN := srv.CreateDB(t, "budget_src")
	db := openDB(t, srcDSN)
	scale := synth.ScaleForBytes(2 << 20)
	if err := synth.Generate(ctx, db, synth.Postgres, scale, 5); err != nil {
		t.Fatal(err)
	}
	w := newDeltaWorld(t, "praktijk-budget")
	var last string
	for day := range 4 {
		if day > 0 {
			if _, err := synth.WorkingDay(ctx, db, synth.Postgres, scale, 5, day); err != nil {
				t.Fatal(err)
			}
		}
		res, err := backup.Database(ctx, w.r, postgres.New(srcDSN, w.r.FingerprintKey(), postgres.Options{}), repo.BackupOptions{})
		if err != nil {
			t.Fatalf("night %d: %v", day+1, err)
		}
		last = res.Snapshot
	}
	snap, err := w.r.FindSnapshot(ctx, last)
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
		t.Fatal("no table was stored as a row delta: the test wants merges")
	}
	want := tableRows(ctx, t, db)
	for _, li := range []int{-1, 0, 1} {
		r := w.open(t, li)
		r.SetReadBudget(1)
		restoreAndCompareParallel(ctx, t, srv, r, last, want, 4)
	}
}
