package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/kluis-nl/kluis/internal/mariadbtest"
	"github.com/kluis-nl/kluis/synth"
)

const dossierTenant = "praktijk-s"

// TestDossierCLI walks the support workflow of docs/dossier.md on a SQLite
// tenant: show, restore to a file, the erasure register with refusal and
// override, a full restore that re-applies the erasure, and the access log
// with its verification and tamper detection.
func TestDossierCLI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := `appliance: {id: ams-1, state_dir: ./state, master_key_file: ./secrets/master.key, signing_key_file: ./secrets/signing.key}
locations:
  - {name: amsterdam, type: dir, path: ./loc-a, country: NL, site: Amsterdam, provider: provider-a}
  - {name: groningen, type: dir, path: ./loc-g, country: NL, site: Groningen, provider: provider-b}
tenants:
  - {id: ` + dossierTenant + `, engine: sqlite, path: ./praktijk.db, dossier: practice}
dossiers:
  practice: {root: clients, key: id, exclude: [audit_log]}
policy: {pack_size: 1MiB}
`
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := synth.GenerateSQLiteFile(context.Background(), e.path("praktijk.db"), synth.Tiny, 5); err != nil {
		t.Fatal(err)
	}
	e.keysInit()
	e.mustRun(0, "init", "--tenant", dossierTenant)
	e.mustRun(0, "backup", "--tenant", dossierTenant)

	var show struct {
		Tables []struct {
			Table string `json:"table"`
			Rows  int64  `json:"rows"`
			Via   string `json:"via"`
			Read  string `json:"read"`
			Why   string `json:"read_reason"`
		} `json:"tables"`
		Shared []struct {
			Table string `json:"table"`
		} `json:"shared"`
	}
	e.mustJSON(0, &show, "dossier", "show", "--tenant", dossierTenant, "--id", "3", "--operator", "support-jan")
	// Issue 19: the backup of a tenant with a profile writes the row
	// index, and show reads through it.
	for _, tb := range show.Tables {
		if tb.Read != "index" {
			t.Errorf("dossier show read %s %s (%s), want index", tb.Table, tb.Read, tb.Why)
		}
	}

	if len(show.Tables) < 5 || show.Tables[0].Table != "clients" || show.Tables[0].Rows != 1 || len(show.Shared) == 0 {
		t.Fatalf("dossier show: %+v", show)
	}
	// Issue 16: show says which reference made each table a member.
	if show.Tables[0].Via != "root (key id)" || !strings.HasPrefix(show.Tables[1].Via, "foreign key ") {
		t.Errorf("dossier show does not say why each table is a member: %+v", show.Tables)
	}
	if r := e.run("dossier", "restore", "--tenant", dossierTenant, "--id", "3", "--out", e.path("d.sql")); r.code != 2 || !strings.Contains(r.stderr, "--reason is required") {
		t.Errorf("restore without --reason: %v", r)
	}
	e.mustRun(0, "dossier", "restore", "--tenant", dossierTenant, "--id", "3", "--reason", "ticket 4711: dossier damaged", "--out", e.path("d.sql"))
	if b, err := os.ReadFile(e.path("d.sql")); err != nil || !strings.Contains(string(b), `INSERT INTO "clients"`) || !strings.Contains(string(b), "COMMIT;") {
		t.Errorf("SQL file: %v\n%.300s", err, b)
	}
	e.mustRun(0, "dossier", "restore", "--tenant", dossierTenant, "--id", "3", "--reason", "review", "--format", "json", "--out", e.path("d.json"))
	var doc map[string]any
	if b, _ := os.ReadFile(e.path("d.json")); json.Unmarshal(b, &doc) != nil {
		t.Errorf("JSON file does not parse")
	}

	e.mustRun(0, "erasure", "add", "--tenant", dossierTenant, "--id", "3", "--reason", "AVG art. 17 request of 2026-01-02")
	if r := e.mustRun(0, "erasure", "list"); !strings.Contains(r.stdout, "AVG art. 17 request") {
		t.Errorf("erasure list: %v", r)
	}
	if r := e.run("dossier", "restore", "--tenant", dossierTenant, "--id", "3", "--reason", "again", "--out", e.path("d2.sql")); r.code != 1 || !strings.Contains(r.stderr, "was erased") {
		t.Errorf("restoring an erased dossier: %v", r)
	}
	if _, err := os.Stat(e.path("d2.sql")); err == nil {
		t.Errorf("a refused restore wrote its file")
	}
	e.mustRun(0, "dossier", "restore", "--tenant", dossierTenant, "--id", "3", "--reason", "again", "--override-erasure", "court order 2026/12", "--out", e.path("d3.sql"))

	r := e.mustRun(0, "restore", "--tenant", dossierTenant, "--target-path", e.path("full.db"))
	if !strings.Contains(r.stderr, "re-applied 1 erasure of") {
		t.Errorf("full restore did not report the erasure: %v", r)
	}
	db, err := sql.Open("sqlite", e.path("full.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n3, n4, t3 int
	db.QueryRow(`SELECT count(*) FROM clients WHERE id = 3`).Scan(&n3)
	db.QueryRow(`SELECT count(*) FROM clients WHERE id = 4`).Scan(&n4)
	db.QueryRow(`SELECT count(*) FROM treatments WHERE client_id = 3`).Scan(&t3)
	if n3 != 0 || t3 != 0 || n4 != 1 {
		t.Errorf("after the full restore: client 3 %d rows (treatments %d), client 4 %d", n3, t3, n4)
	}

	// Into the restored database, which lacks dossier 3: one transaction.
	r = e.mustRun(0, "dossier", "restore", "--tenant", dossierTenant, "--id", "3", "--reason", "ticket 4712", "--override-erasure", "court order 2026/12", "--into", e.path("full.db"))
	if !strings.Contains(r.stdout, "inserted in one transaction") {
		t.Errorf("--into: %v", r)
	}
	db.QueryRow(`SELECT count(*) FROM clients WHERE id = 3`).Scan(&n3)
	if n3 != 1 {
		t.Errorf("after --into, client 3 has %d rows", n3)
	}
	if r := e.run("dossier", "restore", "--tenant", dossierTenant, "--id", "3", "--reason", "again", "--override-erasure", "court order 2026/12", "--into", e.path("full.db")); r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("second --into without --on-conflict skip: %v", r)
	}
	e.mustRun(0, "dossier", "restore", "--tenant", dossierTenant, "--id", "3", "--reason", "again", "--override-erasure", "court order 2026/12", "--into", e.path("full.db"), "--on-conflict", "skip")

	r = e.mustRun(0, "access-log", "verify")
	if !strings.Contains(r.stdout, "9 records") {
		t.Errorf("access log should hold show, 3 restores to files, the refused one, the full restore and 3 into the database: %v", r)
	}
	pub := e.mustRun(0, "keys", "public")
	os.WriteFile(e.path("pub.pem"), []byte(pub.stdout), 0o644)
	e.mustRun(0, "access-log", "verify", "--public-key", e.path("pub.pem"))
	logFile := e.path("state", "dossier-access.jsonl")
	b, _ := os.ReadFile(logFile)
	if !strings.Contains(string(b), "support-jan") || !strings.Contains(string(b), "was erased") || !strings.Contains(string(b), "court order") {
		t.Errorf("access log lacks operator, refusal or override:\n%s", b)
	}
	os.WriteFile(logFile, []byte(strings.Replace(string(b), "support-jan", "support-els", 1)), 0o600)
	if r := e.run("access-log", "verify"); r.code != 1 || !strings.Contains(r.stderr, "does not verify") {
		t.Errorf("edited access log: %v", r)
	}
}

