package mariadb

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/kluis-nl/kluis/source"
)

// Encoding is the table stream encoding of this engine: kluis-row-v1 with
// the value mapping of the package documentation.
const Encoding = source.RowEncoding

// relation is a table or sequence of the database: what the snapshot reads
// and holds a metadata lock on.
type relation struct {
	name   string
	typ    string // information_schema.TABLES.TABLE_TYPE
	engine string
}

// column is one column of a table or view.
type column struct {
	name      string
	colType   string // COLUMN_TYPE, e.g. "bigint(20) unsigned"
	dataType  string // its type name (typeName), e.g. "bigint"
	nullable  bool
	generated bool
	kind      valueKind
}

// tableInfo is a streamed table: its manifest metadata and what reading it
// needs.
type tableInfo struct {
	table   source.Table
	cols    []column // streamed columns, in table order
	orderBy []string // primary key columns
}

// catalog is what a snapshot reads of the database's structure.
type catalog struct {
	tables    []*tableInfo // base tables by name, in byte order
	pre, post []string     // DDL statements
}

// listRelations returns the base tables and sequences of the current
// database, in byte order of their names. It reads the live data
// dictionary, not the transaction's snapshot.
func listRelations(ctx context.Context, q queryer) ([]relation, error) {
	rows, err := q.QueryContext(ctx, `SELECT TABLE_NAME, TABLE_TYPE, COALESCE(ENGINE, '')
FROM information_schema.TABLES
WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE NOT IN ('VIEW', 'TEMPORARY')`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var rels []relation
	for rows.Next() {
		var r relation
		if err := rows.Scan(&r.name, &r.typ, &r.engine); err != nil {
			return nil, err
		}
		rels = append(rels, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sort.Slice(rels, func(i, j int) bool { return rels[i].name < rels[j].name })
	return rels, nil
}

func sameRelations(a, b []relation) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// readCatalog reads the structure of the current database. The relations
// must be locked (see touchRelations) so that their definitions cannot
// change while it reads.
func readCatalog(ctx context.Context, conn *sql.Conn, db string, rels []relation) (*catalog, error) {
	cols, err := readColumns(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("reading columns: %w", err)
	}
	pks, err := readPrimaryKeys(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("reading primary keys: %w", err)
	}
	fks, err := readForeignKeys(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("reading foreign keys: %w", err)
	}
	cat := &catalog{}
	dbDefault, err := databaseDefaults(ctx, conn)
	if err != nil {
		return nil, err
	}
	cat.pre = append(cat.pre, dbDefault)

	var setvals []string
	for _, r := range rels {
		if r.typ != "SEQUENCE" {
			continue
		}
		ddl, err := showCreate(ctx, conn, "SHOW CREATE SEQUENCE "+quoteIdent(r.name), "Create Table")
		if err != nil {
			return nil, fmt.Errorf("sequence %s: %w", r.name, err)
		}
		cat.pre = append(cat.pre, ddl)
		var next, round string
		err = conn.QueryRowContext(ctx, "SELECT next_not_cached_value, cycle_count FROM "+quoteIdent(r.name)).Scan(&next, &round)
		if err != nil {
			return nil, fmt.Errorf("sequence %s: %w", r.name, err)
		}
		if _, err := strconv.ParseInt(next, 10, 64); err != nil {
			return nil, fmt.Errorf("sequence %s: value %q", r.name, next)
		}
		if _, err := strconv.ParseInt(round, 10, 64); err != nil {
			return nil, fmt.Errorf("sequence %s: round %q", r.name, round)
		}
		setvals = append(setvals, "DO SETVAL("+quoteIdent(r.name)+", "+next+", 0, "+round+")")
	}
	for _, r := range rels {
		if r.typ == "SEQUENCE" {
			continue
		}
		ddl, err := showCreate(ctx, conn, "SHOW CREATE TABLE "+quoteIdent(r.name), "Create Table")
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", r.name, err)
		}
		cat.pre = append(cat.pre, rewriteSeqRefs(ddl, db))
		ti := &tableInfo{table: source.Table{Name: r.name, Table: r.name, Encoding: Encoding}}
		for _, c := range cols[r.name] {
			if c.generated {
				continue // the server computes it again on load
			}
			ti.cols = append(ti.cols, c)
			ti.table.Columns = append(ti.table.Columns, source.Column{Name: c.name, Type: c.colType, Nullable: c.nullable})
		}
		if len(ti.cols) == 0 {
			return nil, fmt.Errorf("table %s: no columns to read", r.name)
		}
		ti.orderBy = pks[r.name]
		ti.table.PrimaryKey = pks[r.name]
		ti.table.PhysicalOrder = len(ti.orderBy) == 0
		ti.table.ForeignKeys = fks[r.name]
		cat.tables = append(cat.tables, ti)
	}

	routines, err := readRoutines(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("reading routines: %w", err)
	}
	views, err := readViews(ctx, conn, db, cols)
	if err != nil {
		return nil, fmt.Errorf("reading views: %w", err)
	}
	triggers, err := readTriggers(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("reading triggers: %w", err)
	}
	cat.post = append(cat.post, routines...)
	cat.post = append(cat.post, views...)
	cat.post = append(cat.post, triggers...)
	if len(routines)+len(views)+len(triggers) > 0 {
		cat.post = append(cat.post, "SET SESSION sql_mode = "+quoteString(sessionSQLMode), "SET NAMES utf8mb4")
	}
	cat.post = append(cat.post, setvals...)
	return cat, nil
}

// databaseDefaults returns the statement that gives the target database
// the character set and collation of the current one.
func databaseDefaults(ctx context.Context, conn *sql.Conn) (string, error) {
	var cs, coll string
	err := conn.QueryRowContext(ctx, `SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME
FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()`).Scan(&cs, &coll)
	if err != nil {
		return "", fmt.Errorf("reading the database's character set: %w", err)
	}
	return "ALTER DATABASE CHARACTER SET " + quoteString(cs) + " COLLATE " + quoteString(coll), nil
}

func readColumns(ctx context.Context, q queryer) (map[string][]column, error) {
	rows, err := q.QueryContext(ctx, `SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, EXTRA
FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = DATABASE()
ORDER BY TABLE_NAME, ORDINAL_POSITION`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]column{}
	for rows.Next() {
		var table, nullable, extra string
		var c column
		if err := rows.Scan(&table, &c.name, &c.colType, &nullable, &extra); err != nil {
			return nil, err
		}
		c.nullable = nullable == "YES"
		x := strings.ToUpper(extra)
		c.generated = strings.Contains(x, "VIRTUAL GENERATED") || strings.Contains(x, "STORED GENERATED") || strings.Contains(x, "PERSISTENT GENERATED")
		c.dataType = typeName(c.colType)
		c.kind = kindOf(c.dataType)
		out[table] = append(out[table], c)
	}
	return out, rows.Err()
}

func readPrimaryKeys(ctx context.Context, q queryer) (map[string][]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT TABLE_NAME, COLUMN_NAME
FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME = 'PRIMARY'
ORDER BY TABLE_NAME, SEQ_IN_INDEX`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			return nil, err
		}
		out[table] = append(out[table], col)
	}
	return out, rows.Err()
}

// readForeignKeys returns the foreign keys between tables of the current
// database; a reference to another database is left to the DDL.
func readForeignKeys(ctx context.Context, q queryer) (map[string][]source.ForeignKey, error) {
	rows, err := q.QueryContext(ctx, `SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME
FROM information_schema.KEY_COLUMN_USAGE k
JOIN information_schema.REFERENTIAL_CONSTRAINTS r
  ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.TABLE_NAME = k.TABLE_NAME AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME
WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_SCHEMA = DATABASE()
ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]source.ForeignKey{}
	for rows.Next() {
		var table, name, col, refTable, refCol string
		if err := rows.Scan(&table, &name, &col, &refTable, &refCol); err != nil {
			return nil, err
		}
		fks := out[table]
		if n := len(fks); n == 0 || fks[n-1].Name != name {
			fks = append(fks, source.ForeignKey{Name: name, RefTable: refTable})
		}
		fk := &fks[len(fks)-1]
		fk.Columns = append(fk.Columns, col)
		fk.RefColumns = append(fk.RefColumns, refCol)
		out[table] = fks
	}
	return out, rows.Err()
}

// showCreate runs a SHOW CREATE statement and returns its column named
// field.
func showCreate(ctx context.Context, conn *sql.Conn, query, field string) (string, error) {
	m, err := showRow(ctx, conn, query)
	if err != nil {
		return "", err
	}
	v, ok := m[field]
	if !ok || !v.Valid || v.String == "" {
		return "", fmt.Errorf("%s: no %q in the result (missing privileges?)", query, field)
	}
	return v.String, nil
}

// showRow runs a SHOW statement returning one row, by column name.
func showRow(ctx context.Context, conn *sql.Conn, query string) (map[string]sql.NullString, error) {
	rows, err := conn.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%s: no result", query)
	}
	vals := make([]sql.NullString, len(names))
	ptrs := make([]any, len(names))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	m := make(map[string]sql.NullString, len(names))
	for i, n := range names {
		m[n] = vals[i]
	}
	return m, rows.Close()
}

