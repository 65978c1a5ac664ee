package repo_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/repo/faulty"
)

// TestSync: after backups with one location down, Sync copies exactly
// what that location lacks (the set difference), verified; a second Sync
// copies nothing; a location still down is reported incomplete; a damaged
// copy at the source is skipped for the other location's good one.
func TestSync(t *testing.T) {
	ctx := context.Background()
	a, b := randomStream("a", 11, 2<<20), randomStream("b", 12, 1<<20)
	f := newFixture(t)
	f.init()
	f.faults[1].SetDown(nil)
	backup(t, f.open(), a)
	backup(t, f.open(), a, b)

	// Still down: incomplete, and said so.
	res, err := f.open().Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Complete() || res[1].Complete() || res[1].Error == "" {
		t.Fatalf("sync with groningen down: %+v", res)
	}

	f.faults[1].SetUp()
	// A damaged copy of one pack at amsterdam (read side only): groningen
	// has none yet, so this pack cannot be copied; everything else is.
	var damaged string
	for _, n := range f.names(0, "data") {
		damaged = n
		break
	}
	f.faults[0].SetCorrupt(func(name string) bool { return name == damaged })
	res, err = f.open().Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res[1].Complete() || res[1].Missing != 1 || !strings.Contains(res[1].Error, damaged[strings.LastIndex(damaged, "/")+1:]) {
		t.Fatalf("sync from a damaged copy: %+v, want one missing object named", res[1])
	}
	f.faults[0].Reset()
	res, err = f.open().Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Complete() || !res[1].Complete() || res[1].Copied != 1 {
		t.Fatalf("sync after the damage went away: %+v", res)
	}
	if fmt.Sprint(f.mems[0].Names()) != fmt.Sprint(f.mems[1].Names()) {
		t.Fatalf("after sync the locations differ:\n%v\n%v", f.mems[0].Names(), f.mems[1].Names())
	}
	if res, _ := f.open().Sync(ctx); res[0].Copied+res[1].Copied != 0 {
		t.Errorf("a second sync copied %+v", res)
	}
	checkAll(t, f.open())
	// Groningen alone restores both snapshots.
	f.faults[0].SetDown(faulty.ErrDown)
	verifyRestore(t, f.open(), [32]byte{}, a, b)
}
