package synth

import (
	"fmt"
	"strconv"
	"strings"
)

// sqliteDialect writes SQLite 3: no partitioning and no sequences; dates and
// times are ISO text; invoices.id is AUTOINCREMENT and invoice_lines is a
// WITHOUT ROWID table.
type sqliteDialect struct{}

func (sqliteDialect) quote(id string) string { return quoteWith(id, '"') }
func (sqliteDialect) param(int) string       { return "?" }
func (sqliteDialect) maxParams() int         { return 32766 } // SQLITE_MAX_VARIABLE_NUMBER since 3.32
func (sqliteDialect) concat(a, b string) string {
	return a + " || " + b
}

func (sqliteDialect) arg(v any) any {
	if x, ok := v.(bool); ok {
		if x {
			return int64(1)
		}
		return int64(0)
	}
	return commonArg(v)
}

func (sqliteDialect) appendLiteral(b []byte, v any) []byte {
	if b, ok := appendCommonLiteral(b, v); ok {
		return b
	}
	switch x := v.(type) {
	case string:
		if strings.IndexByte(x, '\r') >= 0 {
			// The sqlite3 shell drops a carriage return before a line
			// feed, even inside a literal.
			b = append(b, "CAST("...)
			b = appendHexLiteral(b, []byte(x))
			return append(b, " AS TEXT)"...)
		}
		return appendQuoted(b, x)
	case []byte:
		return appendHexLiteral(b, x)
	case bool:
		if x {
			return append(b, '1')
		}
		return append(b, '0')
	}
	panic(fmt.Sprintf("synth: no SQLite literal for %T", v))
}

func (d sqliteDialect) colType(t *tableDef, c column) string {
	var s string
	switch c.kind {
	case kindID:
		if t.autoincrement {
			return "INTEGER PRIMARY KEY AUTOINCREMENT"
		}
		s = "INTEGER"
	case kindRef, kindInt:
		s = "INTEGER"
	case kindVarchar:
		s = "VARCHAR(" + strconv.Itoa(c.size) + ")"
	case kindChar:
		s = "CHAR(" + strconv.Itoa(c.size) + ")"
	case kindText:
		s = "TEXT"
	case kindDate:
		s = "DATE"
	case kindStamp, kindStampTZ:
		s = "TIMESTAMP"
	case kindMoney:
		s = "NUMERIC(10,2)"
	case kindFloat:
		s = "REAL"
	case kindBool:
		s = "BOOLEAN"
	case kindBlob:
		s = "BLOB"
	}
	return s + notNull(c)
}

func (d sqliteDialect) schema(tables []*tableDef) []string {
	var out []string
	for _, t := range tables {
		suffix := ""
		if t.withoutRowid {
			suffix = " WITHOUT ROWID"
		}
		out = append(out, createTable(d, t, func(c column) string { return d.colType(t, c) }, t.autoincrement, suffix))
	}
	q := d.quote
	out = append(out,
		fmt.Sprintf("CREATE TRIGGER %s AFTER INSERT ON %s FOR EACH ROW BEGIN\n  INSERT INTO %s (%s, %s, %s) VALUES (NEW.%s, 'trigger', %s);\nEND",
			q(TriggerReportsAudit), q("reports"), q("audit_log"), q("at"), q("actor"), q("action"), q("written_at"),
			d.concat(d.concat("'report '", "NEW."+q("id")), "' geschreven'")),
		createView(d))
	return out
}

func (d sqliteDialect) finish(tables []*tableDef) []string {
	var out []string
	for _, t := range tables {
		out = append(out, createIndexes(d, t)...)
	}
	return out
}

func (sqliteDialect) resync([]*tableDef) []string { return nil }
func (sqliteDialect) scriptHeader() []string      { return []string{"PRAGMA foreign_keys = ON"} }
