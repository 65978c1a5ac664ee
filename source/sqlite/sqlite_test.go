package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/kluis-nl/kluis/source"
)

var testKey = []byte("fingerprint key for tests")

// Hostile names: quotes, spaces, capitals, unicode, semicolons, comment
// starters, a newline followed by a line that looks like a framing line.
const (
	tClient   = `Cliënt "x"; DROP TABLE log; --`
	tAppt     = `Afspraak`
	tLog      = `log`
	tKV       = `kv store`
	tNewline  = "line\n-- statement 3\n;\nbreak"
	tGen      = `gen`
	tStrict   = `strict_t`
	tNumbers  = `getallen`
	vClient   = `v "1"; x`
	cNameCol  = `naam met spatie`
	cBSNCol   = `BSN;`
	cQuoteCol = `a"b`
)

// hostileSchema creates every kind of object the engine handles.
func hostileSchema() []string {
	q := quoteIdent
	return []string{
		"PRAGMA page_size = 8192",
		"PRAGMA auto_vacuum = INCREMENTAL",
		"PRAGMA journal_mode = WAL",
		"PRAGMA user_version = 42",
		"PRAGMA application_id = 1263289683",
		"CREATE TABLE " + q(tClient) + " (" + q("Id") + " INTEGER PRIMARY KEY AUTOINCREMENT, " +
			q(cNameCol) + " TEXT NOT NULL, " + q(cBSNCol) + " TEXT, notitie, foto BLOB, gewicht REAL, geboren DATETIME, " +
			q(cQuoteCol) + " ANY)",
		"CREATE TABLE " + q(tAppt) + " (id INTEGER PRIMARY KEY, client_id INTEGER REFERENCES " + q(tClient) +
			", at TEXT, kind TEXT, FOREIGN KEY (kind, at) REFERENCES soorten(code, dag))",
		"CREATE TABLE " + q(tLog) + " (msg TEXT, n INTEGER DEFAULT 0)",
		"CREATE TABLE " + q(tKV) + " (k TEXT, v BLOB, note TEXT, PRIMARY KEY (v, k)) WITHOUT ROWID",
		"CREATE TABLE " + q(tNewline) + " (" + q("x\ny") + ")",
		"CREATE TABLE " + q(tGen) + " (a INTEGER PRIMARY KEY, b INTEGER GENERATED ALWAYS AS (a * 2) VIRTUAL, " +
			"c TEXT, d INTEGER GENERATED ALWAYS AS (a + 1) STORED)",
		"CREATE TABLE " + q(tStrict) + " (id INTEGER PRIMARY KEY, v ANY, r REAL) STRICT",
		"CREATE TABLE " + q(tNumbers) + " (id INTEGER PRIMARY KEY, untyped, r REAL, num NUMERIC, i INTEGER, t TEXT)",
		"CREATE INDEX " + q("idx; weird \"name\"") + " ON " + q(tLog) + " (msg) WHERE n > 0",
		"CREATE UNIQUE INDEX appt_at ON " + q(tAppt) + " (client_id, at)",
		"CREATE VIEW " + q(vClient) + " AS SELECT " + q("Id") + ", " + q(cNameCol) + " FROM " + q(tClient) + " WHERE notitie <> 'a;b'",
		"CREATE TRIGGER log_trg AFTER INSERT ON " + q(tLog) + " BEGIN\n" +
			"  INSERT OR IGNORE INTO " + q(tKV) + " (k, v, note) VALUES (new.msg, x'00', 'end; BEGIN');\n" +
			"  UPDATE " + q(tLog) + " SET n = n + 1 WHERE rowid = new.rowid;\n" +
			"END",
		"CREATE TRIGGER " + q("view trg;") + " INSTEAD OF INSERT ON " + q(vClient) + " BEGIN SELECT 1; SELECT ';'; END",
		"CREATE VIRTUAL TABLE notes_fts USING fts5(body)",
	}
}

