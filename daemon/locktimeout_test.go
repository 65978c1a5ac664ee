package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/source"
)

// TestLockedTenantDoesNotStallOthers (issue 21 point 3): with one job slot,
// the first tenant in the queue has a table held in ACCESS EXCLUSIVE by
// another connection. Its backup gives up after lock_timeout, frees the
// slot, logs why and shows in status; the other tenants are backed up at
// once. Without the lock timeout the first backup waits in pg_dump for as
// long as the lock is held and nobody else gets a backup.
func TestLockedTenantDoesNotStallOthers(t *testing.T) {
	srv := pgtest.Start(t)
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, ams)
	f := newFixture(t, start, "", "", "", Options{})
	var tenants []string
	dsns := map[string]string{}
	for _, id := range []string{"locked", "free-b", "free-c"} {
		dsn := srv.CreateDB(t, "lk_"+id)
		pgtest.ExecDSN(t, dsn, `CREATE TABLE clients (id int PRIMARY KEY, name text);
			INSERT INTO clients SELECT g, 'client ' || g FROM generate_series(1, 50) g`)
		file := filepath.Join(f.dir, id+".dsn")
		if err := os.WriteFile(file, []byte(dsn), 0o600); err != nil {
			t.Fatal(err)
		}
		dsns[id] = dsn
		tenants = append(tenants, fmt.Sprintf("{id: %s, engine: postgres, dsn_file: %s}", id, file))
	}
	holder := pgtest.ConnectDSN(t, dsns["locked"])
	ctx := context.Background()
	if _, err := holder.Exec(ctx, "BEGIN; LOCK TABLE clients IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	f.writeConfig("["+strings.Join(tenants, ", ")+"]", "max_concurrent_jobs: 1, lock_timeout: 1s, retry: {attempts: 3, backoff: 10m}", "")
	cfg, err := config.Load(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.d.Reload(ctx, cfg)
	f.run()
	// Real time: the locked tenant costs about its lock timeout, not the
	// twelve minutes the lock is held.
	f.settleWithin(60 * time.Second)
	for _, id := range []string{"free-b", "free-c"} {
		if n := len(f.snapshots(id)); n != 1 {
			t.Errorf("%s: %d snapshots while another tenant was locked, want 1", id, n)
		}
	}
	if !strings.Contains(f.logs.String(), "backup gave up waiting for a table lock on the source") {
		t.Error("no log line says the locked tenant waited on a lock")
	}
	rep := Status(ctx, f.d.Appliance(), f.clk.Now())
	for _, ts := range rep.Tenants {
		if ts.Tenant == "locked" && (!ts.WaitingOnLock || !strings.Contains(strings.Join(ts.Problems, ";"), "waiting on a table lock")) {
			t.Errorf("status of the locked tenant: waiting_on_lock %v, problems %v", ts.WaitingOnLock, ts.Problems)
		}
	}
	if rep.OK {
		t.Error("status ok while a tenant cannot be backed up")
	}
	// The lock is released; the retry backs the tenant up.
	if _, err := holder.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	f.until(start.Add(15 * time.Minute))
	r, err := f.d.Appliance().OpenRepo(ctx, "locked")
	if err != nil {
		t.Fatal(err)
	}
	if snaps, err := r.Snapshots(ctx); err != nil || len(snaps) != 1 {
		t.Fatalf("locked tenant after the lock was released: %d snapshots (%v), want 1", len(snaps), err)
	}
	for _, ts := range Status(ctx, f.d.Appliance(), f.clk.Now()).Tenants {
		if ts.WaitingOnLock {
			t.Errorf("%s still reported waiting on a lock after its backup", ts.Tenant)
		}
	}
}

// maskedLockTimeout is a lock timeout whose text no longer says so (a
// masked password, a driver's other wording): only errors.Is knows.
type maskedLockTimeout struct{}

func (maskedLockTimeout) Error() string        { return "pg_dump: xxxxx (lock_timeout 1s)" }
func (maskedLockTimeout) Is(target error) bool { return target == source.ErrLockTimeout }

// Status says a tenant is waiting on a table lock from what the backup's
// history record says of its error, not from the error's text.
func TestStatusLockTimeoutFromTheRecord(t *testing.T) {
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, ams)
	f := newFixture(t, start, "", "", "", Options{})
	f.writeConfig(fmt.Sprintf(`[{id: praktijk-a, engine: sqlite, path: %s}]`, f.sqliteDB("a", 5)), "", "")
	cfg, err := config.Load(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := appliance.New(cfg, nil)
	a.Now = f.clk.Now
	a.RecordBackup("praktijk-a", nil, fmt.Errorf("backup: %w", maskedLockTimeout{}))
	rep := Status(context.Background(), a, f.clk.Now())
	if len(rep.Tenants) != 1 || !rep.Tenants[0].WaitingOnLock {
		t.Fatalf("status after a lock timeout whose text does not say so: %+v", rep.Tenants)
	}
	// Another failure whose text holds the lock timeout's sentence (a
	// hostile identifier, a wrapped message) is not taken for one.
	f.clk.Advance(time.Minute)
	a.RecordBackup("praktijk-a", nil, fmt.Errorf("table %q: schema changed", source.ErrLockTimeout.Error()))
	rep = Status(context.Background(), a, f.clk.Now())
	if len(rep.Tenants) != 1 || rep.Tenants[0].WaitingOnLock || !strings.Contains(strings.Join(rep.Tenants[0].Problems, ";"), "schema changed") {
		t.Fatalf("status after another failure quoting the lock timeout: %+v", rep.Tenants)
	}
}
