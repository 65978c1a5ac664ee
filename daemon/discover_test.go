package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/internal/pgtest"
)

func dbName(t *testing.T, dsn string) string {
	t.Helper()
	c, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return c.Database
}

// TestDiscoveryPostgres: databases on a real server whose names match the
// pattern become tenants; their repositories are created at their first
// backup; a database created later is picked up by the next discovery;
// no DSN or password reaches the logs; config check --online reaches them.
func TestDiscoveryPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	prefix := fmt.Sprintf("kluis_%d_", os.Getpid())
	var dbs []string
	for _, name := range []string{"praktijk_een", "praktijk_twee", "other"} {
		db := dbName(t, srv.CreateDB(t, name))
		srv.Exec(t, db, `CREATE TABLE clients (id int PRIMARY KEY, name text NOT NULL);
			INSERT INTO clients SELECT g, 'client ' || g FROM generate_series(1, 200) g`)
		dbs = append(dbs, db)
	}
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, ams)
	f := newFixture(t, start, "", "", "", Options{})
	dsnFile := filepath.Join(f.dir, "pg-server.dsn")
	if err := os.WriteFile(dsnFile, []byte(srv.DSN("postgres")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pattern := prefix + "*_praktijk_*"
	f.writeConfig("", "", fmt.Sprintf(`[{engine: postgres, dsn_file: %s, pattern: %q, id_template: "pg-{db}"}]`, dsnFile, pattern))
	if err := f.d.ReloadFile(context.Background(), f.cfg); err != nil {
		t.Fatal(err)
	}
	a := f.d.Appliance()
	var ids []string
	for _, tn := range a.Cfg.Tenants {
		if !tn.Discovered || tn.Engine != "postgres" || tn.DSN == "" {
			t.Errorf("tenant %+v is not a discovered postgres tenant", tn.ID)
		}
		ids = append(ids, tn.ID)
	}
	want := []string{"pg-" + dbs[0], "pg-" + dbs[1]}
	if strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Fatalf("discovered %v, want %v", ids, want)
	}

	f.run()
	f.settle()
	for _, id := range want {
		s := f.snapshots(id)
		if len(s) != 1 || len(s[0].Locations) != 2 || s[0].Manifest.Engine != "postgres" {
			t.Fatalf("%s: snapshots %+v, want one postgres snapshot at both locations", id, s)
		}
	}

	// A new practice database appears: the hourly discovery backs it up.
	late := dbName(t, srv.CreateDB(t, "praktijk_drie"))
	srv.Exec(t, late, `CREATE TABLE clients (id int PRIMARY KEY); INSERT INTO clients VALUES (1)`)
	f.until(start.Add(61 * time.Minute))
	if s := f.snapshots("pg-" + late); len(s) != 1 {
		t.Fatalf("late database: %d snapshots, want 1", len(s))
	}

	rep := Status(context.Background(), f.d.Appliance(), f.clk.Now())
	if !rep.OK || len(rep.Tenants) != 3 {
		t.Errorf("status: %+v", rep)
	}

	online := appliance.New(f.d.Appliance().Cfg, nil).CheckDatabases(context.Background())
	if len(online) != 4 { // three discovered tenants and the server
		t.Errorf("online check: %+v", online)
	}
	for _, r := range online {
		if !r.OK {
			t.Errorf("online check %s: %s", r.Name, r.Error)
		}
	}

	logs := f.logs.String()
	for _, secret := range []string{srv.Password, srv.DSN("postgres")} {
		if secret != "" && strings.Contains(logs, secret) {
			t.Fatalf("the logs contain a secret (%d bytes)", len(secret))
		}
	}
	if strings.Contains(logs, "dbname=") || strings.Contains(logs, "password") {
		t.Error("the logs contain a connection string")
	}
}

func TestTenantID(t *testing.T) {
	for _, tc := range []struct {
		template, db, want string
		ok                 bool
	}{
		{"{db}", "praktijk_een", "praktijk_een", true},
		{"pg-{db}", "Praktijk Één", "pg-praktijk_n", true},
		{"{db}", "_x", "x", true},
		{"{db}", "€€€", "", false},
		{"{db}", strings.Repeat("a", 70), "", false},
	} {
		got, ok := appliance.TenantID(tc.template, tc.db)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("TenantID(%q, %q) = %q, %v; want %q, %v", tc.template, tc.db, got, ok, tc.want, tc.ok)
		}
	}
}
