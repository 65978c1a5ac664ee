package repo_test

import (
	"context"
	"errors"
	"path"
	"sort"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/repo"
)

// packsOf returns the packs snapshot id's blobs are in.
func packsOf(t *testing.T, r *repo.Repo, id repo.Hash) map[string]bool {
	t.Helper()
	ctx := context.Background()
	m, err := r.LoadManifest(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := r.Index(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, s := range m.Streams {
		for _, b := range s.Blobs {
			bl, ok := idx.Lookup(b)
			if !ok {
				t.Fatalf("blob %s of snapshot %s is in no index", b, id.Short())
			}
			out[bl.Pack.String()] = true
		}
	}
	return out
}

func union(sets ...map[string]bool) []string {
	m := map[string]bool{}
	for _, s := range sets {
		for k := range s {
			m[k] = true
		}
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// settle waits until no more objects arrive at the locations: the uploads
// of an abandoned backup run on.
func (f *fixture) settle() {
	count := func() (n int) {
		for _, m := range f.mems {
			n += len(m.Names())
		}
		return n
	}
	for last := -1; ; {
		n := count()
		if n == last {
			return
		}
		last = n
		time.Sleep(100 * time.Millisecond)
	}
}

// packsAt returns the pack hashes stored at location i.
func (f *fixture) packsAt(i int) []string {
	var out []string
	for _, n := range f.names(i, "data") {
		out = append(out, path.Base(n))
	}
	sort.Strings(out)
	return out
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Prune removes exactly the packs no remaining snapshot needs (and, past
// the grace period, the packs of an abandoned backup); afterwards every
// snapshot restores and Check passes everywhere.
func TestPrune(t *testing.T) {
	ctx := context.Background()
	a, b := randomStream("a", 1, 2<<20), randomStream("b", 2, 2<<20)
	c, text := randomStream("c", 3, 1<<20), textStream("text", loremParagraph, 1<<20)
	f := newFixture(t)
	r := f.init()
	s1 := backup(t, r, a, text)
	s2 := backup(t, r, b)
	s3 := backup(t, r, a, c)
	// An abandoned backup: its full packs are uploaded, never indexed.
	ab, err := r.NewBackup(ctx, repo.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ab.Stream(ctx, "abandoned", repo.KindFile, randomStream("", 4, 3<<20).open(), nil); err != nil {
		t.Fatal(err)
	}

	f.settle()

	r = f.open()
	p1, p2, p3 := packsOf(t, r, s1.ID), packsOf(t, r, s2.ID), packsOf(t, r, s3.ID)
	all := f.packsAt(0)
	if len(all) <= len(union(p1, p2, p3)) {
		t.Fatalf("the abandoned backup left no packs (%d packs, %d referenced)", len(all), len(union(p1, p2, p3)))
	}
	orphans := map[string]bool{}
	for _, p := range all {
		orphans[p] = !p1[p] && !p2[p] && !p3[p]
		if !orphans[p] {
			delete(orphans, p)
		}
	}
	for p := range p2 {
		if p1[p] || p3[p] {
			t.Fatalf("pack %s is shared by snapshots 2 and 1 or 3: the test wants s2's packs its own", p)
		}
	}

	if _, err := r.Forget(ctx, []repo.Hash{s2.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.FindSnapshot(ctx, s2.Snapshot); !errors.Is(err, repo.ErrNotFound) {
		t.Fatalf("forgotten snapshot still found: %v", err)
	}

	t.Run("dry run deletes nothing", func(t *testing.T) {
		pr, err := f.open().Prune(ctx, repo.PruneOptions{DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if want := 2 * (len(p2) + len(orphans)); pr.PacksDeleted != want {
			t.Errorf("dry run would delete %d packs, want %d", pr.PacksDeleted, want)
		}
		if got := f.packsAt(0); !sameStrings(got, all) {
			t.Error("dry run deleted packs")
		}
	})
	t.Run("young orphans survive the grace period", func(t *testing.T) {
		pr, err := f.open().Prune(ctx, repo.PruneOptions{Grace: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		want := union(p1, p3, orphans)
		for i := range f.mems {
			if got := f.packsAt(i); !sameStrings(got, want) {
				t.Errorf("%s: %d packs after prune, want %d (those of snapshots 1 and 3 and the young orphans)", f.mems[i].Name(), len(got), len(want))
			}
		}
		if pr.PacksDeleted != 2*len(p2) || pr.PacksKept != len(union(p1, p3)) || pr.Snapshots != 2 {
			t.Errorf("prune result %+v; want %d deleted, %d kept, 2 snapshots", pr, 2*len(p2), len(union(p1, p3)))
		}
	})
	t.Run("without grace orphans go too", func(t *testing.T) {
		if _, err := f.open().Prune(ctx, repo.PruneOptions{}); err != nil {
			t.Fatal(err)
		}
		want := union(p1, p3)
		for i := range f.mems {
			if got := f.packsAt(i); !sameStrings(got, want) {
				t.Errorf("%s: %d packs after prune, want %d", f.mems[i].Name(), len(got), len(want))
			}
			if n := len(f.names(i, "index")); n != 1 {
				t.Errorf("%s: %d index objects after prune, want 1 compacted one", f.mems[i].Name(), n)
			}
		}
	})

	r = f.open()
	verifyRestore(t, r, s1.ID, a, text)
	verifyRestore(t, r, s3.ID, a, c)
	for _, c := range checkAll(t, r) {
		if len(c.Warnings) > 0 {
			t.Errorf("Check at %s warns: %v", c.Location, c.Warnings)
		}
	}
	// Later backups dedup against what prune kept, and store again what
	// it removed.
	s4 := backup(t, r, a, b)
	if s4.Stats.New != 2<<20 {
		t.Errorf("backup after prune stored %d new bytes, want %d (b again, not a)", s4.Stats.New, 2<<20)
	}
	verifyRestore(t, f.open(), s4.ID, a, b)
	checkAll(t, f.open())
}

// Prune works from the complete picture or not at all.
func TestPruneNeedsEveryLocation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.init()
	s1 := backup(t, r, randomStream("a", 1, 1<<20))
	backup(t, r, randomStream("b", 2, 1<<20))
	if _, err := r.Forget(ctx, []repo.Hash{s1.ID}); err != nil {
		t.Fatal(err)
	}
	before := f.packsAt(1)
	f.faults[0].SetDown(nil)
	defer f.faults[0].SetUp()
	if _, err := f.open().Prune(ctx, repo.PruneOptions{}); err == nil {
		t.Fatal("prune with a location down succeeded")
	}
	if got := f.packsAt(1); !sameStrings(got, before) {
		t.Error("a failed prune deleted packs at the healthy location")
	}
	// Forget also says when a location could not delete.
	if _, err := f.open().Forget(ctx, []repo.Hash{s1.ID}); err == nil {
		t.Error("forget with a location down reported success")
	}
}

// A backup that starts while prune runs waits for the tenant lock (shared
// for backup, exclusive for prune), and both results are sound: the
// backup commits after prune has finished, every snapshot restores, and
// Check passes.
func TestPruneWaitsForLock(t *testing.T) {
	ctx := context.Background()
	state := t.TempDir()
	a, b := randomStream("a", 1, 2<<20), randomStream("b", 2, 2<<20)
	f := newFixture(t)
	r := f.init()
	backup(t, r, a)
	s2 := backup(t, r, b)
	if _, err := r.Forget(ctx, []repo.Hash{s2.ID}); err != nil {
		t.Fatal(err)
	}

	pruneLocked := make(chan struct{})
	pruneDone := make(chan time.Time, 1)
	pruneErr := make(chan error, 1)
	go func() {
		lock, err := repo.LockTenant(ctx, state, f.tenant, true)
		if err != nil {
			pruneErr <- err
			close(pruneLocked)
			return
		}
		close(pruneLocked)
		// Slow storage makes prune take a while.
		for _, fl := range f.faults {
			fl.SetDelay(10 * time.Millisecond)
		}
		_, err = f.open().Prune(ctx, repo.PruneOptions{})
		for _, fl := range f.faults {
			fl.SetDelay(0)
		}
		pruneDone <- time.Now()
		pruneErr <- err
		lock.Unlock()
	}()
	<-pruneLocked

	// A backup does not get in while prune holds the lock.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err := repo.LockTenant(short, state, f.tenant, false)
	cancel()
	if !errors.Is(err, repo.ErrLocked) {
		t.Fatalf("shared lock during prune = %v, want ErrLocked", err)
	}

	lock, err := repo.LockTenant(ctx, state, f.tenant, false)
	if err != nil {
		t.Fatal(err)
	}
	got := time.Now()
	if err := <-pruneErr; err != nil {
		t.Fatalf("prune: %v", err)
	}
	if done := <-pruneDone; got.Before(done) {
		t.Fatalf("backup took the lock at %v, before prune finished at %v", got, done)
	}
	// The backup opens the repository under its lock (as the CLI does),
	// so its index is the one prune left; b's packs are gone and b is
	// stored again.
	s3 := backup(t, f.open(), a, b)
	if s3.Stats.New != 2<<20 {
		t.Errorf("backup after prune stored %d new bytes, want %d", s3.Stats.New, 2<<20)
	}
	// Another backup may share the lock.
	lock2, err := repo.LockTenant(ctx, state, f.tenant, false)
	if err != nil {
		t.Fatalf("second shared lock: %v", err)
	}
	lock2.Unlock()
	lock.Unlock()

	r = f.open()
	verifyRestore(t, r, s3.ID, a, b)
	checkAll(t, r)
	snaps, err := r.Snapshots(ctx)
	if err != nil || len(snaps) != 2 {
		t.Fatalf("%d snapshots (%v), want 2", len(snaps), err)
	}
	for _, s := range snaps {
		if s.ID == s3.ID {
			continue
		}
		verifyRestore(t, r, s.ID, a)
	}
}

// A prune killed while it wrote its compacted index may leave it at some
// locations only. The next prune must not take it as the one current
// index and delete the superseded ones everywhere: the other locations
// would be left with no index (found by cmd/kluis TestCrashPrune).
func TestPruneAfterCompactedIndexAtOneLocation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.init()
	a, b := randomStream("a", 1, 1<<20), randomStream("b", 2, 1<<20)
	s1 := backup(t, r, a)
	s2 := backup(t, r, b)
	old := map[string][]byte{}
	for _, n := range f.names(1, "index") {
		data, _ := f.mems[1].Bytes(n)
		old[n] = data
	}
	if len(old) < 2 {
		t.Fatalf("%d index objects before the prune, want 2", len(old))
	}
	if _, err := f.open().Prune(ctx, repo.PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	compacted := f.names(1, "index")
	if len(compacted) != 1 {
		t.Fatalf("index objects after prune: %v", compacted)
	}
	// The state a kill leaves after the compacted index reached amsterdam
	// only: groningen still has only the indexes it supersedes.
	for i := range f.mems {
		for n, data := range old {
			f.mems[i].Replace(n, data)
		}
	}
	f.mems[1].Remove(compacted[0])

	if _, err := f.open().Prune(ctx, repo.PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, m := range f.mems {
		if got := f.names(i, "index"); len(got) == 0 {
			t.Fatalf("location %s has no index object after the prune", m.Name())
		}
	}
	// Each location alone still restores both snapshots.
	for i := range f.locs {
		one, err := repo.Open(ctx, f.tenant, f.locs[i:i+1], repo.Options{Master: f.master})
		if err != nil {
			t.Fatal(err)
		}
		verifyRestore(t, one, s1.ID, a)
		verifyRestore(t, one, s2.ID, b)
	}
}
