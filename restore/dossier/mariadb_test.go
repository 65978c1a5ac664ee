package dossier

import (
	"bytes"
	"database/sql"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/internal/mariadbtest"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/source"
	"github.com/kluis-nl/kluis/source/mariadb"
	"github.com/kluis-nl/kluis/synth"
)

// mariaProfile is the synthetic practice's dossier profile for a MariaDB
// schema that declares no foreign keys: every reference is an edge.
func mariaProfile() *config.Dossier {
	return &config.Dossier{Root: "clients", Key: "id", Exclude: []string{"audit_log"}, Edges: []config.DossierEdge{
		{From: "*.client_id", To: "clients.id"},
		{From: "reports.treatment_id", To: "treatments.id"},
		{From: "invoice_lines.invoice_id", To: "invoices.id"},
		{From: synth.HostileTable + "." + synth.HostileClientColumn, To: "clients.id"},
		{From: "clients.address_id", To: "addresses.id"},
		{From: "*.staff_id", To: "staff.id"},
	}}
}

// mariaHandWritten is the hand-written selection of client id's rows.
func mariaHandWritten(table string, id int) string {
	k := strconv.Itoa(id)
	switch table {
	case "clients":
		return "`id` = " + k
	case "treatments", "appointments", "invoices", "attachments", "measurements":
		return "`client_id` = " + k
	case "reports":
		return "`client_id` = " + k + " OR `treatment_id` IN (SELECT `id` FROM `treatments` WHERE `client_id` = " + k + ")"
	case "invoice_lines":
		return "`invoice_id` IN (SELECT `id` FROM `invoices` WHERE `client_id` = " + k + ")"
	case synth.HostileTable:
		return "`Cliënt ID` = " + k
	}
	panic("unknown table " + table)
}

// mariaPractice creates a database holding the synthetic practice; with
// noFKs its foreign keys are dropped (the legacy schema of a dossier
// profile with edges:).
func mariaPractice(t *testing.T, srv *mariadbtest.Server, name string, scale synth.Scale, seed uint64, noFKs bool) string {
	t.Helper()
	dsn := srv.CreateDB(t, name)
	if err := synth.Generate(testCtx(t), mariadbtest.OpenDSN(t, dsn), synth.MariaDB, scale, seed); err != nil {
		t.Fatal(err)
	}
	if noFKs {
		dropForeignKeys(t, dsn)
	}
	return dsn
}

// mariaSchema creates a database with the synthetic practice's schema and
// no rows.
func mariaSchema(t *testing.T, srv *mariadbtest.Server, name string, noFKs bool) string {
	t.Helper()
	dsn := srv.CreateDB(t, name)
	ddl, err := synth.DDL(synth.MariaDB)
	if err != nil {
		t.Fatal(err)
	}
	mariadbtest.ExecDSN(t, dsn, ddl...)
	if noFKs {
		dropForeignKeys(t, dsn)
	}
	return dsn
}

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
	if len(stmts) == 0 {
		t.Fatal("the practice schema declares no foreign keys to drop")
	}
	mariadbtest.ExecDSN(t, dsn, stmts...)
}

// mariaRows returns the rows of table tm in db selected by where, each as
// its columns' bytes as the server sends them (FLOAT widened to DOUBLE, as
// the backup reads it), sorted: a comparison of two databases' rows that
// does not go through kluis's own encoding.
func mariaRows(t testing.TB, db *sql.DB, tm source.TableMeta, where string) []string {
	t.Helper()
	d := dialect{engine: "mariadb"}
	var cols []string
	for _, c := range tm.Columns {
		q, _ := d.ident(c.Name)
		if strings.HasPrefix(strings.ToLower(c.Type), "float") {
			q = "CAST(" + q + " AS DOUBLE)"
		}
		cols = append(cols, q)
	}
	tr, _ := d.tableRef("", tm.Table.Table)
	conn, err := db.Conn(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(testCtx(t), "SET NAMES utf8mb4, time_zone = '+00:00'"); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.QueryContext(testCtx(t), "SELECT "+strings.Join(cols, ", ")+" FROM "+tr+" WHERE "+where)
	if err != nil {
		t.Fatalf("%s: %v", tm.Name, err)
	}
	defer rows.Close()
	raw := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	var out []string
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, v := range raw {
			if v == nil {
				b.WriteString("NULL|")
			} else {
				b.WriteString(hex.EncodeToString(v) + "|")
			}
		}
		out = append(out, b.String())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func mariaCount(t testing.TB, db *sql.DB, table, where string) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow("SELECT COUNT(*) FROM " + mariadbtest.QuoteIdent(table) + " WHERE " + where).Scan(&n); err != nil {
		t.Fatalf("%s: %v", table, err)
	}
	return n
}

func dbNameOf(t testing.TB, dsn string) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.DBName
}

