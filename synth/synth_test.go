package synth

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const testSeed = 20260105

func TestGenerateDeterministic(t *testing.T) {
	ctx := ctxT(t)
	dumps := make([]map[string][]string, 3)
	for i, seed := range []uint64{testSeed, testSeed, testSeed + 1} {
		db := openSQLite(t)
		if err := Generate(ctx, db, SQLite, Tiny, seed); err != nil {
			t.Fatal(err)
		}
		dumps[i] = dump(t, db, SQLite)
	}
	sameDump(t, "same seed", dumps[0], dumps[1])
	for _, name := range TableNames() {
		if len(dumps[0][name]) == 0 {
			t.Errorf("table %s is empty", name)
		}
	}
	if slices.Equal(dumps[0]["reports"], dumps[2]["reports"]) {
		t.Error("another seed gave the same reports")
	}
	t.Logf("rows at %d clients: %v", Tiny.Clients, countRows(dumps[0]))
}

func TestWorkingDayDeterministic(t *testing.T) {
	ctx := ctxT(t)
	var dumps []map[string][]string
	var changes [][]Changes
	for range 2 {
		db := openSQLite(t)
		if err := Generate(ctx, db, SQLite, Tiny, testSeed); err != nil {
			t.Fatal(err)
		}
		var cs []Changes
		for day := range 3 {
			c, err := WorkingDay(ctx, db, SQLite, Tiny, testSeed, day)
			if err != nil {
				t.Fatalf("day %d: %v", day, err)
			}
			cs = append(cs, c)
		}
		dumps = append(dumps, dump(t, db, SQLite))
		changes = append(changes, cs)
	}
	sameDump(t, "after 3 working days", dumps[0], dumps[1])
	if !slices.Equal(changes[0], changes[1]) {
		t.Errorf("changes differ: %v vs %v", changes[0], changes[1])
	}
	for day, c := range changes[0] {
		if c.Inserted == 0 || c.Updated == 0 || c.Deleted == 0 {
			t.Errorf("day %d changed too little: %+v", day, c)
		}
	}
	t.Logf("changes per day at %d clients: %+v", Tiny.Clients, changes[0])
}

func TestWorkingDayChangesTheRightRows(t *testing.T) {
	ctx := ctxT(t)
	s := Scale{Clients: 200}
	db := openSQLite(t)
	if err := Generate(ctx, db, SQLite, s, testSeed); err != nil {
		t.Fatal(err)
	}
	before := dump(t, db, SQLite)
	c, err := WorkingDay(ctx, db, SQLite, s, testSeed, 0)
	if err != nil {
		t.Fatal(err)
	}
	after := dump(t, db, SQLite)
	if got, want := len(after["clients"])-len(before["clients"]), s.Clients/200; got != want {
		t.Errorf("%d new clients, want %d", got, want)
	}
	// About 1% of reports changed, all of them kept.
	changed := 0
	for i, r := range before["reports"] {
		if after["reports"][i] != r {
			changed++
		}
	}
	if lo, hi := len(before["reports"])/200, len(before["reports"])/50; changed < lo || changed > hi {
		t.Errorf("%d of %d reports changed, want about 1%%", changed, len(before["reports"]))
	}
	if len(after["appointments"]) >= len(before["appointments"])+c.Inserted {
		t.Errorf("no appointments deleted: %d → %d", len(before["appointments"]), len(after["appointments"]))
	}
	// No foreign key violated.
	if v := queryRows(t, db, "PRAGMA foreign_key_check"); len(v) > 0 {
		t.Errorf("foreign key violations: %v", v)
	}
	t.Logf("day 0 at %d clients: %+v", s.Clients, c)
}

