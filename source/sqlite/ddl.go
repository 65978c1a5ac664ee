package sqlite

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kluis-nl/kluis/source"
)

// DDLFormat names the framing of the sqlite engine's schema streams,
// specified here and in docs/format.md, section "SQLite schema streams".
//
// # kluis-sqlite-ddl-v1
//
// A schema stream (pre or post) is UTF-8-agnostic bytes: the line
//
//	-- kluis-sqlite-ddl-v1
//
// followed by zero or more statements, each framed as
//
//	-- statement <N>\n<N bytes of SQL>\n
//
// where <N> is the statement's length in bytes, in decimal without leading
// zeros, at least 1 and at most MaxStatement. The SQL is one complete
// statement ending in ";", executed as it is; the framing, not the ";", says
// where it ends, because SQLite trigger bodies hold several ";" and names
// and string literals may hold ";" and newlines. Both framing lines are SQL
// comments, so a stream whose statements contain no comments at their end
// can also be fed to the sqlite3 shell. A stream that ends inside a frame is
// an error.
const DDLFormat = "kluis-sqlite-ddl-v1"

// MaxStatement is the longest statement a schema stream may hold.
const MaxStatement = source.MaxDDLStatement

// ErrBadDDL is wrapped by every error about a malformed schema stream.
var ErrBadDDL = errors.New("malformed " + DDLFormat + " stream")

const (
	ddlHeader    = "-- " + DDLFormat + "\n"
	ddlStmtStart = "-- statement "
)

// ddlWriter writes a schema stream; the first error sticks.
type ddlWriter struct {
	w      io.Writer
	err    error
	header bool
}

func (d *ddlWriter) write(s string) {
	if d.err == nil {
		_, d.err = io.WriteString(d.w, s)
	}
}

// stmt writes one statement, adding the terminating ";".
func (d *ddlWriter) stmt(sql string) {
	if !d.header {
		d.write(ddlHeader)
		d.header = true
	}
	sql += ";"
	if len(sql) > MaxStatement {
		if d.err == nil {
			d.err = fmt.Errorf("sqlite: a statement of %d bytes exceeds the %d-byte limit of %s", len(sql), MaxStatement, DDLFormat)
		}
		return
	}
	d.write(ddlStmtStart + strconv.Itoa(len(sql)) + "\n" + sql + "\n")
}

// close writes the header of a stream without statements.
func (d *ddlWriter) close() error {
	if !d.header {
		d.write(ddlHeader)
		d.header = true
	}
	return d.err
}

// DDLReader reads the statements of a kluis-sqlite-ddl-v1 stream
// (docs/format.md, "SQLite schema streams").
type DDLReader = source.DDLReader

// NewDDLReader returns a reader of the statements in r.
func NewDDLReader(r io.Reader) *DDLReader {
	return source.NewDDLReader(r, DDLFormat, ErrBadDDL)
}

// sqlLiteral spells a value the driver returned as an SQL literal of the
// same storage class.
func sqlLiteral(x any) (string, error) {
	switch x := x.(type) {
	case nil:
		return "NULL", nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		switch {
		case math.IsNaN(x):
			return "NULL", nil // SQLite stores no NaN
		case math.IsInf(x, 1):
			return "9e999", nil
		case math.IsInf(x, -1):
			return "-9e999", nil
		}
		s := strconv.FormatFloat(x, 'g', -1, 64)
		if !strings.ContainsAny(s, ".e") {
			s += ".0" // keep it a REAL
		}
		return s, nil
	case string:
		if utf8.ValidString(x) && !strings.ContainsRune(x, 0) {
			return quoteString(x), nil
		}
		return "CAST(X'" + hex.EncodeToString([]byte(x)) + "' AS TEXT)", nil
	case []byte:
		return "X'" + hex.EncodeToString(x) + "'", nil
	}
	return "", fmt.Errorf("unexpected driver value of type %T", x)
}
