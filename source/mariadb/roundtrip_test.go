package mariadb

import (
	"bytes"
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/mariadbtest"
	"github.com/kluis-nl/kluis/source"
)

// Hostile names: backticks, quotes, spaces, semicolons, non-ASCII.
const (
	tPatients = "pa`tiënt \"dossier\"; 'x'"
	tLog      = "log zonder; pk"
	tChild    = "kind`ref"
	sInvoice  = "factuur; \"nr\""
	vOpen     = "open `view`; \"x\""
	vOnView   = "view op view"
	trLog     = "trg; `log`"
	pProc     = "proc; \"p\" `q`"
	fDouble   = "dubbel"
)

var q = quoteIdent

// hostileSchema creates a schema that exercises every type and object the
// engine handles, with hostile names and contents.
func hostileSchema() []string {
	return []string{
		"CREATE SEQUENCE " + q(sInvoice) + " START WITH 100 INCREMENT BY 5 CACHE 10",
		"CREATE TABLE " + q(tPatients) + ` (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  ` + q("naam; \"x\"") + ` VARCHAR(200) NOT NULL DEFAULT '',
  notitie TEXT,
  lat1 VARCHAR(50) CHARACTER SET latin1,
  bin VARBINARY(64),
  ` + q("blob") + ` LONGBLOB,
  fixbin BINARY(4),
  d DATE,
  dt DATETIME(6),
  ts TIMESTAMP(3) NULL DEFAULT NULL,
  tm TIME(2),
  yr YEAR,
  big BIGINT UNSIGNED,
  sbig BIGINT,
  ti TINYINT,
  mi MEDIUMINT UNSIGNED,
  ` + q("dec") + ` DECIMAL(30,10),
  f FLOAT,
  dbl DOUBLE,
  flag BIT(1),
  ` + q("bits") + ` BIT(64),
  kleur ENUM('rood','groen','blauw; "x"'),
  tags SET('a','b','c'),
  doc JSON,
  ch CHAR(5),
  ip INET6,
  uid UUID,
  pt POINT,
  gen INT AS (ti * 2) VIRTUAL,
  gens VARCHAR(210) AS (UPPER(` + q("naam; \"x\"") + `)) STORED,
  inv INT INVISIBLE DEFAULT 7,
  PRIMARY KEY (id),
  UNIQUE KEY ` + q("uniek; `u`") + ` (sbig),
  KEY naam_idx (` + q("naam; \"x\"") + `(20), d),
  FULLTEXT KEY ft (notitie)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci AUTO_INCREMENT=5000 COMMENT='patiënten; "x"'`,
		"CREATE TABLE " + q(tLog) + " (msg VARCHAR(100), n INT, seen TINYINT NOT NULL DEFAULT 0) ENGINE=InnoDB",
		"CREATE TABLE " + q(tChild) + ` (
  pid BIGINT UNSIGNED NOT NULL,
  nr INT NOT NULL,
  factuur BIGINT NOT NULL DEFAULT NEXT VALUE FOR ` + q(sInvoice) + `,
  PRIMARY KEY (pid, nr),
  CONSTRAINT ` + q("fk; `p`") + ` FOREIGN KEY (pid) REFERENCES ` + q(tPatients) + ` (id) ON DELETE CASCADE
) ENGINE=InnoDB`,
		// The view on a view sorts before the view it reads from.
		"CREATE VIEW " + q(vOpen) + " AS SELECT p.id, p." + q("naam; \"x\"") + " AS naam, k.factuur FROM " + q(tPatients) + " p JOIN " + q(tChild) + " k ON k.pid = p.id WHERE p.notitie <> ';'",
		"CREATE VIEW " + q(vOnView) + " AS SELECT id, CONCAT(naam, ';') AS n FROM " + q(vOpen),
		"SET SESSION sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO'",
		"CREATE TRIGGER " + q(trLog) + " BEFORE INSERT ON " + q(tLog) + " FOR EACH ROW BEGIN\n  SET NEW.msg = CONCAT(NEW.msg, '; gezien');\n  SET NEW.seen = 1;\nEND",
		"CREATE PROCEDURE " + q(pProc) + "(IN x INT)\nBEGIN\n  DECLARE y INT DEFAULT 0;\n  SET y = x * 2;\n  SELECT y AS ` ; `;\nEND",
		"CREATE FUNCTION " + q(fDouble) + "(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
		"SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'",
	}
}

