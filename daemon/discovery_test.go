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

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/internal/pgtest"
)

// TestDiscoveryCollisionFailsClosed: a database created next to a
// practice's with a name that differs only in case (praktijk_A next to
// praktijk_a) maps to the practice's tenant id. Neither is backed up any
// more (the practice's repository receives nothing from the newcomer and
// retention does not run on it), `status` fails naming both databases and
// kluis_discovery_collisions is 1; the other practices go on. New
// tenants are announced in the log and kluis_discovered_tenants_new_total.
func TestDiscoveryCollisionFailsClosed(t *testing.T) {
	srv := pgtest.Start(t)
	prefix := fmt.Sprintf("kluis_%d_coll_", os.Getpid())
	create := func(name string) {
		db := prefix + name
		srv.Exec(t, "postgres", "CREATE DATABASE "+pgx.Identifier{db}.Sanitize())
		t.Cleanup(func() { srv.DropDB(t, db) })
		srv.Exec(t, db, `CREATE TABLE clients (id int PRIMARY KEY); INSERT INTO clients VALUES (1)`)
	}
	create("praktijk_a")
	create("praktijk_b")
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, ams)
	f := newFixture(t, start, "", "", "", Options{})
	dsnFile := filepath.Join(f.dir, "pg-server.dsn")
	if err := os.WriteFile(dsnFile, []byte(srv.DSN("postgres")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.writeConfig("", "", fmt.Sprintf(`[{engine: postgres, dsn_file: %s, pattern: %q, id_template: "{db}"}]`, dsnFile, prefix+"*"))
	if err := f.d.ReloadFile(context.Background(), f.cfg); err != nil {
		t.Fatal(err)
	}
	idA, idB := prefix+"praktijk_a", prefix+"praktijk_b"
	f.run()
	f.settle()
	for _, id := range []string{idA, idB} {
		if n := len(f.snapshots(id)); n != 1 {
			t.Fatalf("%s: %d snapshots, want 1", id, n)
		}
	}
	if _, body := scrape(t, f.d.Handler(), "/metrics"); !strings.Contains(body, "kluis_discovered_tenants_new_total 2") || !strings.Contains(body, "kluis_discovery_collisions 0") {
		t.Errorf("/metrics before the collision:\n%s", grepLines(body, "discover"))
	}
	if !strings.Contains(f.logs.String(), "discovered a new tenant") {
		t.Error("new tenants are not announced in the log")
	}

	// The takeover attempt.
	create("praktijk_A")
	if err := f.d.ReloadFile(context.Background(), f.cfg); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tn := range f.d.Appliance().Cfg.Tenants {
		ids = append(ids, tn.ID)
	}
	if strings.Join(ids, ",") != idB {
		t.Fatalf("tenants after the collision: %v, want only %s", ids, idB)
	}
	rep := Status(context.Background(), f.d.Appliance(), f.clk.Now())
	if rep.OK || !strings.Contains(strings.Join(rep.Errors, "\n"), `tenant id "`+idA+`" comes from 2 databases`) ||
		!strings.Contains(strings.Join(rep.Errors, "\n"), `"`+prefix+`praktijk_A"`) {
		t.Errorf("status: ok=%v errors=%v", rep.OK, rep.Errors)
	}
	if _, body := scrape(t, f.d.Handler(), "/metrics"); !strings.Contains(body, "kluis_discovery_collisions 1") {
		t.Errorf("/metrics after the collision:\n%s", grepLines(body, "discover"))
	}
	f.until(start.Add(50 * time.Hour))
	// The practice's repository, read as if it were configured.
	r, err := f.d.Appliance().WithTenants([]config.Tenant{{ID: idA, Engine: "postgres"}}).OpenRepo(context.Background(), idA)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := r.Snapshots(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(snaps); n != 1 {
		t.Errorf("%s: %d snapshots after the collision, want still 1", idA, n)
	}
	if n := len(f.snapshots(idB)); n < 2 {
		t.Errorf("%s: %d snapshots, want it backed up on", idB, n)
	}
}

func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
