package repo

import (
	"crypto/rand"
	"runtime"
	"testing"
)

// The index is loaded whole: this measures its heap per blob, from which
// docs/benchmarks.md ("Restore memory") estimates its size per GB.
//
//	go test ./repo -run '^$' -bench IndexHeap -benchtime 1x
func BenchmarkIndexHeap(b *testing.B) {
	const blobs = 200_000
	packs := make([]PackBlobs, blobs/500)
	for i := range packs {
		rand.Read(packs[i].Pack[:])
		packs[i].Blobs = make([]BlobEntry, 500)
		for j := range packs[i].Blobs {
			e := &packs[i].Blobs[j]
			rand.Read(e.ID[:])
			e.Offset, e.Length, e.RawLength = uint32(j)*20000, 20000, 65536
		}
	}
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		x := newIndex()
		x.addAll(packs)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/blobs, "heap-bytes/blob")
		runtime.KeepAlive(x)
	}
}
