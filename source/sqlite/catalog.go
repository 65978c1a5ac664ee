package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"

	"github.com/kluis-nl/kluis/source"
)

// schemaObject is one row of sqlite_schema with SQL text.
type schemaObject struct {
	typ, name, tblName, sql string
}

// tableInfo is what a snapshot knows about a streamed table.
type tableInfo struct {
	table   source.Table
	orderBy []string // quoted ORDER BY expressions
}

// catalog is everything a snapshot reads about the schema, inside its
// transaction.
type catalog struct {
	version string
	tables  []*tableInfo // sorted by name
	pre     []string     // statements, without ";"
	post    []string
}

// pragmaInts are the database header settings a restore re-applies: the
// first three before any table exists (they fix the file's layout), the
// others after the data.
var (
	prePragmas  = []string{"page_size", "auto_vacuum", "encoding"}
	postPragmas = []string{"user_version", "application_id"}
)

// readCatalog reads the schema through q, which must be inside the
// snapshot's transaction.
func readCatalog(ctx context.Context, q queryer) (*catalog, error) {
	c := &catalog{}
	if err := queryRow(ctx, q, "SELECT sqlite_version()", &c.version); err != nil {
		return nil, err
	}
	objs, err := readSchemaObjects(ctx, q)
	if err != nil {
		return nil, err
	}
	kinds, err := readTableKinds(ctx, q)
	if err != nil {
		return nil, err
	}

	for _, p := range prePragmas {
		var v string
		if err := queryRow(ctx, q, "PRAGMA main."+p, &v); err != nil {
			return nil, err
		}
		if p == "encoding" {
			// The text encoding is the database's, not a schema's.
			c.pre = append(c.pre, "PRAGMA encoding = "+quoteString(v))
			continue
		}
		c.pre = append(c.pre, "PRAGMA main."+p+" = "+v)
	}

	var virtual []schemaObject
	var views, indexes, triggers []string
	for _, o := range objs {
		switch o.typ {
		case "table":
			if isInternal(o.name) {
				continue
			}
			k := kinds[o.name]
			if k.typ == "virtual" {
				virtual = append(virtual, o)
				continue
			}
			c.pre = append(c.pre, o.sql)
			ti, err := readTable(ctx, q, o.name, k)
			if err != nil {
				return nil, err
			}
			c.tables = append(c.tables, ti)
		case "view":
			views = append(views, o.sql)
		case "index":
			indexes = append(indexes, o.sql)
		case "trigger":
			triggers = append(triggers, o.sql)
		}
	}
	if len(virtual) > 0 {
		// As the sqlite3 shell's .dump does: a virtual table's own row goes
		// into sqlite_schema as it is (its module is not needed for that);
		// its shadow tables are ordinary tables, created and loaded like the
		// others, so that the virtual table's contents come back exactly.
		vt := []string{"PRAGMA writable_schema = ON"}
		for _, o := range virtual {
			vt = append(vt, "INSERT INTO main.sqlite_schema(type, name, tbl_name, rootpage, sql) VALUES ('table', "+
				quoteString(o.name)+", "+quoteString(o.tblName)+", 0, "+quoteString(o.sql)+")")
		}
		vt = append(vt, "PRAGMA writable_schema = OFF")
		c.pre = append(c.pre, vt...)
	}
	sort.Slice(c.tables, func(i, j int) bool { return c.tables[i].table.Name < c.tables[j].table.Name })
	if err := resolveForeignKeys(c.tables); err != nil {
		return nil, err
	}

	c.post = append(c.post, views...)
	c.post = append(c.post, indexes...)
	c.post = append(c.post, triggers...)
	seq, err := sequenceStatements(ctx, q, kinds)
	if err != nil {
		return nil, err
	}
	c.post = append(c.post, seq...)
	for _, p := range postPragmas {
		var v int64
		if err := queryRow(ctx, q, "PRAGMA main."+p, &v); err != nil {
			return nil, err
		}
		c.post = append(c.post, fmt.Sprintf("PRAGMA main.%s = %d", p, v))
	}
	var mode string
	if err := queryRow(ctx, q, "PRAGMA main.journal_mode", &mode); err != nil {
		return nil, err
	}
	if strings.EqualFold(mode, "wal") {
		c.post = append(c.post, "PRAGMA main.journal_mode = WAL")
	}
	return c, nil
}

