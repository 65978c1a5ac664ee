package backup_test

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/chunk"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/local"
	"github.com/kluis-nl/kluis/source/postgres"
	"github.com/kluis-nl/kluis/synth"
)

// TestBenchNightsCPU measures the CPU seconds kluis itself spends on a
// first and a second night (row deltas) of the synthetic practice, in
// process (getrusage around backup.Database), into KLUIS_BENCH_REPS fresh
// two-location repositories per night: CPU seconds are far less sensitive
// to a loaded machine than wall time, so before/after comparisons of the
// backup path hold on a shared machine.
//
//	KLUIS_BENCH_NIGHTS_MB=500 KLUIS_BENCH_REPS=3 \
//	  go test ./backup -run BenchNightsCPU -v -timeout 60m
//
// KLUIS_BENCH_CHUNK_AVG sets another chunk average than a PostgreSQL
// repository's (chunk.RowDeltaParams), e.g. 16384.
//
// KLUIS_BENCH_CPUPROFILE=prefix writes prefix1.pprof and prefix2.pprof
// (the first repository's nights).
func TestBenchNightsCPU(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("KLUIS_BENCH_NIGHTS_MB"))
	if mb <= 0 {
		t.Skip("set KLUIS_BENCH_NIGHTS_MB (e.g. 500) to measure the backup's CPU per night")
	}
	avg, _ := strconv.Atoi(os.Getenv("KLUIS_BENCH_CHUNK_AVG"))
	reps, _ := strconv.Atoi(os.Getenv("KLUIS_BENCH_REPS"))
	reps = max(reps, 1)
	ctx := context.Background()
	srv := pgtest.Start(t)
	dsn := srv.CreateDB(t, "bench")
	db := openDB(t, dsn)
	scale := synth.ScaleForBytes(int64(mb) << 20)
	if err := synth.Generate(ctx, db, synth.Postgres, scale, 11); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "VACUUM ANALYZE"); err != nil {
		t.Fatal(err)
	}
	params := chunk.RowDeltaParams // what a PostgreSQL repository gets
	if avg > 0 {
		params = chunk.Params{Min: uint(avg) / 4, Avg: uint(avg), Max: min(uint(avg)*8, chunk.MaxChunkSize)}
	}
	var repos []*repo.Repo
	for range reps {
		mk, err := repo.GenerateMasterKey()
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		locs := []repo.Location{local.New("a", dir+"/a"), local.New("b", dir+"/b")}
		for _, l := range locs {
			if err := l.(*local.Location).Create(); err != nil {
				t.Fatal(err)
			}
		}
		r, _, err := repo.Init(ctx, "bench", locs, repo.Options{Master: mk, Chunker: params})
		if err != nil {
			t.Fatal(err)
		}
		repos = append(repos, r)
	}
	for n := 1; n <= 2; n++ {
		if n == 2 {
			if _, err := synth.WorkingDay(ctx, db, synth.Postgres, scale, 11, 1); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, "VACUUM ANALYZE"); err != nil {
				t.Fatal(err)
			}
		}
		var sum time.Duration
		for i, r := range repos {
			var prof *os.File
			if p := os.Getenv("KLUIS_BENCH_CPUPROFILE"); p != "" && i == 0 {
				var err error
				if prof, err = os.Create(fmt.Sprintf("%s%d.pprof", p, n)); err != nil {
					t.Fatal(err)
				}
				pprof.StartCPUProfile(prof)
			}
			c0, start := processCPU(), time.Now()
			res, err := backup.Database(ctx, r, postgres.New(dsn, r.FingerprintKey(), postgres.Options{}), repo.BackupOptions{})
			wall, cpu := time.Since(start), processCPU()-c0
			if prof != nil {
				pprof.StopCPUProfile()
				prof.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
			sum += cpu
			load, _ := os.ReadFile("/proc/loadavg")
			t.Logf("night %d, repository %d: %.2f s wall, kluis %.2f CPU-s; read %.1f MB, new %.1f MB in %d blobs; load %s",
				n, i+1, wall.Seconds(), cpu.Seconds(), float64(res.Stats.Read)/1e6, float64(res.Stats.New)/1e6, res.Stats.NewBlobs, load[:14])
		}
		t.Logf("night %d: kluis %.2f CPU-s on average", n, sum.Seconds()/float64(reps))
	}
}

// processCPU is the user and system time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