// withSQLMode returns the statements that create a trigger or routine
// under the creation context it was created with, as mariadb-dump does:
// its sql_mode (which decides how its body is parsed), character_set_client
// and collation_connection (which decide what its string literals mean);
// all are stored with the object.
func withSQLMode(ctx context.Context, conn *sql.Conn, query, field string) ([]string, error) {
	m, err := showRow(ctx, conn, query)
	if err != nil {
		return nil, err
	}
	v, ok := m[field]
	if !ok || !v.Valid || v.String == "" {
		return nil, fmt.Errorf("%s: no definition in the result (missing privileges?)", query)
	}
	out := []string{"SET SESSION sql_mode = " + quoteString(m["sql_mode"].String)}
	cs, err := creationCharset(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", query, err)
	}
	out = append(out, cs...)
	return append(out, stripDefiner(v.String)), nil
}

// creationCharset returns the statement that sets the session's
// character_set_client and collation_connection to an object's own (from
// its SHOW CREATE row), or nothing when the row has none.
func creationCharset(m map[string]sql.NullString) ([]string, error) {
	client, coll := m["character_set_client"], m["collation_connection"]
	if !client.Valid || !coll.Valid || client.String == "" || coll.String == "" {
		return nil, nil
	}
	// Statements travel as UTF-8 (the session's utf8mb4): sent under
	// another client character set they would be read differently, so
	// only the UTF-8 family (and ASCII, a subset) is set as it was; an
	// object created under another (latin1, …) is recreated under the
	// restoring session's utf8mb4 (docs/ops.md, "What a restore brings
	// back").
	switch strings.ToLower(client.String) {
	case "utf8", "utf8mb3", "utf8mb4", "ascii":
	default:
		return nil, nil
	}
	if !charsetName.MatchString(client.String) || !charsetName.MatchString(coll.String) {
		return nil, fmt.Errorf("%w: unexpected character set %q or collation %q", ErrUnsupported, client.String, coll.String)
	}
	return []string{"SET SESSION character_set_client = " + client.String + ", collation_connection = " + coll.String}, nil
}