// fillHostile inserts hostile contents through bound parameters.
func fillHostile(t testing.TB, db *sql.DB) {
	t.Helper()
	q := quoteIdent
	exec := func(query string, args ...any) {
		t.Helper()
		if _, err := db.Exec(query, args...); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
	ins := "INSERT INTO " + q(tClient) + " (" + q(cNameCol) + ", " + q(cBSNCol) + ", notitie, foto, gewicht, geboren, " + q(cQuoteCol) + ") VALUES (?, ?, ?, ?, ?, ?, ?)"
	exec(ins, "Jansen\tde Vries\n\\N \r", "123456782", "text\x00with NUL", []byte{0, 0, 1, 0}, 72.5, "2024-05-17 10:15:00", int64(math.MaxInt64))
	exec(ins, "", nil, []byte{}, []byte{}, math.Inf(1), int64(1700000000), int64(math.MinInt64))
	exec(ins, "invalid utf-8 \xff\xfe\xc3", "\\", "\\N", nil, math.Inf(-1), "not a date", 5e-324)
	exec(ins, "deleted", nil, nil, nil, nil, nil, nil)
	exec("DELETE FROM " + q(tClient) + " WHERE " + q(cNameCol) + " = 'deleted'") // sqlite_sequence stays above max(Id)
	for i := 0; i < 5; i++ {
		exec("INSERT INTO "+q(tAppt)+" (client_id, at, kind) VALUES (?, ?, ?)", i%3+1, fmt.Sprintf("2024-01-%02d", i+1), "consult")
	}
	exec("INSERT INTO " + q(tAppt) + " (client_id, at, kind) VALUES (99, 'dangling', NULL)") // FK violation, allowed with FKs off
	for i, msg := range []string{"b", "a", "b", "tab\there", ""} {
		exec("INSERT INTO "+q(tLog)+" (msg, n) VALUES (?, ?)", msg, i) // fires log_trg
	}
	exec("INSERT INTO " + q(tLog) + " (msg) VALUES (NULL)")
	exec("DELETE FROM " + q(tLog) + " WHERE rowid = 2") // a gap in the rowids
	exec("INSERT INTO "+q(tKV)+" (k, v, note) VALUES (?, ?, ?)", "k1", []byte("\x00\x00"), strings.Repeat("long ", 5000))
	exec("INSERT INTO "+q(tNewline)+" VALUES (?)", "x")
	exec("INSERT INTO " + q(tGen) + " (a, c) VALUES (1, 'een'), (2, NULL)")
	exec("INSERT INTO "+q(tStrict)+" (id, v, r) VALUES (1, ?, ?), (2, ?, ?), (3, ?, NULL)",
		"text", math.Copysign(0, -1), []byte{1}, 1.5, int64(7))
	exec("INSERT INTO "+q(tNumbers)+" (id, untyped, r, num, i, t) VALUES (?, ?, ?, ?, ?, ?)",
		1, math.Copysign(0, -1), math.Copysign(0, -1), math.Copysign(0, -1), math.Copysign(0, -1), math.Copysign(0, -1))
	exec("INSERT INTO "+q(tNumbers)+" (id, untyped, r, num, i, t) VALUES (?, ?, ?, ?, ?, ?)",
		2, "12", "12", "12", "12", int64(12))
	exec("INSERT INTO "+q(tNumbers)+" (id, untyped, r, num, i, t) VALUES (?, ?, ?, ?, ?, ?)",
		3, 0.1, 3, 3.0, "abc", 1e300)
	exec("INSERT INTO notes_fts (body) VALUES ('pijn in de rug'), ('verwijzing fysiotherapie; controle')")
}

func createDB(t testing.TB, path string, stmts []string) *sql.DB {
	t.Helper()
	dsn, err := fileDSN(path, "_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return db
}

func hostileDB(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "praktijk ?#%.db")
	db := createDB(t, path, hostileSchema())
	fillHostile(t, db)
	return path
}

// backup is everything a snapshot produced.
type backup struct {
	version   string
	tables    []source.Table
	pre, post []byte
	streams   map[string][]byte
	results   map[string]source.TableResult
}

func takeBackup(t testing.TB, path string) *backup {
	t.Helper()
	ctx := context.Background()
	snap, err := New(path, testKey).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	b := &backup{version: snap.ServerVersion(), tables: snap.Tables(),
		streams: map[string][]byte{}, results: map[string]source.TableResult{}}
	var pre, post bytes.Buffer
	if err := snap.Schema(ctx, &pre, &post); err != nil {
		t.Fatal(err)
	}
	b.pre, b.post = pre.Bytes(), post.Bytes()
	for _, tbl := range b.tables {
		var buf bytes.Buffer
		res, err := snap.WriteTable(ctx, tbl, &buf)
		if err != nil {
			t.Fatal(err)
		}
		fp, err := source.FingerprintStream(testKey, bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if fp != res {
			t.Fatalf("table %q: WriteTable reported %v, its stream fingerprints as %v", tbl.Name, res, fp)
		}
		b.streams[tbl.Name], b.results[tbl.Name] = buf.Bytes(), res
	}
	if err := snap.Close(); err != nil {
		t.Fatal(err)
	}
	return b
}

// restore loads a backup into a new database at path, loading the tables
// concurrently, and checks every table's fingerprint.
func restore(t testing.TB, b *backup, path string) {
	t.Helper()
	ctx := context.Background()
	tgt, err := NewTarget(path, testKey, false)
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	if err := tgt.ApplySchema(ctx, bytes.NewReader(b.pre)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(b.tables))
	for _, tbl := range b.tables {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- tgt.LoadTable(ctx, tbl, bytes.NewReader(b.streams[tbl.Name]))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := tgt.ApplySchema(ctx, bytes.NewReader(b.post)); err != nil {
		t.Fatal(err)
	}
	for _, tbl := range b.tables {
		got, err := tgt.Fingerprint(ctx, tbl)
		if err != nil {
			t.Fatal(err)
		}
		if got != b.results[tbl.Name] {
			t.Errorf("table %q: restored %v, backed up %v", tbl.Name, got, b.results[tbl.Name])
		}
	}
	if err := tgt.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRoundTripHostile(t *testing.T) {
	src := hostileDB(t)
	b := takeBackup(t, src)
	dst := filepath.Join(t.TempDir(), "hersteld; \"db\".sqlite")
	restore(t, b, dst)

	want, got := dumpDB(t, src), dumpDB(t, dst)
	if len(want) != len(got) {
		t.Errorf("dump has %d lines, original %d", len(got), len(want))
	}
	for i := 0; i < len(want) && i < len(got); i++ {
		if want[i] != got[i] {
			t.Errorf("dump line %d:\n got %q\nwant %q", i, got[i], want[i])
		}
	}

	// A backup of the restored database is the same backup.
	b2 := takeBackup(t, dst)
	if !reflect.DeepEqual(b.tables, b2.tables) || !bytes.Equal(b.pre, b2.pre) || !bytes.Equal(b.post, b2.post) ||
		!reflect.DeepEqual(b.streams, b2.streams) {
		t.Error("a backup of the restored database differs from the original backup")
	}

	// The restored database works: virtual table, triggers, integrity.
	db := createDB(t, dst, nil)
	var n int
	if err := db.QueryRow("SELECT count(*) FROM notes_fts WHERE notes_fts MATCH 'fysiotherapie'").Scan(&n); err != nil || n != 1 {
		t.Errorf("full-text search on the restored database: %d rows, %v", n, err)
	}
	if _, err := db.Exec("INSERT INTO " + quoteIdent(tLog) + " (msg) VALUES ('after restore')"); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT count(*) FROM " + quoteIdent(tKV) + " WHERE k = 'after restore'").Scan(&n); err != nil || n != 1 {
		t.Errorf("trigger on the restored database: %d rows, %v", n, err)
	}
	var check string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check: %q, %v", check, err)
	}
	var id int64
	if err := db.QueryRow("INSERT INTO " + quoteIdent(tClient) + " (" + quoteIdent(cNameCol) + ") VALUES ('new') RETURNING " + quoteIdent("Id")).Scan(&id); err != nil || id != 5 {
		t.Errorf("AUTOINCREMENT after restore gave Id %d (%v), want 5: sqlite_sequence not restored", id, err)
	}
}

// dumpDB is what `sqlite3 .dump` compares: the schema's SQL texts, the
// header settings, and every table's rows (sqlite_sequence and shadow tables
// included) with their storage classes, in rowid or primary-key order.
func dumpDB(t testing.TB, path string) []string {
	t.Helper()
	db := createDB(t, path, nil)
	var out []string
	rows, err := db.Query("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name")
	if err != nil {
		t.Fatal(err)
	}
	type obj struct{ typ, name string }
	var tables []obj
	for rows.Next() {
		var typ, name, tbl string
		var sqlText sql.NullString
		if err := rows.Scan(&typ, &name, &tbl, &sqlText); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("schema %s %q %q %q", typ, name, tbl, sqlText.String))
		if typ == "table" {
			tables = append(tables, obj{typ, name})
		}
	}
	rows.Close()
	for _, p := range []string{"page_size", "auto_vacuum", "encoding", "user_version", "application_id", "journal_mode"} {
		var v string
		if err := db.QueryRow("PRAGMA " + p).Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, "pragma "+p+" = "+v)
	}
	for _, tbl := range tables {
		var kind string
		var wr bool
		if err := db.QueryRow("SELECT type, wr FROM pragma_table_list WHERE schema = 'main' AND name = ?", tbl.name).Scan(&kind, &wr); err != nil {
			t.Fatal(err)
		}
		if kind == "virtual" {
			continue
		}
		crows, err := db.Query("SELECT name FROM pragma_table_xinfo(?) ORDER BY cid", tbl.name)
		if err != nil {
			t.Fatal(err)
		}
		var cols []source.Column
		for crows.Next() {
			var c source.Column
			if err := crows.Scan(&c.Name); err != nil {
				t.Fatal(err)
			}
			cols = append(cols, c)
		}
		crows.Close()
		order := []string{"rowid"}
		if wr { // no rowid: every column, by position
			order = nil
			for i := range cols {
				order = append(order, fmt.Sprint(i+1))
			}
		}
		var lines bytes.Buffer
		enc := source.NewRowEncoder(&lines, nil)
		if err := streamRows(context.Background(), db, selectRows(tbl.name, cols, order), len(cols), enc); err != nil {
			t.Fatalf("dump %q: %v", tbl.name, err)
		}
		if _, err := enc.Finish(); err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.SplitAfter(lines.String(), "\n") {
			if l != "" {
				out = append(out, fmt.Sprintf("row %q %q", tbl.name, l))
			}
		}
	}
	return out
}

