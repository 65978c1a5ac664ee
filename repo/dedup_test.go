package repo_test

import (
	"math/rand/v2"
	"testing"
)

// clusteredChanges picks 1 % of lines, in runs of about 400 lines at
// random places: updates a nightly backup sees, spread over the table.
func clusteredChanges(lines int, seed uint64) map[int]bool {
	rng := rand.New(rand.NewPCG(seed, 99))
	total := lines / 100
	runs := max(1, lines/40000)
	per := total / runs
	changed := map[int]bool{}
	for range runs {
		start := rng.IntN(lines - per)
		for i := start; i < start+per; i++ {
			changed[i] = true
		}
	}
	return changed
}

// scatteredChanges picks 1 % of lines independently at random.
func scatteredChanges(lines int, seed uint64) map[int]bool {
	rng := rand.New(rand.NewPCG(seed, 98))
	changed := map[int]bool{}
	for len(changed) < lines/100 {
		changed[rng.IntN(lines)] = true
	}
	return changed
}

// stored is the bytes at location 0.
func (f *fixture) stored() int64 { return f.mems[0].Size() }

// Backing up the same data again stores (almost) nothing; a table with 1 %
// of its lines changed, in runs at scattered places, stores a small part
// of its size.
func TestDedup(t *testing.T) {
	n := size(200<<20, 16<<20)
	lines := tableLines(n)
	base := tableStream("public.clients", n, nil)
	files := randomStream("attachments.tar", 5, n/20)

	f := newFixture(t)
	r := f.init()
	first := backup(t, r, base, files)
	size0 := f.stored()
	t.Logf("first backup of %d MiB: %d MiB stored, %d packs", first.Stats.Read>>20, size0>>20, first.Stats.Packs)

	t.Run("same data", func(t *testing.T) {
		r := f.open() // a new process: the index comes from the locations
		res := backup(t, r, base, files)
		grew := f.stored() - size0
		if res.Stats.New != 0 || res.Stats.Packs != 0 {
			t.Errorf("second backup of the same data: %d bytes new in %d packs", res.Stats.New, res.Stats.Packs)
		}
		if ratio := float64(grew) / float64(res.Stats.Read); ratio >= 0.01 {
			t.Errorf("second backup grew the location by %d bytes, %.2f %% of %d (want < 1 %%)", grew, 100*ratio, res.Stats.Read)
		} else {
			t.Logf("same data again: location grew %d bytes (%.4f %%)", grew, 100*ratio)
		}
	})

	t.Run("1% of lines changed", func(t *testing.T) {
		changed := tableStream("public.clients", n, clusteredChanges(lines, 1))
		before := f.stored()
		r := f.open()
		res := backup(t, r, changed, files)
		grew := f.stored() - before
		// Measured both ways: stored bytes (after zstd) and new plaintext.
		stored, fresh := float64(grew)/float64(n), float64(res.Stats.New)/float64(n)
		if stored >= 0.10 || fresh >= 0.10 {
			t.Errorf("backup after changing 1 %% of lines of a %d-byte table: location grew %.1f %%, new plaintext %.1f %% (want < 10 %%)", n, 100*stored, 100*fresh)
		} else {
			t.Logf("1 %% of lines changed in runs: location grew %d bytes (%.2f %% of the table), new plaintext %.2f %%", grew, 100*stored, 100*fresh)
		}
		verifyRestore(t, f.open(), res.ID, changed, files)
	})
}

// A measurement, not a requirement: when 1 % of the rows change
// independently at random, almost every 64 KiB chunk holds one of them
// (a chunk spans ~770 rows; 0.99^770 ≈ 0.04 %), so nearly the whole table
// is new. Smaller chunks help only a little; this is why the changed-lines
// requirement above is about changes in runs.
func TestDedupScatteredRowsStudy(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("a measurement; runs without -short and -race")
	}
	n := int64(16 << 20)
	f := newFixture(t)
	r := f.init()
	backup(t, r, tableStream("t", n, nil))
	before := f.stored()
	res := backup(t, r, tableStream("t", n, scatteredChanges(tableLines(n), 2)))
	t.Logf("1 %% of rows changed independently: new plaintext %.1f %% of the table, location grew %.1f %% (after zstd)",
		100*float64(res.Stats.New)/float64(n), 100*float64(f.stored()-before)/float64(n))
}