// charsetName is what a character set or collation name looks like.
var charsetName = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// readRoutines returns the statements that create the stored procedures
// and functions, by type and name.
func readRoutines(ctx context.Context, conn *sql.Conn) ([]string, error) {
	rows, err := conn.QueryContext(ctx, `SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES
WHERE ROUTINE_SCHEMA = DATABASE()`)
	if err != nil {
		return nil, err
	}
	type routine struct{ typ, name string }
	var rs []routine
	for rows.Next() {
		var r routine
		if err := rows.Scan(&r.typ, &r.name); err != nil {
			rows.Close()
			return nil, err
		}
		rs = append(rs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].typ != rs[j].typ {
			return rs[i].typ > rs[j].typ // procedures, then functions
		}
		return rs[i].name < rs[j].name
	})
	var out []string
	for _, r := range rs {
		var field string
		switch r.typ {
		case "PROCEDURE":
			field = "Create Procedure"
		case "FUNCTION":
			field = "Create Function"
		default:
			return nil, fmt.Errorf("%w: %s %s (only procedures and functions are backed up)", ErrUnsupported, strings.ToLower(r.typ), r.name)
		}
		stmts, err := withSQLMode(ctx, conn, "SHOW CREATE "+r.typ+" "+quoteIdent(r.name), field)
		if err != nil {
			return nil, err
		}
		out = append(out, stmts...)
	}
	return out, nil
}