func TestRowCountsScale(t *testing.T) {
	counts := func(clients int) [numTables]int64 {
		var cs countSink
		if err := fill(context.Background(), newGen(testSeed, Scale{Clients: clients}), &cs); err != nil {
			t.Fatal(err)
		}
		return cs.rows
	}
	small, large := counts(200), counts(800)
	per := map[int][2]float64{ // rows per client, with tolerance
		tClients: {1, 0}, tTreatments: {3, 0.3}, tAppointments: {10, 1}, tReports: {5, 0.5},
		tMeasurements: {20, 2}, tInvoices: {4, 0.4}, tInvoiceLines: {12, 1.5}, tAttachments: {0.3, 0.08},
		tNotes: {0.25, 0.08},
	}
	for tb, want := range per {
		got := float64(large[tb]) / 800
		if got < want[0]-want[1] || got > want[0]+want[1] {
			t.Errorf("%s: %.2f rows per client, want %.2f ± %.2f", schemaTables[tb].name, got, want[0], want[1])
		}
		if r := float64(large[tb]) / float64(small[tb]); r < 3.3 || r > 4.7 {
			t.Errorf("%s: 4× the clients gave %.2f× the rows", schemaTables[tb].name, r)
		}
	}
}

// TestBytesPerClient calibrates BytesPerClient: the text a plain dump of one
// client's rows takes, on average.
func TestBytesPerClient(t *testing.T) {
	const clients = 2000
	var cs countSink
	if err := fill(context.Background(), newGen(testSeed, Scale{Clients: clients}), &cs); err != nil {
		t.Fatal(err)
	}
	var total int64
	var parts []string
	for tb, n := range cs.bytes {
		total += n
		parts = append(parts, schemaTables[tb].name+"="+itoa64(n/clients))
	}
	per := total / clients
	t.Logf("%d bytes per client (%s)", per, strings.Join(parts, " "))
	if per < BytesPerClient*9/10 || per > BytesPerClient*11/10 {
		t.Errorf("measured %d bytes per client; BytesPerClient = %d needs recalibrating", per, BytesPerClient)
	}
	if s := ScaleForBytes(500 << 20); s.Clients < 25000 || s.Clients > 40000 {
		t.Errorf("ScaleForBytes(500 MiB) = %+v", s)
	}
}

func TestHostileTable(t *testing.T) {
	ctx := ctxT(t)
	db := openSQLite(t)
	if err := Generate(ctx, db, SQLite, Tiny, testSeed); err != nil {
		t.Fatal(err)
	}
	n := queryInt(t, db, `SELECT COUNT(*) FROM "Notities van de ""praktijk""; 2024" n JOIN clients c ON c.id = n."Cliënt ID" WHERE n."select" <> ''`)
	if n == 0 {
		t.Error("no notes joined to clients")
	}
	cols := queryRows(t, db, `SELECT name FROM pragma_table_info(?)`, HostileTable)
	want := []string{`"id"`, `"Cliënt ID"`, `"select"`, `"Tab\tKolom"`}
	if !slices.Equal(cols, want) {
		t.Errorf("columns %v, want %v", cols, want)
	}
	fks := queryRows(t, db, `SELECT "table", "from", "to" FROM pragma_foreign_key_list(?)`, HostileTable)
	if !slices.Equal(fks, []string{`"clients"|"Cliënt ID"|"id"`}) {
		t.Errorf("foreign keys %v", fks)
	}
}

func TestTriggerAndView(t *testing.T) {
	ctx := ctxT(t)
	db := openSQLite(t)
	if err := Generate(ctx, db, SQLite, Tiny, testSeed); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		reports := queryInt(t, db, "SELECT COUNT(*) FROM reports")
		audited := queryInt(t, db, "SELECT COUNT(*) FROM audit_log WHERE actor = 'trigger'")
		if reports == 0 || audited != reports {
			t.Errorf("%s: %d reports but %d audit_log rows from the trigger", when, reports, audited)
		}
		open := queryInt(t, db, "SELECT COUNT(*) FROM open_invoices")
		unpaid := queryInt(t, db, "SELECT COUNT(*) FROM invoices WHERE paid_at IS NULL")
		if open == 0 || open != unpaid {
			t.Errorf("%s: view has %d rows, %d invoices unpaid", when, open, unpaid)
		}
	}
	check("generated")
	if _, err := WorkingDay(ctx, db, SQLite, Tiny, testSeed, 0); err != nil {
		t.Fatal(err)
	}
	check("after a working day")
	if n := queryInt(t, db, "SELECT COUNT(*) FROM sqlite_sequence WHERE name = 'invoices'"); n != 1 {
		t.Errorf("invoices is not AUTOINCREMENT")
	}
}

