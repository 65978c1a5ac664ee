package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/pgtest"
)

// TestManyDiscoveredTenants: N small practice databases on one PostgreSQL
// server (KLUIS_DAEMON_TENANTS, default 20; the figure is 200) are
// discovered and all backed up at start with the default concurrency of 2.
// It logs the wall time and the process's peak memory.
func TestManyDiscoveredTenants(t *testing.T) {
	n := 20
	if v, err := strconv.Atoi(os.Getenv("KLUIS_DAEMON_TENANTS")); err == nil && v > 0 {
		n = v
	}
	srv := pgtest.Start(t)
	for i := 0; i < n; i++ {
		db := dbName(t, srv.CreateDB(t, fmt.Sprintf("many_%03d", i)))
		srv.Exec(t, db, `CREATE TABLE clients (id int PRIMARY KEY, name text NOT NULL, bsn text);
			CREATE TABLE notes (id int PRIMARY KEY, client_id int REFERENCES clients, body text);
			INSERT INTO clients SELECT g, 'client ' || g, lpad(g::text, 9, '0') FROM generate_series(1, 100) g;
			INSERT INTO notes SELECT g, 1 + g % 100, repeat('note ', 20) FROM generate_series(1, 300) g`)
	}
	start := time.Date(2026, 6, 1, 0, 30, 0, 0, ams)
	f := newFixture(t, start, "", "", "", Options{})
	dsnFile := filepath.Join(f.dir, "pg-server.dsn")
	if err := os.WriteFile(dsnFile, []byte(srv.DSN("postgres")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.writeConfig("", "", fmt.Sprintf(`[{engine: postgres, dsn_file: %s, pattern: "kluis_%d_*_many_*"}]`, dsnFile, os.Getpid()))
	if err := f.d.ReloadFile(context.Background(), f.cfg); err != nil {
		t.Fatal(err)
	}
	if got := len(f.d.Appliance().Cfg.Tenants); got != n {
		t.Fatalf("discovered %d tenants, want %d", got, n)
	}
	began := time.Now()
	f.run()
	f.settleWithin(10 * time.Minute)
	wall := time.Since(began)
	rep := Status(context.Background(), f.d.Appliance(), f.clk.Now())
	if !rep.OK {
		for _, ts := range rep.Tenants {
			if !ts.OK() {
				t.Errorf("%s: %v", ts.Tenant, ts.Problems)
			}
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("%d discovered tenants backed up in %v wall time (concurrency 2, %d CPUs); peak RSS %s, Go heap sys %d MiB",
		n, wall.Round(time.Millisecond), runtime.NumCPU(), peakRSS(), ms.HeapSys>>20)
}

func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:"))
		}
	}
	return "unknown"
}