func TestTablesMetadata(t *testing.T) {
	src := hostileDB(t)
	snap, err := New(src, testKey).Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if v := snap.ServerVersion(); !strings.HasPrefix(v, "SQLite 3.") {
		t.Errorf("ServerVersion = %q", v)
	}
	byName := map[string]source.Table{}
	var names []string
	for _, tbl := range snap.Tables() {
		byName[tbl.Name] = tbl
		names = append(names, tbl.Name)
		if tbl.Encoding != source.RowEncoding || tbl.Table != tbl.Name || tbl.Schema != "" {
			t.Errorf("table %q: %+v", tbl.Name, tbl)
		}
	}
	for _, want := range []string{tClient, tAppt, tLog, tKV, tNewline, tGen, tStrict, tNumbers, "notes_fts_data", "notes_fts_config"} {
		if _, ok := byName[want]; !ok {
			t.Errorf("table %q missing from %q", want, names)
		}
	}
	for _, notWant := range []string{"sqlite_sequence", "notes_fts", vClient} {
		if _, ok := byName[notWant]; ok {
			t.Errorf("%q is listed as a table", notWant)
		}
	}

	client := byName[tClient]
	if want := []string{"Id"}; !reflect.DeepEqual(client.PrimaryKey, want) || client.PhysicalOrder {
		t.Errorf("%q: primary key %q physical %v", tClient, client.PrimaryKey, client.PhysicalOrder)
	}
	wantCols := []source.Column{
		{Name: "Id", Type: "INTEGER", Nullable: true}, {Name: cNameCol, Type: "TEXT"}, {Name: cBSNCol, Type: "TEXT", Nullable: true},
		{Name: "notitie", Type: "", Nullable: true}, {Name: "foto", Type: "BLOB", Nullable: true},
		{Name: "gewicht", Type: "REAL", Nullable: true}, {Name: "geboren", Type: "DATETIME", Nullable: true},
		{Name: cQuoteCol, Type: "ANY", Nullable: true},
	}
	if !reflect.DeepEqual(client.Columns, wantCols) {
		t.Errorf("%q columns:\n got %+v\nwant %+v", tClient, client.Columns, wantCols)
	}
	if kv := byName[tKV]; !reflect.DeepEqual(kv.PrimaryKey, []string{"v", "k"}) || kv.PhysicalOrder {
		t.Errorf("WITHOUT ROWID table: primary key %q physical %v", kv.PrimaryKey, kv.PhysicalOrder)
	}
	if lg := byName[tLog]; lg.PrimaryKey != nil || !lg.PhysicalOrder {
		t.Errorf("table without primary key: %q physical %v", lg.PrimaryKey, lg.PhysicalOrder)
	}
	if g := byName[tGen]; len(g.Columns) != 2 || g.Columns[0].Name != "a" || g.Columns[1].Name != "c" {
		t.Errorf("generated columns streamed: %+v", g.Columns)
	}
	// In PRAGMA foreign_key_list order, which is the reverse of declaration.
	wantFKs := []source.ForeignKey{
		{Columns: []string{"kind", "at"}, RefTable: "soorten", RefColumns: []string{"code", "dag"}},
		{Columns: []string{"client_id"}, RefTable: tClient, RefColumns: []string{"Id"}},
	}
	if fks := byName[tAppt].ForeignKeys; !reflect.DeepEqual(fks, wantFKs) {
		t.Errorf("foreign keys:\n got %+v\nwant %+v", fks, wantFKs)
	}
}