func TestGeneratedValues(t *testing.T) {
	ctx := ctxT(t)
	db := openSQLite(t)
	if err := Generate(ctx, db, SQLite, Scale{Clients: 120}, testSeed); err != nil {
		t.Fatal(err)
	}
	for _, r := range queryRows(t, db, "SELECT bsn FROM clients") {
		if !ValidBSN(strings.Trim(r, `"`)) {
			t.Errorf("invalid BSN %s", r)
		}
	}
	if n := queryInt(t, db, "SELECT COUNT(*) FROM clients WHERE email IS NULL"); n == 0 {
		t.Error("no client without e-mail")
	}
	if n := queryInt(t, db, "SELECT COUNT(*) FROM clients WHERE last_name GLOB '*[^ -~]*'"); n == 0 {
		t.Error("no non-ASCII surname")
	}
	for _, s := range []string{"\t", "\n", "\r\n", `\`, `"`, "'", "😀", `\N`, "\n\\.\n"} {
		if n := queryInt(t, db, "SELECT COUNT(*) FROM reports WHERE instr(body, ?) > 0", s); n == 0 {
			t.Errorf("no report contains %q", s)
		}
	}
	if n := queryInt(t, db, "SELECT COUNT(*) FROM attachments WHERE instr(content, zeroblob(8)) > 0"); n == 0 {
		t.Error("no attachment with zero bytes")
	}
}

func TestBSN(t *testing.T) {
	for _, s := range []string{"123456782", "111222333"} {
		if !ValidBSN(s) {
			t.Errorf("ValidBSN(%s) = false", s)
		}
	}
	for _, s := range []string{"123456789", "000000000", "12345678", "12345678a", "1234567820"} {
		if ValidBSN(s) {
			t.Errorf("ValidBSN(%s) = true", s)
		}
	}
	seen := make(map[string]bool)
	for id := int64(1); id <= 200_000; id++ {
		b := bsnFor(id)
		if !ValidBSN(b) || seen[b] {
			t.Fatalf("bsnFor(%d) = %s invalid or repeated", id, b)
		}
		seen[b] = true
	}
}

func TestDDL(t *testing.T) {
	for _, tc := range []struct {
		d    Dialect
		want []string
	}{
		{SQLite, []string{`CREATE TABLE "Notities van de ""praktijk""; 2024"`, `"Tab	Kolom"`, "WITHOUT ROWID", "AUTOINCREMENT", `CREATE TRIGGER "reports_audit"`, `CREATE VIEW "open_invoices"`}},
		{Postgres, []string{`CREATE TABLE "Notities van de ""praktijk""; 2024"`, `PARTITION BY RANGE ("taken_at")`, `PARTITION OF "measurements" DEFAULT`, "GENERATED BY DEFAULT AS IDENTITY", "bigserial", `nextval('"invoice_number_seq"')`, "LANGUAGE plpgsql", `PRIMARY KEY ("id", "taken_at")`}},
		{MariaDB, []string{"CREATE TABLE `Notities van de \"praktijk\"; 2024`", "`Cliënt ID` BIGINT NOT NULL", "AUTO_INCREMENT", "CREATE SEQUENCE `invoice_number_seq`", "CREATE TRIGGER `reports_audit`", "CREATE VIEW `open_invoices`", "utf8mb4"}},
	} {
		t.Run(tc.d.String(), func(t *testing.T) {
			stmts, err := DDL(tc.d)
			if err != nil {
				t.Fatal(err)
			}
			text := strings.Join(stmts, ";\n")
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("DDL lacks %q", w)
				}
			}
			di, _ := tc.d.impl()
			for _, name := range TableNames() {
				if !strings.Contains(text, "CREATE TABLE "+di.quote(name)+" (") {
					t.Errorf("DDL lacks table %s", name)
				}
			}
		})
	}
	if _, err := DDL(Dialect(7)); err == nil {
		t.Error("DDL of an unknown dialect succeeded")
	}
}

