package repo_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/repo"
)

// The first backup of enough data trains the tenant's zstd dictionary at
// its end, stores it in a pack of its own and names it in the manifest;
// later backups carry it and compress new blobs with it; every snapshot
// restores exactly from either location and check reads it clean.
func TestDictionaryRoundTrip(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.init()
	first := tableStream("table/clients", 24<<20, nil)
	res1 := backup(t, r, first)
	si1, err := f.open().FindSnapshot(ctx, res1.ID.String())
	if err != nil {
		t.Fatal(err)
	}
	d := si1.Manifest.Dictionary
	if d == nil {
		t.Fatal("the first backup of 24 MiB (at least 128 chunks of the test params, 8 KiB sampled from each: 1 MiB) trained no dictionary")
	}
	second := tableStream("table/clients", 25<<20, map[int]bool{7: true, 70000: true})
	res2 := backup(t, f.open(), second)
	si2, err := f.open().FindSnapshot(ctx, res2.ID.String())
	if err != nil {
		t.Fatal(err)
	}
	if si2.Manifest.Dictionary == nil || *si2.Manifest.Dictionary != *d {
		t.Fatalf("the second snapshot names dictionary %+v, want %+v carried", si2.Manifest.Dictionary, d)
	}
	for _, name := range []string{"amsterdam", "groningen"} {
		r := f.open()
		if err := r.Prefer(name); err != nil {
			t.Fatal(err)
		}
		verifyRestore(t, r, res1.ID, first)
		verifyRestore(t, r, res2.ID, second)
	}
	checkAll(t, f.open())
	// The dictionary's pack holds the dictionary only.
	idx, err := f.open().Index(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bl, ok := idx.Lookup(d.Blob)
	if !ok {
		t.Fatal("the dictionary's blob is in no index")
	}
	if pack, _ := f.mems[0].Bytes(dataName(f, bl.Pack)); len(pack) > 256<<10 {
		t.Errorf("the dictionary's pack is %d bytes: it holds more than the dictionary", len(pack))
	}
}

// A snapshot whose dictionary is missing or damaged at every location does
// not restore, and the error and check name the dictionary.
func TestDictionaryMissingOrDamaged(t *testing.T) {
	for _, how := range []string{"missing", "damaged"} {
		t.Run(how, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t)
			backup(t, f.init(), tableStream("table/clients", 24<<20, nil))
			s := tableStream("table/clients", 26<<20, map[int]bool{9: true})
			res := backup(t, f.open(), s) // new blobs compressed with the dictionary
			r := f.open()
			si, err := r.FindSnapshot(ctx, res.ID.String())
			if err != nil {
				t.Fatal(err)
			}
			idx, err := r.Index(ctx)
			if err != nil {
				t.Fatal(err)
			}
			bl, _ := idx.Lookup(si.Manifest.Dictionary.Blob)
			name := dataName(f, bl.Pack)
			for _, m := range f.mems {
				if how == "missing" {
					m.Remove(name)
				} else {
					b, _ := m.Bytes(name)
					b = append([]byte(nil), b...)
					b[len(b)/3] ^= 1
					m.Replace(name, b)
				}
			}
			r = f.open()
			si, err = r.FindSnapshot(ctx, res.ID.String())
			if err != nil {
				t.Fatal(err)
			}
			ms, _ := si.Manifest.Stream("table/clients")
			rc := r.StreamReader(ctx, ms)
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
			if err == nil || !strings.Contains(err.Error(), "zstd dictionary") || !errors.Is(err, repo.ErrCorrupt) && !errors.Is(err, repo.ErrNotFound) {
				t.Fatalf("restore without the dictionary: %v", err)
			}
			t.Logf("restore: %v", err)
			cs, err := f.open().Check(ctx, repo.CheckOptions{ReadData: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cs {
				if c.OK() || !strings.Contains(strings.Join(c.Errors, "\n"), "zstd dictionary") {
					t.Errorf("check at %s does not name the dictionary: %q", c.Location, c.Errors)
				}
			}
		})
	}
}

// A first backup too small to train on has no dictionary, and the next
// one does not train one either: a tenant's dictionary is trained on its
// first night (a repository that stores blobs may hold blobs of forgotten
// snapshots compressed with a dictionary no manifest names).
func TestDictionaryNotForSmallFirstNight(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	backup(t, f.init(), tableStream("table/clients", 256<<10, nil))
	res := backup(t, f.open(), tableStream("table/clients", 12<<20, nil))
	si, err := f.open().FindSnapshot(ctx, res.ID.String())
	if err != nil {
		t.Fatal(err)
	}
	if si.Manifest.Dictionary != nil {
		t.Errorf("a dictionary was trained after the first night: %+v", si.Manifest.Dictionary)
	}
	verifyRestore(t, f.open(), res.ID, tableStream("table/clients", 12<<20, nil))
}

func dataName(f *fixture, h repo.Hash) string {
	s := h.String()
	return f.tenant + "/data/" + s[:2] + "/" + s
}

// Every snapshot forgotten, not yet pruned: a stored blob may need the
// dictionary only the forgotten manifests named, so the next backup
// deduplicates against nothing and stores its blobs anew; after prune it
// still restores, from either location. (Prune keeps every present copy
// of a live blob, so the forgotten snapshots' packs that hold a blob
// stored again stay, and check --read-data reports their blobs
// compressed with the pruned dictionary: a known limit, docs/format.md.)
func TestDictionaryEverySnapshotForgotten(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.init()
	backup(t, r, tableStream("table/clients", 24<<20, nil))
	s := tableStream("table/clients", 26<<20, map[int]bool{9: true})
	res := backup(t, f.open(), s) // blobs compressed with the dictionary
	r = f.open()
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []repo.Hash
	for _, si := range snaps {
		ids = append(ids, si.ID)
	}
	if _, err := r.Forget(ctx, ids); err != nil {
		t.Fatal(err)
	}
	again := backup(t, f.open(), s)
	if again.Stats.NewBlobs != again.Stats.Blobs {
		t.Errorf("stored %d of %d blobs anew: deduplicated against blobs of forgotten snapshots", again.Stats.NewBlobs, again.Stats.Blobs)
	}
	if _, err := f.open().Prune(ctx, repo.PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"amsterdam", "groningen"} {
		r := f.open()
		if err := r.Prefer(name); err != nil {
			t.Fatal(err)
		}
		verifyRestore(t, r, again.ID, s)
	}
	_ = res
}
