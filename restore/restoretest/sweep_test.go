package restoretest_test

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/restore/restoretest"
)

// TestSweepStale: a scratch file no ledger entry names (an older kluis's)
// is removed when older than the given age (by the time in its name);
// newer ones and other files stay. A database on a server is never
// dropped for its name or age alone, however old and scratch-like
// (TestSweepAfterKill shows what is): neither on the restore-test server
// nor on a tenant's.
func TestSweepStale(t *testing.T) {
	e := newPGEnv(t)
	ctx := testCtx(t)
	now := e.clk.Now()
	staleDB := restoretest.ScratchName("praktijk-pg", now.Add(-48*time.Hour))
	freshDB := restoretest.ScratchName("praktijk-pg", now.Add(-time.Hour))
	for _, db := range []string{staleDB, freshDB, "kluis_rt_by_hand", "keep_me"} {
		e.rtSrv.Exec(t, "postgres", "CREATE DATABASE "+pgx.Identifier{db}.Sanitize())
	}
	// A session still connected to the stale database (a killed test's).
	held := pgtest.ConnectDSN(t, pgKV(e.rtSrv.Host, e.rtSrv.Port, e.rtSrv.User, e.rtSrv.Password, staleDB))

	dir := e.a.Cfg.Resolve(e.a.Cfg.Policy.RestoreTest.ScratchDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	staleFile := restoretest.ScratchName("praktijk-a", now.Add(-30*time.Hour)) + ".db"
	freshFile := restoretest.ScratchName("praktijk-a", now) + ".db"
	for _, f := range []string{staleFile, staleFile + "-wal", freshFile, "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	got, err := restoretest.SweepStale(ctx, e.a, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	want := []string{staleFile}
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("swept %v, want %v", got, want)
	}
	var left []string
	rows, err := e.rtSrv.Connect(t, "postgres").Query(ctx, "SELECT datname FROM pg_database WHERE datname IN ($1, $2, $3, $4) ORDER BY 1",
		staleDB, freshDB, "kluis_rt_by_hand", "keep_me")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		left = append(left, n)
	}
	if strings.Join(left, ",") != strings.Join([]string{"keep_me", "kluis_rt_by_hand", staleDB, freshDB}, ",") {
		t.Errorf("databases left: %v", left)
	}
	files, _ := os.ReadDir(dir)
	var names []string
	for _, f := range files {
		names = append(names, f.Name())
	}
	if strings.Join(names, ",") != freshFile+",notes.txt" {
		t.Errorf("files left: %v", names)
	}
	held.Close(ctx)
	for _, db := range []string{staleDB, freshDB, "kluis_rt_by_hand", "keep_me"} {
		e.rtSrv.Exec(t, "postgres", "DROP DATABASE "+pgx.Identifier{db}.Sanitize())
	}

	// Nor is a tenant's server.
	onTenant := restoretest.ScratchName("praktijk-pg", now.Add(-48*time.Hour))
	e.tenantSrv.Exec(t, "postgres", "CREATE DATABASE "+pgx.Identifier{onTenant}.Sanitize())
	t.Cleanup(func() {
		e.tenantSrv.Exec(t, "postgres", "DROP DATABASE IF EXISTS "+pgx.Identifier{onTenant}.Sanitize())
	})
	e.writeSecret("rt.dsn", e.tenantSrv.DSN("postgres"))
	got, err = restoretest.SweepStale(ctx, e.a, 24*time.Hour)
	if err != nil || len(got) != 0 {
		t.Errorf("sweeping a tenant's server: %v, %v", got, err)
	}
	var n int
	e.tenantSrv.Connect(t, "postgres").QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", onTenant).Scan(&n)
	if n != 1 {
		t.Error("a database on a tenant's server was dropped")
	}
}