// isInternal reports whether a table is SQLite's own (sqlite_sequence,
// sqlite_stat1, …); applications cannot create such names.
func isInternal(name string) bool {
	return len(name) >= 7 && strings.EqualFold(name[:7], "sqlite_")
}

func readSchemaObjects(ctx context.Context, q queryer) ([]schemaObject, error) {
	rows, err := q.QueryContext(ctx,
		"SELECT type, name, tbl_name, sql FROM main.sqlite_schema WHERE sql IS NOT NULL ORDER BY rowid")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var objs []schemaObject
	for rows.Next() {
		var o schemaObject
		if err := rows.Scan(&o.typ, &o.name, &o.tblName, &o.sql); err != nil {
			return nil, err
		}
		objs = append(objs, o)
	}
	return objs, rows.Err()
}

// tableKind is a table's entry in PRAGMA table_list.
type tableKind struct {
	typ          string // table, view, shadow, virtual
	withoutRowid bool
}

func readTableKinds(ctx context.Context, q queryer) (map[string]tableKind, error) {
	rows, err := q.QueryContext(ctx, "SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main'")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	kinds := make(map[string]tableKind)
	for rows.Next() {
		var name string
		var k tableKind
		if err := rows.Scan(&name, &k.typ, &k.withoutRowid); err != nil {
			return nil, err
		}
		kinds[name] = k
	}
	return kinds, rows.Err()
}

