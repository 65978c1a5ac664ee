package main

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kluis-nl/kluis/internal/mariadbtest"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/synth"
)

// Issue 18.3: two practices on one server; a dossier of practice A is
// restored with --into-dsn-file pointing at practice B's database, spelled
// differently from B's own DSN file. kluis compares identities (cluster
// and database), refuses, writes nothing, and the access log records the
// refused attempt with the target (no DSN, host or password). A's own
// database, spelled differently too, is the normal target.
func TestDossierIntoOtherTenantRefusedPostgres(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	ctx := context.Background()
	dsnA, dsnB := srv.CreateDB(t, "prak_a"), srv.CreateDB(t, "prak_b")
	for i, dsn := range []string{dsnA, dsnB} {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		if err := synth.Generate(ctx, db, synth.Postgres, synth.Tiny, uint64(5+i)); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	// B without clients: a restore that got through would insert rows.
	pgtest.ExecDSN(t, dsnB, "TRUNCATE clients CASCADE")
	e := newEnv(t)
	e.secrets["PostgreSQL password"] = srv.Password
	writeFile(t, e.path("a.dsn"), dsnA)
	writeFile(t, e.path("b.dsn"), dsnB)
	writeFile(t, e.path("b-other-spelling.dsn"), respellPG(t, dsnB))
	writeFile(t, e.path("a-other-spelling.dsn"), respellPG(t, dsnA))
	writeFile(t, e.cfg, twoTenantConfig("postgres"))
	e.keysInit()
	e.mustRun(0, "init", "--tenant", "praktijk-a")
	e.mustRun(0, "backup", "--tenant", "praktijk-a")

	r := e.run("dossier", "restore", "--tenant", "praktijk-a", "--id", "3", "--reason", "ticket 88", "--into-dsn-file", e.path("b-other-spelling.dsn"))
	if r.code != 1 || !strings.Contains(r.stderr, "refusing") || !strings.Contains(r.stderr, "praktijk-b") {
		t.Fatalf("a dossier of praktijk-a into praktijk-b's database: %v", r)
	}
	var n int
	conn := pgtest.ConnectDSN(t, dsnB)
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM clients").Scan(&n); err != nil || n != 0 {
		t.Errorf("praktijk-b's database has %d clients after the refused restore (%v)", n, err)
	}
	nameB := databaseName(t, dsnB)
	rec := lastAccess(t, e)
	if !strings.Contains(rec, `"database":"`+nameB+`"`) || !strings.Contains(rec, "system_identifier") || !strings.Contains(rec, "refusing") {
		t.Errorf("the access log does not record the refused target:\n%s", rec)
	}
	if strings.Contains(rec, srv.Password) || strings.Contains(rec, "host") || strings.Contains(rec, strconv.Itoa(srv.Port)) {
		t.Errorf("the access log holds a connection detail:\n%s", rec)
	}
	// The tenant's own database is allowed (rows are there: skip them).
	r = e.mustRun(0, "dossier", "restore", "--tenant", "praktijk-a", "--id", "3", "--reason", "ticket 89", "--into-dsn-file", e.path("a-other-spelling.dsn"), "--on-conflict", "skip")
	if rec := lastAccess(t, e); !strings.Contains(rec, `"database":"`+databaseName(t, dsnA)+`"`) || !strings.Contains(rec, `"result":"ok"`) {
		t.Errorf("the access log does not record the own target: %s", rec)
	}
	e.mustRun(0, "access-log", "verify")

	// praktijk-b not declared but discovered (a discover block on the
	// server): refused the same way.
	writeFile(t, e.path("server.dsn"), srv.DSN("postgres"))
	cfg := strings.Replace(twoTenantConfig("postgres"), "  - {id: praktijk-b, engine: postgres, dsn_file: ./b.dsn, dossier: practice}\n", "", 1)
	cfg = strings.Replace(cfg, "dossiers:", "discover:\n  - {engine: postgres, dsn_file: ./server.dsn, pattern: \""+nameB+"\", id_template: \"found-{db}\"}\ndossiers:", 1)
	writeFile(t, e.cfg, cfg)
	r = e.run("dossier", "restore", "--tenant", "praktijk-a", "--id", "3", "--reason", "ticket 90", "--into-dsn-file", e.path("b-other-spelling.dsn"))
	if r.code != 1 || !strings.Contains(r.stderr, "refusing") || !strings.Contains(r.stderr, "found-") {
		t.Fatalf("a dossier of praktijk-a into a discovered tenant's database: %v", r)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM clients").Scan(&n); err != nil || n != 0 {
		t.Errorf("the discovered tenant's database has %d clients after the refused restore (%v)", n, err)
	}
}

