package restoretest_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/restore/restoretest"
	"github.com/kluis-nl/kluis/synth"
)

// TestMeasurePostgresRestoreTest prints how long a restore test of a
// PostgreSQL tenant takes, check by check, for RTO planning:
//
//	KLUIS_BENCH_RT_PG_MB=200 go test ./restore/restoretest -run MeasurePostgres -v -timeout 30m
//
// The tenant is on one throwaway server, the scratch database on a second.
// It asserts the verdict, not the time.
func TestMeasurePostgresRestoreTest(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("KLUIS_BENCH_RT_PG_MB"))
	if mb <= 0 {
		t.Skip("set KLUIS_BENCH_RT_PG_MB (e.g. 200) to measure a PostgreSQL restore test")
	}
	t0 := time.Now()
	e := newPGEnvScale(t, synth.ScaleForBytes(int64(mb)<<20))
	t.Logf("generated and backed up %d MiB of synthetic practice in %s", mb, time.Since(t0).Round(time.Second))
	start := time.Now()
	rep := e.runPG(restoretest.Options{})
	wall := time.Since(start)
	wantVerdict(t, rep, evidence.Pass)
	t.Logf("restore test of %d tables, %d rows, %.1f MiB of streams: %s wall (%.1f MiB/s)",
		rep.Snapshot.Tables, rep.Snapshot.Rows, float64(rep.Snapshot.Bytes)/(1<<20), wall.Round(time.Millisecond),
		float64(rep.Snapshot.Bytes)/(1<<20)/wall.Seconds())
	for _, c := range rep.Checks {
		t.Logf("  %-13s %7.2fs  %s", c.Name, c.Seconds, c.Detail)
	}
	t.Logf("RTO measured (restore + fingerprints): %.2fs", rep.RTO.MeasuredSeconds)
}