// TestValueFidelity pins what SQLite stores and how it streams: the
// storage class of every value survives, -0.0 survives only in a column
// without affinity.
func TestValueFidelity(t *testing.T) {
	src := hostileDB(t)
	b := takeBackup(t, src)
	lines := strings.Split(strings.TrimSuffix(string(b.streams[tNumbers]), "\n"), "\n")
	want := []string{
		// untyped column: -0.0 kept; REAL: stored as integer 0, read as
		// +0.0; NUMERIC and INTEGER: integer 0; TEXT: the text "0.0".
		"i1\tr-0\tr0\ti0\ti0\tt0.0",
		"i2\tt12\tr12\ti12\ti12\tt12",
		"i3\tr0.1\tr3\ti3\ttabc\tt1.0e+300",
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("stream of %q:\n got %q\nwant %q", tNumbers, lines, want)
	}
	client := string(b.streams[tClient])
	for _, frag := range []string{
		`tJansen\tde Vries\n\\N \r`, "ttext\x00with NUL", "b00000100", "r72.5", "t2024-05-17 10:15:00", "i9223372036854775807",
		"t\t\\N\tb\tb\tr+Inf\ti1700000000\ti-9223372036854775808",
		"tinvalid utf-8 \xff\xfe\xc3\tt\\\\\tt\\\\N\t\\N\tr-Inf\ttnot a date\tr5e-324",
	} {
		if !strings.Contains(client, frag) {
			t.Errorf("stream of %q lacks %q:\n%q", tClient, frag, client)
		}
	}
	if s := string(b.streams[tStrict]); s != "i1\tttext\tr0\ni2\tb01\tr1.5\ni3\ti7\t\\N\n" {
		t.Errorf("stream of %q = %q", tStrict, s)
	}
	// A table without a primary key streams in rowid order (rowid 2 was
	// deleted; a restore renumbers); log_trg incremented every n.
	if s := string(b.streams[tLog]); s != "tb\ti1\ntb\ti3\nttab\\there\ti4\nt\ti5\n\\N\ti1\n" {
		t.Errorf("stream of %q = %q", tLog, s)
	}
}

