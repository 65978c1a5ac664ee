package backup_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore"
	"github.com/kluis-nl/kluis/source/postgres"
	"github.com/kluis-nl/kluis/synth"
)

// The first backup of a PostgreSQL tenant samples every table, trains the
// tenant's zstd dictionary before streaming and compresses the first
// night with it; the second night (row deltas) carries it. Both restore
// exactly, with their fingerprints, from either location alone; without
// the dictionary (its pack gone at every location) the first night does
// not restore and the error names the dictionary.
func TestDictionaryPostgres(t *testing.T) {
	ctx := testCtx(t)
	srv := pgtest.Start(t)
	dsn := srv.CreateDB(t, "dict_src")
	db := openDB(t, dsn)
	scale := synth.ScaleForBytes(6 << 20)
	if err := synth.Generate(ctx, db, synth.Postgres, scale, 5); err != nil {
		t.Fatal(err)
	}
	w := newDeltaWorld(t, "dict")
	var snaps []string
	var want []map[string][]string
	for night := 1; night <= 2; night++ {
		if night > 1 {
			if _, err := synth.WorkingDay(ctx, db, synth.Postgres, scale, 5, night-1); err != nil {
				t.Fatal(err)
			}
		}
		res, err := backup.Database(ctx, w.r, postgres.New(dsn, w.r.FingerprintKey(), postgres.Options{}), repo.BackupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, res.Snapshot)
		want = append(want, tableRows(ctx, t, db))
	}
	first, err := w.r.FindSnapshot(ctx, snaps[0])
	if err != nil {
		t.Fatal(err)
	}
	d := first.Manifest.Dictionary
	if d == nil {
		t.Fatal("the first night trained no dictionary")
	}
	restoreInto := func(r *repo.Repo, i int) error {
		si, err := r.FindSnapshot(ctx, snaps[i])
		if err != nil {
			return err
		}
		if si.Manifest.Dictionary == nil || *si.Manifest.Dictionary != *d {
			t.Fatalf("snapshot %d names dictionary %+v, want %+v", i+1, si.Manifest.Dictionary, d)
		}
		dst := srv.CreateDB(t, srv.UniqueName("dict_dst"))
		target, err := postgres.NewTarget(ctx, dst, r.FingerprintKey(), postgres.TargetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer target.Close()
		if _, err := restore.ToDatabase(ctx, r, si, target, restore.DBOptions{Parallel: 2}); err != nil {
			return err
		}
		if diff := sameRows(want[i], tableRows(ctx, t, openDB(t, dst))); diff != "" {
			t.Fatalf("night %d restored from %v: %s", i+1, r.Locations()[0].Name(), diff)
		}
		return nil
	}
	for loc := range 2 {
		for i := range snaps {
			if err := restoreInto(w.open(t, loc), i); err != nil {
				t.Fatalf("night %d from location %d: %v", i+1, loc, err)
			}
		}
	}
	idx, err := w.r.Index(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bl, ok := idx.Lookup(d.Blob)
	if !ok {
		t.Fatal("the dictionary is in no index")
	}
	for _, dir := range w.dirs {
		p := filepath.Join(dir, "dict", "data", bl.Pack.String()[:2], bl.Pack.String())
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	err = restoreInto(w.open(t, -1), 0)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("zstd dictionary %08x", d.ZstdID)) {
		t.Fatalf("restore of the first night without its dictionary: %v", err)
	}
}
