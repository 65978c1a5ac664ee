package restoretest_test

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/restore/restoretest"
)

// pgKV is a keyword/value connection string.
func pgKV(host string, port int, user, password, db string) string {
	q := func(v string) string { return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'" }
	return fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable connect_timeout=5",
		host, port, q(user), q(password), q(db))
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// wantCreateFailed checks the report of a test whose scratch database
// could not be created: FAIL naming restore (and what needs it), nothing
// to drop, no secret in any detail.
func wantCreateFailed(t *testing.T, rep *evidence.Report, detail string, secrets ...string) {
	t.Helper()
	// The test rig failed, not the backup (issue 18.4): ERROR, with the cause.
	wantVerdict(t, rep, evidence.Error, evidence.CheckRestore, evidence.CheckFingerprints, restoretest.CheckSchema, evidence.CheckProbes, evidence.CheckRTO)
	if !strings.Contains(rep.Cause, "could not create the scratch database") {
		t.Errorf("cause %q", rep.Cause)
	}
	if c := checkOf(t, rep, evidence.CheckRestore); !strings.Contains(c.Detail, detail) {
		t.Errorf("restore detail %q lacks %q", c.Detail, detail)
	}
	if c := checkOf(t, rep, evidence.CheckDropScratch); !c.OK || c.Detail != "no scratch database was created" {
		t.Errorf("drop-scratch: %+v", c)
	}
	js := dump(rep)
	for _, s := range secrets {
		if strings.Contains(js, s) {
			t.Errorf("the report shows a secret %q", s)
		}
	}
}

// wantSetupError checks that a test did not start: no report, a
// *SetupError containing want, no secret shown.
func wantSetupError(t *testing.T, rep *evidence.Report, err error, want string, secrets ...string) {
	t.Helper()
	var se *restoretest.SetupError
	if rep != nil || !errors.As(err, &se) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Run: %v, %v; want a setup error containing %q", rep, err, want)
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("the error shows a secret %q", s)
		}
	}
}

// TestScratchCreationFails: a restore-test server that does not answer,
// or whose role cannot create roles and databases, keeps the test from
// starting (no FAIL evidence against the backup); a scratch_dir that
// cannot be written is a FAIL report naming restore, with nothing to
// drop.
func TestScratchCreationFails(t *testing.T) {
	t.Run("postgres server down", func(t *testing.T) {
		e := newPGEnv(t)
		e.writeSecret("rt.dsn", pgKV("127.0.0.1", closedPort(t), "rt", "s3cret-down", "postgres"))
		rep, err := restoretest.Run(testCtx(t), e.a, restoretest.Options{Tenant: "praktijk-pg"})
		wantSetupError(t, rep, err, "the restore-test server does not answer", "s3cret-down")
	})
	t.Run("postgres role without CREATEDB", func(t *testing.T) {
		e := newPGEnv(t)
		e.rtSrv.Exec(t, "postgres", "CREATE ROLE rt_nocreate LOGIN NOCREATEDB CREATEROLE PASSWORD 's3cret-denied'")
		e.writeSecret("rt.dsn", pgKV(e.rtSrv.Host, e.rtSrv.Port, "rt_nocreate", "s3cret-denied", "postgres"))
		rep, err := restoretest.Run(testCtx(t), e.a, restoretest.Options{Tenant: "praktijk-pg"})
		wantSetupError(t, rep, err, "lacks CREATEDB or CREATEROLE", "s3cret-denied")
		if left := e.scratchDatabases(); len(left) > 0 {
			t.Errorf("scratch databases: %v", left)
		}
	})
	t.Run("sqlite scratch_dir under a file", func(t *testing.T) {
		e := sqliteEnv(t)
		if err := os.WriteFile(e.path("afile"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		e.writeConfig(sqliteTenant, "  restore_test: {scratch_dir: ./afile/scratch}")
		wantCreateFailed(t, e.run(restoretest.Options{}), "scratch directory")
	})
}

// TestPostgresURLServerDSN: a restore-test server DSN in URL form whose
// query names the maintenance database restores into the scratch
// database, not into the maintenance one.
func TestPostgresURLServerDSN(t *testing.T) {
	e := newPGEnv(t)
	pgAdminDSN(t, e.rtSrv)
	u := url.URL{Scheme: "postgres", User: url.UserPassword("kluis_restore_test", "rt-admin-s3cret"),
		Host: e.rtSrv.Addr(), Path: "/", RawQuery: "dbname=postgres&sslmode=disable"}
	e.writeSecret("rt.dsn", u.String())
	wantVerdict(t, e.runPG(restoretest.Options{}), evidence.Pass)
	var n int
	if err := e.rtSrv.Connect(t, "postgres").QueryRow(testCtx(t),
		"SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d tables in the maintenance database (%v): the restore went there", n, err)
	}
}

// TestPostgresCreateAnswerLost: CREATE DATABASE ran on the server but its
// answer never reached kluis (a cut connection, a timeout): the test fails
// and the database it may have created is dropped all the same.
func TestPostgresCreateAnswerLost(t *testing.T) {
	e := newPGEnv(t)
	px := startProxy(t, e.rtSrv.Addr(), "CREATE DATABASE")
	pgAdminDSN(t, e.rtSrv)
	e.writeSecret("rt.dsn", pgKV("127.0.0.1", px.Port(), "kluis_restore_test", "rt-admin-s3cret", "postgres"))
	rep := e.runPG(restoretest.Options{}) // fails when a scratch database is left
	if px.cuts.Load() != 1 {
		t.Fatalf("the proxy cut %d answers, want 1", px.cuts.Load())
	}
	wantVerdict(t, rep, evidence.Error, evidence.CheckRestore, evidence.CheckFingerprints, restoretest.CheckSchema, evidence.CheckProbes, evidence.CheckRTO)
	if c := checkOf(t, rep, evidence.CheckDropScratch); !c.OK || !strings.Contains(c.Detail, "removed") {
		t.Errorf("drop-scratch: %+v", c)
	}
}

// TestPostgresOwnServerAnyTenant: a restore-test server reached at
// another address (here a proxy) that is the cluster of another tenant
// than the tested one is refused by its system_identifier.
func TestPostgresOwnServerAnyTenant(t *testing.T) {
	e := newPGEnv(t)
	e.writeSecret("other.dsn", e.rtSrv.CreateDB(t, "other"))
	px := startProxy(t, e.rtSrv.Addr(), "")
	e.writeSecret("rt.dsn", pgKV("127.0.0.1", px.Port(), e.rtSrv.User, e.rtSrv.Password, "postgres"))
	e.writeConfig(pgTenant+"  - {id: other-pg, engine: postgres, dsn_file: ./other.dsn}\n", "  restore_test: {server_dsn_file: ./rt.dsn}")
	rep, err := restoretest.Run(testCtx(t), e.a, restoretest.Options{Tenant: "praktijk-pg"})
	var se *restoretest.SetupError
	if rep != nil || !errors.As(err, &se) || !strings.Contains(err.Error(), "same PostgreSQL cluster as tenant other-pg") {
		t.Fatalf("Run: %v; want a refusal naming tenant other-pg", err)
	}
	if errs := restoretest.CheckServers(testCtx(t), e.a); len(errs) != 1 {
		t.Errorf("CheckServers: %v", errs)
	}
}