func TestSchemaFraming(t *testing.T) {
	src := hostileDB(t)
	b := takeBackup(t, src)
	for name, stream := range map[string][]byte{"pre": b.pre, "post": b.post} {
		r := NewDDLReader(bytes.NewReader(stream))
		var stmts []string
		for {
			s, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !strings.HasSuffix(s, ";") {
				t.Errorf("%s: statement %q does not end in ';'", name, s)
			}
			stmts = append(stmts, s)
		}
		var buf bytes.Buffer
		w := &ddlWriter{w: &buf}
		for _, s := range stmts {
			w.stmt(strings.TrimSuffix(s, ";"))
		}
		if err := w.close(); err != nil || !bytes.Equal(buf.Bytes(), stream) {
			t.Errorf("%s does not re-frame to the same bytes (%v)", name, err)
		}
	}
	if !bytes.Contains(b.pre, []byte("CREATE TABLE \"line\n-- statement 3\n;\nbreak\"")) {
		t.Error("pre lacks the table whose name holds a newline")
	}
	for _, want := range []string{"PRAGMA main.user_version = 42;", "PRAGMA main.application_id = 1263289683;",
		"PRAGMA main.journal_mode = WAL;", "DELETE FROM main.sqlite_sequence;",
		"INSERT INTO main.sqlite_sequence(name, seq) VALUES ('Cliënt \"x\"; DROP TABLE log; --', 4);"} {
		if !bytes.Contains(b.post, []byte(want)) {
			t.Errorf("post lacks %q", want)
		}
	}
}

func TestDDLReaderRejects(t *testing.T) {
	tests := []struct{ name, stream string }{
		{"empty", ""},
		{"no header", "CREATE TABLE a(x);\n"},
		{"other header", "-- kluis-sqlite-ddl-v2\n"},
		{"missing newline after statement", ddlHeader + "-- statement 3\nabc"},
		{"wrong byte after statement", ddlHeader + "-- statement 3\nabcd"},
		{"truncated", ddlHeader + "-- statement 30\nabc"},
		{"zero length", ddlHeader + "-- statement 0\n\n"},
		{"leading zero", ddlHeader + "-- statement 03\nabc\n"},
		{"sign", ddlHeader + "-- statement +3\nabc\n"},
		{"too long", ddlHeader + "-- statement 99999999999\n"},
		{"garbage frame", ddlHeader + "CREATE TABLE a(x);\n"},
		{"unterminated frame line", ddlHeader + "-- statement 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewDDLReader(strings.NewReader(tt.stream))
			var err error
			for err == nil {
				_, err = r.Next()
			}
			if !errors.Is(err, ErrBadDDL) {
				t.Fatalf("got %v, want ErrBadDDL", err)
			}
		})
	}
	r := NewDDLReader(strings.NewReader(ddlHeader))
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("header only: %v, want io.EOF", err)
	}
}