// mariaScript writes the SQL script of dossier id.
func mariaScript(t *testing.T, r *repo.Repo, snap repo.SnapshotInfo, plan *Plan, id string, oc OnConflict) []byte {
	t.Helper()
	var script bytes.Buffer
	w, err := NewSQLWriter(&script, "mariadb", []string{"test: dossier " + id}, oc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(testCtx(t), r, snap.Manifest, plan, id, w); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	return script.Bytes()
}

// loadScript runs the mariadb client on script against the database of
// dsn and returns its combined output and error.
func loadScript(t *testing.T, srv *mariadbtest.Server, dsn string, script []byte) ([]byte, error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "dossier.sql")
	if err := os.WriteFile(file, script, 0o600); err != nil {
		t.Fatal(err)
	}
	args, env := srv.ClientArgs()
	in, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	cmd := exec.Command(srv.Tool(t, "mariadb"), append(args, "--default-character-set=utf8mb4", dbNameOf(t, dsn))...)
	cmd.Env, cmd.Stdin = env, in
	return cmd.CombinedOutput()
}

// TestMariaDBDossier runs the dossier workflow on a MariaDB tenant whose
// schema declares no foreign keys (the synthetic practice with its foreign
// keys dropped) and a profile with edges: counts against hand-written SQL,
// the SQL script loaded with the mariadb client, --into an existing
// database with both on-conflict policies, the erasure statements, and
// missing shared rows with and without declared foreign keys.
func TestMariaDBDossier(t *testing.T) {
	srv := mariadbtest.Start(t)
	ctx := testCtx(t)
	src := mariaPractice(t, srv, "dossier_src", synth.Tiny, 21, true)
	srcDB := mariadbtest.OpenDSN(t, src)
	r := newRepo(t, "praktijk-maria")
	snap, tables := snapshotOf(t, r, mariadb.New(src, r.FingerprintKey(), mariadb.Options{}))
	if snap.Manifest.Engine != "mariadb" {
		t.Fatalf("manifest engine %q", snap.Manifest.Engine)
	}
	for _, tm := range tables {
		if len(tm.ForeignKeys) > 0 {
			t.Fatalf("%s declares foreign keys", tm.Name)
		}
	}
	// Without edges there is nothing but the root: the schema declares no
	// references.
	bare, err := NewPlan("mariadb", tables, &config.Dossier{Root: "clients", Key: "id"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(bare.Tables(), ","); got != "clients" {
		t.Fatalf("plan without edges: %s", got)
	}
	plan, err := NewPlan("mariadb", tables, mariaProfile())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"clients", "treatments", "appointments", "reports", "measurements", "invoices", "invoice_lines", "attachments", synth.HostileTable}
	if got := plan.Tables(); len(got) != len(want) || got[0] != "clients" || !sameSet(got, want) {
		t.Fatalf("plan: %q", got)
	}

	t.Run("show counts equal hand-written SQL", func(t *testing.T) {
		empty := 0
		for id := 1; id <= synth.Tiny.Clients; id++ {
			res, err := Extract(ctx, r, snap.Manifest, plan, strconv.Itoa(id), nil)
			if err != nil {
				t.Fatalf("client %d: %v", id, err)
			}
			for _, tc := range res.Tables {
				n := mariaCount(t, srcDB, tc.Table, mariaHandWritten(tc.Table, id))
				if n != tc.Rows {
					t.Errorf("client %d, %s: show counts %d rows, SQL %d", id, tc.Table, tc.Rows, n)
				}
				if n == 0 {
					empty++
				}
			}
			shared := map[string]bool{}
			for _, s := range res.Shared {
				shared[s.Table] = true
			}
			if !shared["addresses"] || !shared["staff"] {
				t.Errorf("client %d: shared rows %v, want addresses and staff", id, res.Shared)
			}
		}
		if empty == 0 {
			t.Error("no client with an empty table: the test proves less than it claims")
		}
		if _, err := Extract(ctx, r, snap.Manifest, plan, "999999", nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown id: %v", err)
		}
	})

	t.Run("SQL script loads with the mariadb client", func(t *testing.T) {
		dst := mariaSchema(t, srv, "dossier_script", true)
		dstDB := mariadbtest.OpenDSN(t, dst)
		script := mariaScript(t, r, snap, plan, "17", ConflictFail)
		if !bytes.Contains(script, []byte("INSERT INTO `clients` (`id`, ")) || !bytes.HasSuffix(script, []byte("COMMIT;\n")) {
			t.Fatalf("script:\n%.400s", script)
		}
		if out, err := loadScript(t, srv, dst, script); err != nil {
			t.Fatalf("mariadb: %v\n%s", err, out)
		}
		var reports int64
		for _, st := range plan.Steps {
			want := mariaRows(t, srcDB, st.Table, mariaHandWritten(st.Table.Name, 17))
			got := mariaRows(t, dstDB, st.Table, "TRUE")
			if !reflect.DeepEqual(want, got) {
				t.Errorf("%s: %d rows loaded, the dossier has %d", st.Table.Name, len(got), len(want))
			}
			if st.Table.Name == "reports" {
				reports = int64(len(want))
			}
		}
		for _, table := range []string{"addresses", "staff"} {
			if n := mariaCount(t, dstDB, table, "TRUE"); n != 0 {
				t.Errorf("%s: %d rows; shared rows are not part of the dossier", table, n)
			}
		}
		// The reports trigger appends to audit_log, one row per report.
		if n := mariaCount(t, dstDB, "audit_log", "TRUE"); n != reports {
			t.Errorf("audit_log: %d rows for %d reports", n, reports)
		}
		// Loading it again fails on the first row and leaves nothing of
		// the second attempt; the skip script keeps what is there.
		before := mariaCount(t, dstDB, "reports", "TRUE")
		if out, err := loadScript(t, srv, dst, script); err == nil || !strings.Contains(string(out), "Duplicate entry") {
			t.Errorf("second load: %v\n%s", err, out)
		}
		if out, err := loadScript(t, srv, dst, mariaScript(t, r, snap, plan, "17", ConflictSkip)); err != nil {
			t.Errorf("skip script: %v\n%s", err, out)
		}
		if n := mariaCount(t, dstDB, "reports", "TRUE"); n != before {
			t.Errorf("reports: %d rows after the skip script, %d before", n, before)
		}
	})

	t.Run("into an existing database", func(t *testing.T) {
		cp := mariaPractice(t, srv, "dossier_copy", synth.Tiny, 21, true) // same seed: the same database
		cpDB := mariadbtest.OpenDSN(t, cp)
		stmts, err := plan.DeleteStatements("9")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(stmts[len(stmts)-1], "DELETE FROM `clients` WHERE `id` = 9") {
			t.Errorf("last erasure statement: %s", stmts[len(stmts)-1])
		}
		tg, err := OpenTarget(ctx, "mariadb", cp, tables, ConflictFail)
		if err != nil {
			t.Fatal(err)
		}
		n, err := plan.Erase(ctx, tg, "9")
		if err != nil {
			t.Fatal(err)
		}
		if err := tg.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		var total int64
		for _, st := range plan.Steps {
			total += mariaCount(t, srcDB, st.Table.Name, mariaHandWritten(st.Table.Name, 9))
			if k := mariaCount(t, cpDB, st.Table.Name, mariaHandWritten(st.Table.Name, 9)); k != 0 {
				t.Fatalf("erase left %d rows in %s", k, st.Table.Name)
			}
		}
		if n != total {
			t.Errorf("erase deleted %d rows, the dossier has %d", n, total)
		}
		if mariaCount(t, cpDB, "clients", "TRUE") != int64(synth.Tiny.Clients-1) {
			t.Error("erase deleted other clients")
		}
		into := func(oc OnConflict) (*IntoResult, error) {
			return RestoreInto(ctx, r, snap.Manifest, plan, "9", cp, oc)
		}
		ir, err := into(ConflictFail)
		if err != nil {
			t.Fatal(err)
		}
		if ir.Inserted != total || ir.Skipped != 0 {
			t.Errorf("inserted %d, skipped %d of %d", ir.Inserted, ir.Skipped, total)
		}
		for _, tm := range tables {
			if tm.Name == "audit_log" {
				continue // the reports trigger appends to it
			}
			if want, got := mariaRows(t, srcDB, tm, "TRUE"), mariaRows(t, cpDB, tm, "TRUE"); !reflect.DeepEqual(want, got) {
				t.Errorf("%s differs from the original after the restore", tm.Name)
			}
		}
		auditBefore := mariaCount(t, cpDB, "audit_log", "TRUE")
		if _, err := into(ConflictFail); err == nil || !strings.Contains(err.Error(), "already exists") {
			t.Errorf("second restore, on-conflict fail: %v", err)
		}
		ir, err = into(ConflictSkip)
		if err != nil {
			t.Fatal(err)
		}
		if ir.Inserted != 0 || ir.Skipped != ir.Rows {
			t.Errorf("skip: inserted %d, skipped %d of %d", ir.Inserted, ir.Skipped, ir.Rows)
		}
		if n := mariaCount(t, cpDB, "audit_log", "TRUE"); n != auditBefore {
			t.Errorf("audit_log grew from %d to %d rows: a failed or skipped restore left rows", auditBefore, n)
		}
		// Skip fills in what is missing and keeps what exists.
		mariadbtest.ExecDSN(t, cp, "DELETE FROM `invoice_lines` WHERE "+mariaHandWritten("invoice_lines", 9))
		ir, err = into(ConflictSkip)
		if err != nil {
			t.Fatal(err)
		}
		lines := mariaCount(t, srcDB, "invoice_lines", mariaHandWritten("invoice_lines", 9))
		if ir.Inserted != lines || ir.Skipped != ir.Rows-lines {
			t.Errorf("skip after deleting %d invoice lines: inserted %d, skipped %d", lines, ir.Inserted, ir.Skipped)
		}
	})

	t.Run("missing shared rows without declared foreign keys", func(t *testing.T) {
		dst := mariaSchema(t, srv, "dossier_empty", true)
		_, err := RestoreInto(ctx, r, snap.Manifest, plan, "2", dst, ConflictFail)
		if !errors.Is(err, ErrSharedMissing) || !strings.Contains(err.Error(), "addresses:") || !strings.Contains(err.Error(), "staff:") {
			t.Errorf("restore into a database without the shared rows: %v", err)
		}
		if n := mariaCount(t, mariadbtest.OpenDSN(t, dst), "clients", "TRUE"); n != 0 {
			t.Errorf("a refused restore left %d clients", n)
		}
	})

	t.Run("missing shared rows with declared foreign keys", func(t *testing.T) {
		// The same practice with its foreign keys: the plan follows them
		// (no edges needed), and MariaDB checks them at every insert.
		fsrc := mariaPractice(t, srv, "dossier_fk", synth.Tiny, 21, false)
		fr := newRepo(t, "praktijk-maria-fk")
		fsnap, ftables := snapshotOf(t, fr, mariadb.New(fsrc, fr.FingerprintKey(), mariadb.Options{}))
		fplan, err := NewPlan("mariadb", ftables, &config.Dossier{Root: "clients", Key: "id", Exclude: []string{"audit_log"}})
		if err != nil {
			t.Fatal(err)
		}
		if !sameSet(fplan.Tables(), want) {
			t.Fatalf("plan from declared foreign keys: %q", fplan.Tables())
		}
		dst := mariaSchema(t, srv, "dossier_fk_empty", false)
		_, err = RestoreInto(ctx, fr, fsnap.Manifest, fplan, "2", dst, ConflictFail)
		if !errors.Is(err, ErrSharedMissing) || !strings.Contains(err.Error(), "addresses:") {
			t.Errorf("restore into a database without the shared rows: %v", err)
		}
		// Erasure with declared foreign keys: children first.
		tg, err := OpenTarget(ctx, "mariadb", fsrc, ftables, ConflictFail)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fplan.Erase(ctx, tg, "4"); err != nil {
			t.Fatal(err)
		}
		if err := tg.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := RestoreInto(ctx, fr, fsnap.Manifest, fplan, "4", fsrc, ConflictFail); err != nil {
			t.Fatalf("restore after erasure: %v", err)
		}
	})

	t.Run("hostile identifiers and values", func(t *testing.T) { testMariaDBHostile(t, srv) })
}

func sameSet(a, b []string) bool {
	x, y := append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(x)
	sort.Strings(y)
	return reflect.DeepEqual(x, y)
}

// Hostile names: backticks, quotes, a backslash, a semicolon, non-ASCII
// letters (MariaDB identifiers hold the Basic Multilingual Plane only).
const (
	hostileRoot  = "kl`ant \"A\" 'b' \\ é;中"
	hostileKey   = "i`d 'x'"
	hostileChild = "vérwijzing `x` \"y\""
	hostileRef   = "kl`ant \"ref\" ø"
	hostileLoose = "los 'zonder' fk"
)

// hostileDDL creates the hostile tables: a root with a column of every
// kind of value, a child with a declared foreign key and one without (an
// edge).
func hostileDDL() []string {
	q := mariadbtest.QuoteIdent
	return []string{
		"CREATE TABLE " + q(hostileRoot) + " (" + q(hostileKey) + " BIGINT UNSIGNED PRIMARY KEY, " +
			"`t\"xt` MEDIUMTEXT, `b\\in` BLOB, `d` DATE, `dt` DATETIME(6), `ts` TIMESTAMP(3) NULL DEFAULT NULL, `tm` TIME(2), `y` YEAR, " +
			"`bits` BIT(64), `b3` BIT(3), `dec` DECIMAL(40,20), `j` JSON, `f` FLOAT, `dbl` DOUBLE, `e` ENUM('a','b'), `s` SET('x','y'), " +
			"`l1` VARCHAR(20) CHARACTER SET latin1, `ch` CHAR(5), `bn` BINARY(4), `ip` INET6, `u` UUID, `p` POINT NULL, `i8` TINYINT, " +
			"`gen` INT AS (`i8` + 1) VIRTUAL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
		"CREATE TABLE " + q(hostileChild) + " (`id` INT PRIMARY KEY, " + q(hostileRef) + " BIGINT UNSIGNED NOT NULL, `note` TEXT, " +
			"FOREIGN KEY (" + q(hostileRef) + ") REFERENCES " + q(hostileRoot) + " (" + q(hostileKey) + ")) ENGINE=InnoDB",
		"CREATE TABLE " + q(hostileLoose) + " (`n` INT, " + q(hostileRef) + " BIGINT UNSIGNED, `v` VARBINARY(10)) ENGINE=InnoDB",
	}
}

// hostileText holds what breaks naive quoting: quotes, backslashes, a CR
// before an LF, a NUL, an emoji, a would-be comment and client command, a
// line with only a semicolon.
const hostileText = "it's \"q\" `b` \\ \\\\ \\' \\0 \r\n\r\x00 nul 😀 -- no comment\n\\g\n;\ndelimiter //\n/* x */ #"

func testMariaDBHostile(t *testing.T, srv *mariadbtest.Server) {
	ctx := testCtx(t)
	const big = "18446744073709551615" // above int64: a text key
	q := mariadbtest.QuoteIdent
	src := srv.CreateDB(t, "dossier_hostile")
	blob := make([]byte, 256)
	for i := range blob {
		blob[i] = byte(i)
	}
	ins := func(table string, vals ...string) string {
		return "INSERT INTO " + q(table) + " VALUES (" + strings.Join(vals, ", ") + ")"
	}
	all := "`t\"xt`, `b\\in`, `d`, `dt`, `ts`, `tm`, `y`, `bits`, `b3`, `dec`, `j`, `f`, `dbl`, `e`, `s`, `l1`, `ch`, `bn`, `ip`, `u`, `p`, `i8`"
	stmts := append(hostileDDL(),
		// Not strict: row 3's ENUM gets its empty error value, as a lax
		// application would have stored it.
		"SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION', time_zone = '+00:00'",
		"INSERT INTO "+q(hostileRoot)+" ("+q(hostileKey)+", "+all+") VALUES ("+big+", _utf8mb4 X'"+hex.EncodeToString([]byte(hostileText))+"', X'"+hex.EncodeToString(blob)+"', "+
			"'0000-00-00', '0000-00-00 00:00:00.000000', '0000-00-00 00:00:00', '-838:59:59.99', 0, "+
			"b'1111111111111111111111111111111111111111111111111111111111111111', b'101', '-12345678901234567890.12345678901234567890', "+
			"'{\"a\": \"é \\\\\\\" x\", \"b\": [1, 2.5e300, null]}', 3.4028234e38, -1.7976931348623157e308, 'a', 'x,y', "+
			"'café ÿ', 'ab', X'00000000', '::ffff:1.2.3.4', '123e4567-e89b-12d3-a456-426614174000', ST_GeomFromText('POINT(1.5 -2)'), -128)",
		"INSERT INTO "+q(hostileRoot)+" ("+q(hostileKey)+") VALUES (1)", // NULL everywhere
		"INSERT INTO "+q(hostileRoot)+" ("+q(hostileKey)+", `e`, `d`) VALUES (3, 'zzz', '2024-00-00')",
		"INSERT INTO "+q(hostileRoot)+" ("+q(hostileKey)+", "+all+") VALUES (2, 'other', X'', '2024-02-29', '2024-02-29 23:59:59.999999', '2038-01-19 03:14:07.999', '00:00:00', 2024, "+
			"0, 0, 0, '[]', 0.1, 0.1, 'b', '', '', '', X'01020304', '::', '00000000-0000-0000-0000-000000000000', NULL, 127)",
		"SET SESSION sql_mode = DEFAULT",
		ins(hostileChild, "1", big, "_utf8mb4 X'"+hex.EncodeToString([]byte(hostileText))+"'"),
		ins(hostileChild, "2", big, "NULL"),
		ins(hostileChild, "3", "2", "'other'"),
		ins(hostileLoose, "1", big, "X'005C27'"),
		ins(hostileLoose, "NULL", big, "NULL"),
		ins(hostileLoose, "3", "1", "X''"),
	)
	mariadbtest.ExecDSN(t, src, stmts...)
	srcDB := mariadbtest.OpenDSN(t, src)
	var e string
	if err := srcDB.QueryRow("SELECT `e` FROM " + q(hostileRoot) + " WHERE " + q(hostileKey) + " = 3").Scan(&e); err != nil || e != "" {
		t.Fatalf("the empty ENUM value was not stored: %q %v", e, err)
	}

	r := newRepo(t, "hostile")
	snap, tables := snapshotOf(t, r, mariadb.New(src, r.FingerprintKey(), mariadb.Options{}))
	profile := &config.Dossier{Root: hostileRoot, Key: hostileKey, Edges: []config.DossierEdge{
		{From: hostileLoose + "." + hostileRef, To: hostileRoot + "." + hostileKey},
	}}
	plan, err := NewPlan("mariadb", tables, profile)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Steps) != 3 {
		t.Fatalf("plan: %q", plan.Tables())
	}
	where := func(table, id string) string {
		if table == hostileRoot {
			return q(hostileKey) + " = " + id
		}
		return q(hostileRef) + " = " + id
	}
	check := func(t *testing.T, dst string, id string) {
		t.Helper()
		dstDB := mariadbtest.OpenDSN(t, dst)
		for _, st := range plan.Steps {
			want := mariaRows(t, srcDB, st.Table, where(st.Table.Name, id))
			got := mariaRows(t, dstDB, st.Table, "TRUE")
			if !reflect.DeepEqual(want, got) {
				t.Errorf("%s, dossier %s:\n got %q\nwant %q", st.Table.Name, id, got, want)
			}
		}
	}
	emptyDB := func(t *testing.T, name string) string {
		dst := srv.CreateDB(t, name)
		mariadbtest.ExecDSN(t, dst, hostileDDL()...)
		return dst
	}

	for _, id := range []string{big, "1", "2", "3"} {
		script := mariaScript(t, r, snap, plan, id, ConflictFail)
		t.Run("script "+id, func(t *testing.T) {
			dst := emptyDB(t, "hostile_script")
			if out, err := loadScript(t, srv, dst, script); err != nil {
				t.Fatalf("mariadb: %v\n%s\n%s", err, out, script)
			}
			check(t, dst, id)
		})
		t.Run("script under NO_BACKSLASH_ESCAPES and ANSI_QUOTES "+id, func(t *testing.T) {
			mode := "SET sql_mode = '" + mariadbMode + "'"
			if !bytes.Contains(script, []byte(mode)) {
				t.Fatalf("script does not set sql_mode:\n%.500s", script)
			}
			ansi := bytes.Replace(script, []byte(mode), []byte(mode[:len(mode)-1]+",NO_BACKSLASH_ESCAPES,ANSI_QUOTES'"), 1)
			dst := emptyDB(t, "hostile_ansi")
			if out, err := loadScript(t, srv, dst, ansi); err != nil {
				t.Fatalf("mariadb: %v\n%s", err, out)
			}
			check(t, dst, id)
		})
		t.Run("into "+id, func(t *testing.T) {
			dst := emptyDB(t, "hostile_into")
			ir, err := RestoreInto(ctx, r, snap.Manifest, plan, id, dst, ConflictFail)
			if err != nil {
				t.Fatal(err)
			}
			check(t, dst, id)
			if _, err := RestoreInto(ctx, r, snap.Manifest, plan, id, dst, ConflictFail); err == nil || !strings.Contains(err.Error(), "already exists") {
				t.Errorf("second restore, on-conflict fail: %v", err)
			}
			skip, err := RestoreInto(ctx, r, snap.Manifest, plan, id, dst, ConflictSkip)
			if err != nil {
				t.Fatal(err)
			}
			// The loose table has no key: its rows are inserted again.
			loose := mariaCount(t, srcDB, hostileLoose, where(hostileLoose, id))
			if skip.Inserted != loose || skip.Skipped != ir.Rows-loose {
				t.Errorf("skip: inserted %d, skipped %d of %d (%d without a key)", skip.Inserted, skip.Skipped, ir.Rows, loose)
			}
		})
	}

	t.Run("erasure", func(t *testing.T) {
		others := map[string]int64{}
		for _, st := range plan.Steps {
			others[st.Table.Name] = mariaCount(t, srcDB, st.Table.Name, "NOT ("+where(st.Table.Name, big)+")")
		}
		tg, err := OpenTarget(ctx, "mariadb", src, tables, ConflictFail)
		if err != nil {
			t.Fatal(err)
		}
		defer tg.Close()
		n, err := plan.Erase(ctx, tg, big)
		if err != nil {
			t.Fatal(err)
		}
		if err := tg.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if n != 5 {
			t.Errorf("erased %d rows, want 5", n)
		}
		for _, st := range plan.Steps {
			if k := mariaCount(t, srcDB, st.Table.Name, where(st.Table.Name, big)); k != 0 {
				t.Errorf("%s: %d rows left", st.Table.Name, k)
			}
			if k := mariaCount(t, srcDB, st.Table.Name, "NOT ("+where(st.Table.Name, big)+")"); k != others[st.Table.Name] {
				t.Errorf("%s: %d rows of other dossiers, want %d", st.Table.Name, k, others[st.Table.Name])
			}
		}
	})
}

