package restoretest_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/internal/mariadbtest"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/internal/testenv"
	"github.com/kluis-nl/kluis/restore/restoretest"
	"github.com/kluis-nl/kluis/synth"
)

// hostileSchema is a tenant whose own code attacks the restore-test
// server while its snapshot restores: a function called from a CHECK
// constraint, an index expression, a trigger and a materialized view
// (refreshed after the load) makes the role it runs as read-only for
// every later session (the attack that stopped every later restore test
// of every tenant), and tries to do the same to the restore-test role, to
// run a program on the server, to grant itself the server's programs and
// to make the maintenance database read-only. On its own server (not a
// scratch database) it does nothing.
const hostileSchema = `
CREATE FUNCTION public.evil(v int) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $f$
BEGIN
  IF pg_catalog.current_database() NOT LIKE 'kluis_rt_%' THEN RETURN true; END IF;
  EXECUTE 'ALTER ROLE CURRENT_USER SET default_transaction_read_only = on';
  BEGIN EXECUTE 'ALTER ROLE kluis_restore_test SET default_transaction_read_only = on'; EXCEPTION WHEN OTHERS THEN NULL; END;
  BEGIN EXECUTE 'ALTER ROLE kluis_restore_test NOLOGIN'; EXCEPTION WHEN OTHERS THEN NULL; END;
  BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch __MARK__'''; EXCEPTION WHEN OTHERS THEN NULL; END;
  BEGIN EXECUTE 'GRANT pg_execute_server_program TO CURRENT_USER'; EXCEPTION WHEN OTHERS THEN NULL; END;
  BEGIN EXECUTE 'ALTER DATABASE postgres SET default_transaction_read_only = on'; EXCEPTION WHEN OTHERS THEN NULL; END;
  RETURN true;
END $f$;
CREATE FUNCTION public.evil_immutable(v int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN RETURN public.evil(v); END $f$;
CREATE FUNCTION public.evil_trigger() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.evil(NEW.v); RETURN NEW; END $f$;
CREATE TABLE public.notes (id int PRIMARY KEY, v int NOT NULL CHECK (public.evil(v)));
CREATE INDEX notes_evil ON public.notes ((public.evil_immutable(v)));
CREATE TRIGGER notes_evil BEFORE INSERT ON public.notes FOR EACH ROW EXECUTE FUNCTION public.evil_trigger();
CREATE MATERIALIZED VIEW public.notes_mv AS SELECT id, public.evil(v) AS ok FROM public.notes;
INSERT INTO public.notes SELECT g, g FROM generate_series(1, 20) g;
REFRESH MATERIALIZED VIEW public.notes_mv;
`

// TestHostileSchemaIsolated: a tenant's hostile schema code runs during
// its own restore test as a throwaway role that owns only its scratch
// database, so it cannot make the restore-test role read-only, run a
// program, or change anything another tenant's restore test depends on:
// the next tenant's test passes, and the restore-test role's settings and
// the maintenance database are as they were.
func TestHostileSchemaIsolated(t *testing.T) {
	e := newPGEnv(t)
	ctx := testCtx(t)
	mark := filepath.Join(t.TempDir(), "pwned")
	hostile := e.tenantSrv.CreateDB(t, "hostile")
	pgtest.ExecDSN(t, hostile, strings.ReplaceAll(hostileSchema, "__MARK__", mark))
	e.writeSecret("hostile.dsn", hostile)
	e.writeConfig(pgTenant+"  - {id: hostile-pg, engine: postgres, dsn_file: ./hostile.dsn}\n", "  restore_test: {server_dsn_file: ./rt.dsn}")
	e.backup("hostile-pg")

	for i := 0; i < 2; i++ {
		e.clk.Advance(1)
		rep, err := restoretest.Run(ctx, e.a, restoretest.Options{Tenant: "hostile-pg"})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		t.Logf("hostile: %s %v %s", rep.Verdict, rep.FailedChecks, checkOf(t, rep, evidence.CheckRestore).Detail)
		// Whatever the hostile tenant's own verdict, its scratch database
		// and throwaway role are gone and nothing it did remains.
		if c := checkOf(t, rep, evidence.CheckDropScratch); !c.OK {
			t.Fatalf("drop-scratch: %+v\n%s", c, dump(rep))
		}
		if left := e.scratchDatabases(); len(left) > 0 {
			t.Fatalf("scratch databases left: %v", left)
		}
		wantVerdict(t, e.runPG(restoretest.Options{}), evidence.Pass)
	}
	if _, err := os.Stat(mark); err == nil {
		t.Error("the tenant's schema ran a program on the restore-test server")
	}
	admin := pgtest.ConnectDSN(t, pgAdminDSN(t, e.rtSrv))
	var ro string
	if err := admin.QueryRow(ctx, "SHOW default_transaction_read_only").Scan(&ro); err != nil || ro != "off" {
		t.Errorf("the restore-test role's sessions: default_transaction_read_only %q (%v)", ro, err)
	}
	var settings, roles int
	su := e.rtSrv.Connect(t, "postgres")
	if err := su.QueryRow(ctx, "SELECT count(*) FROM pg_db_role_setting").Scan(&settings); err != nil || settings != 0 {
		t.Errorf("%d role or database settings on the restore-test server (%v)", settings, err)
	}
	if err := su.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'kluis\\_rt\\_%'").Scan(&roles); err != nil || roles != 0 {
		t.Errorf("%d throwaway roles left (%v)", roles, err)
	}
	if entries, _ := filepath.Glob(filepath.Join(e.a.StateDir(), "scratch-ledger", "*")); len(entries) != 0 {
		t.Errorf("ledger entries left: %v", entries)
	}
}

