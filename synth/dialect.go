package synth

import (
	"fmt"
	"strings"
)

// Dialect is a database engine's flavour of SQL.
type Dialect int

// The dialects synth writes.
const (
	SQLite Dialect = iota
	Postgres
	MariaDB
)

// String returns the engine name as used in kluis.yaml: "sqlite",
// "postgres" or "mariadb".
func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	case MariaDB:
		return "mariadb"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// dialect is what a database engine contributes: types and DDL, quoting,
// placeholders and value conversion. Adding an engine means adding one
// implementation, not a branch in the generator.
type dialect interface {
	// quote returns id as a quoted identifier.
	quote(id string) string
	// param returns the placeholder for the n-th argument, counting from 1.
	param(n int) string
	// maxParams bounds the arguments of one statement.
	maxParams() int
	// arg converts a generated value (see values.go) for the driver.
	arg(v any) any
	// appendLiteral appends v as an SQL literal.
	appendLiteral(b []byte, v any) []byte
	// concat returns the SQL expression that appends b to a.
	concat(a, b string) string
	// schema returns the statements that create the empty schema: sequences,
	// tables, functions, triggers and views, to run before rows are loaded.
	schema(tables []*tableDef) []string
	// finish returns the statements to run after a bulk load: indexes and
	// sequence positions.
	finish(tables []*tableDef) []string
	// resync returns the statements that move sequences past the ids
	// inserted explicitly (run after every working day).
	resync(tables []*tableDef) []string
	// scriptHeader returns session settings that make a script's literals
	// mean what appendLiteral intended.
	scriptHeader() []string
}

func (d Dialect) impl() (dialect, error) {
	switch d {
	case SQLite:
		return sqliteDialect{}, nil
	case Postgres:
		return postgresDialect{}, nil
	case MariaDB:
		return mariadbDialect{}, nil
	}
	return nil, fmt.Errorf("synth: unknown dialect %d", int(d))
}

// quoteWith doubles every q in id and wraps it in q.
func quoteWith(id string, q byte) string {
	var b strings.Builder
	b.Grow(len(id) + 2)
	b.WriteByte(q)
	for i := 0; i < len(id); i++ {
		if id[i] == q {
			b.WriteByte(q)
		}
		b.WriteByte(id[i])
	}
	b.WriteByte(q)
	return b.String()
}

// quoteList quotes and comma-joins names.
func quoteList(d dialect, names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = d.quote(n)
	}
	return strings.Join(q, ", ")
}

// indexName is the name of the index on cols of table t.
func indexName(t string, cols []string) string {
	return t + "_" + strings.Join(cols, "_") + "_idx"
}

// createTable renders CREATE TABLE with one line per column, then the
// primary key (unless inline) and the foreign keys.
func createTable(d dialect, t *tableDef, colType func(c column) string, inlinePK bool, suffix string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE %s (\n", d.quote(t.name))
	lines := make([]string, 0, len(t.cols)+len(t.fks)+1)
	for _, c := range t.cols {
		lines = append(lines, "  "+d.quote(c.name)+" "+colType(c))
	}
	if len(t.pk) > 0 && !inlinePK {
		lines = append(lines, "  PRIMARY KEY ("+quoteList(d, t.pk)+")")
	}
	for _, fk := range t.fks {
		lines = append(lines, fmt.Sprintf("  FOREIGN KEY (%s) REFERENCES %s (%s)",
			quoteList(d, fk.Columns), d.quote(fk.RefTable), quoteList(d, fk.RefColumns)))
	}
	b.WriteString(strings.Join(lines, ",\n"))
	b.WriteString("\n)")
	b.WriteString(suffix)
	return b.String()
}

// createIndexes renders the secondary indexes of t.
func createIndexes(d dialect, t *tableDef) []string {
	var out []string
	for _, cols := range t.indexes {
		out = append(out, fmt.Sprintf("CREATE INDEX %s ON %s (%s)",
			d.quote(indexName(t.name, cols)), d.quote(t.name), quoteList(d, cols)))
	}
	return out
}

// createView is the same in every dialect but for quoting.
func createView(d dialect) string {
	q := d.quote
	return fmt.Sprintf("CREATE VIEW %s AS\nSELECT i.%s AS %s, i.%s, c.%s, c.%s, i.%s, i.%s\nFROM %s i JOIN %s c ON c.%s = i.%s\nWHERE i.%s IS NULL",
		q(ViewOpenInvoices), q("id"), q("invoice_id"), q("client_id"), q("first_name"), q("last_name"),
		q("issued"), q("total"), q("invoices"), q("clients"), q("id"), q("client_id"), q("paid_at"))
}

// notNull renders a column's nullability and uniqueness.
func notNull(c column) string {
	s := ""
	if !c.null {
		s = " NOT NULL"
	}
	if c.unique {
		s += " UNIQUE"
	}
	return s
}