func FuzzDDLReader(f *testing.F) {
	f.Add([]byte(ddlHeader + "-- statement 18\nCREATE TABLE a(x);\n"))
	f.Add([]byte(ddlHeader))
	f.Add([]byte(ddlHeader + "-- statement 1\n;\n-- statement 2\n;;\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewDDLReader(bytes.NewReader(data))
		var stmts []string
		for {
			s, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return
			}
			stmts = append(stmts, s)
		}
		// A stream that reads is in canonical framing.
		var buf bytes.Buffer
		buf.WriteString(ddlHeader)
		for _, s := range stmts {
			fmt.Fprintf(&buf, "%s%d\n%s\n", ddlStmtStart, len(s), s)
		}
		if !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("stream %q re-frames as %q", data, buf.Bytes())
		}
	})
}

// TestSnapshotIsConsistent commits a write between the reads of two tables;
// the snapshot sees neither that write nor its schema change.
func TestSnapshotIsConsistent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "live.db")
	writer := createDB(t, path, []string{
		"PRAGMA journal_mode = WAL",
		"CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT)",
		"CREATE TABLE b (id INTEGER PRIMARY KEY, v TEXT)",
		"INSERT INTO a VALUES (1, 'a1')",
		"INSERT INTO b VALUES (1, 'b1')",
	})
	ctx := context.Background()
	snap, err := New(path, testKey).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	tables := snap.Tables()
	var a, bb bytes.Buffer
	if _, err := snap.WriteTable(ctx, tables[0], &a); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"BEGIN",
		"INSERT INTO a VALUES (2, 'a2')",
		"UPDATE b SET v = 'changed'",
		"INSERT INTO b VALUES (2, 'b2')",
		"CREATE TABLE c (x)",
		"COMMIT",
	} {
		if _, err := writer.Exec(s); err != nil {
			t.Fatalf("writer %s while a snapshot is open: %v", s, err)
		}
	}
	res, err := snap.WriteTable(ctx, tables[1], &bb)
	if err != nil {
		t.Fatal(err)
	}
	if a.String() != "i1\tta1\n" || bb.String() != "i1\ttb1\n" || res.Rows != 1 {
		t.Errorf("snapshot saw the concurrent write: a=%q b=%q", a.String(), bb.String())
	}
	var pre, post bytes.Buffer
	if err := snap.Schema(ctx, &pre, &post); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(pre.Bytes(), []byte("CREATE TABLE c")) {
		t.Error("snapshot schema has the table created after it began")
	}
	snap.Close()

	snap2, err := New(path, testKey).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer snap2.Close()
	bb.Reset()
	if _, err := snap2.WriteTable(ctx, tables[1], &bb); err != nil {
		t.Fatal(err)
	}
	if bb.String() != "i1\ttchanged\ni2\ttb2\n" || len(snap2.Tables()) != 3 {
		t.Errorf("a new snapshot does not see the committed write: %q, %d tables", bb.String(), len(snap2.Tables()))
	}
}

func TestSnapshotErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	missing := filepath.Join(dir, "nope.db")
	_, err := New(missing, testKey).Snapshot(ctx)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a snapshot of a missing file created it")
	}

	notDB := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notDB, []byte("this is not a database, just a long enough text file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = New(notDB, testKey).Snapshot(ctx)
	if err == nil || !errors.Is(err, ErrNotSQLite) || !strings.Contains(err.Error(), notDB) {
		t.Errorf("not a database: %v", err)
	}

	_, err = New(dir, testKey).Snapshot(ctx)
	if err == nil || !errors.Is(err, ErrNotSQLite) {
		t.Errorf("a directory: %v", err)
	}

	corrupt := filepath.Join(dir, "corrupt.db")
	if err := os.WriteFile(corrupt, append([]byte(sqliteHeader), bytes.Repeat([]byte{0xff}, 4096)...), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = New(corrupt, testKey).Snapshot(ctx)
	if err == nil || !strings.Contains(err.Error(), corrupt) {
		t.Errorf("a corrupt database: %v", err)
	}

	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	snap, err := New(empty, testKey).Snapshot(ctx)
	if err != nil {
		t.Fatalf("an empty file is an empty database: %v", err)
	}
	if len(snap.Tables()) != 0 {
		t.Error("tables in an empty database")
	}
	if _, err := snap.WriteTable(ctx, source.Table{Name: "x"}, io.Discard); err == nil {
		t.Error("WriteTable of an unknown table succeeded")
	}
	snap.Close()
}

// cancelWriter cancels a context once it has been written to.
type cancelWriter struct {
	cancel context.CancelFunc
	n      int
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	w.cancel()
	return len(p), nil
}

// cancelReader cancels a context after the first read.
type cancelReader struct {
	r      io.Reader
	cancel context.CancelFunc
}

func (r *cancelReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.cancel()
	return n, err
}

func TestCancellationMidStream(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.db")
	db := createDB(t, path, []string{"CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)"})
	fillBig(t, db, "big", 50000)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	snap, err := New(path, testKey).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	tbl := snap.Tables()[0]
	w := &cancelWriter{cancel: cancel}
	_, err = snap.WriteTable(ctx, tbl, w)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("WriteTable after cancel: %v", err)
	}
	if w.n > 2<<20 {
		t.Errorf("WriteTable wrote %d bytes after its context was cancelled", w.n)
	}

	// The snapshot is still usable with a live context.
	var stream bytes.Buffer
	res, err := snap.WriteTable(context.Background(), tbl, &stream)
	if err != nil || res.Rows != 50000 {
		t.Fatalf("WriteTable after a cancelled one: %v rows, %v", res.Rows, err)
	}

	tgt, err := NewTarget(filepath.Join(t.TempDir(), "restore.db"), testKey, false)
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	var pre, post bytes.Buffer
	if err := snap.Schema(context.Background(), &pre, &post); err != nil {
		t.Fatal(err)
	}
	if err := tgt.ApplySchema(context.Background(), &pre); err != nil {
		t.Fatal(err)
	}
	lctx, lcancel := context.WithCancel(context.Background())
	defer lcancel()
	err = tgt.LoadTable(lctx, tbl, &cancelReader{r: bytes.NewReader(stream.Bytes()), cancel: lcancel})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("LoadTable after cancel: %v", err)
	}
	got, err := tgt.Fingerprint(context.Background(), tbl)
	if err != nil || got.Rows != 0 {
		t.Fatalf("a cancelled load left %d rows (%v)", got.Rows, err)
	}
	if err := tgt.LoadTable(context.Background(), tbl, bytes.NewReader(stream.Bytes())); err != nil {
		t.Fatal(err)
	}
	if got, err := tgt.Fingerprint(context.Background(), tbl); err != nil || got != res {
		t.Fatalf("reloaded %v, want %v (%v)", got, res, err)
	}
}