// TestDossierCLIMariaDB walks the same workflow on a MariaDB tenant whose
// schema declares no foreign keys (the synthetic practice with its foreign
// keys dropped), with a profile of edges: show against direct SQL counts,
// the SQL file loaded with the mariadb client, the erasure register's
// refusal, and --into-dsn-file into a database lacking the dossier.
func TestDossierCLIMariaDB(t *testing.T) {
	t.Parallel()
	srv := mariadbtest.Start(t)
	ctx := context.Background()
	src := srv.CreateDB(t, "cli_dossier")
	srcDB := mariadbtest.OpenDSN(t, src)
	if err := synth.Generate(ctx, srcDB, synth.MariaDB, synth.Tiny, 5); err != nil {
		t.Fatal(err)
	}
	dropForeignKeys(t, src)

	e := newEnv(t)
	if srv.Password != "" {
		e.mu.Lock()
		e.secrets["MariaDB password"] = srv.Password
		e.mu.Unlock()
	}
	const tenant = "praktijk-m"
	if err := os.WriteFile(e.path("praktijk-m.dsn"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := `appliance: {id: ams-1, state_dir: ./state, master_key_file: ./secrets/master.key, signing_key_file: ./secrets/signing.key}
locations:
  - {name: amsterdam, type: dir, path: ./loc-a, country: NL, site: Amsterdam, provider: provider-a}
  - {name: groningen, type: dir, path: ./loc-g, country: NL, site: Groningen, provider: provider-b}
tenants:
  - {id: ` + tenant + `, engine: mariadb, dsn_file: ./praktijk-m.dsn, dossier: legacy}
dossiers:
  legacy:
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
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	e.keysInit()
	e.mustRun(0, "config", "check")
	e.mustRun(0, "init", "--tenant", tenant)
	e.mustRun(0, "backup", "--tenant", tenant)

	var show struct {
		Tables []struct {
			Table string `json:"table"`
			Rows  int64  `json:"rows"`
		} `json:"tables"`
		Shared []struct {
			Table string `json:"table"`
		} `json:"shared"`
	}
	e.mustJSON(0, &show, "dossier", "show", "--tenant", tenant, "--id", "3", "--operator", "support-jan")
	where := map[string]string{
		"clients":          "`id` = 3",
		"reports":          "`client_id` = 3 OR `treatment_id` IN (SELECT `id` FROM `treatments` WHERE `client_id` = 3)",
		"invoice_lines":    "`invoice_id` IN (SELECT `id` FROM `invoices` WHERE `client_id` = 3)",
		synth.HostileTable: "`Cliënt ID` = 3",
		"treatments":       "`client_id` = 3",
		"appointments":     "`client_id` = 3",
		"measurements":     "`client_id` = 3",
		"invoices":         "`client_id` = 3",
		"attachments":      "`client_id` = 3",
	}
	if len(show.Tables) != len(where) || show.Tables[0].Table != "clients" || len(show.Shared) != 2 {
		t.Fatalf("dossier show: %+v", show)
	}
	var total int64
	for _, tc := range show.Tables {
		var n int64
		if err := srcDB.QueryRow("SELECT COUNT(*) FROM " + mariadbtest.QuoteIdent(tc.Table) + " WHERE " + where[tc.Table]).Scan(&n); err != nil {
			t.Fatalf("%s: %v", tc.Table, err)
		}
		if n != tc.Rows {
			t.Errorf("dossier show: %s has %d rows, SQL counts %d", tc.Table, tc.Rows, n)
		}
		total += n
	}

	e.mustRun(0, "dossier", "restore", "--tenant", tenant, "--id", "3", "--reason", "ticket 4711", "--out", e.path("d.sql"))
	b, err := os.ReadFile(e.path("d.sql"))
	if err != nil || !strings.Contains(string(b), "INSERT INTO `clients` (`id`, ") || !strings.Contains(string(b), "COMMIT;") {
		t.Fatalf("SQL file: %v\n%.300s", err, b)
	}
	// Loaded with the mariadb client into the schema without rows.
	empty := srv.CreateDB(t, "cli_dossier_empty")
	ddl, err := synth.DDL(synth.MariaDB)
	if err != nil {
		t.Fatal(err)
	}
	mariadbtest.ExecDSN(t, empty, ddl...)
	dropForeignKeys(t, empty)
	emptyCfg, _ := mysql.ParseDSN(empty)
	args, env := srv.ClientArgs()
	in, _ := os.Open(e.path("d.sql"))
	defer in.Close()
	cmd := exec.Command(srv.Tool(t, "mariadb"), append(args, "--default-character-set=utf8mb4", emptyCfg.DBName)...)
	cmd.Env, cmd.Stdin = env, in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mariadb < d.sql: %v\n%s", err, out)
	}
	emptyDB := mariadbtest.OpenDSN(t, empty)
	var loaded int64
	for table := range where {
		var n int64
		emptyDB.QueryRow("SELECT COUNT(*) FROM " + mariadbtest.QuoteIdent(table)).Scan(&n)
		loaded += n
	}
	if loaded != total {
		t.Errorf("the SQL file loaded %d rows, the dossier has %d", loaded, total)
	}

	// The dossier is erased from the live database and recorded.
	e.mustRun(0, "erasure", "add", "--tenant", tenant, "--id", "3", "--reason", "AVG art. 17 request of 2026-01-02")
	for _, table := range []string{"invoice_lines", "reports", synth.HostileTable, "attachments", "invoices", "measurements", "appointments", "treatments", "clients"} {
		mariadbtest.ExecDSN(t, src, "DELETE FROM "+mariadbtest.QuoteIdent(table)+" WHERE "+where[table])
	}
	if r := e.run("dossier", "restore", "--tenant", tenant, "--id", "3", "--reason", "again", "--into-dsn-file", e.path("praktijk-m.dsn")); r.code != 1 || !strings.Contains(r.stderr, "was erased") {
		t.Errorf("restoring an erased dossier: %v", r)
	}
	if r := e.run("dossier", "restore", "--tenant", tenant, "--id", "3", "--reason", "again", "--into", mariadbtest.WithPassword(src, "on-the-command-line")); r.code != 2 || !strings.Contains(r.stderr, "MYSQL_PWD") {
		t.Errorf("--into with a password: %v", r)
	}
	r := e.mustRun(0, "dossier", "restore", "--tenant", tenant, "--id", "3", "--reason", "court order", "--override-erasure", "court order 2026/12", "--into-dsn-file", e.path("praktijk-m.dsn"))
	if !strings.Contains(r.stdout, fmt.Sprintf("%d rows in %d tables inserted in one transaction", total, len(where))) {
		t.Errorf("--into-dsn-file: %v", r)
	}
	var n3 int64
	srcDB.QueryRow("SELECT COUNT(*) FROM `clients` WHERE `id` = 3").Scan(&n3)
	if n3 != 1 {
		t.Errorf("after --into, client 3 has %d rows", n3)
	}
	if r := e.run("dossier", "restore", "--tenant", tenant, "--id", "3", "--reason", "again", "--override-erasure", "court order 2026/12", "--into-dsn-file", e.path("praktijk-m.dsn")); r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("second --into without --on-conflict skip: %v", r)
	}
	r = e.mustRun(0, "dossier", "restore", "--tenant", tenant, "--id", "3", "--reason", "again", "--override-erasure", "court order 2026/12", "--into-dsn-file", e.path("praktijk-m.dsn"), "--on-conflict", "skip")
	if !strings.Contains(r.stdout, fmt.Sprintf("%d already present and kept", total)) {
		t.Errorf("--on-conflict skip: %v", r)
	}
	r = e.mustRun(0, "access-log", "verify")
	if !strings.Contains(r.stdout, "6 records") {
		t.Errorf("access log should hold show, the file, the refusal and 3 restores into the database: %v", r)
	}

	// A full restore of the snapshot (taken before the erasure) into a new
	// database re-applies the erasure: client 3 does not come back.
	fullName := srv.UniqueName("cli_full")
	t.Cleanup(func() { srv.DropDB(t, fullName) })
	if err := os.WriteFile(e.path("full.dsn"), []byte(srv.DSN(fullName)), 0o600); err != nil {
		t.Fatal(err)
	}
	r = e.mustRun(0, "restore", "--tenant", tenant, "--snapshot", "latest", "--target-dsn-file", e.path("full.dsn"))
	if !strings.Contains(r.stdout+r.stderr, "re-applied 1 erasure of") {
		t.Errorf("full restore did not re-apply the erasure: %v", r)
	}
	fullDB := mariadbtest.OpenDSN(t, srv.DSN(fullName))
	var left, clients int64
	fullDB.QueryRow("SELECT COUNT(*) FROM `clients` WHERE `id` = 3").Scan(&left)
	fullDB.QueryRow("SELECT COUNT(*) FROM `clients`").Scan(&clients)
	if left != 0 || clients == 0 {
		t.Errorf("after the full restore: client 3 has %d rows (want 0), %d clients in all", left, clients)
	}
}

// dropForeignKeys drops every foreign key of the database of dsn.
func dropForeignKeys(t *testing.T, dsn string) {
	t.Helper()
	db := mariadbtest.OpenDSN(t, dsn)
	rows, err := db.Query("SELECT TABLE_NAME, CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()")
	if err != nil {
		t.Fatal(err)
	}
	var stmts []string
	for rows.Next() {
		var table, name string
		if err := rows.Scan(&table, &name); err != nil {
			t.Fatal(err)
		}
		stmts = append(stmts, "ALTER TABLE "+mariadbtest.QuoteIdent(table)+" DROP FOREIGN KEY "+mariadbtest.QuoteIdent(name))
	}
	rows.Close()
	mariadbtest.ExecDSN(t, dsn, stmts...)
}
