package dossier

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/kluis-nl/kluis/source"
)

// TriggerMode says what a dossier restore into a live database does about
// the target's triggers, which may change the rows it inserts (a BEFORE
// INSERT trigger setting NEW.created = now()). Whatever the mode, every
// inserted row is read back in the transaction and compared with the
// snapshot's, column by column (docs/dossier.md, "Triggers").
type TriggerMode string

const (
	// TriggersCheck (the default): triggers fire; a row that then differs
	// from the snapshot rolls everything back, and the error names the
	// table, the columns and the table's triggers.
	TriggersCheck TriggerMode = "check"
	// TriggersDisable: the rows go in as they were. PostgreSQL: the
	// transaction runs with session_replication_role = replica (the role
	// must be allowed to set it), which also turns off foreign key
	// enforcement, so kluis checks every reference itself. MariaDB, which
	// cannot turn triggers off for a session: after each insert the row is
	// set back to the snapshot's values in the same transaction; the check
	// then proves the result exact, or rolls back. Side effects of
	// triggers on other tables (an audit row) remain on MariaDB.
	TriggersDisable TriggerMode = "disable"
	// TriggersFire: triggers fire and their changes are kept; the
	// differences are listed in the result, never hidden.
	TriggersFire TriggerMode = "fire"
)

// ParseTriggerMode parses a --triggers value; "" is TriggersCheck.
func ParseTriggerMode(s string) (TriggerMode, error) {
	switch TriggerMode(s) {
	case "", TriggersCheck:
		return TriggersCheck, nil
	case TriggersDisable, TriggersFire:
		return TriggerMode(s), nil
	}
	return "", fmt.Errorf("triggers %q: use check, disable or fire", s)
}

// ErrTriggerChanged: the target's triggers changed restored rows; nothing
// was committed.
var ErrTriggerChanged = errors.New("the target database changed restored dossier rows (triggers)")

// Difference is how the rows of one table in the target differ from the
// snapshot after the restore.
type Difference struct {
	Table string `json:"table"`
	// Columns that differ in at least one row; "(row not found)" when a
	// row could not be found by its key any more.
	Columns  []string `json:"columns"`
	Rows     int64    `json:"rows"`
	Triggers []string `json:"triggers"`
}

func (d Difference) String() string {
	trig := "none found on the table"
	if len(d.Triggers) > 0 {
		trig = strings.Join(d.Triggers, ", ")
	}
	return fmt.Sprintf("%s: %d rows differ in %s (triggers: %s)", d.Table, d.Rows, strings.Join(d.Columns, ", "), trig)
}

// rowKey identifies a row by its primary key (all columns without one).
func rowKey(tm source.TableMeta, row []source.Value) string {
	var b []byte
	pos, err := columnIndex(tm.Table, tm.PrimaryKey)
	if err != nil || len(pos) == 0 {
		return string(source.AppendRow(nil, row))
	}
	for _, p := range pos {
		b = source.AppendRow(b, row[p:p+1])
		b = append(b, 0)
	}
	return string(b)
}

// verifier is a Sink that compares each dossier row with the target's, in
// the target's transaction.
type verifier struct {
	t     *Target
	diffs map[string]*Difference
	cols  map[string]map[string]bool
	order []string
}

func (v *verifier) BeginTable(context.Context, source.TableMeta) error { return nil }
func (v *verifier) EndTable(context.Context, source.TableMeta, int64) error {
	return nil
}

func (v *verifier) Row(ctx context.Context, tm source.TableMeta, row []source.Value) error {
	if v.t.skippedKeys[tm.Name][rowKey(tm, row)] {
		return nil // an existing row, left as it was
	}
	cols, err := v.t.compareRow(ctx, tm, row)
	if err != nil {
		return fmt.Errorf("reading back table %s: %w", tm.Name, err)
	}
	if len(cols) == 0 {
		return nil
	}
	d, ok := v.diffs[tm.Name]
	if !ok {
		d = &Difference{Table: tm.Name}
		v.diffs[tm.Name] = d
		v.cols[tm.Name] = map[string]bool{}
		v.order = append(v.order, tm.Name)
	}
	d.Rows++
	for _, c := range cols {
		if !v.cols[tm.Name][c] {
			v.cols[tm.Name][c] = true
			d.Columns = append(d.Columns, c)
		}
	}
	return nil
}

