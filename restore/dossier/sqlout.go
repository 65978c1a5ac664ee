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
	engine string
}

func newDialect(engine string) (dialect, error) {
	switch engine {
	case "postgres", "sqlite":
		return dialect{engine: engine}, nil
	}
	return dialect{}, fmt.Errorf("engine %q: dossier SQL is not supported", engine)
}

// quoteIdent quotes one identifier with double quotes (both engines).
func quoteIdent(s string) (string, error) {
	if s == "" || strings.IndexByte(s, 0) >= 0 {
		return "", fmt.Errorf("identifier %q cannot be quoted", s)
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`, nil
}

// tableRef quotes a table: schema and table for PostgreSQL.
func (d dialect) tableRef(schema, table string) (string, error) {
	t, err := quoteIdent(table)
	if err != nil {
		return "", err
	}
	if d.engine == "postgres" && schema != "" {
		s, err := quoteIdent(schema)
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

// preamble is what a script or transaction sets first: for PostgreSQL the
// session settings the stream was written under (docs/format.md).
func (d dialect) preamble() []string {
	if d.engine == "postgres" {
		return []string{
			"SET client_encoding = 'UTF8'",
			"SET standard_conforming_strings = on",
			"SET DateStyle = 'ISO, YMD'",
			"SET IntervalStyle = 'postgres'",
			"SET TimeZone = 'UTC'",
			"SET extra_float_digits = 3",
		}
	}
	return []string{"PRAGMA foreign_keys = ON"}
}

// appendLiteral appends v as an SQL literal. PostgreSQL values are COPY
// text, which an untyped string literal turns back into the column's type.
// SQLite values keep their storage class. A CR is never written raw: the
// sqlite3 shell drops a CR before an LF even inside a literal, so such text
// is written as CAST(X'…' AS TEXT) (psql keeps a CR, and PostgreSQL text
// holds no NUL).
func (d dialect) appendLiteral(b []byte, v source.Value) []byte {
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

// insertPrefix returns "INSERT INTO t (cols) VALUES (".
func (d dialect) insertPrefix(t source.TableMeta) (string, error) {
	tr, err := d.tableRef(t.Table.Schema, t.Table.Table)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	sb.WriteString("INSERT INTO " + tr + " (")
	for i, c := range t.Columns {
		q, err := quoteIdent(c.Name)
		if err != nil {
			return "", err
		}
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(q)
	}
	sb.WriteString(") VALUES (")
	return sb.String(), nil
}

func (d dialect) insert(b []byte, prefix string, row []source.Value, oc OnConflict) []byte {
	b = append(b, prefix...)
	for i, v := range row {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = d.appendLiteral(b, v)
	}
	b = append(b, ')')
	if oc == ConflictSkip {
		b = append(b, " ON CONFLICT DO NOTHING"...)
	}
	return b
}

// SQLWriter is a Sink writing an SQL script: one transaction of INSERT
// statements, parents before children.
type SQLWriter struct {
	w      io.Writer
	d      dialect
	oc     OnConflict
	prefix string
	buf    []byte
	begun  bool
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
	p, err := s.d.insertPrefix(t)
	if err != nil {
		return err
	}
	s.prefix = p
	_, err = fmt.Fprintf(s.w, "\n-- table %s\n", strings.NewReplacer("\n", " ", "\r", " ").Replace(t.Name))
	return err
}

// Row implements Sink.
func (s *SQLWriter) Row(_ context.Context, _ source.TableMeta, row []source.Value) error {
	s.buf = s.d.insert(s.buf[:0], s.prefix, row, s.oc)
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