// TestMariaDBLiterals pins the literal forms: each is what the server reads
// back as the value, with or without NO_BACKSLASH_ESCAPES.
func TestMariaDBLiterals(t *testing.T) {
	for _, c := range []struct {
		name string
		v    source.Value
		typ  string
		want string
	}{
		{"null", source.NullValue(), "int(11)", "NULL"},
		{"int", source.IntValue(-42), "int(11)", "-42"},
		{"unsigned above int64", textValue("18446744073709551615"), "bigint(20) unsigned", "18446744073709551615"},
		{"bit above int64", textValue("18446744073709551615"), "bit(64)", "18446744073709551615"},
		{"digits in a text column", textValue("0123"), "varchar(10)", "'0123'"},
		{"digits of unknown type", textValue("12"), "", "'12'"},
		{"double", source.FloatValue(0.1), "double", "0.1e0"},
		{"double with exponent", source.FloatValue(1e300), "double", "1e+300"},
		{"integral double", source.FloatValue(3), "double", "3e0"},
		{"NaN cannot be stored", source.FloatValue(math.NaN()), "double", "'NaN'"},
		{"blob", source.BlobValue([]byte{0, '\\', '\''}), "blob", "X'005c27'"},
		{"empty blob", source.BlobValue(nil), "blob", "X''"},
		{"text", textValue("it's"), "text", "'it''s'"},
		{"double quote", textValue(`a"b`), "text", `'a"b'`},
		{"emoji", textValue("😀"), "text", "'😀'"},
		{"zero date", textValue("0000-00-00"), "date", "'0000-00-00'"},
		{"backslash", textValue(`a\b`), "text", "_utf8mb4 X'615c62'"},
		{"CR", textValue("a\r\n"), "text", "_utf8mb4 X'610d0a'"},
		{"NUL", textValue("a\x00"), "text", "_utf8mb4 X'6100'"},
		{"not UTF-8", textValue("\xff"), "text", "X'ff'"},
		{"empty", textValue(""), "text", "''"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := string(appendMariaDBLiteral(nil, c.v, source.Column{Type: c.typ})); got != c.want {
				t.Errorf("got %s, want %s", got, c.want)
			}
		})
	}
	d, err := newDialect("mysql")
	if err != nil || d.engine != "mariadb" {
		t.Fatalf("mysql alias: %v %v", d, err)
	}
	if q, _ := d.ident("a`b\"c"); q != "`a``b\"c`" {
		t.Errorf("ident: %s", q)
	}
	in, err := d.newInserter(source.TableMeta{Table: source.Table{Name: "t", Table: "t", Columns: []source.Column{{Name: "id", Type: "int(11)"}, {Name: "e", Type: "enum('a','b')"}}}}, ConflictSkip)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(in.append(nil, []source.Value{source.IntValue(1), textValue("")})); got != "SET STATEMENT sql_mode = '"+mariadbLaxMode+"' FOR INSERT INTO `t` (`id`, `e`) VALUES (1, '') ON DUPLICATE KEY UPDATE `id` = `id`" {
		t.Errorf("empty ENUM row: %s", got)
	}
	if got := string(in.append(nil, []source.Value{source.IntValue(1), textValue("a")})); got != "INSERT INTO `t` (`id`, `e`) VALUES (1, 'a') ON DUPLICATE KEY UPDATE `id` = `id`" {
		t.Errorf("row: %s", got)
	}
}

