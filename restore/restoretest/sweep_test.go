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

// TestSweepStale: scratch databases and files older than the given age
// (by the time in their name) are dropped; newer ones, and anything not
// named like a scratch database, stay; a tenant's server is never swept.
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
	_ = held

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
	want := []string{staleDB, staleFile}
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
	if strings.Join(left, ",") != strings.Join([]string{"keep_me", "kluis_rt_by_hand", freshDB}, ",") {
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
	for _, db := range []string{freshDB, "kluis_rt_by_hand", "keep_me"} {
		e.rtSrv.Exec(t, "postgres", "DROP DATABASE "+pgx.Identifier{db}.Sanitize())
	}

	// A restore-test server that is a tenant's own is never swept.
	onTenant := restoretest.ScratchName("praktijk-pg", now.Add(-48*time.Hour))
	e.tenantSrv.Exec(t, "postgres", "CREATE DATABASE "+pgx.Identifier{onTenant}.Sanitize())
	t.Cleanup(func() {
		e.tenantSrv.Exec(t, "postgres", "DROP DATABASE IF EXISTS "+pgx.Identifier{onTenant}.Sanitize())
	})
	e.writeSecret("rt.dsn", e.tenantSrv.DSN("postgres"))
	got, err = restoretest.SweepStale(ctx, e.a, 24*time.Hour)
	if err == nil || !strings.Contains(err.Error(), "points at the server of tenant praktijk-pg") || len(got) != 0 {
		t.Errorf("sweeping a tenant's server: %v, %v", got, err)
	}
	var n int
	e.tenantSrv.Connect(t, "postgres").QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", onTenant).Scan(&n)
	if n != 1 {
		t.Error("a database on a tenant's server was dropped")
	}
}
