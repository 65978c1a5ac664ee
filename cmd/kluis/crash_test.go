package main

// Crash safety: a backup or a prune that is SIGKILLed at any moment leaves
// every committed snapshot restorable and the repository passing
// `check --read-data` at both locations (DESIGN.md, "Repository format":
// "A crash leaves only unreferenced packs, which prune removes").
//
// The kill moments are uniform over the measured run time of an
// uninterrupted run, from a seeded generator whose seed is logged; replay a
// failure with KLUIS_TEST_SEED=<seed>.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

// crashIterations is how many kills each crash test does: at least 20, or
// 5 with -short.
func crashIterations() int {
	if testing.Short() {
		return 5
	}
	return 20
}

// modifyRegions overwrites a few random regions of the file at path with
// new mixed data (about total bytes), as a database dump changes between
// nights.
func modifyRegions(t *testing.T, rng *rand.Rand, path string, total int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	size := fi.Size()
	for written := 0; written < total; {
		n := min(256<<10+rng.IntN(1536<<10), total-written)
		off := rng.Int64N(size - int64(n))
		if _, err := f.WriteAt(mixedData(rng, n), off); err != nil {
			t.Fatal(err)
		}
		written += n
	}
}

// countTempFiles counts the temporary files of interrupted writes at both
// locations.
func countTempFiles(t *testing.T, e *env) int {
	n := 0
	for _, root := range []string{e.path("loc-a"), e.path("loc-g")} {
		for _, o := range objects(t, root) {
			if strings.Contains(o, "/.tmp-") {
				n++
			}
		}
	}
	return n
}

// orphanPacks sums the "N packs are in no index" warnings of a check.
func orphanPacks(locs []checkLocation) int {
	n := 0
	for _, l := range locs {
		for _, w := range l.Warnings {
			var k int
			if _, err := fmt.Sscanf(w, "%d packs are in no index", &k); err == nil {
				n += k
			}
		}
	}
	return n
}

// TestCrashBackup SIGKILLs `kluis backup` of a ~150 MiB files tenant at
// random moments. After every kill, check --read-data passes and the first
// snapshot restores byte-identical; every few kills a complete backup
// succeeds and restores.
func TestCrashBackup(t *testing.T) {
	t.Parallel()
	iters := crashIterations()
	rng := seededRand(t)
	e := initRepo(newFastEnv(t))
	began := time.Now()

	base := e.path("base.bin")
	writeData(t, rng, base, 150<<20)
	first := e.backup(0, base)
	t.Logf("first snapshot %s (150 MiB) in %v", first[:8], time.Since(began).Round(time.Millisecond))

	// The modified input every later backup reads; ~8 MiB of it changes
	// before each run.
	mod := e.path("mod.bin")
	copyFile(t, base, mod)
	const change = 8 << 20
	modifyRegions(t, rng, mod, change)
	start := time.Now()
	good := e.backup(0, mod)
	runTime := time.Since(start)
	e.restoreEqual(good, mod)
	// The shorter of two runs: the first pays for cold caches, and kills
	// drawn from a too long window land after the backup finished (on a
	// loaded machine most did).
	modifyRegions(t, rng, mod, change)
	start = time.Now()
	e.backup(0, mod)
	runTime = min(runTime, time.Since(start))
	t.Logf("uninterrupted backup of a modified input: %v; kills are uniform in [0, %v)", runTime.Round(time.Millisecond), runTime.Round(time.Millisecond))

	killed, completed, orphaned, orphans := 0, 0, 0, 0
	for i := range iters {
		modifyRegions(t, rng, mod, change)
		delay := time.Duration(rng.Int64N(int64(runTime)))
		r, wasKilled := e.runKilled(delay, "backup", "--tenant", tenant, "--file", "db="+mod)
		switch {
		case wasKilled:
			killed++
		case r.code == 0:
			completed++
		default:
			t.Fatalf("iteration %d: backup not killed but failed: %v", i, r)
		}

		// Prove each location in turn as the one read first.
		from := []string{"amsterdam", "groningen"}[i%2]
		locs, checkTime, restoreTime := e.checkAndRestore(first, base, "--location", from)
		if n := orphanPacks(locs); n > orphans {
			orphaned++
			orphans = n
		}
		t.Logf("iteration %2d: kill after %4dms: killed=%-5v check ok in %5v (%2d packs in no index), first snapshot restores from %s in %v",
			i, delay.Milliseconds(), wasKilled, checkTime.Round(time.Millisecond), orphanPacks(locs), from, restoreTime.Round(time.Millisecond))

		if (i+1)%5 == 0 || i == iters-1 {
			// A complete backup succeeds despite the leftovers, and a
			// prune removes them.
			id := e.backup(0, mod)
			e.restoreEqual(id, mod)
			e.mustRun(0, "prune", "--tenant", tenant, "--grace", "0s")
			orphans = 0
			t.Logf("iteration %2d: a complete backup (%s) succeeds and restores; pruned the leftovers", i, id[:8])
		}
	}
	if killed < iters/2 {
		t.Errorf("only %d of %d runs were killed while running (%d completed first): the kills do not exercise the backup", killed, iters, completed)
	}

	// Every leftover of the interrupted runs was pruned; every snapshot
	// still restores.
	locs, _, _ := e.checkAndRestore(first, base)
	for _, l := range locs {
		if len(l.Warnings) > 0 {
			t.Errorf("after prune --grace 0s, check at %s still warns: %q", l.Location, l.Warnings)
		}
	}
	e.restoreEqual("latest", mod)
	t.Logf("%d kills: %d killed mid-run, %d completed first, %d left packs in no index; %d temp files of interrupted writes remain after the prunes; total %v",
		iters, killed, completed, orphaned, countTempFiles(t, e), time.Since(began).Round(time.Second))
}

