package repo_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/kluis-nl/kluis/chunk"
	"github.com/kluis-nl/kluis/repo"
)

// snapshotPacks groups the latest snapshot's distinct blobs by pack, with
// their plaintext bytes.
func snapshotPacks(t *testing.T, r *repo.Repo) (map[repo.Hash][]chunk.ID, int64) {
	t.Helper()
	ctx := context.Background()
	si, err := r.FindSnapshot(ctx, "latest")
	if err != nil {
		t.Fatal(err)
	}
	idx, err := r.Index(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[chunk.ID]bool{}
	byPack := map[repo.Hash][]chunk.ID{}
	var total int64
	for _, s := range si.Manifest.Streams {
		for _, id := range s.AllBlobs() {
			if seen[id] {
				continue
			}
			seen[id] = true
			bl, _ := idx.Lookup(id)
			byPack[bl.Pack] = append(byPack[bl.Pack], id)
			total += int64(bl.RawLength)
		}
	}
	return byPack, total
}

// verifyPacks verifies every pack of byPack, which must hold total
// plaintext bytes.
func verifyPacks(t *testing.T, r *repo.Repo, byPack map[repo.Hash][]chunk.ID, total int64) {
	t.Helper()
	var got int64
	for h, ids := range byPack {
		n, err := r.VerifyPackBlobs(context.Background(), h, ids)
		if err != nil {
			t.Fatal(err)
		}
		got += n
	}
	if got != total {
		t.Fatalf("verified %d plaintext bytes, the index says %d", got, total)
	}
}

// VerifyPackBlobs streams each pack whole under a one-byte read budget
// and opens every blob; a byte flipped where no snapshot blob lies (the
// pack header) is found, as is a damaged blob, each naming the pack, at
// both locations; at one location the other's copy is read.
func TestVerifyPackBlobs(t *testing.T) {
	ctx := context.Background()
	f, _ := rangedFixture(t)
	r := f.open()
	r.SetReadBudget(1)
	byPack, total := snapshotPacks(t, r)
	if len(byPack) < 2 {
		t.Fatalf("only %d packs", len(byPack))
	}
	verifyPacks(t, r, byPack, total)

	flipTail := func(h repo.Hash, locs ...int) {
		for _, i := range locs {
			for _, n := range f.names(i, "data") {
				if strings.HasSuffix(n, h.String()) {
					b, _ := f.mems[i].Bytes(n)
					b = append([]byte(nil), b...)
					b[len(b)-8] ^= 0x01 // in the sealed header
					f.mems[i].Replace(n, b)
				}
			}
		}
	}
	var h repo.Hash
	for h = range byPack {
		break
	}
	flipTail(h, 0)
	r = f.open()
	r.SetReadBudget(1)
	if _, err := r.VerifyPackBlobs(ctx, h, byPack[h]); err != nil {
		t.Errorf("header damaged at one location: %v", err)
	}
	flipTail(h, 1)
	r = f.open()
	_, err := r.VerifyPackBlobs(ctx, h, byPack[h])
	if err == nil || !errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), h.String()) || !strings.Contains(err.Error(), "does not match its name") {
		t.Errorf("header damaged at both locations: %v", err)
	}

	r = f.open()
	id, _ := flipBlob(t, f, r, "random", 0, 1)
	byPack, _ = snapshotPacks(t, r)
	want := map[repo.Hash]bool{h: true} // the header-damaged pack and the blob-damaged one
	for p, ids := range byPack {
		for _, b := range ids {
			if b.String() == id {
				want[p] = true
			}
		}
	}
	for p, ids := range byPack {
		_, err := r.VerifyPackBlobs(ctx, p, ids)
		if (err != nil) != want[p] {
			t.Errorf("pack %s: damaged %v, error %v", p, want[p], err)
		}
		if err != nil && (!errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), p.String())) {
			t.Errorf("damaged pack: %v", err)
		}
	}
}

// countingGets counts whole-object reads per name.
type countingGets struct {
	repo.Location
	mu sync.Mutex
	n  map[string]int
}

func (c *countingGets) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	c.mu.Lock()
	c.n[name]++
	c.mu.Unlock()
	return c.Location.Get(ctx, name, off, length)
}

// Blobs compressed with the tenant's dictionary open as the pack streams
// (through the dictionary loader): every pack of the snapshot is read
// once, none a second time by the whole-pack fallback.
func TestVerifyPackBlobsDictionary(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	backup(t, f.init(), tableStream("table/clients", 24<<20, nil))
	backup(t, f.open(), tableStream("table/clients", 25<<20, map[int]bool{7: true, 70000: true}))
	c := &countingGets{Location: f.locs[0], n: map[string]int{}}
	r, err := repo.Open(ctx, f.tenant, []repo.Location{c}, repo.Options{Master: f.master})
	if err != nil {
		t.Fatal(err)
	}
	si, err := r.FindSnapshot(ctx, "latest")
	if err != nil || si.Manifest.Dictionary == nil {
		t.Fatalf("no dictionary: %v", err)
	}
	byPack, total := snapshotPacks(t, r)
	verifyPacks(t, r, byPack, total)
	for h := range byPack {
		if n := c.n[dataName(f, h)]; n != 1 {
			t.Errorf("pack %s read %d times", h.Short(), n)
		}
	}
}
