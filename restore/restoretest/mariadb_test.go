package restoretest_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/internal/mariadbtest"
	"github.com/kluis-nl/kluis/internal/testenv"
	"github.com/kluis-nl/kluis/restore/restoretest"
	"github.com/kluis-nl/kluis/synth"
)

// TestMariaDBWithoutForeignKeys: a MariaDB practice whose schema declares
// no foreign keys (its dossier profile uses edges: instead) passes a
// restore test on a second MariaDB server, probes included, and the
// scratch database is dropped; a changed row then fails it, and the
// scratch database is dropped too.
func TestMariaDBWithoutForeignKeys(t *testing.T) {
	ctx := testCtx(t)
	tenantSrv := mariadbtest.Start(t)
	rtSrv, err := mariadbtest.StartServer(ctx)
	if err != nil {
		testenv.SkipOrFail(t, "no second MariaDB server for restore tests: %v", err)
	}
	t.Cleanup(func() { rtSrv.Stop() })

	dsn := tenantSrv.CreateDB(t, "praktijk")
	db := mariadbtest.OpenDSN(t, dsn)
	if err := synth.Generate(ctx, db, synth.MariaDB, synth.Tiny, 7); err != nil {
		t.Fatal(err)
	}
	dropForeignKeys(t, db)

	e := newEnv(t)
	e.writeSecret("tenant.dsn", dsn)
	e.writeSecret("rt.dsn", mariadbAdminDSN(t, rtSrv))
	e.writeConfig(`
  - id: praktijk-maria
    engine: mariadb
    dsn_file: ./tenant.dsn
    dossier: legacy
    probes:
      - {name: clients-present, sql: "SELECT COUNT(*) FROM clients", min: 1, record_result: true}
      - {name: open-invoices-view, sql: "SELECT COUNT(*) FROM open_invoices", min: 0}
      - {name: no-orphan-treatments, sql: "SELECT COUNT(*) FROM treatments t LEFT JOIN clients c ON c.id = t.client_id WHERE c.id IS NULL", expect: "0"}
`, `  restore_test: {mariadb_server_dsn_file: ./rt.dsn}
dossiers:
  legacy:
    root: clients
    key: id
    edges:
      - {from: "*.client_id", to: clients.id}
      - {from: invoice_lines.invoice_id, to: invoices.id}
    exclude: [audit_log]`)
	res := e.backup("praktijk-maria")

	r, err := e.a.OpenRepo(ctx, "praktijk-maria")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := r.FindSnapshot(ctx, res.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := backup.Tables(snap.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	for _, tm := range tables {
		if len(tm.ForeignKeys) > 0 {
			t.Fatalf("%s still declares foreign keys", tm.Name)
		}
	}

	scratch := func() []string {
		rows, err := mariadbtest.OpenDSN(t, rtSrv.DSN("")).QueryContext(ctx, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'kluis\\_rt\\_%'")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var n string
			rows.Scan(&n)
			out = append(out, n)
		}
		return out
	}
	e.clk.Advance(time.Hour)
	rep, err := restoretest.Run(ctx, e.a, restoretest.Options{Tenant: "praktijk-maria"})
	if err != nil {
		t.Fatal(err)
	}
	wantVerdict(t, rep, evidence.Pass)
	if rep.Engine != "mariadb" || len(rep.Tables) != len(tables) || len(rep.Probes) != 3 || rep.Probes[0].Got != "30" {
		t.Errorf("report: %s", dump(rep))
	}
	if left := scratch(); len(left) > 0 {
		t.Fatalf("scratch databases left: %v", left)
	}

	var opts restoretest.Options
	opts.Tenant = "praktijk-maria"
	restoretest.SetBeforeFingerprint(&opts, func(ctx context.Context, db *sql.DB) error {
		_, err := db.ExecContext(ctx, "DELETE FROM invoice_lines ORDER BY invoice_id LIMIT 1")
		return err
	})
	rep, err = restoretest.Run(ctx, e.a, opts)
	if err != nil {
		t.Fatal(err)
	}
	wantVerdict(t, rep, evidence.Fail, evidence.CheckFingerprints)
	if c := checkOf(t, rep, evidence.CheckFingerprints); !strings.HasSuffix(c.Detail, ": invoice_lines") {
		t.Errorf("fingerprints: %q", c.Detail)
	}
	if left := scratch(); len(left) > 0 {
		t.Fatalf("scratch databases left after a failure: %v", left)
	}
}

// dropForeignKeys removes every declared foreign key of the current
// database: a legacy schema.
func dropForeignKeys(t *testing.T, db *sql.DB) {
	t.Helper()
	rows, err := db.Query("SELECT TABLE_NAME, CONSTRAINT_NAME FROM information_schema.TABLE_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() AND CONSTRAINT_TYPE = 'FOREIGN KEY'")
	if err != nil {
		t.Fatal(err)
	}
	var stmts []string
	for rows.Next() {
		var tb, name string
		if err := rows.Scan(&tb, &name); err != nil {
			t.Fatal(err)
		}
		stmts = append(stmts, "ALTER TABLE "+mariadbtest.QuoteIdent(tb)+" DROP FOREIGN KEY "+mariadbtest.QuoteIdent(name))
	}
	rows.Close()
	if len(stmts) == 0 {
		t.Fatal("the synthetic schema declares no foreign keys to drop")
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}