// readViews returns the statements that create the views: first a stand-in
// for each (a view of constants with the view's column names), then each
// real definition in place of its stand-in, so that views may refer to
// views in any order.
func readViews(ctx context.Context, conn *sql.Conn, db string, cols map[string][]column) ([]string, error) {
	rows, err := conn.QueryContext(ctx, `SELECT TABLE_NAME FROM information_schema.TABLES
WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'VIEW'`)
	if err != nil {
		return nil, err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sort.Strings(names)
	var standIns, real []string
	for _, v := range names {
		m, err := showRow(ctx, conn, "SHOW CREATE VIEW "+quoteIdent(v))
		if err != nil {
			return nil, fmt.Errorf("view %s: %w", v, err)
		}
		ddl := m["Create View"].String
		if ddl == "" {
			return nil, fmt.Errorf("view %s: SHOW CREATE VIEW gave no definition (missing privileges?)", v)
		}
		var sel []string
		for _, c := range cols[v] {
			sel = append(sel, "1 AS "+quoteIdent(c.name))
		}
		if len(sel) == 0 {
			return nil, fmt.Errorf("view %s has no columns: it is invalid (a table or column it reads is gone); fix or drop it", v)
		}
		standIns = append(standIns, "CREATE VIEW "+quoteIdent(v)+" AS SELECT "+strings.Join(sel, ", "))
		cs, err := creationCharset(m)
		if err != nil {
			return nil, fmt.Errorf("view %s: %w", v, err)
		}
		real = append(real, "DROP VIEW "+quoteIdent(v))
		real = append(real, cs...)
		real = append(real, rewriteSeqRefs(stripDefiner(ddl), db))
	}
	return append(standIns, real...), nil
}

// readTriggers returns the statements that create the triggers, table by
// table, in their order of execution.
func readTriggers(ctx context.Context, conn *sql.Conn) ([]string, error) {
	rows, err := conn.QueryContext(ctx, `SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER
FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()`)
	if err != nil {
		return nil, err
	}
	type trigger struct {
		name, table, event, timing string
		order                      int64
	}
	var ts []trigger
	for rows.Next() {
		var t trigger
		if err := rows.Scan(&t.name, &t.table, &t.event, &t.timing, &t.order); err != nil {
			rows.Close()
			return nil, err
		}
		ts = append(ts, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sort.Slice(ts, func(i, j int) bool {
		a, b := ts[i], ts[j]
		if a.table != b.table {
			return a.table < b.table
		}
		if a.event != b.event {
			return a.event < b.event
		}
		if a.timing != b.timing {
			return a.timing < b.timing
		}
		return a.order < b.order
	})
	var out []string
	for _, t := range ts {
		stmts, err := withSQLMode(ctx, conn, "SHOW CREATE TRIGGER "+quoteIdent(t.name), "SQL Original Statement")
		if err != nil {
			return nil, fmt.Errorf("trigger %s: %w", t.name, err)
		}
		out = append(out, stmts...)
	}
	return out, nil
}
