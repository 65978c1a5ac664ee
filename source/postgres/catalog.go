package postgres

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/kluis-nl/kluis/source"
)

// Encoding is the name of the table stream encoding: PostgreSQL's COPY text
// format under sessionSettings, one row per line.
const Encoding = "pg-copy-text"

// userSchema and notExtensionMember are conditions shared by the catalog
// queries: objects in user schemas (every pg_* schema name is reserved) that
// no extension owns.
const userSchema = `n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'`

const notExtensionMember = `NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
	WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND d.deptype = 'e')`

// relation is one table or partitioned table as the snapshot sees it.
type relation struct {
	oid      uint32
	schema   string
	name     string
	kind     string // "r" table or leaf partition, "p" partitioned table
	filenode uint32 // 0 for a partitioned table
	parent   string // qualified name of the parent of a partition
}

func (r relation) qualified() string { return r.schema + "." + r.name }
func (r relation) ident() string     { return pgx.Identifier{r.schema, r.name}.Sanitize() }

// catalog is what the snapshot reads from the system catalogs.
type catalog struct {
	relations []relation     // every user table and partitioned table, to lock
	tables    []source.Table // leaf tables, streamed
	sequences []sequenceValue
	matviews  []string // populated materialized views, quoted, in refresh order
}

type sequenceValue struct {
	ident    string
	value    int64
	isCalled bool
}

func readCatalog(ctx context.Context, conn *pgx.Conn) (*catalog, error) {
	cat := &catalog{}
	var err error
	if cat.relations, err = readRelations(ctx, conn); err != nil {
		return nil, fmt.Errorf("reading tables: %w", err)
	}
	if cat.tables, err = readTables(ctx, conn, cat.relations); err != nil {
		return nil, err
	}
	if cat.sequences, err = readSequences(ctx, conn); err != nil {
		return nil, fmt.Errorf("reading sequences: %w", err)
	}
	if cat.matviews, err = readMatviews(ctx, conn); err != nil {
		return nil, fmt.Errorf("reading materialized views: %w", err)
	}
	return cat, nil
}