func (v *verifier) result(ctx context.Context) ([]Difference, error) {
	var out []Difference
	for _, name := range v.order {
		d := v.diffs[name]
		trig, err := v.t.triggersOn(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("listing the triggers of %s: %w", name, err)
		}
		d.Triggers = trig
		out = append(out, *d)
	}
	return out, nil
}

// compareRow reads the target's row with row's key and returns the
// columns whose value differs from row's (as the INSERT wrote it).
func (t *Target) compareRow(ctx context.Context, tm source.TableMeta, row []source.Value) ([]string, error) {
	tr, err := t.d.tableRef(tm.Table.Schema, tm.Table.Table)
	if err != nil {
		return nil, err
	}
	pk, _ := columnIndex(tm.Table, tm.PrimaryKey)
	var b []byte
	b = append(b, "SELECT "...)
	if len(pk) == 0 {
		b = append(b, "COUNT(*)"...)
	} else {
		for i := range tm.Columns {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = append(b, "CASE WHEN "...)
			if b, err = t.appendSame(b, tm.Columns[i], row[i]); err != nil {
				return nil, err
			}
			b = append(b, " THEN 1 ELSE 0 END"...)
		}
	}
	b = append(b, " FROM "...)
	if t.d.engine == "postgres" {
		b = append(b, "ONLY "...)
	}
	b = append(b, tr+" WHERE "...)
	where := pk
	if len(pk) == 0 {
		where = make([]int, len(tm.Columns))
		for i := range where {
			where[i] = i
		}
	}
	for j, i := range where {
		if j > 0 {
			b = append(b, " AND "...)
		}
		if b, err = t.appendSame(b, tm.Columns[i], row[i]); err != nil {
			return nil, err
		}
	}
	n := len(tm.Columns)
	if len(pk) == 0 {
		n = 1
	}
	got, found, err := t.queryInts(ctx, string(b), n)
	if err != nil {
		return nil, err
	}
	if len(pk) == 0 {
		if !found || got[0] == 0 {
			return []string{"(a row without primary key: no equal row found)"}, nil
		}
		return nil, nil
	}
	if !found {
		return []string{"(row not found by its primary key " + strings.Join(tm.PrimaryKey, ", ") + ")"}, nil
	}
	var diff []string
	for i, g := range got {
		if g != 1 {
			diff = append(diff, tm.Columns[i].Name)
		}
	}
	return diff, nil
}

// appendSame appends a condition true when column c holds exactly v.
func (t *Target) appendSame(b []byte, c source.Column, v source.Value) ([]byte, error) {
	q, err := t.d.ident(c.Name)
	if err != nil {
		return nil, err
	}
	switch t.d.engine {
	case "postgres":
		if v.Kind == source.KindNull {
			return append(b, q+" IS NULL"...), nil
		}
		// Compare the text forms under the transaction's settings (the
		// snapshot's): exact for every type, json included.
		b = append(b, "("+q+")::text = (CAST("...)
		b = t.d.appendColumnLiteral(b, v, c)
		return append(b, " AS "+c.Type+"))::text"...), nil
	case "mariadb":
		b = append(b, "("+q+" <=> "...)
		b = t.d.appendColumnLiteral(b, v, c)
		b = append(b, ')')
		if isMariaDBText(c.Type) && v.Kind != source.KindNull {
			// <=> follows the column's collation ('a' = 'A'): also
			// compare the bytes.
			b = append(b, " AND (CONVERT("+q+" USING utf8mb4) COLLATE utf8mb4_bin = CONVERT("...)
			b = t.d.appendColumnLiteral(b, v, c)
			b = append(b, " USING utf8mb4) COLLATE utf8mb4_bin)"...)
		}
		return b, nil
	}
	b = append(b, q+" IS "...)
	return t.d.appendColumnLiteral(b, v, c), nil
}

