package rowindex

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/kluis-nl/kluis/source"
)

// Decoder decodes one row line (without its LF) of a table stream; the
// values it returns are valid until the next call.
type Decoder func(line []byte) ([]source.Value, error)

// NewDecoder returns the row decoder of a table's encoding.
func NewDecoder(t source.Table) (Decoder, error) {
	switch t.Encoding {
	case source.RowEncoding:
		var buf []source.Value
		return func(line []byte) ([]source.Value, error) {
			var err error
			buf, err = source.ParseRow(buf[:0], line)
			return buf, err
		}, nil
	case "pg-copy-text":
		var fields [][]byte
		var buf []source.Value
		return func(line []byte) ([]source.Value, error) {
			var err error
			if fields, err = ParseCopyLine(fields, line); err != nil {
				return nil, err
			}
			buf = buf[:0]
			for _, f := range fields {
				if f == nil {
					buf = append(buf, source.NullValue())
				} else {
					buf = append(buf, source.TextValue(f))
				}
			}
			return buf, nil
		}, nil
	}
	return nil, fmt.Errorf("table %s: row encoding %q is not supported by dossier extraction", t.Name, t.Encoding)
}

// FieldPrefix returns line cut before its n-th field separator (the whole
// line when it has fewer). A raw TAB only ever separates fields in both
// encodings, so such a prefix is itself a valid line.
func FieldPrefix(line []byte, n int) []byte {
	off := 0
	for range n {
		i := bytes.IndexByte(line[off:], '\t')
		if i < 0 {
			return line
		}
		off += i + 1
	}
	return line[:off-1]
}

// ValueKey is the comparable form of a key value; NULL matches nothing.
// Integers and integral floats compare by their decimal form, so a SQLite
// 3 and 3.0 (and a PostgreSQL "3") meet.
func ValueKey(v source.Value) (string, bool) {
	switch v.Kind {
	case source.KindNull:
		return "", false
	case source.KindInt:
		return strconv.FormatInt(v.Int, 10), true
	case source.KindFloat:
		if v.Float == math.Trunc(v.Float) && math.Abs(v.Float) < 1<<53 {
			return strconv.FormatInt(int64(v.Float), 10), true
		}
		return strconv.FormatFloat(v.Float, 'g', -1, 64), true
	case source.KindBlob:
		return "\x00blob\x00" + string(v.Bytes), true
	}
	return string(v.Bytes), true
}

// TupleKey is the comparable form of the values at pos; a NULL in any of
// them matches nothing.
func TupleKey(row []source.Value, pos []int) (string, bool) {
	if len(pos) == 1 {
		return ValueKey(row[pos[0]])
	}
	var b strings.Builder
	for _, p := range pos {
		k, ok := ValueKey(row[p])
		if !ok {
			return "", false
		}
		b.WriteString(strconv.Itoa(len(k)))
		b.WriteByte(':')
		b.WriteString(k)
	}
	return b.String(), true
}

// ColumnIndex returns the positions of cols among t's columns.
func ColumnIndex(t source.Table, cols []string) ([]int, error) {
	out := make([]int, len(cols))
	for i, c := range cols {
		out[i] = -1
		for j, tc := range t.Columns {
			if tc.Name == c {
				out[i] = j
			}
		}
		if out[i] < 0 {
			return nil, fmt.Errorf("table %s has no column %q", t.Name, c)
		}
	}
	return out, nil
}
