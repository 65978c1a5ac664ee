package restoretest_test

import (
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
// fingerprints).
//
//	go test ./restore/restoretest -run '^$' -bench RestoreTest -benchtime 3x
func BenchmarkRestoreTest(b *testing.B) {
	e := newEnv(b)
	t0 := time.Now()
	e.synthSQLite("praktijk.db", synth.ScaleForBytes(50<<20))
	e.writeConfig(sqliteTenant, "")
	res := e.backup("praktijk-a")
	b.Logf("generated and backed up in %s: %d bytes read", time.Since(t0).Round(time.Second), res.Stats.Read)
	var fetch, restore float64
	var bytes int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := restoretest.Run(testCtx(b), e.a, restoretest.Options{Tenant: "praktijk-a"})
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
		}
	}
	b.SetBytes(bytes)
	mb := float64(bytes) / 1e6 * float64(b.N)
	b.ReportMetric(mb/fetch, "fetch-MB/s")
	b.ReportMetric(mb/restore, "restore-MB/s")
}
