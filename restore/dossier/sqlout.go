package dossier

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kluis-nl/kluis/source"
)

// OnConflict says what an insert does with a row whose key already exists.
type OnConflict string

// On-conflict policies.
const (
	ConflictFail OnConflict = "fail"
	ConflictSkip OnConflict = "skip"
)

// dialect renders SQL for one engine. Identifiers are always quoted.
type dialect struct {
	engine string // sqlite, postgres or mariadb
}

func newDialect(engine string) (dialect, error) {
	switch engine {
	case "postgres", "sqlite":
		return dialect{engine: engine}, nil
	case "mariadb", "mysql":
		return dialect{engine: "mariadb"}, nil
	}
	return dialect{}, fmt.Errorf("engine %q: dossier SQL is not supported", engine)
}

// quoteIdent quotes one identifier with double quotes (SQLite and
// PostgreSQL).
func quoteIdent(s string) (string, error) {
	if s == "" || strings.IndexByte(s, 0) >= 0 {
		return "", fmt.Errorf("identifier %q cannot be quoted", s)
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`, nil
}

// ident quotes one identifier: double quotes, or backticks for MariaDB
// (which reads a double quote as a string unless sql_mode has ANSI_QUOTES).
// A backslash is literal inside backticks, for the server and for the
// mariadb client alike.
func (d dialect) ident(s string) (string, error) {
	if d.engine != "mariadb" {
		return quoteIdent(s)
	}
	if s == "" || strings.IndexByte(s, 0) >= 0 {
		return "", fmt.Errorf("identifier %q cannot be quoted", s)
	}
	return "`" + strings.ReplaceAll(s, "`", "``") + "`", nil
}

// identList quotes and comma-joins identifiers.
func (d dialect) identList(cols []string) (string, error) {
	out := make([]string, len(cols))
	for i, c := range cols {
		q, err := d.ident(c)
		if err != nil {
			return "", err
		}
		out[i] = q
	}
	return strings.Join(out, ", "), nil
}

// tableRef quotes a table: schema and table for PostgreSQL, the table
// alone for SQLite and MariaDB (a MariaDB dossier goes into whatever
// database the connection or script uses).
func (d dialect) tableRef(schema, table string) (string, error) {
	t, err := d.ident(table)
	if err != nil {
		return "", err
	}
	if d.engine == "postgres" && schema != "" {
		s, err := d.ident(schema)
		if err != nil {
			return "", err
		}
		return s + "." + t, nil
	}
	return t, nil
}

// groupRef quotes a group name (a table name as in the manifest, possibly a
// partitioned parent that has no metadata of its own).
func (d dialect) groupRef(name string, tables []source.TableMeta) (string, error) {
	for _, t := range tables {
		if t.Name == name {
			return d.tableRef(t.Table.Schema, t.Table.Table)
		}
	}
	if d.engine == "postgres" {
		if s, t, ok := strings.Cut(name, "."); ok {
			return d.tableRef(s, t)
		}
	}
	return d.tableRef("", name)
}

// columnOf returns the column col of the group name (the first table of
// the group having it), for its type.
func columnOf(tables []source.TableMeta, name, col string) source.Column {
	for _, t := range tables {
		if t.Name != name && t.PartitionOf != name {
			continue
		}
		for _, c := range t.Columns {
			if c.Name == col {
				return c
			}
		}
	}
	return source.Column{Name: col}
}

// mariadbMode is the sql_mode of a MariaDB script or target: strict, so a
// value the target cannot hold fails the restore instead of being changed
// (as PostgreSQL would), but without NO_ZERO_DATE and NO_ZERO_IN_DATE, so
// zero dates load as they were read; NO_AUTO_VALUE_ON_ZERO keeps a 0 in an
// AUTO_INCREMENT column; no NO_BACKSLASH_ESCAPES or ANSI_QUOTES, though
// the literals written here mean the same either way.
const mariadbMode = "STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION"

// mariadbLaxMode is the sql_mode of the backup (source/mariadb), used for
// one row holding the empty ENUM error value, which strict mode refuses.
const mariadbLaxMode = "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION"

// preamble is what a script or transaction sets first: for PostgreSQL and
// MariaDB the session settings the stream was written under
// (docs/format.md), and foreign key checks on.
func (d dialect) preamble() []string {
	switch d.engine {
	case "postgres":
		return []string{
			"SET client_encoding = 'UTF8'",
			"SET standard_conforming_strings = on",
			"SET DateStyle = 'ISO, YMD'",
			"SET IntervalStyle = 'postgres'",
			"SET TimeZone = 'UTC'",
			"SET extra_float_digits = 3",
		}
	case "mariadb":
		return []string{
			"SET NAMES utf8mb4",
			"SET time_zone = '+00:00'",
			"SET sql_mode = '" + mariadbMode + "'",
			"SET foreign_key_checks = 1, unique_checks = 1",
		}
	}
	return []string{"PRAGMA foreign_keys = ON"}
}

// appendLiteral appends v as an SQL literal for a column of unknown type.
func (d dialect) appendLiteral(b []byte, v source.Value) []byte {
	return d.appendColumnLiteral(b, v, source.Column{})
}

// appendColumnLiteral appends v as an SQL literal for column c.
// PostgreSQL values are COPY text, which an untyped string literal turns
// back into the column's type. SQLite values keep their storage class. A
// CR is never written raw: the sqlite3 shell drops a CR before an LF even
// inside a literal, so such text is written as CAST(X'…' AS TEXT) (psql
// keeps a CR, and PostgreSQL text holds no NUL). MariaDB literals are in
// appendMariaDBLiteral.
func (d dialect) appendColumnLiteral(b []byte, v source.Value, c source.Column) []byte {
	if d.engine == "mariadb" {
		return appendMariaDBLiteral(b, v, c)
	}
	switch v.Kind {
	case source.KindNull:
		return append(b, "NULL"...)
	case source.KindInt:
		return strconv.AppendInt(b, v.Int, 10)
	case source.KindFloat:
		switch {
		case math.IsNaN(v.Float):
			return append(b, "NULL"...) // SQLite stores a NaN as NULL
		case math.IsInf(v.Float, 1):
			return append(b, "9e999"...)
		case math.IsInf(v.Float, -1):
			return append(b, "-9e999"...)
		}
		s := strconv.FormatFloat(v.Float, 'g', -1, 64)
		if !strings.ContainsAny(s, ".e") {
			s += ".0" // keep it a REAL
		}
		return append(b, s...)
	case source.KindBlob:
		return appendHex(b, v.Bytes)
	}
	s := v.Bytes
	if d.engine == "sqlite" && (strings.ContainsAny(string(s), "\r\x00") || !utf8.Valid(s)) {
		b = append(b, "CAST("...)
		b = appendHex(b, s)
		return append(b, " AS TEXT)"...)
	}
	return appendQuoted(b, s)
}

// appendQuoted appends s in single quotes, doubling each quote.
func appendQuoted(b, s []byte) []byte {
	b = append(b, '\'')
	for _, c := range s {
		if c == '\'' {
			b = append(b, '\'')
		}
		b = append(b, c)
	}
	return append(b, '\'')
}

func appendHex(b, v []byte) []byte {
	b = append(b, "X'"...)
	b = hex.AppendEncode(b, v)
	return append(b, '\'')
}

// inserter renders the INSERT statements of one table.
type inserter struct {
	d      dialect
	cols   []source.Column
	prefix string // INSERT INTO t (cols) VALUES (
	suffix string // ) and the on-conflict clause
	enums  []int  // MariaDB: the positions of ENUM columns
}

// newInserter prepares the INSERT statements of table t. With ConflictSkip
// a row whose key exists is left as it is: ON CONFLICT DO NOTHING, or on
// MariaDB ON DUPLICATE KEY UPDATE of the first column to itself (INSERT
// IGNORE would also turn foreign key and conversion errors into warnings).
func (d dialect) newInserter(t source.TableMeta, oc OnConflict) (*inserter, error) {
	tr, err := d.tableRef(t.Table.Schema, t.Table.Table)
	if err != nil {
		return nil, err
	}
	if len(t.Columns) == 0 {
		return nil, fmt.Errorf("table %s has no columns", t.Name)
	}
	in := &inserter{d: d, cols: t.Columns}
	var sb strings.Builder
	sb.WriteString("INSERT INTO " + tr + " (")
	for i, c := range t.Columns {
		q, err := d.ident(c.Name)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(q)
		if d.engine == "mariadb" && strings.HasPrefix(strings.ToLower(c.Type), "enum(") {
			in.enums = append(in.enums, i)
		}
	}
	sb.WriteString(") VALUES (")
	in.prefix = sb.String()
	in.suffix = ")"
	if oc == ConflictSkip {
		if d.engine == "mariadb" {
			first, _ := d.ident(t.Columns[0].Name)
			in.suffix += " ON DUPLICATE KEY UPDATE " + first + " = " + first
		} else {
			in.suffix += " ON CONFLICT DO NOTHING"
		}
	}
	return in, nil
}

// append appends the INSERT statement of row (without a terminator).
func (in *inserter) append(b []byte, row []source.Value) []byte {
	for _, i := range in.enums {
		if v := row[i]; v.Kind == source.KindText && len(v.Bytes) == 0 {
			// The empty ENUM error value (stored by a non-strict insert of
			// a value not in the list) loads only in the backup's own
			// sql_mode; the row gets it for this one statement.
			b = append(b, "SET STATEMENT sql_mode = '"+mariadbLaxMode+"' FOR "...)
			break
		}
	}
	b = append(b, in.prefix...)
	for i, v := range row {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = in.d.appendColumnLiteral(b, v, in.cols[i])
	}
	return append(b, in.suffix...)
}

// SQLWriter is a Sink writing an SQL script: one transaction of INSERT
// statements, parents before children.
type SQLWriter struct {
	w   io.Writer
	d   dialect
	oc  OnConflict
	ins *inserter
	buf []byte
}

// NewSQLWriter returns a Sink writing an SQL script for engine to w.
func NewSQLWriter(w io.Writer, engine string, header []string, oc OnConflict) (*SQLWriter, error) {
	d, err := newDialect(engine)
	if err != nil {
		return nil, err
	}
	s := &SQLWriter{w: w, d: d, oc: oc}
	var b strings.Builder
	for _, h := range header {
		b.WriteString("-- " + strings.NewReplacer("\n", " ", "\r", " ").Replace(h) + "\n")
	}
	for _, p := range d.preamble() {
		b.WriteString(p + ";\n")
	}
	b.WriteString("BEGIN;\n")
	_, err = io.WriteString(w, b.String())
	return s, err
}

// BeginTable implements Sink.
func (s *SQLWriter) BeginTable(_ context.Context, t source.TableMeta) error {
	ins, err := s.d.newInserter(t, s.oc)
	if err != nil {
		return err
	}
	s.ins = ins
	_, err = fmt.Fprintf(s.w, "\n-- table %s\n", strings.NewReplacer("\n", " ", "\r", " ").Replace(t.Name))
	return err
}

// Row implements Sink.
func (s *SQLWriter) Row(_ context.Context, _ source.TableMeta, row []source.Value) error {
	s.buf = s.ins.append(s.buf[:0], row)
	s.buf = append(s.buf, ";\n"...)
	_, err := s.w.Write(s.buf)
	return err
}

// EndTable implements Sink.
func (s *SQLWriter) EndTable(context.Context, source.TableMeta, int64) error { return nil }

// Finish writes the COMMIT.
func (s *SQLWriter) Finish() error {
	_, err := io.WriteString(s.w, "\nCOMMIT;\n")
	return err
}
