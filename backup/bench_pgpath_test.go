package backup_test

import (
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore"
	"github.com/kluis-nl/kluis/source/postgres"
	"github.com/kluis-nl/kluis/synth"
)

// BenchmarkPostgresPath runs the backup and the restore of the synthetic
// practice in process, so that they can be profiled:
//
//	KLUIS_BENCH_PG_MB=100 go test ./backup -run '^$' -bench 'PostgresPath/backup' -benchtime 1x -cpuprofile backup.pprof
//	KLUIS_BENCH_PG_MB=100 go test ./backup -run '^$' -bench 'PostgresPath/restore' -benchtime 1x -cpuprofile restore.pprof
//
// The profile holds kluis's CPU only; the server's share of the wall time
// is the difference to pg_dump > /dev/null (BenchmarkPostgresSideBySide).
func BenchmarkPostgresPath(b *testing.B) {
	mb, _ := strconv.Atoi(os.Getenv("KLUIS_BENCH_PG_MB"))
	if mb <= 0 {
		b.Skip("set KLUIS_BENCH_PG_MB (e.g. 100) to run the in-process PostgreSQL benchmark")
	}
	ctx := testCtx(b)
	srv := pgtest.Start(b)
	dsn := srv.CreateDB(b, "practice")
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := synth.Generate(ctx, db, synth.Postgres, synth.ScaleForBytes(int64(mb)<<20), 11); err != nil {
		b.Fatal(err)
	}
	r := newRepo(b, "bench")
	var last string
	b.Run("backup", func(b *testing.B) {
		for b.Loop() {
			res, err := backup.Database(ctx, r, postgres.New(dsn, r.FingerprintKey(), postgres.Options{}), repo.BackupOptions{})
			if err != nil {
				b.Fatal(err)
			}
			last = res.Snapshot
			b.SetBytes(res.Stats.Read)
		}
	})
	snap, err := r.FindSnapshot(ctx, last)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("restore", func(b *testing.B) {
		n := 0
		for b.Loop() {
			n++
			target, err := postgres.NewTarget(ctx, srv.CreateDB(b, fmt.Sprintf("restored%d", n)), r.FingerprintKey(), postgres.TargetOptions{})
			if err != nil {
				b.Fatal(err)
			}
			res, err := restore.ToDatabase(ctx, r, snap, target, restore.DBOptions{Parallel: 2})
			target.Close()
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(res.Bytes)
			b.Logf("restore %.2f s: pre-data %.2f, load with proof %.2f, post-data %.2f, privileges %.2f, final proof %.2f",
				res.Duration, res.Phases.PreData, res.Phases.Load, res.Phases.PostData, res.Phases.Privileges, res.Phases.Proof)
		}
	})
}
