package mariadb

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/source"
)

func TestStripDefiner(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"trigger", "CREATE DEFINER=`root`@`localhost` TRIGGER `t` BEFORE INSERT ON `x` FOR EACH ROW SET NEW.a = 1",
			"CREATE TRIGGER `t` BEFORE INSERT ON `x` FOR EACH ROW SET NEW.a = 1"},
		{"view", "CREATE ALGORITHM=UNDEFINED DEFINER=`ad``min`@`%` SQL SECURITY DEFINER VIEW `v` AS select 1 AS `1`",
			"CREATE ALGORITHM=UNDEFINED SQL SECURITY DEFINER VIEW `v` AS select 1 AS `1`"},
		{"procedure", "CREATE DEFINER=`a b`@`10.0.0.%` PROCEDURE `p`()\nBEGIN\n SELECT 'DEFINER=`x`@`y`';\nEND",
			"CREATE PROCEDURE `p`()\nBEGIN\n SELECT 'DEFINER=`x`@`y`';\nEND"},
		{"quoted strings", "CREATE DEFINER='root'@'localhost' FUNCTION `f`() RETURNS int RETURN 1",
			"CREATE FUNCTION `f`() RETURNS int RETURN 1"},
		{"role", "CREATE DEFINER=`app_role` FUNCTION `f`() RETURNS int RETURN 1", "CREATE FUNCTION `f`() RETURNS int RETURN 1"},
		{"current user", "CREATE OR REPLACE DEFINER=CURRENT_USER() TRIGGER t", "CREATE OR REPLACE TRIGGER t"},
		{"none", "CREATE TRIGGER `DEFINER` BEFORE INSERT ON x FOR EACH ROW SET @DEFINER=1", "CREATE TRIGGER `DEFINER` BEFORE INSERT ON x FOR EACH ROW SET @DEFINER=1"},
		{"security only", "CREATE SQL SECURITY DEFINER VIEW v AS select 1", "CREATE SQL SECURITY DEFINER VIEW v AS select 1"},
		{"not create", "ALTER DEFINER=`a`@`b` VIEW v AS select 1", "ALTER DEFINER=`a`@`b` VIEW v AS select 1"},
		{"unterminated", "CREATE DEFINER=`root", "CREATE DEFINER=`root"},
	} {
		if got := stripDefiner(c.in); got != c.want {
			t.Errorf("%s: got\n%s\nwant\n%s", c.name, got, c.want)
		}
	}
}

func TestRewriteSeqRefs(t *testing.T) {
	db := "prod`db"
	for _, c := range []struct{ name, in, want string }{
		{"default", "CREATE TABLE `t` (\n  `a` bigint DEFAULT nextval(`prod``db`.`s`),\n  `b` int DEFAULT lastval(`prod``db`.`s; x`)\n)",
			"CREATE TABLE `t` (\n  `a` bigint DEFAULT nextval(`s`),\n  `b` int DEFAULT lastval(`s; x`)\n)"},
		{"string untouched", "CREATE TABLE t (a text DEFAULT 'nextval(`prod``db`.`s`)') COMMENT='nextval(`prod``db`.x'",
			"CREATE TABLE t (a text DEFAULT 'nextval(`prod``db`.`s`)') COMMENT='nextval(`prod``db`.x'"},
		{"quoted name untouched", "CREATE TABLE `nextval(``prod````db``.` (a int)", "CREATE TABLE `nextval(``prod````db``.` (a int)"},
		{"other database", "CREATE TABLE t (a bigint DEFAULT nextval(`other`.`s`))", "CREATE TABLE t (a bigint DEFAULT nextval(`other`.`s`))"},
		{"escaped quote in string", `CREATE TABLE t (a text DEFAULT 'it\'s nextval(` + "`prod``db`.`s`)'" + `, b bigint DEFAULT NEXTVAL(` + "`prod``db`.`s`))",
			`CREATE TABLE t (a text DEFAULT 'it\'s nextval(` + "`prod``db`.`s`)'" + `, b bigint DEFAULT NEXTVAL(` + "`s`))"},
		{"no reference", "CREATE TABLE t (a int)", "CREATE TABLE t (a int)"},
	} {
		if got := rewriteSeqRefs(c.in, db); got != c.want {
			t.Errorf("%s: got\n%s\nwant\n%s", c.name, got, c.want)
		}
	}
}

