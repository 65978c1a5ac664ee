package mariadb

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/kluis-nl/kluis/source"
)

// valueKind is how a column's values are carried in kluis-row-v1 (see the
// package documentation, "Values").
type valueKind uint8

const (
	vText   valueKind = iota // t: the text as the server prints it
	vInt                     // i, or t with the decimal digits above int64
	vFloat                   // r: FLOAT, read widened to DOUBLE
	vDouble                  // r
	vBit                     // i, or t with the decimal digits above int64
	vBlob                    // b
)

// typeName returns the type name that starts a COLUMN_TYPE, e.g. "bigint"
// for "bigint(20) unsigned". Snapshot and Target both derive a column's
// kind from it (the Target has only the manifest's COLUMN_TYPE), so they
// agree by construction.
func typeName(colType string) string {
	t := strings.ToLower(colType)
	if j := strings.IndexAny(t, "( "); j >= 0 {
		t = t[:j]
	}
	return t
}

// kindOf maps a type name to a valueKind.
func kindOf(dataType string) valueKind {
	switch strings.ToLower(dataType) {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year":
		return vInt
	case "float":
		return vFloat
	case "double", "double precision", "real":
		return vDouble
	case "bit":
		return vBit
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob",
		"geometry", "point", "linestring", "polygon", "multipoint",
		"multilinestring", "multipolygon", "geometrycollection":
		return vBlob
	}
	return vText
}

// selectSQL returns the query that streams cols of table, in primary-key
// order when orderBy is given. FLOAT columns are read as DOUBLE: the server
// prints a FLOAT with six significant digits only, which loses precision,
// while widening to DOUBLE is exact and DOUBLE prints in full.
func selectSQL(table string, cols []column, orderBy []string) string {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		if c.kind == vFloat {
			b.WriteString("CAST(" + quoteIdent(c.name) + " AS DOUBLE)")
		} else {
			b.WriteString(quoteIdent(c.name))
		}
	}
	b.WriteString(" FROM ")
	b.WriteString(quoteIdent(table))
	if len(orderBy) > 0 {
		b.WriteString(" ORDER BY ")
		for i, c := range orderBy {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(quoteIdent(c))
		}
	}
	return b.String()
}

// queryer is what *sql.Conn and *sql.DB offer.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// ctxCheckEvery is how many rows stream between checks of the context.
const ctxCheckEvery = 256

// streamRows runs query (text protocol: no arguments) and encodes every row
// with enc, converting each column by its kind.
func streamRows(ctx context.Context, q queryer, query string, cols []column, enc *source.RowEncoder) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	defer func() {
		if err != nil {
			// Closing rows would read the rest of the result; cancelling
			// makes the driver drop the connection instead.
			cancel()
		}
	}()
	raw := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	vals := make([]source.Value, len(cols))
	var n int64
	for rows.Next() {
		n++
		if n%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("row %d: %w", n, err)
		}
		for i, b := range raw {
			v, err := toValue(cols[i].kind, b)
			if err != nil {
				return fmt.Errorf("row %d column %s: %w", n, cols[i].name, err)
			}
			vals[i] = v
		}
		if err := enc.Encode(vals); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return ctx.Err()
}

// toValue converts a column's text-protocol bytes (nil for NULL).
func toValue(k valueKind, b []byte) (source.Value, error) {
	if b == nil {
		return source.NullValue(), nil
	}
	switch k {
	case vInt:
		return intValue(b)
	case vFloat, vDouble:
		f, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			return source.Value{}, fmt.Errorf("float %q: %w", b, err)
		}
		return source.FloatValue(f), nil
	case vBit:
		if len(b) > 8 {
			return source.Value{}, fmt.Errorf("BIT value of %d bytes", len(b))
		}
		var buf [8]byte
		copy(buf[8-len(b):], b)
		return unsignedValue(binary.BigEndian.Uint64(buf[:])), nil
	case vBlob:
		return source.BlobValue(b), nil
	}
	return source.TextValue(b), nil
}

// intValue parses a decimal integer: an int64 as such, a larger unsigned
// value (BIGINT UNSIGNED) as the text of its digits.
func intValue(b []byte) (source.Value, error) {
	i, err := strconv.ParseInt(string(b), 10, 64)
	if err == nil {
		return source.IntValue(i), nil
	}
	u, uerr := strconv.ParseUint(string(b), 10, 64)
	if uerr != nil {
		return source.Value{}, fmt.Errorf("integer %q: %w", b, err)
	}
	return unsignedValue(u), nil
}

func unsignedValue(u uint64) source.Value {
	if u <= math.MaxInt64 {
		return source.IntValue(int64(u))
	}
	return source.TextValue(strconv.AppendUint(nil, u, 10))
}

// toArg converts a decoded value into a statement argument for a column of
// kind k: the value loads back as it was read.
func toArg(k valueKind, v source.Value) (any, error) {
	switch v.Kind {
	case source.KindNull:
		return nil, nil
	case source.KindInt:
		return v.Int, nil
	case source.KindFloat:
		return v.Float, nil
	case source.KindText:
		if k == vInt || k == vBit {
			// An unsigned value above int64: bound as a number, since a
			// string loaded into a BIT column would be taken as its bytes.
			u, err := strconv.ParseUint(string(v.Bytes), 10, 64)
			if err != nil || u <= math.MaxInt64 || strconv.FormatUint(u, 10) != string(v.Bytes) {
				return nil, errors.New("integer text is not an unsigned value above 2^63-1")
			}
			return u, nil
		}
		return string(v.Bytes), nil
	case source.KindBlob:
		if v.Bytes == nil {
			return []byte{}, nil // the driver binds a nil []byte as NULL
		}
		return v.Bytes, nil
	}
	return nil, fmt.Errorf("unknown value kind %v", v.Kind)
}
