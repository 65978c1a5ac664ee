package mariadb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/kluis-nl/kluis/source"
)

// loadMethod is how LoadTable sends rows (see the package documentation,
// "Loading", for the measurements behind the choice).
type loadMethod int

const (
	loadAuto   loadMethod = iota // LOAD DATA when the server allows it, else INSERT
	loadInsert                   // prepared multi-row INSERT batches
	loadInfile                   // LOAD DATA LOCAL INFILE from a registered reader
)

// forceLoad overrides the choice of NewTarget; tests set it.
var forceLoad = loadAuto

const (
	maxBatchRows  = 1000
	maxParams     = 65535
	maxBatchBytes = 4 << 20
)

// load runs one table's load in a transaction on conn.
func (t *Target) load(ctx context.Context, conn *sql.Conn, table string, cols []column, rows io.Reader) (err error) {
	if _, err := conn.ExecContext(ctx, "START TRANSACTION"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	if t.method == loadInfile {
		err = t.loadInfile(ctx, conn, table, cols, rows)
	} else {
		err = t.loadInsert(ctx, conn, table, cols, rows)
	}
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}

// batchBytes is the most argument bytes one INSERT carries: well within
// the server's max_allowed_packet.
func (t *Target) batchBytes() int {
	b := int(t.maxPacket / 4)
	if b <= 0 || b > maxBatchBytes {
		b = maxBatchBytes
	}
	return b
}

// insertSQL returns INSERT INTO table (cols) VALUES (?, …), … for n rows.
func insertSQL(table string, cols []column, n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(quoteIdent(table))
	b.WriteString(" (")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(c.name))
	}
	b.WriteString(") VALUES ")
	row := "(" + strings.Repeat("?, ", len(cols)-1) + "?)"
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}

