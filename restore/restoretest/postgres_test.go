package restoretest_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"

	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/internal/testenv"
	"github.com/kluis-nl/kluis/restore/restoretest"
	"github.com/kluis-nl/kluis/synth"
)

// pgEnv is a postgres tenant (a synthetic practice on the package's
// shared test server) backed up once, and a second throwaway server as
// the restore-test server.
type pgEnv struct {
	*env
	tenantSrv, rtSrv *pgtest.Server
}

const pgTenant = `
  - id: praktijk-pg
    engine: postgres
    dsn_file: ./tenant.dsn
    probes:
      - {name: clients-present, sql: "SELECT count(*) FROM public.clients", min: 1, record_result: true}
      - {name: open-invoices-view, sql: "SELECT count(*) >= 0 FROM public.open_invoices", expect: "true", record_result: true}
      - {name: invoice-sequence, sql: "SELECT last_value FROM public.invoice_number_seq", min: 1}
`

func newPGEnv(t *testing.T) *pgEnv { return newPGEnvScale(t, synth.Tiny) }

// newPGEnvScale is newPGEnv with a practice of the given scale.
func newPGEnvScale(t *testing.T, scale synth.Scale) *pgEnv {
	t.Helper()
	ctx := testCtx(t)
	tenantSrv := pgtest.Start(t)
	rtSrv, err := pgtest.StartServer(ctx)
	if err != nil {
		testenv.SkipOrFail(t, "no second PostgreSQL server for restore tests: %v", err)
	}
	t.Cleanup(func() { rtSrv.Stop() })
	dsn := tenantSrv.CreateDB(t, "praktijk")
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := synth.Generate(ctx, db, synth.Postgres, scale, 7); err != nil {
		t.Fatal(err)
	}
	e := &pgEnv{env: newEnv(t), tenantSrv: tenantSrv, rtSrv: rtSrv}
	e.writeSecret("tenant.dsn", dsn)
	e.writeSecret("rt.dsn", pgAdminDSN(t, rtSrv))
	e.writeConfig(pgTenant, "  restore_test: {server_dsn_file: ./rt.dsn}")
	e.backup("praktijk-pg")
	return e
}

// scratchDatabases lists the scratch databases on the restore-test server.
func (e *pgEnv) scratchDatabases() []string {
	e.t.Helper()
	conn := e.rtSrv.Connect(e.t, "postgres")
	rows, err := conn.Query(context.Background(), "SELECT datname FROM pg_database WHERE datname LIKE 'kluis_rt_%'")
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *pgEnv) runPG(opts restoretest.Options) *evidence.Report {
	e.t.Helper()
	opts.Tenant = "praktijk-pg"
	e.clk.Advance(time.Hour)
	rep, err := restoretest.Run(testCtx(e.t), e.a, opts)
	if err != nil {
		e.t.Fatalf("Run: %v", err)
	}
	if left := e.scratchDatabases(); len(left) > 0 {
		e.t.Fatalf("scratch databases left on the restore-test server: %v", left)
	}
	return rep
}

// TestPostgresPass: a postgres tenant restores onto the restore-test
// server, its fingerprints match, its probes run on real SQL, and the
// scratch database is dropped.
func TestPostgresPass(t *testing.T) {
	e := newPGEnv(t)
	rep := e.runPG(restoretest.Options{})
	wantVerdict(t, rep, evidence.Pass)
	if rep.Engine != "postgres" || len(rep.Tables) < 10 || len(rep.Probes) != 3 {
		t.Fatalf("report: %s", dump(rep))
	}
	if p := rep.Probes[0]; p.Got != "30" {
		t.Errorf("probe: %+v", p)
	}
	if p := rep.Probes[1]; p.Got != "true" {
		t.Errorf("boolean probe: %+v", p)
	}
	if p := rep.Probes[2]; p.Got != "withheld" {
		t.Errorf("a probe without record_result: %+v", p)
	}
	if c := checkOf(t, rep, evidence.CheckDropScratch); !strings.Contains(c.Detail, "kluis_rt_praktijk_pg_") {
		t.Errorf("drop-scratch: %+v", c)
	}
	// Issue 16: the schema check compares the restored objects and says
	// how many owner and privilege statements were skipped.
	if c := checkOf(t, rep, restoretest.CheckSchema); !c.OK || !strings.Contains(c.Detail, "objects") || !strings.Contains(c.Detail, "not restored (") || !strings.Contains(c.Detail, " owner, on ") {
		t.Errorf("schema: %+v", c)
	}
	// The other location too.
	wantVerdict(t, e.runPG(restoretest.Options{Previous: []evidence.Report{*rep}}), evidence.Pass)
}

