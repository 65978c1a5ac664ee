package backup_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/synth"
)

// TestBenchPostgresVsPgDump compares the kluis CLI with pg_dump and
// pg_restore on the same synthetic practice database, same server:
//
//	KLUIS_BENCH_PG_MB=500 go test ./backup -run BenchPostgres -v -timeout 60m
//
// It prints wall time and peak RSS of each: the first kluis backup vs
// `pg_dump > /dev/null`, the next night's backup after a working day, and a
// full restore vs `pg_restore -j 2` from an uncompressed directory dump.
func TestBenchPostgresVsPgDump(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("KLUIS_BENCH_PG_MB"))
	if mb <= 0 {
		t.Skip("set KLUIS_BENCH_PG_MB (e.g. 500) to run the PostgreSQL benchmark")
	}
	if _, err := os.Stat("/usr/bin/time"); err != nil {
		t.Skip("needs GNU time (/usr/bin/time, Debian package time) for peak RSS")
	}
	ctx := context.Background()
	srv := pgtest.Start(t)
	dsn := srv.CreateDB(t, "bench")
	db := openDB(t, dsn)
	scale := synth.ScaleForBytes(int64(mb) << 20)
	t0 := time.Now()
	if err := synth.Generate(ctx, db, synth.Postgres, scale, 11); err != nil {
		t.Fatal(err)
	}
	t.Logf("generated %d clients in %s", scale.Clients, time.Since(t0).Round(time.Second))

	dir := t.TempDir()
	bin := filepath.Join(dir, "kluis")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/kluis").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cfg, _ := pgx.ParseConfig(dsn)
	conn := fmt.Sprintf("host=%s port=%d user=%s dbname=%s", cfg.Host, cfg.Port, cfg.User, cfg.Database)
	env := append(os.Environ(), "PGPASSWORD="+cfg.Password, "KLUIS_CONFIG="+filepath.Join(dir, "kluis.yaml"))
	os.WriteFile(filepath.Join(dir, "src.dsn"), []byte(conn+" password="+cfg.Password+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "kluis.yaml"), []byte(`
appliance: {id: bench, state_dir: ./state, master_key_file: ./master.key, signing_key_file: ./signing.key}
locations:
  - {name: a, type: dir, path: ./loc-a, country: NL, site: A, provider: p1}
  - {name: b, type: dir, path: ./loc-b, country: NL, site: B, provider: p2}
tenants:
  - {id: bench, engine: postgres, dsn_file: ./src.dsn}
`), 0o644)
	run := func(name string, args ...string) (time.Duration, int64) {
		t.Helper()
		// GNU time reports the child's own peak RSS; the kernel's rusage of
		// a child started with vfork includes the parent's pages.
		rssFile := filepath.Join(dir, "rss")
		cmd := exec.Command("/usr/bin/time", append([]string{"-f", "%M", "-o", rssFile}, args...)...)
		cmd.Env, cmd.Dir = env, dir
		if strings.HasSuffix(name, "/dev/null") {
			cmd.Stdout = nil
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, stderr.String())
		}
		d := time.Since(start)
		out, _ := os.ReadFile(rssFile)
		kb, _ := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
		return d, kb
	}
	pgDump, pgRestore := srv.Tool(t, "pg_dump"), srv.Tool(t, "pg_restore")
	type row struct {
		name string
		d    time.Duration
		rss  int64
	}
	var rows []row
	add := func(name string, args ...string) time.Duration {
		d, rss := run(name, args...)
		rows = append(rows, row{name, d, rss})
		return d
	}
	add("kluis keys init", bin, "keys", "init")
	add("kluis init", bin, "init", "--tenant", "bench")
	dumpT := add("pg_dump > /dev/null", pgDump, "-h", cfg.Host, "-p", fmt.Sprint(cfg.Port), "-U", cfg.User, "-f", "/dev/null", cfg.Database)
	firstT := add("kluis backup (first)", bin, "backup", "--tenant", "bench")
	if _, err := synth.WorkingDay(ctx, db, synth.Postgres, scale, 11, 1); err != nil {
		t.Fatal(err)
	}
	nextT := add("kluis backup (next night)", bin, "backup", "--tenant", "bench")

	dumpDir := filepath.Join(dir, "dump")
	add("pg_dump -Fd -Z0 (for pg_restore)", pgDump, "-h", cfg.Host, "-p", fmt.Sprint(cfg.Port), "-U", cfg.User, "-Fd", "-Z0", "-f", dumpDir, cfg.Database)
	pgrDB := srv.CreateDB(t, "pgrestore")
	pgrCfg, _ := pgx.ParseConfig(pgrDB)
	pgrT := add("pg_restore -j 2", pgRestore, "-h", cfg.Host, "-p", fmt.Sprint(cfg.Port), "-U", cfg.User, "-j", "2", "-d", pgrCfg.Database, dumpDir)
	kDB := srv.CreateDB(t, "kluisrestore")
	kCfg, _ := pgx.ParseConfig(kDB)
	os.WriteFile(filepath.Join(dir, "dst.dsn"), []byte(fmt.Sprintf("host=%s port=%d user=%s dbname=%s password=%s\n", cfg.Host, cfg.Port, cfg.User, kCfg.Database, cfg.Password)), 0o600)
	kT := add("kluis restore --target-dsn-file", bin, "restore", "--tenant", "bench", "--target-dsn-file", "dst.dsn", "--parallel", "2")

	var b strings.Builder
	fmt.Fprintf(&b, "\n%-36s %10s %12s\n", "command", "seconds", "peak RSS MiB")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-36s %10.1f %12.1f\n", r.name, r.d.Seconds(), float64(r.rss)/1024)
	}
	fmt.Fprintf(&b, "first backup / pg_dump = %.2f×, next night / pg_dump = %.2f×, restore / pg_restore -j 2 = %.2f×\n",
		firstT.Seconds()/dumpT.Seconds(), nextT.Seconds()/dumpT.Seconds(), kT.Seconds()/pgrT.Seconds())
	t.Log(b.String())
}
