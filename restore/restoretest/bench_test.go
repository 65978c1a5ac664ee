package restoretest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/restore/restoretest"
	"github.com/kluis-nl/kluis/synth"
)

// BenchmarkRestoreTest runs whole restore tests of a synthetic sqlite
// practice of about 50 MB (plain-dump size): MB/s is the snapshot's
// plaintext per second of the whole test; fetch-MB/s and restore-MB/s
// are those two checks alone (restore includes loading, indexes and
// fingerprints); location-MB is what one test reads from the tested
// location. The sub-benchmarks run with the verified-pack cache (the
// default) and without it (every pack the restore needs read again).
//
//	go test ./restore/restoretest -run '^$' -bench RestoreTest -benchtime 3x
func BenchmarkRestoreTest(b *testing.B) {
	e := newEnv(b)
	t0 := time.Now()
	e.synthSQLite("praktijk.db", synth.ScaleForBytes(50<<20))
	e.writeConfig(sqliteTenant, "")
	res := e.backup("praktijk-a")
	b.Logf("generated and backed up in %s: %d bytes read", time.Since(t0).Round(time.Second), res.Stats.Read)
	for _, bc := range []struct {
		name  string
		cache int64
	}{{"pack-cache", 0}, {"no-pack-cache", -1}} {
		b.Run(bc.name, func(b *testing.B) { benchRestoreTest(b, e, bc.cache) })
	}
}

func benchRestoreTest(b *testing.B, e *env, cache int64) {
	var fetch, restore float64
	var bytes, fromLoc int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := restoretest.Run(testCtx(b), e.a, restoretest.Options{Tenant: "praktijk-a", PackCacheBytes: cache})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Verdict != evidence.Pass {
			b.Fatalf("verdict %s: %v", rep.Verdict, rep.FailedChecks)
		}
		bytes = rep.Snapshot.Bytes
		for _, c := range rep.Checks {
			switch c.Name {
			case evidence.CheckFetch:
				fetch += c.Seconds
			case evidence.CheckRestore, evidence.CheckFingerprints:
				restore += c.Seconds
			}
			if c.Name == evidence.CheckRestore {
				var n, m int64
				if i := strings.Index(c.Detail, "packs read from the location: "); i >= 0 {
					fmt.Sscanf(c.Detail[i:], "packs read from the location: %d (%d bytes)", &n, &m)
				}
				fromLoc += m
			}
		}
	}
	b.SetBytes(bytes)
	mb := float64(bytes) / 1e6 * float64(b.N)
	b.ReportMetric(mb/fetch, "fetch-MB/s")
	b.ReportMetric(mb/restore, "restore-MB/s")
	b.ReportMetric(float64(fromLoc)/1e6/float64(b.N), "location-MB")
}