// readTable reads one table's columns, primary key and foreign keys.
func readTable(ctx context.Context, q queryer, name string, k tableKind) (*tableInfo, error) {
	t := source.Table{Name: name, Table: name, Encoding: source.RowEncoding}
	rows, err := q.QueryContext(ctx,
		`SELECT name, type, "notnull", pk, hidden FROM pragma_table_xinfo(?, 'main') ORDER BY cid`, name)
	if err != nil {
		return nil, fmt.Errorf("columns of %q: %w", name, err)
	}
	defer rows.Close()
	type pkCol struct {
		pos  int
		name string
	}
	var pk []pkCol
	for rows.Next() {
		var col source.Column
		var notNull bool
		var pkPos, hidden int
		if err := rows.Scan(&col.Name, &col.Type, &notNull, &pkPos, &hidden); err != nil {
			return nil, fmt.Errorf("columns of %q: %w", name, err)
		}
		if hidden != 0 {
			continue // a generated column: recomputed, never stored by a load
		}
		col.Nullable = !notNull
		t.Columns = append(t.Columns, col)
		if pkPos > 0 {
			pk = append(pk, pkCol{pkPos, col.Name})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("columns of %q: %w", name, err)
	}
	if len(t.Columns) == 0 {
		return nil, fmt.Errorf("table %q has no stored columns", name)
	}
	sort.Slice(pk, func(i, j int) bool { return pk[i].pos < pk[j].pos })
	ti := &tableInfo{}
	for _, c := range pk {
		t.PrimaryKey = append(t.PrimaryKey, c.name)
		ti.orderBy = append(ti.orderBy, quoteIdent(c.name))
	}
	if len(pk) == 0 {
		// A rowid table without a primary key streams in rowid order,
		// through whichever of rowid's names no column has taken.
		t.PhysicalOrder = true
		if alias := rowidAlias(t.Columns); alias != "" && !k.withoutRowid {
			ti.orderBy = []string{alias}
		}
	}
	if t.ForeignKeys, err = readForeignKeys(ctx, q, name); err != nil {
		return nil, err
	}
	ti.table = t
	return ti, nil
}

// rowidAlias returns a name that refers to the rowid in a table with cols,
// or "" if columns shadow all of them.
func rowidAlias(cols []source.Column) string {
next:
	for _, alias := range []string{"rowid", "_rowid_", "oid"} {
		for _, c := range cols {
			if strings.EqualFold(c.Name, alias) {
				continue next
			}
		}
		return alias
	}
	return ""
}

func readForeignKeys(ctx context.Context, q queryer, name string) ([]source.ForeignKey, error) {
	rows, err := q.QueryContext(ctx,
		`SELECT id, "table", "from", "to" FROM pragma_foreign_key_list(?, 'main') ORDER BY id, seq`, name)
	if err != nil {
		return nil, fmt.Errorf("foreign keys of %q: %w", name, err)
	}
	defer rows.Close()
	var fks []source.ForeignKey
	last := int64(-1)
	for rows.Next() {
		var id int64
		var ref, from string
		var to sql.NullString
		if err := rows.Scan(&id, &ref, &from, &to); err != nil {
			return nil, fmt.Errorf("foreign keys of %q: %w", name, err)
		}
		if id != last || len(fks) == 0 {
			fks = append(fks, source.ForeignKey{RefTable: ref})
			last = id
		}
		fk := &fks[len(fks)-1]
		fk.Columns = append(fk.Columns, from)
		if to.Valid {
			fk.RefColumns = append(fk.RefColumns, to.String)
		}
	}
	return fks, rows.Err()
}

// resolveForeignKeys spells every referenced table as the table is named
// (SQLite matches names case-insensitively) and fills in the referenced
// columns of a foreign key that names none: those of the primary key.
func resolveForeignKeys(tables []*tableInfo) error {
	byFold := make(map[string]*source.Table, len(tables))
	for _, t := range tables {
		byFold[strings.ToLower(t.table.Name)] = &t.table
	}
	for _, t := range tables {
		for i := range t.table.ForeignKeys {
			fk := &t.table.ForeignKeys[i]
			ref, ok := byFold[strings.ToLower(fk.RefTable)]
			if !ok {
				continue // a dangling reference; SQLite allows it
			}
			fk.RefTable = ref.Name
			if len(fk.RefColumns) == 0 && len(ref.PrimaryKey) == len(fk.Columns) {
				fk.RefColumns = append([]string(nil), ref.PrimaryKey...)
			}
		}
	}
	return nil
}

// sequenceStatements restores sqlite_sequence exactly: after the load it
// holds the largest rowid of each AUTOINCREMENT table, which may be below
// the counter the original had reached.
func sequenceStatements(ctx context.Context, q queryer, kinds map[string]tableKind) ([]string, error) {
	if _, ok := kinds["sqlite_sequence"]; !ok {
		return nil, nil
	}
	rows, err := q.QueryContext(ctx, "SELECT +name, +seq FROM main.sqlite_sequence ORDER BY rowid")
	if err != nil {
		return nil, fmt.Errorf("sqlite_sequence: %w", err)
	}
	defer rows.Close()
	stmts := []string{"DELETE FROM main.sqlite_sequence"}
	for rows.Next() {
		var name, seq any
		if err := rows.Scan(&name, &seq); err != nil {
			return nil, fmt.Errorf("sqlite_sequence: %w", err)
		}
		n, err := sqlLiteral(name)
		if err != nil {
			return nil, fmt.Errorf("sqlite_sequence: %w", err)
		}
		s, err := sqlLiteral(seq)
		if err != nil {
			return nil, fmt.Errorf("sqlite_sequence: %w", err)
		}
		stmts = append(stmts, "INSERT INTO main.sqlite_sequence(name, seq) VALUES ("+n+", "+s+")")
	}
	return stmts, rows.Err()
}

func queryRow(ctx context.Context, q queryer, query string, dst any) error {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("%s: %w", query, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return fmt.Errorf("%s: %w", query, err)
		}
		return fmt.Errorf("%s: no result", query)
	}
	if err := rows.Scan(dst); err != nil {
		return fmt.Errorf("%s: %w", query, err)
	}
	return rows.Close()
}