func isMariaDBText(colType string) bool {
	t := strings.ToLower(colType)
	for _, p := range []string{"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json"} {
		if t == p || strings.HasPrefix(t, p+"(") || strings.HasPrefix(t, p+" ") {
			return true
		}
	}
	return false
}

// resetRow sets a just-inserted row back to the snapshot's values (MariaDB
// --triggers disable): an UPDATE by primary key in the same transaction.
func (t *Target) resetRow(ctx context.Context, tm source.TableMeta, row []source.Value) error {
	pk, _ := columnIndex(tm.Table, tm.PrimaryKey)
	if len(pk) == 0 {
		return nil // the read-back check still compares it
	}
	tr, err := t.d.tableRef(tm.Table.Schema, tm.Table.Table)
	if err != nil {
		return err
	}
	b := []byte("UPDATE " + tr + " SET ")
	for i, c := range tm.Columns {
		q, err := t.d.ident(c.Name)
		if err != nil {
			return err
		}
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, q+" = "...)
		b = t.d.appendColumnLiteral(b, row[i], c)
	}
	b = append(b, " WHERE "...)
	for j, i := range pk {
		if j > 0 {
			b = append(b, " AND "...)
		}
		q, _ := t.d.ident(tm.Columns[i].Name)
		b = append(b, q+" = "...)
		b = t.d.appendColumnLiteral(b, row[i], tm.Columns[i])
	}
	_, err = t.exec(ctx, string(b))
	return err
}

// triggersOn lists the triggers on a table of the target, by name.
func (t *Target) triggersOn(ctx context.Context, table string) ([]string, error) {
	var tm source.TableMeta
	for _, x := range t.tables {
		if x.Name == table {
			tm = x
		}
	}
	var q []byte
	switch t.d.engine {
	case "postgres":
		tr, err := t.d.tableRef(tm.Table.Schema, tm.Table.Table)
		if err != nil {
			return nil, err
		}
		q = append(q, "SELECT tgname::text FROM pg_catalog.pg_trigger WHERE NOT tgisinternal AND tgrelid = CAST("...)
		q = t.d.appendLiteral(q, source.TextValue([]byte(tr)))
		q = append(q, " AS pg_catalog.regclass)"...)
	case "mariadb":
		q = append(q, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = "...)
		q = t.d.appendLiteral(q, source.TextValue([]byte(tm.Table.Table)))
	default:
		q = append(q, "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = "...)
		q = t.d.appendLiteral(q, source.TextValue([]byte(tm.Table.Table)))
	}
	names, err := t.queryStrings(ctx, string(q))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

// queryInts runs q, which returns at most one row of n integers.
func (t *Target) queryInts(ctx context.Context, q string, n int) ([]int64, bool, error) {
	vals := make([]int64, n)
	found := false
	err := t.query(ctx, q, func() []any {
		ptrs := make([]any, n)
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		return ptrs
	}, func() { found = true })
	return vals, found, err
}

// queryStrings runs q, which returns one text column.
func (t *Target) queryStrings(ctx context.Context, q string) ([]string, error) {
	var out []string
	var s string
	err := t.query(ctx, q, func() []any { return []any{&s} }, func() { out = append(out, s) })
	return out, err
}

// scanSQLRows adapts a database/sql query result to Target.query.
func scanSQLRows(rows *sql.Rows, err error) func(dest func() []any, each func()) error {
	return func(dest func() []any, each func()) error {
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := rows.Scan(dest()...); err != nil {
				return err
			}
			each()
		}
		return rows.Err()
	}
}
