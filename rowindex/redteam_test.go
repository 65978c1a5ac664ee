package rowindex

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkSelectManyHashes: a dossier whose member table probes very many
// keys (a shared pseudo-patient with many rows) must cost Select time
// linear in the hashes. Found by the red-team review: Select collected the
// pages it needs with slices.Contains over the list so far (hashes × pages,
// up to MaxPages: 1,000,000 hashes took 14.6 s, 0.54 s with a set).
//
//	go test ./rowindex -run '^$' -bench SelectManyHashes -benchtime 3x
func BenchmarkSelectManyHashes(b *testing.B) {
	hd := &Head{Chunks: 1, Rows: 1, Pages: MaxPages}
	hd.Encode()
	pages := make([][]byte, hd.Pages)
	for n := range pages {
		pages[n] = hd.EncodePage(n, nil, nil, nil)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	hashes := make([]uint64, 300_000)
	for i := range hashes {
		hashes[i] = rng.Uint64()
	}
	for b.Loop() {
		p := &PagedIndex{Head: hd, page: func(n int) ([]byte, error) { return pages[n], nil }, pages: map[int]*Page{}, known: map[int]Posting{}}
		if _, err := p.Select(hashes, nil); err != nil {
			b.Fatal(err)
		}
	}
}