// TestPostgresAdminRefused: a restore-test role that is a superuser, or
// can reach the server's programs or files, or bypasses row security, is
// refused before anything runs, by Run and by `config check --online`
// (CheckServers).
func TestPostgresAdminRefused(t *testing.T) {
	e := newPGEnv(t)
	ctx := testCtx(t)
	for _, tc := range []struct{ role, setup, want string }{
		{"postgres", "", "SUPERUSER"},
		{"rt_program", "CREATE ROLE rt_program LOGIN CREATEDB CREATEROLE PASSWORD 'p-s3cret'; GRANT pg_execute_server_program TO rt_program", "pg_execute_server_program"},
		{"rt_files", "CREATE ROLE rt_files LOGIN CREATEDB CREATEROLE PASSWORD 'p-s3cret'; GRANT pg_write_server_files TO rt_files", "pg_write_server_files"},
		{"rt_rls", "CREATE ROLE rt_rls LOGIN CREATEDB CREATEROLE BYPASSRLS PASSWORD 'p-s3cret'", "BYPASSRLS"},
	} {
		t.Run(tc.role, func(t *testing.T) {
			password := "p-s3cret"
			if tc.setup != "" {
				e.rtSrv.Exec(t, "postgres", tc.setup)
			} else {
				password = e.rtSrv.Password
			}
			e.writeSecret("rt.dsn", pgKV(e.rtSrv.Host, e.rtSrv.Port, tc.role, password, "postgres"))
			rep, err := restoretest.Run(ctx, e.a, restoretest.Options{Tenant: "praktijk-pg"})
			wantSetupError(t, rep, err, tc.want, password)
			if errs := restoretest.CheckServers(ctx, e.a); len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.want) {
				t.Errorf("CheckServers: %v", errs)
			}
			if left := e.scratchDatabases(); len(left) > 0 {
				t.Errorf("scratch databases: %v", left)
			}
		})
	}
	// The documented role passes.
	e.writeSecret("rt.dsn", pgAdminDSN(t, e.rtSrv))
	if errs := restoretest.CheckServers(ctx, e.a); len(errs) != 0 {
		t.Errorf("CheckServers with the documented role: %v", errs)
	}
}

// TestOwnServerGuardFailsClosed: when a tenant's server does not answer
// (or its DSN file cannot be read), nobody can tell whether the
// restore-test server is that tenant's own: no test runs, nothing is
// created anywhere.
func TestOwnServerGuardFailsClosed(t *testing.T) {
	e := newPGEnv(t)
	ctx := testCtx(t)
	e.writeSecret("down.dsn", pgKV("127.0.0.1", closedPort(t), "x", "down-s3cret", "praktijk"))
	e.writeConfig(pgTenant+"  - {id: down-pg, engine: postgres, dsn_file: ./down.dsn}\n", "  restore_test: {server_dsn_file: ./rt.dsn}")
	rep, err := restoretest.Run(ctx, e.a, restoretest.Options{Tenant: "praktijk-pg"})
	wantSetupError(t, rep, err, "cannot tell whether the restore-test server is the server of tenant down-pg", "down-s3cret")
	if errs := restoretest.CheckServers(ctx, e.a); len(errs) != 1 {
		t.Errorf("CheckServers: %v", errs)
	}

	e.writeConfig(pgTenant+"  - {id: gone-pg, engine: postgres, dsn_file: ./missing.dsn}\n", "  restore_test: {server_dsn_file: ./rt.dsn}")
	rep, err = restoretest.Run(ctx, e.a, restoretest.Options{Tenant: "praktijk-pg"})
	wantSetupError(t, rep, err, "cannot tell whether the restore-test server is the server of tenant gone-pg")
	if left := e.scratchDatabases(); len(left) > 0 {
		t.Errorf("scratch databases: %v", left)
	}
	var n int
	if err := e.tenantSrv.Connect(t, "postgres").QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname LIKE 'kluis\\_rt\\_%'").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d scratch databases on the tenant's server (%v)", n, err)
	}
}