func readRelations(ctx context.Context, conn *pgx.Conn) ([]relation, error) {
	rows, err := conn.Query(ctx, `
SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, c.relfilenode,
       COALESCE(pn.nspname::text, ''), COALESCE(p.relname::text, '')
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_inherits i ON c.relispartition AND i.inhrelid = c.oid
LEFT JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
LEFT JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't' AND `+userSchema+` AND `+notExtensionMember)
	if err != nil {
		return nil, err
	}
	var rels []relation
	for rows.Next() {
		var r relation
		var pschema, pname string
		if err := rows.Scan(&r.oid, &r.schema, &r.name, &r.kind, &r.filenode, &pschema, &pname); err != nil {
			return nil, err
		}
		if pname != "" {
			r.parent = pschema + "." + pname
		}
		rels = append(rels, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Byte order of (schema, table), whatever the server's collation.
	sort.Slice(rels, func(i, j int) bool {
		if rels[i].schema != rels[j].schema {
			return rels[i].schema < rels[j].schema
		}
		return rels[i].name < rels[j].name
	})
	return rels, nil
}

func readTables(ctx context.Context, conn *pgx.Conn, rels []relation) ([]source.Table, error) {
	var oids []uint32
	for _, r := range rels {
		if r.kind == "r" {
			oids = append(oids, r.oid)
		}
	}
	columns, err := readColumns(ctx, conn, oids)
	if err != nil {
		return nil, fmt.Errorf("reading columns: %w", err)
	}
	pks, err := readPrimaryKeys(ctx, conn, oids)
	if err != nil {
		return nil, fmt.Errorf("reading primary keys: %w", err)
	}
	fks, err := readForeignKeys(ctx, conn, oids)
	if err != nil {
		return nil, fmt.Errorf("reading foreign keys: %w", err)
	}
	var tables []source.Table
	for _, r := range rels {
		if r.kind != "r" {
			continue
		}
		tables = append(tables, source.Table{
			Name:          r.qualified(),
			Schema:        r.schema,
			Table:         r.name,
			Columns:       columns[r.oid],
			PrimaryKey:    pks[r.oid],
			ForeignKeys:   fks[r.oid],
			PhysicalOrder: len(pks[r.oid]) == 0,
			PartitionOf:   r.parent,
			Encoding:      Encoding,
		})
	}
	return tables, nil
}

// readColumns returns the streamed columns of each table in attribute
// order; stored generated columns are left out (the server recomputes them).
func readColumns(ctx context.Context, conn *pgx.Conn, oids []uint32) (map[uint32][]source.Column, error) {
	rows, err := conn.Query(ctx, `
SELECT a.attrelid, a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attrelid, a.attnum`, oids)
	if err != nil {
		return nil, err
	}
	out := make(map[uint32][]source.Column)
	for rows.Next() {
		var oid uint32
		var c source.Column
		if err := rows.Scan(&oid, &c.Name, &c.Type, &c.Nullable); err != nil {
			return nil, err
		}
		out[oid] = append(out[oid], c)
	}
	return out, rows.Err()
}

// readPrimaryKeys returns each table's primary key columns in key order.
func readPrimaryKeys(ctx context.Context, conn *pgx.Conn, oids []uint32) (map[uint32][]string, error) {
	rows, err := conn.Query(ctx, `
SELECT con.conrelid, a.attname::text
FROM pg_catalog.pg_constraint con
CROSS JOIN LATERAL pg_catalog.unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
WHERE con.contype = 'p' AND con.conrelid = ANY($1)
ORDER BY con.conrelid, k.ord`, oids)
	if err != nil {
		return nil, err
	}
	out := make(map[uint32][]string)
	for rows.Next() {
		var oid uint32
		var col string
		if err := rows.Scan(&oid, &col); err != nil {
			return nil, err
		}
		out[oid] = append(out[oid], col)
	}
	return out, rows.Err()
}

// readForeignKeys returns each table's foreign keys by name. A foreign key
// referencing a partitioned table also has a clone per referenced partition
// on the same referencing table; those clones are left out, so RefTable is
// the table the key was declared against. (Clones on referencing partitions
// are kept: each partition is a table of its own here.)
func readForeignKeys(ctx context.Context, conn *pgx.Conn, oids []uint32) (map[uint32][]source.ForeignKey, error) {
	rows, err := conn.Query(ctx, `
SELECT con.conrelid, con.conname::text, rn.nspname::text, r.relname::text,
  ARRAY(SELECT a.attname::text FROM pg_catalog.unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.ord),
  ARRAY(SELECT a.attname::text FROM pg_catalog.unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.ord)
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class r ON r.oid = con.confrelid
JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
WHERE con.contype = 'f' AND con.conrelid = ANY($1)
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint pc WHERE pc.oid = con.conparentid AND pc.conrelid = con.conrelid)
ORDER BY con.conrelid, con.conname`, oids)
	if err != nil {
		return nil, err
	}
	out := make(map[uint32][]source.ForeignKey)
	for rows.Next() {
		var oid uint32
		var fk source.ForeignKey
		var rschema, rname string
		if err := rows.Scan(&oid, &fk.Name, &rschema, &rname, &fk.Columns, &fk.RefColumns); err != nil {
			return nil, err
		}
		fk.RefTable = rschema + "." + rname
		out[oid] = append(out[oid], fk)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for oid := range out {
		sort.SliceStable(out[oid], func(i, j int) bool { return out[oid][i].Name < out[oid][j].Name })
	}
	return out, nil
}

// readSequences reads every user sequence's state. Sequences are not
// transactional, so this is their state now, at or after the snapshot:
// never behind the data, which is what a restore needs.
func readSequences(ctx context.Context, conn *pgx.Conn) ([]sequenceValue, error) {
	rows, err := conn.Query(ctx, `
SELECT n.nspname::text, c.relname::text
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'S' AND `+userSchema+` AND `+notExtensionMember)
	if err != nil {
		return nil, err
	}
	var seqs []sequenceValue
	for rows.Next() {
		var schema, name string
		if err := rows.Scan(&schema, &name); err != nil {
			return nil, err
		}
		seqs = append(seqs, sequenceValue{ident: pgx.Identifier{schema, name}.Sanitize()})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i].ident < seqs[j].ident })
	if len(seqs) == 0 {
		return nil, nil
	}
	batch := &pgx.Batch{}
	for i := range seqs {
		s := &seqs[i]
		batch.Queue("SELECT last_value, is_called FROM " + s.ident).QueryRow(func(row pgx.Row) error {
			return row.Scan(&s.value, &s.isCalled)
		})
	}
	if err := conn.SendBatch(ctx, batch).Close(); err != nil {
		return nil, err
	}
	return seqs, nil
}

// readMatviews returns the populated materialized views, each after the
// materialized views it reads from (directly or through views).
func readMatviews(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	rows, err := conn.Query(ctx, `
SELECT c.oid, n.nspname::text, c.relname::text
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'm' AND c.relispopulated AND `+userSchema+` AND `+notExtensionMember+`
ORDER BY c.oid`)
	if err != nil {
		return nil, err
	}
	names := make(map[uint32]string)
	var order []uint32
	for rows.Next() {
		var oid uint32
		var schema, name string
		if err := rows.Scan(&oid, &schema, &name); err != nil {
			return nil, err
		}
		names[oid] = pgx.Identifier{schema, name}.Sanitize()
		order = append(order, oid)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(order) == 0 {
		return nil, nil
	}
	// Edges from every view or materialized view to the relations its
	// rewrite rule reads.
	rows, err = conn.Query(ctx, `
SELECT DISTINCT r.ev_class, d.refobjid
FROM pg_catalog.pg_rewrite r
JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid
  AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
JOIN pg_catalog.pg_class rc ON rc.oid = d.refobjid AND rc.relkind IN ('v', 'm')
WHERE r.ev_class <> d.refobjid`)
	if err != nil {
		return nil, err
	}
	reads := make(map[uint32][]uint32)
	for rows.Next() {
		var from, to uint32
		if err := rows.Scan(&from, &to); err != nil {
			return nil, err
		}
		reads[from] = append(reads[from], to)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []string
	state := make(map[uint32]int) // 1 visiting, 2 done
	var visit func(oid uint32)
	visit = func(oid uint32) {
		if state[oid] != 0 {
			return // done, or a cycle (impossible for views)
		}
		state[oid] = 1
		for _, dep := range reads[oid] {
			visit(dep)
		}
		state[oid] = 2
		if name, ok := names[oid]; ok {
			out = append(out, name)
		}
	}
	for _, oid := range order {
		visit(oid)
	}
	return out, nil
}

// sqlLiteral quotes s as a standard-conforming SQL string literal.
func sqlLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