func fillBig(t testing.TB, db *sql.DB, table string, n int) {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := tx.Exec("INSERT INTO "+quoteIdent(table)+" (v) VALUES (?)", fmt.Sprintf("row %d of a reasonably sized text value", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestTargetRefuses(t *testing.T) {
	dir := t.TempDir()

	notDB := filepath.Join(dir, "important.docx")
	content := []byte("PK\x03\x04 not a database at all, and not ours to delete")
	if err := os.WriteFile(notDB, content, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, force := range []bool{false, true} {
		if _, err := NewTarget(notDB, testKey, force); !errors.Is(err, ErrNotSQLite) {
			t.Errorf("force=%v on a non-database: %v", force, err)
		}
	}
	if got, _ := os.ReadFile(notDB); !bytes.Equal(got, content) {
		t.Error("NewTarget changed a file that is not a database")
	}

	existing := filepath.Join(dir, "existing.db")
	createDB(t, existing, []string{"CREATE TABLE keep (x)", "INSERT INTO keep VALUES (1)"}).Close()
	if _, err := NewTarget(existing, testKey, false); !errors.Is(err, ErrTargetExists) {
		t.Errorf("existing database without force: %v", err)
	}
	tgt, err := NewTarget(existing, testKey, true)
	if err != nil {
		t.Fatalf("existing database with force: %v", err)
	}
	tgt.Close()
	if d := dumpDB(t, existing); len(d) != 6 { // just the pragmas
		t.Errorf("forced target still holds %q", d)
	}

	stale := filepath.Join(dir, "stale.db")
	if err := os.WriteFile(stale+"-journal", []byte("hot journal"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewTarget(stale, testKey, false); !errors.Is(err, ErrTargetExists) {
		t.Errorf("leftover journal without force: %v", err)
	}
	if tgt, err := NewTarget(stale, testKey, true); err != nil {
		t.Errorf("leftover journal with force: %v", err)
	} else {
		tgt.Close()
	}

	if _, err := NewTarget(filepath.Join(dir, "no such dir", "x.db"), testKey, false); err == nil || !strings.Contains(err.Error(), "no such dir") {
		t.Errorf("target in a missing directory: %v", err)
	}
}

func TestLoadTableRejectsBadStreams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	tgt, err := NewTarget(path, testKey, false)
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	ctx := context.Background()
	var pre bytes.Buffer
	w := &ddlWriter{w: &pre}
	w.stmt("CREATE TABLE t (id INTEGER PRIMARY KEY, v)")
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	if err := tgt.ApplySchema(ctx, &pre); err != nil {
		t.Fatal(err)
	}
	tbl := source.Table{Name: "t", Table: "t", Encoding: source.RowEncoding,
		Columns: []source.Column{{Name: "id"}, {Name: "v"}}, PrimaryKey: []string{"id"}}
	for name, stream := range map[string]string{
		"malformed":      "i1\ttok\ni2\tq\n",
		"too few fields": "i1\ttok\ni2\n",
		"unterminated":   "i1\ttok\ni2\ttx",
		"duplicate key":  "i1\ttok\ni1\ttagain\n",
	} {
		if err := tgt.LoadTable(ctx, tbl, strings.NewReader(stream)); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
	if res, err := tgt.Fingerprint(ctx, tbl); err != nil || res.Rows != 0 {
		t.Errorf("failed loads left %d rows (%v)", res.Rows, err)
	}
	other := tbl
	other.Encoding = "pg-copy-text"
	if err := tgt.LoadTable(ctx, other, strings.NewReader("")); err == nil {
		t.Error("loaded a pg-copy-text stream")
	}
}

// BenchmarkSQLiteWriteTable streams 100k rows of mixed types.
func BenchmarkSQLiteWriteTable(b *testing.B) {
	path := benchDB(b, 100000)
	ctx := context.Background()
	snap, err := New(path, testKey).Snapshot(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer snap.Close()
	tbl := snap.Tables()[0]
	var n countWriter
	if _, err := snap.WriteTable(ctx, tbl, &n); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(n))
	b.ResetTimer()
	for b.Loop() {
		if _, err := snap.WriteTable(ctx, tbl, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(100000*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkSQLiteLoadTable loads the same 100k rows into a fresh table.
func BenchmarkSQLiteLoadTable(b *testing.B) {
	path := benchDB(b, 100000)
	ctx := context.Background()
	bk := takeBackup(b, path)
	tbl := bk.tables[0]
	stream := bk.streams[tbl.Name]
	b.SetBytes(int64(len(stream)))
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		tgt, err := NewTarget(filepath.Join(b.TempDir(), "r.db"), testKey, false)
		if err != nil {
			b.Fatal(err)
		}
		if err := tgt.ApplySchema(ctx, bytes.NewReader(bk.pre)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := tgt.LoadTable(ctx, tbl, bytes.NewReader(stream)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		tgt.Close()
		b.StartTimer()
	}
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

func benchDB(b *testing.B, n int) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench.db")
	db := createDB(b, path, []string{
		"CREATE TABLE consult (id INTEGER PRIMARY KEY, client_id INTEGER NOT NULL, at DATETIME, note TEXT, fee REAL, scan BLOB, code TEXT)",
	})
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	stmt, err := tx.Prepare("INSERT INTO consult (client_id, at, note, fee, scan, code) VALUES (?, ?, ?, ?, ?, ?)")
	if err != nil {
		b.Fatal(err)
	}
	blob := make([]byte, 64)
	for i := 0; i < n; i++ {
		var scan any
		if i%4 == 0 {
			blob[0], blob[1] = byte(i), byte(i>>8)
			scan = blob
		}
		note := fmt.Sprintf("Consult %d: klachten onderrug,\tadvies oefeningen; controle over %d weken.\nVerwijzing fysio.", i, i%6)
		if _, err := stmt.Exec(i%5000, fmt.Sprintf("2024-%02d-%02d 09:%02d:00", i%12+1, i%28+1, i%60), note, float64(i%200)+0.5, scan, nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	db.Close()
	return path
}

func TestRoundTripUTF16(t *testing.T) {
	src := filepath.Join(t.TempDir(), "utf16.db")
	createDB(t, src, []string{
		"PRAGMA encoding = 'UTF-16le'",
		"CREATE TABLE " + quoteIdent("naïef ☃") + " (id INTEGER PRIMARY KEY, t TEXT, b BLOB)",
		"INSERT INTO " + quoteIdent("naïef ☃") + " VALUES (1, 'Zoë ☃ 𝄞', x'00ff'), (2, '', NULL)",
	}).Close()
	b := takeBackup(t, src)
	if s := string(b.streams["naïef ☃"]); s != "i1\ttZoë ☃ 𝄞\tb00ff\ni2\tt\t\\N\n" {
		t.Errorf("stream = %q", s)
	}
	dst := filepath.Join(t.TempDir(), "restored.db")
	restore(t, b, dst)
	if want, got := dumpDB(t, src), dumpDB(t, dst); !reflect.DeepEqual(want, got) {
		t.Errorf("dump differs:\n got %q\nwant %q", got, want)
	}
}

// TestFuzzCorpusLoads checks that the seed corpus is where go test -fuzz
// looks for it.
func TestFuzzCorpusLoads(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzDDLReader", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no seed corpus for FuzzDDLReader (%v)", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte("go test fuzz v1\n")) {
			t.Fatalf("%s is not a fuzz corpus file", f)
		}
	}
}
