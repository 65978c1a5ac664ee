package synth

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"strings"
)

// A sink receives generated batches, parents before children.
type sink interface {
	write(ctx context.Context, b *batch) error
}

// maxRowsPerInsert bounds the rows of one multi-row INSERT.
const maxRowsPerInsert = 500

func rowsPerInsert(d dialect, t *tableDef) int {
	return min(maxRowsPerInsert, d.maxParams()/len(t.cols))
}

// insertPrefix is "INSERT INTO t (c1, c2) VALUES ".
func insertPrefix(d dialect, t *tableDef) string {
	names := make([]string, len(t.cols))
	for i, c := range t.cols {
		names[i] = c.name
	}
	return "INSERT INTO " + d.quote(t.name) + " (" + quoteList(d, names) + ") VALUES "
}

// sqlSink inserts batches through a transaction with multi-row INSERTs;
// statements of full size are prepared once per table.
type sqlSink struct {
	tx    *sql.Tx
	d     dialect
	stmts [numTables]*sql.Stmt
}

func newSQLSink(tx *sql.Tx, d dialect) *sqlSink { return &sqlSink{tx: tx, d: d} }

func (s *sqlSink) write(ctx context.Context, b *batch) error {
	for t, rows := range b.rows {
		if err := s.insert(ctx, t, rows); err != nil {
			return err
		}
	}
	return nil
}

func (s *sqlSink) insert(ctx context.Context, t int, rows [][]any) error {
	def := schemaTables[t]
	per := rowsPerInsert(s.d, def)
	for len(rows) > 0 {
		n := min(per, len(rows))
		args := make([]any, 0, n*len(def.cols))
		for _, r := range rows[:n] {
			for _, v := range r {
				args = append(args, s.d.arg(v))
			}
		}
		var err error
		if n == per {
			if s.stmts[t] == nil {
				if s.stmts[t], err = s.tx.PrepareContext(ctx, s.insertSQL(def, n)); err != nil {
					return fmt.Errorf("synth: prepare insert into %s: %w", def.name, err)
				}
			}
			_, err = s.stmts[t].ExecContext(ctx, args...)
		} else {
			_, err = s.tx.ExecContext(ctx, s.insertSQL(def, n), args...)
		}
		if err != nil {
			return fmt.Errorf("synth: insert %d rows into %s: %w", n, def.name, err)
		}
		rows = rows[n:]
	}
	return nil
}

func (s *sqlSink) insertSQL(t *tableDef, rows int) string {
	var b strings.Builder
	b.WriteString(insertPrefix(s.d, t))
	p := 1
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := range t.cols {
			if c > 0 {
				b.WriteString(", ")
			}
			b.WriteString(s.d.param(p))
			p++
		}
		b.WriteByte(')')
	}
	return b.String()
}

// close releases the prepared statements.
func (s *sqlSink) close() {
	for i, st := range s.stmts {
		if st != nil {
			st.Close()
			s.stmts[i] = nil
		}
	}
}

// scriptSink writes batches as INSERT statements with literals, one
// statement per line.
type scriptSink struct {
	w   io.Writer
	d   dialect
	buf []byte
}

func (s *scriptSink) write(ctx context.Context, b *batch) error {
	for t, rows := range b.rows {
		def := schemaTables[t]
		per := rowsPerInsert(s.d, def)
		prefix := insertPrefix(s.d, def)
		for len(rows) > 0 {
			n := min(per, len(rows))
			s.buf = append(s.buf[:0], prefix...)
			for i, r := range rows[:n] {
				if i > 0 {
					s.buf = append(s.buf, ",\n"...)
				}
				s.buf = append(s.buf, '(')
				for j, v := range r {
					if j > 0 {
						s.buf = append(s.buf, ", "...)
					}
					s.buf = s.d.appendLiteral(s.buf, v)
				}
				s.buf = append(s.buf, ')')
			}
			s.buf = append(s.buf, ";\n"...)
			if _, err := s.w.Write(s.buf); err != nil {
				return fmt.Errorf("synth: write script: %w", err)
			}
			rows = rows[n:]
		}
	}
	return ctx.Err()
}

// countSink counts rows and approximate dump bytes per table, including
// the audit_log rows the trigger would write.
type countSink struct {
	rows  [numTables]int64
	bytes [numTables]int64
}

func (s *countSink) write(_ context.Context, b *batch) error {
	for t, rows := range b.rows {
		s.rows[t] += int64(len(rows))
		for _, r := range rows {
			for _, v := range r {
				s.bytes[t] += int64(textSize(v)) + 1
			}
			if t == tReports { // at, 'trigger', 'report <id> geschreven'
				s.rows[tAuditLog]++
				s.bytes[tAuditLog] += int64(textSize(r[3])+len("trigger")+textSize(r[0])+len("report  geschreven")) + 3
			}
		}
	}
	return nil
}
