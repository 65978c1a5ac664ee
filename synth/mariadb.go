package synth

import (
	"fmt"
	"strconv"
)

// mariadbDialect writes MariaDB 10.3 or later (InnoDB, utf8mb4): AUTO_INCREMENT
// ids and a SEQUENCE for invoice numbers. Dates and times are DATETIME in
// the practice's zone. Nothing here needs a driver: with one registered
// under database/sql, Generate works as for the other dialects, and WriteSQL
// feeds the mariadb client.
type mariadbDialect struct{}

func (mariadbDialect) quote(id string) string { return quoteWith(id, '`') }
func (mariadbDialect) param(int) string       { return "?" }
func (mariadbDialect) maxParams() int         { return 65535 }
func (mariadbDialect) concat(a, b string) string {
	return "CONCAT(" + a + ", " + b + ")"
}

func (mariadbDialect) arg(v any) any { return commonArg(v) }

func (mariadbDialect) appendLiteral(b []byte, v any) []byte {
	if b, ok := appendCommonLiteral(b, v); ok {
		return b
	}
	switch x := v.(type) {
	case string:
		// Backslash escapes are on unless sql_mode has
		// NO_BACKSLASH_ESCAPES; scriptHeader makes sure.
		b = append(b, '\'')
		for i := 0; i < len(x); i++ {
			switch c := x[i]; c {
			case '\'', '\\':
				b = append(b, '\\', c)
			case 0:
				b = append(b, '\\', '0')
			case '\r': // the mariadb client drops a raw one before a line feed
				b = append(b, '\\', 'r')
			default:
				b = append(b, c)
			}
		}
		return append(b, '\'')
	case []byte:
		return appendHexLiteral(b, x)
	case bool:
		if x {
			return append(b, "TRUE"...)
		}
		return append(b, "FALSE"...)
	}
	panic(fmt.Sprintf("synth: no MariaDB literal for %T", v))
}

func (d mariadbDialect) colType(c column) string {
	var s string
	switch c.kind {
	case kindID:
		return "BIGINT NOT NULL AUTO_INCREMENT"
	case kindRef:
		s = "BIGINT"
	case kindInt:
		s = "INT"
	case kindVarchar:
		s = "VARCHAR(" + strconv.Itoa(c.size) + ")"
	case kindChar:
		s = "CHAR(" + strconv.Itoa(c.size) + ")"
	case kindText:
		s = "MEDIUMTEXT"
	case kindDate:
		s = "DATE"
	case kindStamp, kindStampTZ:
		s = "DATETIME"
	case kindMoney:
		s = "DECIMAL(10,2)"
	case kindFloat:
		s = "DOUBLE"
	case kindBool:
		s = "BOOLEAN"
	case kindBlob:
		s = "MEDIUMBLOB"
	}
	if c.seq != "" {
		s += " DEFAULT NEXT VALUE FOR " + d.quote(c.seq)
	}
	return s + notNull(c)
}

const mariadbTableOptions = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"

func (d mariadbDialect) schema(tables []*tableDef) []string {
	q := d.quote
	out := []string{fmt.Sprintf("CREATE SEQUENCE %s START WITH %d", q(SequenceInvoiceNumber), firstInvoiceNumber)}
	for _, t := range tables {
		out = append(out, createTable(d, t, d.colType, false, mariadbTableOptions))
	}
	return append(out,
		fmt.Sprintf("CREATE TRIGGER %s AFTER INSERT ON %s FOR EACH ROW INSERT INTO %s (%s, %s, %s) VALUES (NEW.%s, 'trigger', %s)",
			q(TriggerReportsAudit), q("reports"), q("audit_log"), q("at"), q("actor"), q("action"), q("written_at"),
			"CONCAT('report ', NEW."+q("id")+", ' geschreven')"),
		createView(d))
}

func (d mariadbDialect) finish(tables []*tableDef) []string {
	var out []string
	for _, t := range tables {
		out = append(out, createIndexes(d, t)...)
	}
	return append(out, d.resync(tables)...)
}

// resync restarts the invoice-number sequence past the largest number in
// use. AUTO_INCREMENT counters follow explicit ids by themselves. SETVAL and
// ALTER SEQUENCE take constants only, hence the prepared statement; the
// statements share session variables, so they must run on one connection
// (a transaction or a script).
func (d mariadbDialect) resync(tables []*tableDef) []string {
	q := d.quote
	var out []string
	for _, t := range tables {
		for _, c := range t.cols {
			if c.seq == "" {
				continue
			}
			out = append(out,
				fmt.Sprintf("SET @kluis_next = (SELECT COALESCE(MAX(%s), %d) + 1 FROM %s)", q(c.name), firstInvoiceNumber-1, q(t.name)),
				fmt.Sprintf("SET @kluis_sql = CONCAT('ALTER SEQUENCE %s RESTART WITH ', @kluis_next)", q(c.seq)),
				"PREPARE kluis_stmt FROM @kluis_sql",
				"EXECUTE kluis_stmt",
				"DEALLOCATE PREPARE kluis_stmt")
		}
	}
	return out
}

func (mariadbDialect) scriptHeader() []string {
	return []string{
		"SET NAMES utf8mb4",
		"SET SESSION sql_mode = 'STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
	}
}
