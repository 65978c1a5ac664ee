package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/pgtest"
)

// TestDroppedTenantReported (issue 21 point 5): a discovered tenant's
// database is dropped. After the next discovery, status fails on it (it
// does not silently vanish), its metrics are removed and
// kluis_tenant_gone{tenant} is 1, an error is logged, and its snapshots
// are kept. `kluis tenants retire` (RetireTenant) acknowledges it: status
// is ok again and, after the next discovery, the gone series is removed.
func TestDroppedTenantReported(t *testing.T) {
	srv := pgtest.Start(t)
	var dbs []string
	for _, name := range []string{"gone_een", "gone_twee"} {
		db := dbName(t, srv.CreateDB(t, name))
		srv.Exec(t, db, `CREATE TABLE clients (id int PRIMARY KEY, name text); INSERT INTO clients VALUES (1, 'a')`)
		dbs = append(dbs, db)
	}
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, ams)
	f := newFixture(t, start, "", "", "", Options{})
	dsnFile := filepath.Join(f.dir, "pg-server.dsn")
	if err := os.WriteFile(dsnFile, []byte(srv.DSN("postgres")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.writeConfig("", "", fmt.Sprintf(`[{engine: postgres, dsn_file: %s, pattern: "kluis_%d_*_gone_*"}]`, dsnFile, os.Getpid()))
	if err := f.d.ReloadFile(context.Background(), f.cfg); err != nil {
		t.Fatal(err)
	}
	f.run()
	f.settle()
	dropped := dbs[0]
	if len(f.snapshots(dropped)) != 1 {
		t.Fatal("no first backup")
	}
	if _, body := scrape(t, f.d.Handler(), "/metrics"); !strings.Contains(body, fmt.Sprintf(`kluis_backup_last_success_timestamp_seconds{tenant=%q}`, dropped)) {
		t.Fatal("no metrics for the tenant before it was dropped")
	}

	srv.DropDB(t, dropped)
	f.until(start.Add(61 * time.Minute)) // the hourly discovery
	rep := Status(context.Background(), f.d.Appliance(), f.clk.Now())
	var seen bool
	for _, ts := range rep.Tenants {
		if ts.Tenant == dropped {
			seen = true
			if !ts.Gone || ts.OK() || !strings.Contains(strings.Join(ts.Problems, ";"), "kluis tenants retire "+dropped) {
				t.Errorf("status of the dropped tenant: %+v", ts)
			}
		}
	}
	if !seen || rep.OK {
		t.Fatalf("status after the drop: ok=%v, dropped tenant listed %v", rep.OK, seen)
	}
	_, body := scrape(t, f.d.Handler(), "/metrics")
	if strings.Contains(body, fmt.Sprintf(`kluis_backup_last_success_timestamp_seconds{tenant=%q}`, dropped)) ||
		strings.Contains(body, fmt.Sprintf(`kluis_snapshot_age_seconds{tenant=%q}`, dropped)) {
		t.Error("the dropped tenant's metrics are still exported with frozen values")
	}
	if !strings.Contains(body, fmt.Sprintf(`kluis_tenant_gone{tenant=%q} 1`, dropped)) {
		t.Error("kluis_tenant_gone is not set for the dropped tenant")
	}
	if !strings.Contains(f.logs.String(), "tenant is gone") {
		t.Error("no error logged for the dropped tenant")
	}
	if r, err := f.d.Appliance().OpenGoneRepo(context.Background(), dropped); err != nil {
		t.Error(err)
	} else if s, err := r.Snapshots(context.Background()); err != nil || len(s) != 1 {
		t.Errorf("the dropped tenant's snapshots were not kept: %d (%v)", len(s), err)
	}

	// Refused for a tenant that is still there.
	if _, err := RetireTenant(f.d.Appliance(), "pg-nope"); err == nil {
		t.Error("retired a tenant that was never backed up")
	}
	if _, err := RetireTenant(f.d.Appliance(), dbs[1]); err == nil {
		t.Error("retired a tenant that is still discovered")
	}
	if _, err := RetireTenant(f.d.Appliance(), dropped); err != nil {
		t.Fatal(err)
	}
	rep = Status(context.Background(), f.d.Appliance(), f.clk.Now())
	if !rep.OK || len(rep.Retired) != 1 || rep.Retired[0].Tenant != dropped {
		t.Errorf("status after retire: ok=%v retired=%+v tenants=%+v", rep.OK, rep.Retired, rep.Tenants)
	}
	f.until(start.Add(122 * time.Minute))
	if _, body := scrape(t, f.d.Handler(), "/metrics"); strings.Contains(body, fmt.Sprintf(`kluis_tenant_gone{tenant=%q}`, dropped)) {
		t.Error("kluis_tenant_gone still set after retire")
	}
}