// TestPostgresFail: a failing probe, a read-only violation and a changed
// row fail the test, and the scratch database is dropped all the same;
// server errors are reduced to their SQLSTATE.
func TestPostgresFail(t *testing.T) {
	e := newPGEnv(t)
	e.writeConfig(`
  - id: praktijk-pg
    engine: postgres
    dsn_file: ./tenant.dsn
    probes:
      - {name: too-many, sql: "SELECT count(*) FROM public.clients", max: 3, record_result: true}
      - {name: bad-cast, sql: "SELECT last_name::int FROM public.clients ORDER BY id LIMIT 1", min: 0}
      - {name: no-writes, sql: "DELETE FROM public.audit_log RETURNING 1", min: 0}
`, "  restore_test: {server_dsn_file: ./rt.dsn}")
	var opts restoretest.Options
	restoretest.SetBeforeFingerprint(&opts, func(ctx context.Context, db *sql.DB) error {
		_, err := db.ExecContext(ctx, "UPDATE public.staff SET name = name || 'x' WHERE id = (SELECT min(id) FROM public.staff)")
		return err
	})
	rep := e.runPG(opts)
	wantVerdict(t, rep, evidence.Fail, evidence.CheckFingerprints, evidence.CheckProbes)
	if c := checkOf(t, rep, evidence.CheckFingerprints); !strings.HasSuffix(c.Detail, "differ from the manifest: public.staff") {
		t.Errorf("fingerprints: %q", c.Detail)
	}
	byName := map[string]evidence.Probe{}
	for _, p := range rep.Probes {
		byName[p.Name] = p
	}
	if p := byName["too-many"]; p.OK || p.Got != "30" {
		t.Errorf("too-many: %+v", p)
	}
	// invalid input syntax for type integer: "<a last name>" (22P02)
	if p := byName["bad-cast"]; p.OK || p.Detail != "postgres error SQLSTATE 22P02 (ERROR)" {
		t.Errorf("bad-cast: %+v", p)
	}
	// cannot execute DELETE in a read-only transaction (25006)
	if p := byName["no-writes"]; p.OK || !strings.Contains(p.Detail, "25006") {
		t.Errorf("no-writes: %+v", p)
	}
}

// TestPostgresOwnServerRefused: a restore-test server that is a tenant's
// own server is refused before anything runs.
func TestPostgresOwnServerRefused(t *testing.T) {
	e := newPGEnv(t)
	e.writeSecret("own.dsn", e.tenantSrv.DSN("postgres"))
	e.writeConfig(pgTenant, "  restore_test: {server_dsn_file: ./own.dsn}")
	rep, err := restoretest.Run(testCtx(t), e.a, restoretest.Options{Tenant: "praktijk-pg"})
	if err == nil || rep != nil || !strings.Contains(err.Error(), "points at the server of tenant praktijk-pg") {
		t.Fatalf("Run: %v, %v; want a refusal naming the tenant", rep, err)
	}
	if strings.Contains(err.Error(), e.tenantSrv.Password) {
		t.Errorf("the refusal shows the password: %v", err)
	}
	if errs := restoretest.CheckServers(testCtx(t), e.a); len(errs) != 1 {
		t.Errorf("CheckServers: %v", errs)
	}
	// The system identifiers tell the two clusters apart.
	a, err := restoretest.PGSystemID(testCtx(t), e.tenantSrv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := restoretest.PGSystemID(testCtx(t), e.rtSrv.DSN("postgres"))
	if err != nil || a == b {
		t.Errorf("system identifiers %d and %d (%v)", a, b, err)
	}
}
