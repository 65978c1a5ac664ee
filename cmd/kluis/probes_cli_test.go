package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/pgtest"
)

// TestProbesWithoutRestoreTestServer (new-user trial, 2026-12-02): a
// PostgreSQL tenant with probes but no policy.restore_test.server_dsn_file
// made every command exit 2 — `keys init`, every other tenant's backup.
// Now only that tenant's restore tests are affected: commands run and the
// tenant is backed up; `config check` fails naming the tenant and the
// field; `status` fails that tenant; a PostgreSQL tenant without probes
// (and no server) gets a warning that its scheduled restore test cannot
// run, where status said "ok" and "never" before.
func TestProbesWithoutRestoreTestServer(t *testing.T) {
	t.Parallel()
	pg := pgtest.Start(t)
	dsn := pg.CreateDB(t, "probes")
	pgtest.ExecDSN(t, dsn, `CREATE TABLE clients (id int PRIMARY KEY, name text NOT NULL); INSERT INTO clients SELECT g, 'client ' || g FROM generate_series(1, 50) g`)
	e := newEnv(t)
	e.secrets["superuser password"] = pg.Password
	writeFile(t, e.path("p.dsn"), dsn)
	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(cfg), "  - {id: praktijk-a, engine: files}", `  - {id: praktijk-a, engine: files}
  - {id: pg-p, engine: postgres, dsn_file: ./p.dsn, probes: [{name: clients, sql: "SELECT count(*) FROM clients", min: 1, record_result: true}]}
  - {id: pg-q, engine: postgres, dsn_file: ./p.dsn}`, 1)
	writeFile(t, e.cfg, s)
	for _, d := range []string{"loc-a", "loc-g"} {
		if err := os.MkdirAll(e.path(d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	e.keysInit()
	input := e.path("in.bin")
	writeData(t, seededRand(t), input, 64<<10)
	e.mustRun(0, "init", "--tenant", tenant)
	e.backup(0, input)
	e.mustRun(0, "backup", "--tenant", "pg-p")
	e.mustRun(0, "backup", "--tenant", "pg-q")

	r := e.mustRun(2, "config", "check")
	if !strings.Contains(r.stdout, "tenants[1].probes: tenant pg-p: its restore tests (and their 1 probe) cannot run") ||
		!strings.Contains(r.stdout, "policy.restore_test.server_dsn_file") {
		t.Errorf("config check does not name pg-p's probes: %v", r)
	}
	if !strings.Contains(r.stderr, "warning: tenants[2]: tenant pg-q: its scheduled restore test cannot run") {
		t.Errorf("config check does not warn about pg-q: %v", r)
	}

	var rep struct {
		OK      bool `json:"ok"`
		Tenants []struct {
			Tenant   string   `json:"tenant"`
			Problems []string `json:"problems"`
			Warnings []string `json:"warnings"`
		} `json:"tenants"`
	}
	r = e.mustRun(1, "status", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	for _, ts := range rep.Tenants {
		problems, warnings := strings.Join(ts.Problems, "; "), strings.Join(ts.Warnings, "; ")
		switch ts.Tenant {
		case "pg-p":
			if !strings.Contains(problems, "cannot run") {
				t.Errorf("status of pg-p: %+v", ts)
			}
		case "pg-q":
			if len(ts.Problems) > 0 || !strings.Contains(warnings, "scheduled restore test cannot run") {
				t.Errorf("status of pg-q: %+v", ts)
			}
		case tenant:
			if len(ts.Problems)+len(ts.Warnings) > 0 {
				t.Errorf("status of %s: %+v", tenant, ts)
			}
		}
	}
	r = e.mustRun(1, "status")
	if !strings.Contains(r.stdout, "never (cannot run)") || !strings.Contains(r.stdout, "warning: tenant pg-q: its scheduled restore test cannot run") {
		t.Errorf("status does not warn about pg-q's restore test: %v", r)
	}
}
