package backup_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore"
	"github.com/kluis-nl/kluis/source/postgres"
	"github.com/kluis-nl/kluis/synth"
)

// TestBenchRowDelta measures what row deltas change: the same synthetic
// practice backed up for a first night and, after one working day, a
// second night, into two repositories, one with row deltas (the default)
// and one without (policy.delta_max_steps -1, the format before), plus
// `pg_dump | restic backup --stdin` when restic is in ~/.cache/kluis:
//
//	KLUIS_BENCH_PG_MB=100 go test ./backup -run BenchRowDelta -v -timeout 60m
//
// It prints each night's stored bytes and wall time, and the second
// night's restore time, for each.
func TestBenchRowDelta(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("KLUIS_BENCH_PG_MB"))
	if mb <= 0 {
		t.Skip("set KLUIS_BENCH_PG_MB (e.g. 100) to run the row-delta benchmark")
	}
	ctx := context.Background()
	srv := pgtest.Start(t)
	dsn := srv.CreateDB(t, "bench_delta")
	db := openDB(t, dsn)
	scale := synth.ScaleForBytes(int64(mb) << 20)
	if err := synth.Generate(ctx, db, synth.Postgres, scale, 11); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "VACUUM ANALYZE"); err != nil {
		t.Fatal(err)
	}
	cfg, _ := pgx.ParseConfig(dsn)

	type variant struct {
		name  string
		steps int
		w     *deltaWorld
	}
	vs := []*variant{{name: "kluis, row deltas", steps: 0}, {name: "kluis, whole tables (before)", steps: -1}}
	for _, v := range vs {
		v.w = newDeltaWorld(t, "bench-"+strconv.Itoa(v.steps+1))
	}
	restic := filepath.Join(os.Getenv("HOME"), ".cache/kluis/restic")
	resticRepo := filepath.Join(t.TempDir(), "restic")
	haveRestic := false
	if _, err := os.Stat(restic); err == nil {
		cmd := exec.Command(restic, "init", "--repo", resticRepo)
		cmd.Env = append(os.Environ(), "RESTIC_PASSWORD=bench")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("restic init: %v\n%s", err, out)
		} else {
			haveRestic = true
		}
	}
	var report strings.Builder
	fmt.Fprintf(&report, "\n%-32s %6s %14s %10s\n", "", "night", "stored bytes", "seconds")
	night := func(n int) (grew int64) {
		for _, v := range vs {
			start := time.Now()
			res, err := backup.Database(ctx, v.w.r, postgres.New(dsn, v.w.r.FingerprintKey(), postgres.Options{}), repo.BackupOptions{DeltaMaxSteps: v.steps})
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&report, "%-32s %6d %14d %10.2f\n", v.name, n, res.Stats.Stored+res.Stats.IndexSize, time.Since(start).Seconds())
		}
		if haveRestic {
			before := dirSize(resticRepo)
			start := time.Now()
			dump := exec.Command(srv.Tool(t, "pg_dump"), "-h", cfg.Host, "-p", fmt.Sprint(cfg.Port), "-U", cfg.User, cfg.Database)
			dump.Env = append(os.Environ(), "PGPASSWORD="+cfg.Password)
			bk := exec.Command(restic, "backup", "--repo", resticRepo, "--stdin", "--stdin-filename", "practice.sql", "--quiet")
			bk.Env = append(os.Environ(), "RESTIC_PASSWORD=bench")
			pipe, _ := dump.StdoutPipe()
			bk.Stdin = pipe
			if err := dump.Start(); err != nil {
				t.Fatal(err)
			}
			if out, err := bk.CombinedOutput(); err != nil {
				t.Fatalf("restic backup: %v\n%s", err, out)
			}
			if err := dump.Wait(); err != nil {
				t.Fatal(err)
			}
			grew = dirSize(resticRepo) - before
			fmt.Fprintf(&report, "%-32s %6d %14d %10.2f\n", "pg_dump | restic backup --stdin", n, grew, time.Since(start).Seconds())
		}
		return grew
	}
	night(1)
	if _, err := synth.WorkingDay(ctx, db, synth.Postgres, scale, 11, 1); err != nil {
		t.Fatal(err)
	}
	// The first reader after the updates would set hint bits (writes) for
	// whichever variant runs first.
	if _, err := db.ExecContext(ctx, "VACUUM ANALYZE"); err != nil {
		t.Fatal(err)
	}
	night(2)
	for _, v := range vs {
		snaps, err := v.w.r.Snapshots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		dst := srv.CreateDB(t, srv.UniqueName("bench_delta_dst"))
		target, err := postgres.NewTarget(ctx, dst, v.w.r.FingerprintKey(), postgres.TargetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = restore.ToDatabase(ctx, v.w.r, snaps[len(snaps)-1], target, restore.DBOptions{Parallel: 2})
		target.Close()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&report, "%-32s restore of night 2 (with fingerprints): %.2f s\n", v.name, time.Since(start).Seconds())
		srv.DropDB(t, dst)
	}
	t.Log(report.String())
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