// TestCrashPrune SIGKILLs `kluis prune --grace 0s` at random moments, each
// time after re-creating garbage (snapshots that share packs with the kept
// one, then forget --keep-last 1). After every kill, check --read-data
// passes and the kept snapshot restores byte-identical.
func TestCrashPrune(t *testing.T) {
	t.Parallel()
	iters := crashIterations()
	rng := seededRand(t)
	e := newRepoEnv(t) // on disk: every delete fsyncs its directory, which widens the deleting phase
	began := time.Now()

	keep := e.path("keep.bin")
	writeData(t, rng, keep, 16<<20)
	garbage := e.path("garbage.bin")

	// Random bytes fill whole packs that only the garbage snapshot needs.
	// When a prune has deleted them, the next snapshot of the same file
	// stores them again (as new packs); when it has not, they dedup.
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rng.Uint32())
	}
	gb := make([]byte, 32<<20)
	rand.NewChaCha8(seed).Read(gb)
	if err := os.WriteFile(garbage, gb, 0o600); err != nil {
		t.Fatal(err)
	}

	// round builds garbage and returns the one snapshot forget keeps: a
	// snapshot of garbage.bin, then a new snapshot of keep.bin with some
	// regions changed (the packs only the previous one needed become
	// garbage; packs both need stay).
	round := func() string {
		e.backup(0, garbage)
		modifyRegions(t, rng, keep, 3<<20)
		id := e.backup(0, keep)
		var out struct {
			Snapshots []struct {
				ID   string `json:"id"`
				Keep bool   `json:"keep"`
			} `json:"snapshots"`
		}
		e.mustJSON(0, &out, "forget", "--tenant", tenant, "--keep-last", "1")
		for _, s := range out.Snapshots {
			if s.Keep != (s.ID == id) {
				t.Fatalf("forget --keep-last 1: snapshot %s keep=%v, want only %s kept", s.ID[:8], s.Keep, id[:8])
			}
		}
		return id
	}
	verify := func(id string) []checkLocation {
		t.Helper()
		rows := e.snapshots()
		if len(rows) != 1 || rows[0].ID != id {
			t.Fatalf("snapshots after prune: %+v, want only %s", rows, id[:8])
		}
		locs, _, _ := e.checkAndRestore(id, keep)
		return locs
	}

	id := round()
	start := time.Now()
	var pr struct {
		PacksDeleted int `json:"packs_deleted"`
		PacksKept    int `json:"packs_kept"`
	}
	e.mustJSON(0, &pr, "prune", "--tenant", tenant, "--grace", "0s")
	runTime := time.Since(start)
	verify(id)
	t.Logf("uninterrupted prune: %v, deleted %d packs, kept %d; kills are uniform in [0, %v)", runTime.Round(time.Millisecond), pr.PacksDeleted, pr.PacksKept, runTime.Round(time.Millisecond))

	killed, completed, partial := 0, 0, 0
	for i := range iters {
		id = round()
		before, beforeIdx := countObjects(t, e)
		delay := time.Duration(rng.Int64N(int64(runTime)))
		r, wasKilled := e.runKilled(delay, "prune", "--tenant", tenant, "--grace", "0s")
		switch {
		case wasKilled:
			killed++
		case r.code == 0:
			completed++
		default:
			t.Fatalf("iteration %d: prune not killed but failed: %v", i, r)
		}
		after, afterIdx := countObjects(t, e)
		if wasKilled && after < before {
			partial++
		}
		verify(id)
		t.Logf("iteration %2d: kill after %3dms: killed=%v, packs %d -> %d, index objects %d -> %d, check ok, kept snapshot %s restores",
			i, delay.Milliseconds(), wasKilled, before, after, beforeIdx, afterIdx, id[:8])
	}
	if killed < iters/2 {
		t.Errorf("only %d of %d prunes were killed while running (%d completed first)", killed, iters, completed)
	}

	// A final prune finishes what the killed ones left.
	e.mustRun(0, "prune", "--tenant", tenant, "--grace", "0s")
	for _, l := range verify(id) {
		if len(l.Warnings) > 0 {
			t.Errorf("after a complete prune, check at %s still warns: %q", l.Location, l.Warnings)
		}
	}
	t.Logf("%d kills: %d killed mid-run (%d after deleting some packs), %d completed first; total %v",
		iters, killed, partial, completed, time.Since(began).Round(time.Second))
}

// countObjects counts the packs and the index objects at both locations.
func countObjects(t *testing.T, e *env) (packCount, indexCount int) {
	for _, root := range []string{e.path("loc-a"), e.path("loc-g")} {
		for _, o := range objects(t, root) {
			switch {
			case strings.Contains(o, "/.tmp-"):
			case strings.HasPrefix(o, tenant+"/data/"):
				packCount++
			case strings.HasPrefix(o, tenant+"/index/"):
				indexCount++
			}
		}
	}
	return packCount, indexCount
}
