package rowindex

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestRedteamSelectManyHashesIsNotQuadratic (redteam): Select collects the
// pages it needs with slices.Contains over the list so far, so its cost is
// hashes × distinct pages (up to MaxPages). A dossier whose member table
// probes many keys (a shared pseudo-patient with many rows) makes that
// hashes × pages (quadratic up to MaxPages). Here 300 000 hashes over 65 536 (empty) pages; the pages are
// served from memory, so the time measured is Select's own bookkeeping.
// Measured (load ~3.8 on 2 cores): 1 000 000 hashes took 14.6 s, 0.54 s
// with a map (or []bool of p.Pages) in place of slices.Contains.
func TestRedteamSelectManyHashesIsNotQuadratic(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	hd := &Head{Chunks: 1, Rows: 1, Pages: MaxPages}
	hd.Encode()
	pages := make([][]byte, hd.Pages)
	for n := range pages {
		pages[n] = hd.EncodePage(n, nil, nil, nil)
	}
	p := &PagedIndex{Head: hd, page: func(n int) ([]byte, error) { return pages[n], nil }, pages: map[int]*Page{}, known: map[int]Posting{}}
	rng := rand.New(rand.NewPCG(1, 2))
	hashes := make([]uint64, 300_000)
	for i := range hashes {
		hashes[i] = rng.Uint64()
	}
	t0 := time.Now()
	if _, err := p.Select(hashes, nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("Select of %d hashes over %d pages took %v (quadratic page de-duplication)", len(hashes), hd.Pages, d)
	} else {
		t.Logf("Select of %d hashes over %d pages took %v", len(hashes), hd.Pages, d)
	}
}