// hostileRows fills the schema: edge values, NULLs, empties, a zero id,
// and enough generated rows for several load batches.
func hostileRows(rng *rand.Rand) []string {
	cols := "id, " + q("naam; \"x\"") + ", notitie, lat1, bin, " + q("blob") + ", fixbin, d, dt, ts, tm, yr, big, sbig, ti, mi, " + q("dec") + ", f, dbl, flag, " + q("bits") + ", kleur, tags, doc, ch, ip, uid, pt"
	ins := "INSERT INTO " + q(tPatients) + " (" + cols + ") VALUES "
	stmts := []string{
		ins + `(1, 'Jan; "de" ` + "`Vries`" + `', 'tab\there\nnewline\\backslash\0nul\r\ncr 😀 \\N', 'café', X'00ff00', X'0000010200ff', X'00000001',
 '0000-00-00', '0000-00-00 00:00:00.000000', '0000-00-00 00:00:00', '-838:59:59.00', 0, 18446744073709551615, -9223372036854775808, -128, 16777215,
 '-12345678901234567890.0123456789', 3.4028235e38, 2.2250738585072014e-308, b'1', b'1111111111111111111111111111111111111111111111111111111111111111',
 '', 'a,c', '{"a": [1, "x\\ty"], "b": null, "c": "😀"}', 'ab', '::1', '123e4567-e89b-12d3-a456-426614174000', ST_GeomFromText('POINT(1.5 -2.25)'))`,
		ins + `(2, 'leeg', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
		ins + `(0, '', '', '', '', '', X'00000000', '2024-02-29', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999', '838:59:59', 2155, 9223372036854775808, 9223372036854775807, 127, 0,
 '99999999999999999999.9999999999', -1.17549435e-38, -1.7976931348623157e308, b'0', b'0', 'blauw; "x"', '', '[]', '', 'ffff::ffff', '00000000-0000-0000-0000-000000000000', ST_GeomFromText('POINT(0 0)'))`,
		"INSERT INTO " + q(tChild) + " (pid, nr) VALUES (1, 1), (1, 2), (0, 1)",
		"INSERT INTO " + q(tLog) + " (msg, n) VALUES ('a', 1), ('a', 1), (NULL, NULL), ('dubbel\tveld', 2)",
		"DO NEXTVAL(" + q(sInvoice) + ")",
	}
	// Random values: floats of every magnitude, text with every escape.
	var b strings.Builder
	for i := 0; i < 2500; i++ {
		if i%500 == 0 {
			if b.Len() > 0 {
				stmts = append(stmts, b.String())
				b.Reset()
			}
			b.WriteString("INSERT INTO " + q(tPatients) + " (id, " + q("naam; \"x\"") + ", notitie, " + q("blob") + ", f, dbl, " + q("dec") + ", big, dt, sbig) VALUES ")
		} else {
			b.WriteString(", ")
		}
		f32 := math.Float32frombits(rng.Uint32())
		if math.IsNaN(float64(f32)) || math.IsInf(float64(f32), 0) {
			f32 = 1.5
		}
		f64 := math.Float64frombits(rng.Uint64())
		if math.IsNaN(f64) || math.IsInf(f64, 0) {
			f64 = -2.5
		}
		blob := make([]byte, rng.IntN(40))
		for j := range blob {
			blob[j] = byte(rng.IntN(256))
		}
		fmt.Fprintf(&b, "(%d, 'naam %d\\t;', 'regel\\n%d\\\\ %c', X'%x', %s, %s, '%d.%010d', %d, '2001-02-03 04:05:06.%06d', %d)",
			10+i, i, i, 'a'+rune(i%26), blob,
			floatLiteral(float64(f32)), floatLiteral(f64),
			rng.Int64N(1e15)-5e14, rng.Int64N(1e10), rng.Uint64(), rng.IntN(1e6), 1000+i)
	}
	return append(stmts, b.String())
}

func floatLiteral(f float64) string {
	s := fmt.Sprintf("%v", f)
	if !strings.ContainsAny(s, "e.") {
		s += "e0"
	}
	return s
}

// TestRoundTripHostile backs up a schema with hostile names and values,
// restores it into a new database, and compares fingerprints, the schema
// as mariadb-dump prints it, every row, AUTO_INCREMENT counters, the
// sequence and that triggers and routines work.
func TestRoundTripHostile(t *testing.T) {
	forEachLoad(t, testRoundTripHostile)
}

// forEachLoad runs test once per way of loading rows.
func forEachLoad(t *testing.T, test func(t *testing.T)) {
	defer func(m loadMethod) { forceLoad = m }(forceLoad)
	for _, m := range []struct {
		name string
		m    loadMethod
	}{{"insert", loadInsert}, {"infile", loadInfile}} {
		forceLoad = m.m
		t.Run(m.name, test)
	}
}

func testRoundTripHostile(t *testing.T) {
	srv := mariadbtest.Start(t)
	src := srv.CreateDB(t, "hostile")
	mariadbtest.ExecDSN(t, src, append(hostileSchema(), hostileRows(rand.New(rand.NewPCG(1, 2)))...)...)

	b := takeBackup(t, src)
	if !strings.HasPrefix(b.version, "MariaDB ") {
		t.Errorf("server version %q", b.version)
	}
	var names []string
	for _, tb := range b.tables {
		names = append(names, tb.Name)
	}
	if want := []string{tChild, tLog, tPatients}; !reflect.DeepEqual(names, want) {
		t.Fatalf("tables %q, want %q", names, want)
	}
	checkMetadata(t, b)
	if b.results[tPatients].Rows != 2503 || b.results[tLog].Rows != 4 || b.results[tChild].Rows != 3 {
		t.Fatalf("row counts %+v", b.results)
	}

	dst := srv.CreateDB(t, "hostile_restored")
	mariadbtest.ExecDSN(t, dst, "DROP DATABASE "+q(dbName(t, dst))) // NewTarget creates it
	restoreInto(t, b, dst)

	if want, got := schemaDump(t, srv, src), schemaDump(t, srv, dst); want != got {
		t.Errorf("schema differs:\n--- original\n%s\n--- restored\n%s", want, got)
	}
	srcDB, dstDB := mariadbtest.OpenDSN(t, src), mariadbtest.OpenDSN(t, dst)
	for _, tb := range []string{tPatients, tLog, tChild, vOpen, vOnView} {
		want, got := tableRows(t, srcDB, tb), tableRows(t, dstDB, tb)
		if !reflect.DeepEqual(want, got) {
			t.Errorf("%s: rows differ (%d restored, %d original)", tb, len(got), len(want))
			for i := range min(len(want), len(got)) {
				if want[i] != got[i] {
					t.Errorf("first difference:\n%s\n%s", want[i], got[i])
					break
				}
			}
		}
	}
	// Exact floats: the binary protocol (a query with an argument) returns
	// their bits, which text output may round.
	if want, got := floatBits(t, srcDB), floatBits(t, dstDB); !reflect.DeepEqual(want, got) || len(want) != 2503 {
		t.Errorf("float bits differ (%d rows restored, %d original)", len(got), len(want))
	}
	if want, got := autoIncrements(t, srcDB), autoIncrements(t, dstDB); !reflect.DeepEqual(want, got) || want[tPatients] != 5000 {
		t.Errorf("AUTO_INCREMENT: restored %v, original %v", got, want)
	}
	// The sequence continues past every value handed out.
	var srcNext, dstNext int64
	if err := srcDB.QueryRow("SELECT NEXTVAL(" + q(sInvoice) + ")").Scan(&srcNext); err != nil {
		t.Fatal(err)
	}
	if err := dstDB.QueryRow("SELECT NEXTVAL(" + q(sInvoice) + ")").Scan(&dstNext); err != nil {
		t.Fatal(err)
	}
	if dstNext < srcNext {
		t.Errorf("restored sequence at %d, original at %d", dstNext, srcNext)
	}
	// The trigger fires, the routines run, and the restored table's
	// default draws from the restored sequence.
	mariadbtest.ExecDSN(t, dst,
		"INSERT INTO "+q(tLog)+" (msg, n) VALUES ('nieuw', 9)",
		"INSERT INTO "+q(tChild)+" (pid, nr) VALUES (2, 1)",
		"CALL "+q(pProc)+"(4)")
	var msg string
	var seen, twice int
	if err := dstDB.QueryRow("SELECT msg, seen, "+q(fDouble)+"(21) FROM "+q(tLog)+" WHERE n = 9").Scan(&msg, &seen, &twice); err != nil {
		t.Fatal(err)
	}
	if msg != "nieuw; gezien" || seen != 1 || twice != 42 {
		t.Errorf("trigger and function on the restored database: %q %d %d", msg, seen, twice)
	}
	var fact int64
	if err := dstDB.QueryRow("SELECT factuur FROM " + q(tChild) + " WHERE pid = 2").Scan(&fact); err != nil {
		t.Fatal(err)
	}
	if fact < dstNext {
		t.Errorf("default from the sequence: %d, after %d", fact, dstNext)
	}
}

// floatBits returns the FLOAT and DOUBLE values of the patients table,
// read through the binary protocol, as bit patterns.
func floatBits(t testing.TB, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query("SELECT id, f, dbl FROM "+q(tPatients)+" WHERE id >= ? ORDER BY id", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id int64
		var f, d any
		if err := rows.Scan(&id, &f, &d); err != nil {
			t.Fatal(err)
		}
		fb, db := "NULL", "NULL"
		if x, ok := f.(float32); ok {
			fb = fmt.Sprintf("%08x", math.Float32bits(x))
		} else if f != nil {
			t.Fatalf("FLOAT read as %T", f)
		}
		if x, ok := d.(float64); ok {
			db = fmt.Sprintf("%016x", math.Float64bits(x))
		} else if d != nil {
			t.Fatalf("DOUBLE read as %T", d)
		}
		out = append(out, fmt.Sprintf("%d %s %s", id, fb, db))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func queryStrings(t testing.TB, db *sql.DB, query string) []string {
	t.Helper()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var out []string
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(vals))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkMetadata checks what the manifest records of the tables.
func checkMetadata(t *testing.T, b *backupData) {
	t.Helper()
	byName := map[string]source.Table{}
	for _, tb := range b.tables {
		byName[tb.Name] = tb
		if tb.Encoding != source.RowEncoding {
			t.Errorf("%s: encoding %q", tb.Name, tb.Encoding)
		}
	}
	p := byName[tPatients]
	if !reflect.DeepEqual(p.PrimaryKey, []string{"id"}) || p.PhysicalOrder {
		t.Errorf("%s: primary key %q, physical order %v", p.Name, p.PrimaryKey, p.PhysicalOrder)
	}
	var cols []string
	for _, c := range p.Columns {
		cols = append(cols, c.Name)
	}
	if strings.Contains(strings.Join(cols, ","), "gen") || !strings.Contains(strings.Join(cols, ","), "inv") {
		t.Errorf("%s: columns %q (generated columns are not streamed, invisible ones are)", p.Name, cols)
	}
	if p.Columns[0].Type != "bigint(20) unsigned" || p.Columns[0].Nullable || !p.Columns[2].Nullable {
		t.Errorf("%s: column metadata %+v", p.Name, p.Columns[:3])
	}
	if l := byName[tLog]; len(l.PrimaryKey) != 0 || !l.PhysicalOrder {
		t.Errorf("%s: primary key %q, physical order %v", l.Name, l.PrimaryKey, l.PhysicalOrder)
	}
	want := []source.ForeignKey{{Name: "fk; `p`", Columns: []string{"pid"}, RefTable: tPatients, RefColumns: []string{"id"}}}
	if c := byName[tChild]; !reflect.DeepEqual(c.ForeignKeys, want) || !reflect.DeepEqual(c.PrimaryKey, []string{"pid", "nr"}) {
		t.Errorf("%s: foreign keys %+v, primary key %q", c.Name, c.ForeignKeys, c.PrimaryKey)
	}
	// The row with id 1 (the second in primary-key order, after id 0)
	// holds the edge values, encoded as documented.
	lines := bytes.Split(b.streams[tPatients], []byte("\n"))
	vals, err := source.ParseRow(nil, lines[1])
	if err != nil {
		t.Fatal(err)
	}
	field := map[string]string{}
	for i, c := range p.Columns {
		field[c.Name] = string(source.AppendRow(nil, vals[i:i+1]))
	}
	for col, want := range map[string]string{
		"id": "i1", "big": "t18446744073709551615", "sbig": "i-9223372036854775808", "yr": "i0",
		"d": "t0000-00-00", "dt": "t0000-00-00 00:00:00.000000", "ts": "t0000-00-00 00:00:00.000", "tm": "t-838:59:59.00",
		"flag": "i1", "bits": "t18446744073709551615", "kleur": "t", "tags": "ta,c", "ch": "tab",
		"dec": "t-12345678901234567890.0123456789", "blob": "b0000010200ff", "fixbin": "b00000001",
		"f": "r3.4028234663852886e+38", "dbl": "r2.2250738585072014e-308", "lat1": "tcafé", "ip": "t::1",
		"notitie": "ttab\\there\\nnewline\\\\backslash\x00nul\\r\\ncr 😀 \\\\N", "inv": "i7",
	} {
		if got := strings.TrimSuffix(field[col], "\n"); got != want {
			t.Errorf("column %s encoded as %q, want %q", col, got, want)
		}
	}
}