// hostileMariaDB is a MariaDB tenant whose view calls a function that,
// in a scratch database only, tries to make the whole restore-test server
// read-only and starve it of connections; the view is read by a probe
// (MariaDB creates triggers after the load, so a trigger would not fire).
var hostileMariaDB = []string{
	"CREATE TABLE notes (id INT PRIMARY KEY, v INT NOT NULL)",
	`CREATE FUNCTION evil() RETURNS INT MODIFIES SQL DATA
BEGIN
  DECLARE CONTINUE HANDLER FOR SQLEXCEPTION BEGIN END;
  IF DATABASE() LIKE 'kluis\_rt\_%' THEN
    SET GLOBAL read_only = 1;
    SET GLOBAL max_connections = 2;
  END IF;
  RETURN 1;
END`,
	"CREATE VIEW notes_checked AS SELECT id, evil() AS ok FROM notes",
	"INSERT INTO notes VALUES (1, 1), (2, 2)",
}

// TestMariaDBHostileSchemaIsolated: a MariaDB tenant's function runs as
// the test's throwaway user, which holds no global privilege: it cannot
// make the restore-test server read-only or change its limits, and the
// next tenant's test passes.
func TestMariaDBHostileSchemaIsolated(t *testing.T) {
	ctx := testCtx(t)
	tenantSrv := mariadbtest.Start(t)
	rtSrv, err := mariadbtest.StartServer(ctx)
	if err != nil {
		testenv.SkipOrFail(t, "no second MariaDB server for restore tests: %v", err)
	}
	t.Cleanup(func() { rtSrv.Stop() })
	hostile := tenantSrv.CreateDB(t, "hostile")
	mariadbtest.ExecDSN(t, hostile, hostileMariaDB...)
	good := tenantSrv.CreateDB(t, "praktijk")
	if err := synth.Generate(ctx, mariadbtest.OpenDSN(t, good), synth.MariaDB, synth.Tiny, 7); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.writeSecret("hostile.dsn", hostile)
	e.writeSecret("good.dsn", good)
	e.writeSecret("rt.dsn", mariadbAdminDSN(t, rtSrv))
	e.writeConfig(`
  - id: hostile-maria
    engine: mariadb
    dsn_file: ./hostile.dsn
    probes: [{name: checked, sql: "SELECT COUNT(*) FROM notes_checked WHERE ok = 1", min: 0}]
  - {id: praktijk-maria, engine: mariadb, dsn_file: ./good.dsn}
`, `  restore_test: {mariadb_server_dsn_file: ./rt.dsn}`)
	e.backup("hostile-maria")
	e.backup("praktijk-maria")
	root := rtSrv.Open(t, "")
	var maxConn int
	if err := root.QueryRowContext(ctx, "SELECT @@global.max_connections").Scan(&maxConn); err != nil {
		t.Fatal(err)
	}

	e.clk.Advance(time.Hour)
	rep, err := restoretest.Run(ctx, e.a, restoretest.Options{Tenant: "hostile-maria"})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if c := checkOf(t, rep, evidence.CheckDropScratch); !c.OK {
		t.Fatalf("drop-scratch: %+v", c)
	}
	if c := checkOf(t, rep, evidence.CheckProbes); !c.OK {
		t.Fatalf("the probe that runs the tenant's function: %+v", c)
	}
	var ro, mc int
	if err := root.QueryRowContext(ctx, "SELECT @@global.read_only, @@global.max_connections").Scan(&ro, &mc); err != nil {
		t.Fatal(err)
	}
	if ro != 0 || mc != maxConn {
		t.Errorf("the tenant's function changed the restore-test server: read_only %d, max_connections %d (was %d)", ro, mc, maxConn)
	}
	e.clk.Advance(time.Hour)
	rep, err = restoretest.Run(ctx, e.a, restoretest.Options{Tenant: "praktijk-maria"})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	wantVerdict(t, rep, evidence.Pass)
	var users, dbs int
	root.QueryRowContext(ctx, "SELECT COUNT(*) FROM mysql.user WHERE User LIKE 'kluis\\_rt\\_u%'").Scan(&users)
	root.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'kluis\\_rt\\_%'").Scan(&dbs)
	if users != 0 || dbs != 0 {
		t.Errorf("%d throwaway users and %d scratch databases left", users, dbs)
	}
}

// TestRoleSettingsCheckedAfterTest: a change to the restore-test role's
// settings made during a test (here by a superuser while the test runs)
// fails the test's drop-scratch check instead of silently breaking the
// next test.
func TestRoleSettingsCheckedAfterTest(t *testing.T) {
	e := newPGEnv(t)
	var opts restoretest.Options
	restoretest.SetBeforeFingerprint(&opts, func(ctx context.Context, _ *sql.DB) error {
		_, err := e.rtSrv.Connect(t, "postgres").Exec(ctx, "ALTER ROLE kluis_restore_test SET statement_timeout = '1s'")
		return err
	})
	t.Cleanup(func() { e.rtSrv.Exec(t, "postgres", "ALTER ROLE kluis_restore_test RESET ALL") })
	rep := e.runPG(opts)
	wantVerdict(t, rep, evidence.Fail, evidence.CheckDropScratch)
	if c := checkOf(t, rep, evidence.CheckDropScratch); !strings.Contains(c.Detail, "settings") || !strings.Contains(c.Detail, "removed") {
		t.Errorf("drop-scratch: %+v", c)
	}
}
