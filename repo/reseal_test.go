package repo_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/faulty"
)

// backupAndReseal backs up streams, commits and re-seals (every backup
// that stored a byte). The Reseal error is returned, not fatal.
func backupAndReseal(t *testing.T, ctx context.Context, r *repo.Repo, streams ...stream) (*repo.Result, *repo.ResealResult, error) {
	return backupAndResealHook(t, ctx, r, func() {}, streams...)
}

// backupAndResealHook calls committed between Commit and Reseal.
func backupAndResealHook(t *testing.T, ctx context.Context, r *repo.Repo, committed func(), streams ...stream) (*repo.Result, *repo.ResealResult, error) {
	t.Helper()
	b, err := r.NewBackup(context.Background(), repo.BackupOptions{Engine: "files", ResealAbove: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range streams {
		if err := b.Stream(context.Background(), s.name, repo.KindFile, s.open(), nil); err != nil {
			t.Fatal(err)
		}
	}
	res, err := b.Commit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	committed()
	rs, err := b.Reseal(ctx)
	if rs != nil && res.Reseal != rs {
		t.Fatal("Result.Reseal is not what Reseal returned")
	}
	return res, rs, err
}

// restoresAtEach checks that the latest snapshot restores through every
// location alone and through both.
func (f *fixture) restoresAtEach(streams ...stream) {
	f.t.Helper()
	t := f.t.(*testing.T)
	verifyRestore(t, f.open(), repo.Hash{}, streams...)
	for i := range f.locs {
		r, err := repo.Open(context.Background(), f.tenant, f.locs[i:i+1], repo.Options{Master: f.master})
		if err != nil {
			t.Fatalf("open at %s alone: %v", f.locs[i].Name(), err)
		}
		if err := tryRestore(t, r, repo.Hash{}, streams...); err != nil {
			t.Fatalf("restore from %s alone: %v", f.locs[i].Name(), err)
		}
	}
}

// resealedNight is a fixture whose one backup, a 4 MiB table, was
// re-sealed; its old packs are not dropped yet.
func resealedNight(t *testing.T) (*fixture, *repo.ResealResult, []stream) {
	t.Helper()
	f := newFixture(t)
	night := []stream{tableStream("patients", 4<<20, nil)}
	_, rs, err := backupAndReseal(t, context.Background(), f.init(), night...)
	if err != nil {
		t.Fatal(err)
	}
	return f, rs, night
}

// backupWithStaleReader is backupAndReseal that also returns a reader (a
// restore test, a dossier) that read the index before the re-seal.
func backupWithStaleReader(t *testing.T, f *fixture, r *repo.Repo, streams ...stream) (*repo.Result, *repo.ResealResult, *repo.Repo) {
	t.Helper()
	var stale *repo.Repo
	res, rs, err := backupAndResealHook(t, context.Background(), r, func() {
		stale = f.open()
		if _, err := stale.Index(context.Background()); err != nil {
			t.Fatal(err)
		}
	}, streams...)
	if err != nil {
		t.Fatalf("Reseal: %v", err)
	}
	return res, rs, stale
}

func TestResealStoresLessAndRestoresTheSame(t *testing.T) {
	f := newFixture(t)
	r := f.init()
	ctx := context.Background()
	night1 := []stream{tableStream("patients", 6<<20, nil), textStream("notes", loremParagraph, 1<<20)}
	// stale reads the snapshot after the old packs are gone.
	res, rs, stale := backupWithStaleReader(t, f, r, night1...)
	if rs.Skipped != "" || rs.Packs == 0 || rs.BytesAfter >= rs.BytesBefore || rs.Index == "" {
		t.Fatalf("reseal did not shrink the night: %+v", rs)
	}
	t.Logf("re-sealed %d packs: %d -> %d bytes (%.3f)", rs.Packs, rs.BytesBefore, rs.BytesAfter, float64(rs.BytesAfter)/float64(rs.BytesBefore))
	before := len(f.names(0, "data"))
	if int64(before) != res.Stats.Packs+int64(rs.Packs) {
		t.Fatalf("%d packs at the first location, want the %d written and %d re-sealed", before, res.Stats.Packs, rs.Packs)
	}
	// Old and new packs both there, the new index supersedes the old.
	f.restoresAtEach(night1...)

	n, err := r.DropResealed(ctx, rs)
	if err != nil || n != rs.Packs {
		t.Fatalf("DropResealed: %d, %v; want %d", n, err, rs.Packs)
	}
	for i := range f.locs {
		if got := len(f.names(i, "data")); got != int(res.Stats.Packs) {
			t.Errorf("%s: %d packs after the drop, want %d", f.locs[i].Name(), got, res.Stats.Packs)
		}
		if got := f.names(i, "index"); len(got) != 1 || !strings.HasSuffix(got[0], rs.Index) {
			t.Errorf("%s: index objects %v, want only the re-sealed one", f.locs[i].Name(), got)
		}
	}
	f.restoresAtEach(night1...)
	checkAll(t, f.open())
	verifyRestore(t, stale, repo.Hash{}, night1...)

	// The next night deduplicates against the re-sealed blobs, and prune
	// keeps them.
	night2 := []stream{tableStream("patients", 6<<20, map[int]bool{7: true, 40000: true}), textStream("notes", loremParagraph, 1<<20)}
	r = f.open()
	res2, rs2, err := backupAndReseal(t, ctx, r, night2...)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Stats.New > res.Stats.New/4 { // two changed rows cost a few chunks of up to 512 KiB; without dedup it would be all
		t.Errorf("second night stored %d new bytes of %d: it did not deduplicate against the re-sealed packs", res2.Stats.New, res.Stats.New)
	}
	if _, err := r.DropResealed(ctx, rs2); err != nil {
		t.Fatal(err)
	}
	if _, err := f.open().Prune(ctx, repo.PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	f.restoresAtEach(night2...)
	verifyRestore(t, f.open(), res.ID, night1...)
	checkAll(t, f.open())
}

// TestResealFailsSafe: a location that refuses the new packs or the new
// index, a context that ends, a damaged copy: the snapshot stays readable
// from each location alone, and what was written is cleaned up by prune.
func TestResealFailsSafe(t *testing.T) {
	night := []stream{tableStream("patients", 4<<20, nil)}
	full := errors.New("disk full (injected)")
	cases := []struct {
		name    string
		inject  func(f *fixture, res *repo.Result) context.Context
		wantErr string
	}{
		{"second location refuses a new pack", func(f *fixture, res *repo.Result) context.Context {
			f.faults[1].FailPutsAfter(faulty.NoLimit, 1, full)
			return context.Background()
		}, "disk full"},
		{"second location refuses the new index", func(f *fixture, res *repo.Result) context.Context {
			f.faults[1].FailPutsAfter(faulty.NoLimit, int(res.Stats.Packs), full)
			return context.Background()
		}, "the new index reached 1 of 2"},
		{"the context ends mid-way", func(f *fixture, res *repo.Result) context.Context {
			f.faults[0].SetDelay(20 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			f.t.Cleanup(cancel)
			return ctx
		}, "deadline"},
		{"first location's copy damaged", func(f *fixture, res *repo.Result) context.Context {
			f.faults[0].SetCorrupt(faulty.Contains("/data/"))
			return context.Background()
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			r := f.init()
			b, err := r.NewBackup(context.Background(), repo.BackupOptions{Engine: "files", ResealAbove: 1})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Stream(context.Background(), night[0].name, repo.KindFile, night[0].open(), nil); err != nil {
				t.Fatal(err)
			}
			res, err := b.Commit(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			rs, err := b.Reseal(c.inject(f, res))
			for _, fl := range f.faults {
				fl.Reset()
			}
			if c.wantErr == "" {
				if err != nil || rs.Packs == 0 {
					t.Fatalf("Reseal: %+v, %v", rs, err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Reseal error %v, want one saying %q", err, c.wantErr)
				}
				if len(rs.Old) != 0 {
					t.Fatal("a failed Reseal offers old packs to drop")
				}
			}
			f.restoresAtEach(night...)
			if _, err := f.open().DropResealed(context.Background(), rs); err != nil {
				t.Fatal(err)
			}
			f.restoresAtEach(night...)
			// Prune removes what a failed reseal left unindexed.
			if _, err := f.open().Prune(context.Background(), repo.PruneOptions{}); err != nil {
				t.Fatal(err)
			}
			for i := range f.locs {
				if got := len(f.names(i, "data")); got != int(res.Stats.Packs) {
					t.Errorf("%s: %d packs after prune, want %d", f.locs[i].Name(), got, res.Stats.Packs)
				}
			}
			f.restoresAtEach(night...)
			checkAll(t, f.open())
		})
	}
}

// TestDropResealedRefuses: the old packs stay while a location lacks a
// re-sealed pack or a live index still names them.
func TestDropResealedRefuses(t *testing.T) {
	f, rs, night := resealedNight(t)
	ctx := context.Background()
	// A location loses one re-sealed pack (hostile or damaged).
	newPacks := map[string]bool{}
	for _, n := range f.names(1, "data") {
		newPacks[n] = true
	}
	for _, pb := range rs.Old {
		delete(newPacks, f.tenant+"/data/"+pb.Pack.String()[:2]+"/"+pb.Pack.String())
	}
	var lost string
	for n := range newPacks {
		lost = n
		break
	}
	data, _ := f.mems[1].Bytes(lost)
	if err := f.mems[1].Delete(ctx, lost); err != nil {
		t.Fatal(err)
	}
	before := len(f.names(0, "data"))
	if n, err := f.open().DropResealed(ctx, rs); err == nil || n != 0 {
		t.Fatalf("DropResealed with a re-sealed pack missing at a location: %d deleted, %v", n, err)
	}
	if got := len(f.names(0, "data")); got != before {
		t.Fatalf("a refused drop deleted packs: %d -> %d", before, got)
	}
	verifyRestore(t, f.open(), repo.Hash{}, night...) // through the other location's copy
	// Or holds it truncated.
	f.mems[1].Replace(lost, data[:len(data)-1])
	if n, err := f.open().DropResealed(ctx, rs); err == nil || n != 0 {
		t.Fatalf("DropResealed with a re-sealed pack truncated at a location: %d deleted, %v", n, err)
	}
	f.mems[1].Replace(lost, data)
	if n, err := f.open().DropResealed(ctx, rs); err != nil || n != rs.Packs {
		t.Fatalf("DropResealed once the pack is back: %d, %v", n, err)
	}
	f.restoresAtEach(night...)
}

// TestResealSkips: below the threshold, off, degraded: nothing happens.
func TestResealSkips(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		above int64
		down  bool
		want  string
	}{
		{"off", 0, false, "off"},
		{"small night", 1 << 40, false, "under the"},
		{"degraded", 1, true, "not at every location"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			r := f.init()
			if c.down {
				f.faults[1].SetDown(faulty.ErrDown)
			}
			b, err := r.NewBackup(ctx, repo.BackupOptions{Engine: "files", ResealAbove: c.above})
			if err != nil {
				t.Fatal(err)
			}
			s := tableStream("patients", 2<<20, nil)
			if err := b.Stream(ctx, s.name, repo.KindFile, s.open(), nil); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			packs := len(f.names(0, "data"))
			rs, err := b.Reseal(ctx)
			if err != nil || !strings.Contains(rs.Skipped, c.want) || rs.Packs != 0 {
				t.Fatalf("Reseal: %+v, %v; want skipped %q", rs, err, c.want)
			}
			if got := len(f.names(0, "data")); got != packs {
				t.Fatalf("a skipped reseal wrote packs: %d -> %d", packs, got)
			}
		})
	}
}

// TestResealStaleReaderLocationErroring: a reader that read the index
// before the re-seal restores after the old packs are gone even when one
// location answers for them with an error (down, or hostile) rather than
// "not found" (attacker review).
func TestResealStaleReaderLocationErroring(t *testing.T) {
	night := []stream{tableStream("patients", 4<<20, nil)}
	f := newFixture(t)
	r := f.init()
	ctx := context.Background()
	_, rs, stale := backupWithStaleReader(t, f, r, night...)
	if _, err := r.DropResealed(ctx, rs); err != nil {
		t.Fatal(err)
	}
	f.faults[0].SetDown(faulty.ErrDown)
	if err := tryRestore(t, stale, repo.Hash{}, night...); err != nil {
		t.Fatalf("stale reader with the first location down: %v", err)
	}
}

// TestDropResealedWantsTheNewIndexEverywhere: where the new index is
// missing, the old index and packs are what that location alone restores
// from, so they stay (attacker review).
func TestDropResealedWantsTheNewIndexEverywhere(t *testing.T) {
	f, rs, night := resealedNight(t)
	ctx := context.Background()
	for _, n := range f.names(1, "index") {
		if strings.HasSuffix(n, rs.Index) {
			f.mems[1].Remove(n)
		}
	}
	if n, err := f.open().DropResealed(ctx, rs); err == nil || n != 0 || !strings.Contains(err.Error(), "is not at groningen") {
		t.Fatalf("DropResealed without the new index at a location: %d deleted, %v", n, err)
	}
	r1, err := repo.Open(ctx, f.tenant, f.locs[1:2], repo.Options{Master: f.master})
	if err != nil {
		t.Fatal(err)
	}
	if err := tryRestore(t, r1, repo.Hash{}, night...); err != nil {
		t.Fatalf("the location without the new index, alone: %v", err)
	}
}

// TestDropResealedReadsBack: a location whose copy of the new index or of
// a re-sealed pack is damaged (listed, even at the right size) keeps its
// old index and packs, so it still restores alone (second review).
func TestDropResealedReadsBack(t *testing.T) {
	for _, c := range []struct {
		name string
		pick func(f *fixture, rs *repo.ResealResult) string
	}{
		{"new index truncated", func(f *fixture, rs *repo.ResealResult) string {
			for _, n := range f.names(1, "index") {
				if strings.HasSuffix(n, rs.Index) {
					return n
				}
			}
			return ""
		}},
		{"re-sealed pack damaged at its size", func(f *fixture, rs *repo.ResealResult) string {
			old := map[string]bool{}
			for _, pb := range rs.Old {
				old[pb.Pack.String()] = true
			}
			for _, n := range f.names(1, "data") {
				if !old[n[strings.LastIndex(n, "/")+1:]] {
					return n
				}
			}
			return ""
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, rs, night := resealedNight(t)
			ctx := context.Background()
			name := c.pick(f, rs)
			data, ok := f.mems[1].Bytes(name)
			if !ok {
				t.Fatalf("no object to damage (%q)", name)
			}
			bad := append([]byte(nil), data...)
			if strings.Contains(name, "/index/") {
				bad = bad[:len(bad)-1]
			} else {
				bad[len(bad)/2] ^= 1
			}
			f.mems[1].Replace(name, bad)
			if n, err := f.open().DropResealed(ctx, rs); err == nil || n != 0 || !strings.Contains(err.Error(), "does not read back") {
				t.Fatalf("DropResealed: %d deleted, %v; want a refusal naming the copy that does not read back", n, err)
			}
			for i := range f.locs {
				if got := len(f.names(i, "data")); got != 2*rs.Packs {
					t.Errorf("%s: %d packs after a refused drop, want the %d old and new", f.locs[i].Name(), got, 2*rs.Packs)
				}
			}
			verifyRestore(t, f.open(), repo.Hash{}, night...)
			if strings.Contains(name, "/index/") {
				// That location alone still has the old index and packs.
				r1, err := repo.Open(ctx, f.tenant, f.locs[1:2], repo.Options{Master: f.master})
				if err != nil {
					t.Fatal(err)
				}
				if err := tryRestore(t, r1, repo.Hash{}, night...); err != nil {
					t.Fatalf("the damaged location alone: %v", err)
				}
			}
		})
	}
}

// retainingLocation refuses every delete as Object Lock would.
type retainingLocation struct{ repo.Location }

func (l retainingLocation) Delete(ctx context.Context, name string) error {
	return fmt.Errorf("%s: %w", name, repo.ErrRetained)
}

// TestDropResealedCountsRetained: packs a retention (one kluis's config
// does not declare: a bucket default) keeps are not reported deleted
// (second review).
func TestDropResealedCountsRetained(t *testing.T) {
	f, rs, night := resealedNight(t)
	ctx := context.Background()
	locs := []repo.Location{retainingLocation{f.locs[0]}, retainingLocation{f.locs[1]}}
	ro, err := repo.Open(ctx, f.tenant, locs, repo.Options{Master: f.master})
	if err != nil {
		t.Fatal(err)
	}
	n, err := ro.DropResealed(ctx, rs)
	if err != nil || n != 0 || rs.Retained != 2*(rs.Packs+1) {
		t.Fatalf("DropResealed under retention: %d deleted, %d retained, %v; want 0 and %d", n, rs.Retained, err, 2*(rs.Packs+1))
	}
	f.restoresAtEach(night...)
}