// TestMeasureMariaDBDossier times dossier show, restore to an SQL file
// (and loading it with the mariadb client) and restore --into on a
// synthetic MariaDB practice of KLUIS_BENCH_DOSSIER_MARIADB_MB MB without
// declared foreign keys (docs/dossier.md, "How long it takes").
func TestMeasureMariaDBDossier(t *testing.T) {
	mb, err := strconv.Atoi(os.Getenv("KLUIS_BENCH_DOSSIER_MARIADB_MB"))
	if err != nil || mb <= 0 {
		t.Skip("set KLUIS_BENCH_DOSSIER_MARIADB_MB to the size of the practice database")
	}
	srv := mariadbtest.Start(t)
	ctx := testCtx(t)
	scale := synth.ScaleForBytes(int64(mb) << 20)
	t0 := time.Now()
	src := mariaPractice(t, srv, "dossier_bench", scale, 3, true)
	t.Logf("generated %d clients in %v", scale.Clients, time.Since(t0).Round(time.Second))
	r := newRepo(t, "bench")
	t0 = time.Now()
	snap, tables := snapshotOf(t, r, mariadb.New(src, r.FingerprintKey(), mariadb.Options{}))
	var streamed int64
	for _, st := range snap.Manifest.Streams {
		streamed += st.Size
	}
	t.Logf("backup: %.1f MB of streams in %v", float64(streamed)/1e6, time.Since(t0).Round(time.Millisecond))
	plan, err := NewPlan("mariadb", tables, mariaProfile())
	if err != nil {
		t.Fatal(err)
	}
	id := strconv.Itoa(scale.Clients / 2)
	// --into goes into a copy of the practice (same seed) from which the
	// dossier was erased; the script into the schema without rows.
	dst := mariaPractice(t, srv, "dossier_bench_copy", scale, 3, true)
	for round := 1; round <= 3; round++ {
		empty := mariaSchema(t, srv, "dossier_bench_empty", true)
		t0 = time.Now()
		res, err := Extract(ctx, r, snap.Manifest, plan, id, nil)
		if err != nil {
			t.Fatal(err)
		}
		show := time.Since(t0)
		t0 = time.Now()
		script := mariaScript(t, r, snap, plan, id, ConflictFail)
		out := time.Since(t0)
		t0 = time.Now()
		if o, err := loadScript(t, srv, empty, script); err != nil {
			t.Fatalf("mariadb: %v\n%s", err, o)
		}
		client := time.Since(t0)
		tg, err := OpenTarget(ctx, "mariadb", dst, tables, ConflictFail)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := plan.Erase(ctx, tg, id); err != nil {
			t.Fatal(err)
		}
		if err := tg.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		t0 = time.Now()
		if _, err := RestoreInto(ctx, r, snap.Manifest, plan, id, dst, ConflictFail); err != nil {
			t.Fatal(err)
		}
		into := time.Since(t0)
		t.Logf("round %d, dossier %s (%d rows of %d scanned, %d KB of SQL): show %v, --out %v (+ mariadb client %v), --into %v",
			round, id, res.Rows, res.ScannedRows, len(script)>>10, show.Round(time.Millisecond), out.Round(time.Millisecond), client.Round(time.Millisecond), into.Round(time.Millisecond))
	}
}