// The same on MariaDB: two schemas on one server.
func TestDossierIntoOtherTenantRefusedMariaDB(t *testing.T) {
	t.Parallel()
	srv := mariadbtest.Start(t)
	ctx := context.Background()
	dsnA, dsnB := srv.CreateDB(t, "prak_a"), srv.CreateDB(t, "prak_b")
	for i, dsn := range []string{dsnA, dsnB} {
		if err := synth.Generate(ctx, mariadbtest.OpenDSN(t, dsn), synth.MariaDB, synth.Tiny, uint64(5+i)); err != nil {
			t.Fatal(err)
		}
	}
	dropForeignKeys(t, dsnB)
	mariadbtest.ExecDSN(t, dsnB, "DELETE FROM clients WHERE id = 3")
	e := newEnv(t)
	if srv.Password != "" {
		e.secrets["MariaDB password"] = srv.Password
	}
	writeFile(t, e.path("a.dsn"), dsnA)
	writeFile(t, e.path("b.dsn"), dsnB)
	writeFile(t, e.path("b-other-spelling.dsn"), respellMariaDB(t, dsnB))
	writeFile(t, e.cfg, twoTenantConfig("mariadb"))
	e.keysInit()
	e.mustRun(0, "init", "--tenant", "praktijk-a")
	e.mustRun(0, "backup", "--tenant", "praktijk-a")

	r := e.run("dossier", "restore", "--tenant", "praktijk-a", "--id", "3", "--reason", "ticket 88", "--into-dsn-file", e.path("b-other-spelling.dsn"))
	if r.code != 1 || !strings.Contains(r.stderr, "refusing") || !strings.Contains(r.stderr, "praktijk-b") {
		t.Fatalf("a dossier of praktijk-a into praktijk-b's database: %v", r)
	}
	var n int
	if err := mariadbtest.OpenDSN(t, dsnB).QueryRow("SELECT COUNT(*) FROM clients WHERE id = 3").Scan(&n); err != nil || n != 0 {
		t.Errorf("praktijk-b's database has client 3 after the refused restore (%d, %v)", n, err)
	}
	cfg, _ := mysql.ParseDSN(dsnB)
	rec := lastAccess(t, e)
	if !strings.Contains(rec, `"database":"`+cfg.DBName+`"`) || !strings.Contains(rec, "@@") || !strings.Contains(rec, "refusing") {
		t.Errorf("the access log does not record the refused target:\n%s", rec)
	}
	if srv.Password != "" && strings.Contains(rec, srv.Password) {
		t.Errorf("the access log holds the password:\n%s", rec)
	}
	e.mustRun(0, "access-log", "verify")
}

func twoTenantConfig(engine string) string {
	return `appliance: {id: ams-1, state_dir: ./state, master_key_file: ./secrets/master.key, signing_key_file: ./secrets/signing.key}
locations:
  - {name: amsterdam, type: dir, path: ./loc-a, country: NL, site: Amsterdam, provider: provider-a}
  - {name: groningen, type: dir, path: ./loc-g, country: NL, site: Groningen, provider: provider-b}
tenants:
  - {id: praktijk-a, engine: ` + engine + `, dsn_file: ./a.dsn, dossier: practice}
  - {id: praktijk-b, engine: ` + engine + `, dsn_file: ./b.dsn, dossier: practice}
dossiers:
  practice:
    root: clients
    key: id
    exclude: [audit_log]
    edges:
      - {from: "*.client_id", to: clients.id}
      - {from: reports.treatment_id, to: treatments.id}
      - {from: invoice_lines.invoice_id, to: invoices.id}
      - {from: '` + synth.HostileTable + `.` + synth.HostileClientColumn + `', to: clients.id}
      - {from: clients.address_id, to: addresses.id}
      - {from: "*.staff_id", to: staff.id}
policy: {pack_size: 1MiB}
`
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// respellPG writes a keyword/value DSN as a URL with "localhost" for a
// loopback address: the same database, another string.
func respellPG(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	host := cfg.Host
	if host == "127.0.0.1" {
		host = "localhost"
	}
	u := url.URL{Scheme: "postgresql", User: url.UserPassword(cfg.User, cfg.Password), Path: "/" + cfg.Database,
		RawQuery: "sslmode=disable&application_name=support-desk"}
	if strings.HasPrefix(host, "/") {
		u.RawQuery += "&host=" + url.QueryEscape(host) + "&port=" + strconv.Itoa(int(cfg.Port))
	} else {
		u.Host = host + ":" + strconv.Itoa(int(cfg.Port))
	}
	return u.String()
}

func respellMariaDB(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = strings.Replace(cfg.Addr, "127.0.0.1", "localhost", 1)
	cfg.Timeout = 17 * time.Second
	return cfg.FormatDSN()
}

func databaseName(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

// lastAccess is the last line of the dossier access log.
func lastAccess(t *testing.T, e *env) string {
	t.Helper()
	b, err := os.ReadFile(e.path("state", "dossier-access.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
