package dossier

import (
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/source/sqlite"
	"github.com/kluis-nl/kluis/synth"
)

// TestExtractionMemoryDoesNotGrowWithTableSize extracts one dossier from
// two databases, the second eight times larger (both larger than a few chunks, so the reader's blob buffers are full in both), and compares the peak heap
// growth during extraction (sampled every millisecond). Only the dossier's
// key sets are kept, so the peak is bounded by the repository reader's
// buffers, not by the tables; a loose bound keeps the test stable.
func TestExtractionMemoryDoesNotGrowWithTableSize(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("generates two databases; the race detector distorts heap sizes and takes minutes")
	}
	peak := func(clients int) (uint64, int64) {
		ctx := testCtx(t)
		path := filepath.Join(t.TempDir(), "p.db")
		if err := synth.GenerateSQLiteFile(ctx, path, synth.Scale{Clients: clients}, 1); err != nil {
			t.Fatal(err)
		}
		// 1 MiB packs: the repository's pack cache (4 packs) is full in
		// both databases, so what remains is what extraction itself holds.
		r := newRepoPacks(t, "mem", 1<<20)
		snap, tables := snapshotOf(t, r, sqlite.New(path, r.FingerprintKey()))
		plan, err := NewPlan("sqlite", tables, practiceProfile())
		if err != nil {
			t.Fatal(err)
		}
		// Warm up: the repository's blob index (it grows with the
		// repository, not with the extraction), the decompressor pools and
		// the pack cache are filled by a first extraction of another
		// dossier; the second one is measured.
		if _, err := Extract(ctx, r, snap.Manifest, plan, "3", nil); err != nil {
			t.Fatal(err)
		}
		// A low GC target makes the sampled heap track live memory rather
		// than garbage not yet collected.
		defer debug.SetGCPercent(debug.SetGCPercent(5))
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapAlloc
		var max atomic.Uint64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			var m runtime.MemStats
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				runtime.ReadMemStats(&m)
				if m.HeapAlloc > base && m.HeapAlloc-base > max.Load() {
					max.Store(m.HeapAlloc - base)
				}
			}
		})
		res, err := Extract(ctx, r, snap.Manifest, plan, "7", nil)
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		return max.Load(), res.ScannedRows
	}
	small, smallRows := peak(600)
	large, largeRows := peak(4800)
	t.Logf("peak heap growth: %d KiB scanning %d rows, %d KiB scanning %d rows", small>>10, smallRows, large>>10, largeRows)
	if large > 2*small+16<<20 {
		t.Errorf("extraction memory grows with table size: %d KiB for %d rows vs %d KiB for %d rows", large>>10, largeRows, small>>10, smallRows)
	}
}