func TestQuote(t *testing.T) {
	if got := quoteIdent("a`b"); got != "`a``b`" {
		t.Errorf("quoteIdent: %s", got)
	}
	for in, want := range map[string]string{
		"plain":    "'plain'",
		"it's":     "'it''s'",
		`a\b`:      "CONCAT('a', CHAR(92), 'b')",
		"\x00'":    "CONCAT(CHAR(0), '''')",
		"":         "''",
		`\`:        "CONCAT(CHAR(92))",
		"x\\\\y'z": "CONCAT('x', CHAR(92), CHAR(92), 'y''z')",
	} {
		if got := quoteString(in); got != want {
			t.Errorf("quoteString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestDDLRoundTrip(t *testing.T) {
	stmts := []string{"CREATE TABLE `a;b` (x INT)", "CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW BEGIN\n SET @a = ';';\n SET @b = '\n-- statement 5\n';\nEND", "\x00\xff"}
	var buf bytes.Buffer
	if err := writeDDL(&buf, stmts); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, buf.Bytes())
	if strings.Join(got, "|") != strings.Join(stmts, "|") {
		t.Fatalf("read back %q", got)
	}
	buf.Reset()
	writeDDL(&buf, nil)
	if buf.String() != "-- kluis-mariadb-ddl-v1\n" || len(readAll(t, buf.Bytes())) != 0 {
		t.Fatalf("empty stream %q", buf.String())
	}
	if err := writeDDL(io.Discard, []string{""}); err == nil {
		t.Error("an empty statement was framed")
	}
}

func readAll(t *testing.T, b []byte) []string {
	t.Helper()
	r := NewDDLReader(bytes.NewReader(b))
	var out []string
	for {
		s, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
}

func TestDDLReaderRejects(t *testing.T) {
	for name, in := range map[string]string{
		"empty":          "",
		"bad header":     "-- kluis-sqlite-ddl-v1\n",
		"no newline":     "-- kluis-mariadb-ddl-v1",
		"bad frame":      "-- kluis-mariadb-ddl-v1\n-- stmt 3\nabc\n",
		"zero length":    "-- kluis-mariadb-ddl-v1\n-- statement 0\n\n",
		"leading zero":   "-- kluis-mariadb-ddl-v1\n-- statement 03\nabc\n",
		"plus sign":      "-- kluis-mariadb-ddl-v1\n-- statement +3\nabc\n",
		"too long":       "-- kluis-mariadb-ddl-v1\n-- statement 99999999999\n",
		"truncated":      "-- kluis-mariadb-ddl-v1\n-- statement 10\nabc\n",
		"no newline end": "-- kluis-mariadb-ddl-v1\n-- statement 3\nabcd",
		"unterminated":   "-- kluis-mariadb-ddl-v1\n-- statement 3\nabc\n-- state",
		"long line":      "-- kluis-mariadb-ddl-v1\n-- statement " + strings.Repeat("1", 40) + "\n",
	} {
		r := NewDDLReader(strings.NewReader(in))
		var err error
		for err == nil {
			_, err = r.Next()
		}
		if !errors.Is(err, ErrBadDDL) {
			t.Errorf("%s: %v", name, err)
		}
		if _, again := r.Next(); again != err {
			t.Errorf("%s: error not sticky", name)
		}
	}
}

func FuzzDDLReader(f *testing.F) {
	var buf bytes.Buffer
	writeDDL(&buf, []string{"CREATE TABLE t (a INT)", "SET @x = ';'"})
	f.Add(buf.Bytes())
	f.Add([]byte("-- kluis-mariadb-ddl-v1\n-- statement 1\n;\n"))
	f.Add([]byte("-- kluis-mariadb-ddl-v1\n-- statement 9\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewDDLReader(bytes.NewReader(in))
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
		// What reads cleanly writes back to the same bytes.
		var out bytes.Buffer
		if err := writeDDL(&out, stmts); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), in) {
			t.Fatalf("re-encoded %q as %q", in, out.Bytes())
		}
	})
}

func TestValueConversion(t *testing.T) {
	for _, c := range []struct {
		kind valueKind
		in   []byte
		want string // kluis-row-v1 field
	}{
		{vInt, nil, `\N`},
		{vInt, []byte("-9223372036854775808"), "i-9223372036854775808"},
		{vInt, []byte("9223372036854775807"), "i9223372036854775807"},
		{vInt, []byte("9223372036854775808"), "t9223372036854775808"},
		{vInt, []byte("18446744073709551615"), "t18446744073709551615"},
		{vBit, []byte{}, "i0"},
		{vBit, []byte{1, 0}, "i256"},
		{vBit, []byte{0x80, 0, 0, 0, 0, 0, 0, 0}, "t9223372036854775808"},
		{vDouble, []byte("0.1"), "r0.1"},
		{vDouble, []byte("-0"), "r-0"},
		{vFloat, []byte("3.4028234663852886e38"), "r3.4028234663852886e+38"},
		{vBlob, []byte{0, 0xff}, "b00ff"},
		{vBlob, []byte{}, "b"},
		{vText, []byte("0000-00-00"), "t0000-00-00"},
		{vText, []byte{}, "t"},
	} {
		v, err := toValue(c.kind, c.in)
		if err != nil {
			t.Errorf("%v %q: %v", c.kind, c.in, err)
			continue
		}
		if got := strings.TrimSuffix(string(source.AppendRow(nil, []source.Value{v})), "\n"); got != c.want {
			t.Errorf("%v %q: %s, want %s", c.kind, c.in, got, c.want)
		}
		// And back: an argument the driver binds to the same value.
		arg, err := toArg(c.kind, v)
		if err != nil {
			t.Errorf("%v %q: toArg: %v", c.kind, c.in, err)
		}
		if u, ok := arg.(uint64); ok && u <= math.MaxInt64 {
			t.Errorf("%v %q: bound as uint64 %d", c.kind, c.in, u)
		}
		if b, ok := arg.([]byte); ok && b == nil {
			t.Errorf("%v %q: a blob bound as NULL", c.kind, c.in)
		}
	}
	for _, bad := range []struct {
		kind valueKind
		in   []byte
	}{{vInt, []byte("1.5")}, {vInt, []byte("99999999999999999999")}, {vBit, make([]byte, 9)}, {vDouble, []byte("x")}} {
		if _, err := toValue(bad.kind, bad.in); err == nil {
			t.Errorf("%v %q accepted", bad.kind, bad.in)
		}
	}
	for _, bad := range []string{"12", "0009223372036854775808", "18446744073709551616", "x"} {
		if _, err := toArg(vInt, source.TextValue([]byte(bad))); err == nil {
			t.Errorf("integer text %q accepted", bad)
		}
	}
}

func TestKindOfColumnType(t *testing.T) {
	tb := source.Table{Name: "t", Columns: []source.Column{
		{Name: "a", Type: "bigint(20) unsigned"}, {Name: "b", Type: "float"}, {Name: "c", Type: "double"},
		{Name: "d", Type: "bit(1)"}, {Name: "e", Type: "varbinary(10)"}, {Name: "f", Type: "enum('a','b c')"},
		{Name: "g", Type: "year(4)"}, {Name: "h", Type: "decimal(30,10)"}, {Name: "i", Type: "point"},
		{Name: "j", Type: "datetime(6)"}, {Name: "k", Type: "longtext"},
	}}
	cols, err := targetColumns(tb)
	if err != nil {
		t.Fatal(err)
	}
	want := []valueKind{vInt, vFloat, vDouble, vBit, vBlob, vText, vInt, vText, vBlob, vText, vText}
	for i, c := range cols {
		if c.kind != want[i] {
			t.Errorf("%s %s: kind %d, want %d", c.name, c.colType, c.kind, want[i])
		}
	}
	if _, err := targetColumns(source.Table{Name: "empty"}); err == nil {
		t.Error("a table without columns was accepted")
	}
}

func TestServerVersion(t *testing.T) {
	for _, c := range [][3]string{
		{"10.11.19-MariaDB-0+deb12u1", "Debian 12", "MariaDB 10.11.19"},
		{"11.4.2-MariaDB", "mariadb.org binary distribution", "MariaDB 11.4.2"},
		{"8.0.36", "MySQL Community Server - GPL", "MySQL 8.0.36"},
	} {
		if got := serverVersion(c[0], c[1]); got != c[2] {
			t.Errorf("%q: %q", c[0], got)
		}
	}
}