func TestTablesMetadata(t *testing.T) {
	names := map[string]bool{}
	for _, tb := range Tables(Postgres) {
		names[tb.Name] = true
		for _, fk := range tb.ForeignKeys {
			if !names[fk.RefTable] {
				t.Errorf("%s references %s, which comes later or not at all", tb.Name, fk.RefTable)
			}
			for _, c := range fk.Columns {
				if !slices.Contains(tb.Columns, c) {
					t.Errorf("%s: foreign key column %q missing", tb.Name, c)
				}
			}
		}
		switch tb.Name {
		case "audit_log":
			if len(tb.PrimaryKey) != 0 {
				t.Error("audit_log has a primary key")
			}
		case "measurements":
			if len(tb.Partitions) != 5 || !slices.Equal(tb.PrimaryKey, []string{"id", "taken_at"}) {
				t.Errorf("measurements: %+v", tb)
			}
		}
	}
	for _, tb := range Tables(SQLite) {
		if len(tb.Partitions) > 0 || tb.Name == "measurements" && len(tb.PrimaryKey) != 1 {
			t.Errorf("SQLite %s: %+v", tb.Name, tb)
		}
	}
}

// TestWriteSQLMatchesGenerate loads the SQLite script and compares it with
// what Generate wrote: the literals mean what the bound values mean.
func TestWriteSQLMatchesGenerate(t *testing.T) {
	ctx := ctxT(t)
	var script bytes.Buffer
	if err := WriteSQL(ctx, &script, SQLite, Tiny, testSeed); err != nil {
		t.Fatal(err)
	}
	a := openSQLite(t)
	if _, err := a.ExecContext(ctx, script.String()); err != nil {
		t.Fatal(err)
	}
	b := openSQLite(t)
	if err := Generate(ctx, b, SQLite, Tiny, testSeed); err != nil {
		t.Fatal(err)
	}
	generated := dump(t, b, SQLite)
	sameDump(t, "script vs Generate", dump(t, a, SQLite), generated)

	// The sqlite3 shell reads scripts line by line; it must not alter
	// literals either.
	shell, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Log("no sqlite3 shell; skipped loading the script with it")
		return
	}
	path := filepath.Join(t.TempDir(), "shell.db")
	cmd := exec.CommandContext(ctx, shell, "-bail", path)
	cmd.Stdin = &script
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	c, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sameDump(t, "sqlite3 shell vs Generate", dump(t, c, SQLite), generated)
}

func TestGenerateSQLiteFile(t *testing.T) {
	ctx := ctxT(t)
	path := t.TempDir() + "/praktijk met spatie.db"
	if err := GenerateSQLiteFile(ctx, path, Tiny, testSeed); err != nil {
		t.Fatal(err)
	}
	if err := GenerateSQLiteFile(ctx, path, Tiny, testSeed); err == nil {
		t.Error("generating into a populated file succeeded")
	}
}

func TestGenerateCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Generate(ctx, openSQLite(t), SQLite, Small, testSeed)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Generate after cancel: %v", err)
	}
	if err := Generate(context.Background(), openSQLite(t), SQLite, Scale{}, testSeed); err == nil {
		t.Error("Generate of zero clients succeeded")
	}
}

func TestLedgerSQLite(t *testing.T) {
	ctx := ctxT(t)
	db := openSQLite(t)
	l, err := CreateLedger(ctx, db, SQLite, 1200)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		if err := l.Transfer(ctx, db, rng); err != nil {
			t.Fatal(err)
		}
	}
	total, err := LedgerTotal(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if total != l.ExpectedTotal() || total != 1200*LedgerOpeningBalance {
		t.Errorf("total %d, want %d", total, l.ExpectedTotal())
	}
	if n := queryInt(t, db, "SELECT COUNT(*) FROM ledger WHERE balance <> ?", LedgerOpeningBalance); n == 0 {
		t.Error("no balance moved")
	}
}