// loadInsert sends rows as prepared multi-row INSERTs of up to
// maxBatchRows rows (fewer for wide tables: at most maxParams placeholders)
// or batchBytes bytes.
func (t *Target) loadInsert(ctx context.Context, conn *sql.Conn, table string, cols []column, rows io.Reader) error {
	perBatch := min(maxBatchRows, maxParams/len(cols))
	budget := t.batchBytes()
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	args := make([]any, 0, perBatch*len(cols))
	size, n := 0, 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		var err error
		if n == perBatch {
			if full == nil {
				if full, err = conn.PrepareContext(ctx, insertSQL(table, cols, n)); err != nil {
					return err
				}
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			var st *sql.Stmt
			if st, err = conn.PrepareContext(ctx, insertSQL(table, cols, n)); err != nil {
				return err
			}
			_, err = st.ExecContext(ctx, args...)
			st.Close()
		}
		args, size, n = args[:0], 0, 0
		return err
	}
	dec := source.NewRowDecoder(rows)
	for {
		vals, err := dec.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		row := dec.Rows()
		if len(vals) != len(cols) {
			return fmt.Errorf("row %d has %d fields for %d columns", row, len(vals), len(cols))
		}
		for i, v := range vals {
			a, err := toArg(cols[i].kind, v)
			if err != nil {
				return fmt.Errorf("row %d column %s: %w", row, cols[i].name, err)
			}
			if b, ok := a.([]byte); ok {
				a = append([]byte{}, b...) // the decoder reuses its buffer; empty stays non-nil (not NULL)
			}
			args = append(args, a)
			size += len(v.Bytes) + 8
		}
		n++
		if n == perBatch || size >= budget {
			if err := flush(); err != nil {
				return fmt.Errorf("rows up to %d: %w", row, err)
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("rows up to %d: %w", dec.Rows(), err)
	}
	return nil
}

// loadInfile streams rows through LOAD DATA LOCAL INFILE from a reader
// registered with the driver under a random name (no file is ever read).
// The server must allow it (local_infile). LOCAL makes the server skip a
// row with a duplicate key, with a warning, instead of failing: a load
// that inserted fewer rows than the stream holds fails here, naming the
// first warning's level and code (not its text, which quotes the row).
// Conversion warnings are left, as for INSERT, to the fingerprint check
// (the empty ENUM value, which loads exactly, warns too).
func (t *Target) loadInfile(ctx context.Context, conn *sql.Conn, table string, cols []column, rows io.Reader) error {
	var rnd [16]byte
	rand.Read(rnd[:])
	name := "kluis-" + hex.EncodeToString(rnd[:])
	pr, pw := io.Pipe()
	defer pr.Close()
	mysql.RegisterReaderHandler(name, func() io.Reader { return pr })
	defer mysql.DeregisterReaderHandler(name)

	type written struct {
		rows int64
		err  error
	}
	done := make(chan written, 1)
	go func() {
		n, err := writeInfile(pw, cols, rows)
		pw.CloseWithError(err)
		done <- written{n, err}
	}()
	res, err := conn.ExecContext(ctx, infileSQL(name, table, cols))
	pr.CloseWithError(errors.New("load ended"))
	w := <-done
	switch {
	case w.err != nil && !errors.Is(w.err, io.ErrClosedPipe) && (err == nil || !strings.Contains(err.Error(), w.err.Error())):
		if err != nil {
			// Both wrapped: callers find the server's *mysql.MySQLError
			// (and reduce its message, which can quote row values).
			return fmt.Errorf("%w (%w)", w.err, err)
		}
		return w.err
	case err != nil:
		return err
	}
	loaded, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if loaded != w.rows {
		// The warning's level and code only: its message can quote the
		// row ("Duplicate entry '…' for key …"), which is personal data.
		first := "none"
		var level, msg string
		var code int
		if conn.QueryRowContext(ctx, "SHOW WARNINGS LIMIT 1").Scan(&level, &code, &msg) == nil {
			first = fmt.Sprintf("%s %d", level, code)
		}
		return fmt.Errorf("%d of %d rows loaded; the first warning: %s", loaded, w.rows, first)
	}
	return nil
}

// infileSQL returns the LOAD DATA statement for cols. Blobs travel as hex
// (UNHEX), BIT values and years as numbers (CAST): a BIT column would take
// a string as its bytes, a YEAR column "0" as 2000. When any column needs
// such a SET clause, every column goes through a variable: MariaDB 10.11
// otherwise ignores NO_AUTO_VALUE_ON_ZERO and gives a 0 read straight into
// an AUTO_INCREMENT column a new value.
func infileSQL(name, table string, cols []column) string {
	var b strings.Builder
	b.WriteString("LOAD DATA LOCAL INFILE '")
	b.WriteString("Reader::" + name)
	b.WriteString("' INTO TABLE ")
	b.WriteString(quoteIdent(table))
	b.WriteString(" CHARACTER SET utf8mb4 (")
	viaVars := false
	for _, c := range cols {
		if c.kind == vBlob || c.kind == vBit || c.dataType == "year" {
			viaVars = true
		}
	}
	var set []string
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		if !viaVars {
			b.WriteString(quoteIdent(c.name))
			continue
		}
		v := "@v" + strconv.Itoa(i)
		b.WriteString(v)
		switch {
		case c.kind == vBlob:
			v = "UNHEX(" + v + ")"
		case c.kind == vBit:
			v = "CAST(" + v + " AS UNSIGNED)"
		case c.dataType == "year":
			v = "CAST(" + v + " AS SIGNED)"
		}
		set = append(set, quoteIdent(c.name)+" = "+v)
	}
	b.WriteString(")")
	if len(set) > 0 {
		b.WriteString(" SET ")
		b.WriteString(strings.Join(set, ", "))
	}
	return b.String()
}

// writeInfile converts a kluis-row-v1 stream into LOAD DATA's default
// format: TAB between fields, LF after rows, \N for NULL, and the escapes
// \\, \t, \n and \r, which kluis-row-v1 text shares.
func writeInfile(w io.Writer, cols []column, rows io.Reader) (int64, error) {
	bw := make([]byte, 0, 256<<10)
	dec := source.NewRowDecoder(rows)
	for {
		vals, err := dec.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return dec.Rows(), err
		}
		if len(vals) != len(cols) {
			return dec.Rows(), fmt.Errorf("row %d has %d fields for %d columns", dec.Rows(), len(vals), len(cols))
		}
		for i, v := range vals {
			if i > 0 {
				bw = append(bw, '\t')
			}
			switch v.Kind {
			case source.KindNull:
				bw = append(bw, '\\', 'N')
			case source.KindInt:
				bw = strconv.AppendInt(bw, v.Int, 10)
			case source.KindFloat:
				bw = strconv.AppendFloat(bw, v.Float, 'e', -1, 64)
			case source.KindText:
				for _, c := range v.Bytes {
					switch c {
					case '\\':
						bw = append(bw, '\\', '\\')
					case '\t':
						bw = append(bw, '\\', 't')
					case '\n':
						bw = append(bw, '\\', 'n')
					case '\r':
						bw = append(bw, '\\', 'r')
					default:
						bw = append(bw, c)
					}
				}
			case source.KindBlob:
				bw = hex.AppendEncode(bw, v.Bytes)
			}
		}
		bw = append(bw, '\n')
		if len(bw) >= 256<<10 {
			if _, err := w.Write(bw); err != nil {
				return dec.Rows(), err
			}
			bw = bw[:0]
		}
	}
	if len(bw) > 0 {
		if _, err := w.Write(bw); err != nil {
			return dec.Rows(), err
		}
	}
	return dec.Rows(), nil
}
