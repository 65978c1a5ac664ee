package repo_test

import (
	"context"
	"strings"
	"syscall"
	"testing"

	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/faulty"
)

// snapshotsAt counts the manifests at location i.
func (f *fixture) snapshotsAt(i int) int { return len(f.names(i, "snapshots")) }

func locationResult(res *repo.Result, name string) repo.LocationResult {
	for _, lr := range res.Locations {
		if lr.Location == name {
			return lr
		}
	}
	return repo.LocationResult{}
}

// checkAt runs Check with ReadData at one location.
func checkAt(t *testing.T, r *repo.Repo, name string) repo.LocationCheck {
	t.Helper()
	cs, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true, Locations: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	return cs[0]
}

// With one location down, a backup commits at the other and says so; the
// next backup with both up copies what the lagging location missed, so
// each location passes Check on its own and can restore alone.
func TestDegradedBackup(t *testing.T) {
	a, b := randomStream("a", 1, 3<<20), textStream("b", loremParagraph, 1<<20)
	f := newFixture(t)
	f.init()
	f.faults[0].SetDown(nil)
	res := backup(t, f.open(), a)
	if strings.Join(res.Committed, ",") != "groningen" || !res.Degraded(2) || res.Degraded(1) {
		t.Fatalf("committed at %v (degraded %v), want groningen only", res.Committed, res.Degraded(2))
	}
	if lr := locationResult(res, "amsterdam"); lr.OK || !strings.Contains(lr.Error, "unreachable") {
		t.Errorf("amsterdam's result %+v does not say it was unreachable", lr)
	}
	verifyRestore(t, f.open(), res.ID, a)
	f.faults[0].SetUp()
	if f.snapshotsAt(0) != 0 || len(f.names(0, "data")) != 0 {
		t.Fatal("the down location received objects")
	}

	res2 := backup(t, f.open(), a, b)
	if len(res2.Committed) != 2 || res2.Degraded(2) {
		t.Fatalf("second backup committed at %v, want both", res2.Committed)
	}
	r := f.open()
	// Amsterdam lacks the first snapshot until a sync: check says so there,
	// and only that.
	if errs := checkErrors(t, r); errs["groningen"] != "" || !strings.Contains(errs["amsterdam"], "snapshot "+res.ID.Short()+" is missing") || !strings.Contains(errs["amsterdam"], "missing here but held by groningen") ||
		strings.Count(errs["amsterdam"], "\n") != 0 {
		t.Errorf("check after the degraded backup: %v", errs)
	}
	// Amsterdam holds everything the new snapshot needs: it restores alone.
	f.faults[1].SetDown(nil)
	verifyRestore(t, f.open(), res2.ID, a, b)
	f.faults[1].SetUp()
	// The first snapshot stays at groningen only until a sync copies it.
	snaps, err := r.Snapshots(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps {
		want := "amsterdam,groningen"
		if s.ID == res.ID {
			want = "groningen"
		}
		if got := strings.Join(s.Locations, ","); got != want {
			t.Errorf("snapshot %s at %s, want %s", s.ID.Short(), got, want)
		}
	}
}

// A location that is missing a whole repository (it was down at init)
// gets the config and key file with the next backup.
func TestLocationDownAtInit(t *testing.T) {
	f := newFixture(t)
	f.faults[1].SetDown(nil)
	r, results, err := repo.Init(context.Background(), f.tenant, f.locs, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if results[0].OK == results[1].OK {
		t.Fatalf("init results %+v", results)
	}
	f.faults[1].SetUp()
	res := backup(t, r, randomStream("a", 1, 2<<20))
	if len(res.Committed) != 2 {
		t.Fatalf("committed at %v", res.Committed)
	}
	checkAll(t, f.open())
	f.faults[0].SetDown(nil)
	verifyRestore(t, f.open(), res.ID, randomStream("a", 1, 2<<20))
}

// A full disk at one location: the backup commits degraded at the other.
// At both: it fails with an error that says so, leaves no snapshot, keeps
// the earlier ones intact, and a backup after space returns succeeds.
func TestDiskFull(t *testing.T) {
	old := textStream("old", loremParagraph, 1<<20)
	big := randomStream("big", 9, 6<<20)

	t.Run("one location", func(t *testing.T) {
		f := newFixture(t)
		backup(t, f.init(), old)
		f.faults[0].FailPutsAfter(3<<19, faulty.NoLimit, syscall.ENOSPC)
		res := backup(t, f.open(), old, big)
		if strings.Join(res.Committed, ",") != "groningen" || !res.Degraded(2) {
			t.Fatalf("committed at %v, want groningen only", res.Committed)
		}
		if lr := locationResult(res, "amsterdam"); !strings.Contains(lr.Error, "no space") {
			t.Errorf("amsterdam's result does not say the disk is full: %+v", lr)
		}
		if f.snapshotsAt(0) != 1 {
			t.Errorf("%d snapshots at the full location, want the 1 from before", f.snapshotsAt(0))
		}
		f.faults[0].Reset()
		res2 := backup(t, f.open(), old, big)
		if len(res2.Committed) != 2 {
			t.Fatalf("backup after space returned committed at %v", res2.Committed)
		}
		// The degraded snapshot is missing at amsterdam until a sync.
		if errs := checkErrors(t, f.open()); !strings.Contains(errs["amsterdam"], "snapshot "+res.ID.Short()+" is missing here") {
			t.Errorf("check before sync: %v", errs)
		}
		if _, err := f.open().Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		checkAll(t, f.open())
		f.faults[1].SetDown(nil)
		verifyRestore(t, f.open(), res2.ID, old, big)
	})

	cases := []struct {
		name    string
		bytes   int64
		objects int
		streams []stream
	}{
		// Packs fill the disks part way through the backup.
		{"both locations, packs", 3 << 19, faulty.NoLimit, []stream{old, big}},
		// All data deduplicated: only the manifest is written, and fails.
		{"both locations, manifest", faulty.NoLimit, 0, []stream{old}},
		// One small pack fits, its index does not.
		{"both locations, index", faulty.NoLimit, 1, []stream{old, bytesStream("new", []byte("a few new bytes"))}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			first := backup(t, f.init(), old)
			for _, fl := range f.faults {
				fl.FailPutsAfter(c.bytes, c.objects, syscall.ENOSPC)
			}
			_, err := tryBackup(f.open(), c.streams...)
			if err == nil {
				t.Fatal("backup to two full disks succeeded")
			}
			if !strings.Contains(err.Error(), "no space") {
				t.Errorf("error does not say the disks are full: %v", err)
			}
			t.Logf("%v", err)
			for i := range f.mems {
				if n := f.snapshotsAt(i); n != 1 {
					t.Errorf("%s: %d snapshots, want only the earlier one", f.mems[i].Name(), n)
				}
			}
			r := f.open()
			verifyRestore(t, r, first.ID, old)
			checkAll(t, r) // orphaned packs are warnings, not errors
			for _, fl := range f.faults {
				fl.Reset()
			}
			res := backup(t, f.open(), c.streams...)
			if len(res.Committed) != 2 {
				t.Fatalf("backup after space returned committed at %v", res.Committed)
			}
			r = f.open()
			verifyRestore(t, r, res.ID, c.streams...)
			verifyRestore(t, r, first.ID, old)
			checkAll(t, r)
		})
	}
}
