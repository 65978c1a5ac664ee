// Package rowdelta stores a table stream as a row-level delta against the
// same table in the parent snapshot, and merges a base with its deltas
// back into the table stream, both in one streaming pass.
//
// A table stream (docs/format.md, "Table streams") holds one row per line,
// rows strictly ascending by a key: some of the line's TAB-separated
// fields, compared field by field with an order per field (Key). Diff
// reads the parent's rows and the fresh rows side by side and writes only
// what changed as kluis-row-delta-v1 records (docs/format.md, "Row
// deltas"):
//
//	"+" ‖ row line ‖ LF        a row inserted or changed (the whole new line)
//	"-" ‖ key fields ‖ LF      a row deleted: its key fields, TAB-separated
//
// records strictly ascending by key. Merge applies deltas to a base: for
// each key the newest source that holds it decides (a row, or nothing for
// a deletion). Neither side holds more than one line per source in memory.
//
// The key order is an assumption about how the database ordered the rows
// (ORDER BY pk); it is never trusted: Diff refuses fresh rows that are not
// strictly ascending under it (ErrNotAscending) and Merge refuses a source
// that is not, so a mismatch costs a full table, never a wrong restore.
//
// This package knows lines and keys; it knows nothing of databases,
// snapshots or packs.
package rowdelta

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Format names the delta record encoding (docs/format.md, "Row deltas").
const Format = "kluis-row-delta-v1"

// Orders of a key field.
const (
	// OrderInt compares canonical decimal integers ("-12", "0", "7") by
	// value, as PostgreSQL orders smallint, integer and bigint.
	OrderInt = "int"
	// OrderBytes compares the field's bytes as they appear in the line.
	OrderBytes = "bytes"
)

// MaxLine is the longest line (row or record, without its LF) accepted.
const MaxLine = 256 << 20

// MaxKeyFields bounds the number of key fields (PostgreSQL allows 32).
const MaxKeyFields = 32

// ErrNotAscending is wrapped when rows are not strictly ascending by the
// key: the key order does not match the database's, or the stream is
// damaged.
var ErrNotAscending = errors.New("rows are not strictly ascending by the key")

// ErrBadRecord is wrapped by every error about a malformed line or record.
var ErrBadRecord = errors.New("malformed " + Format + " record")

// Key says which fields of a row line form its key and how each compares.
type Key struct {
	// Fields are the zero-based positions of the key's fields in a row,
	// in key order.
	Fields []int `json:"fields"`
	// Order is OrderInt or OrderBytes, one per field.
	Order []string `json:"order"`
}

// Validate checks the key's shape.
func (k Key) Validate() error {
	if len(k.Fields) == 0 || len(k.Fields) > MaxKeyFields || len(k.Order) != len(k.Fields) {
		return fmt.Errorf("row key: %d fields, %d orders (want 1 to %d, as many orders as fields)", len(k.Fields), len(k.Order), MaxKeyFields)
	}
	seen := map[int]bool{}
	for i, f := range k.Fields {
		if f < 0 || f > 1<<16 || seen[f] {
			return fmt.Errorf("row key: field position %d invalid or repeated", f)
		}
		seen[f] = true
		if k.Order[i] != OrderInt && k.Order[i] != OrderBytes {
			return fmt.Errorf("row key: unknown order %q", k.Order[i])
		}
	}
	return nil
}

// Equal reports whether k and o are the same key.
func (k Key) Equal(o Key) bool {
	if len(k.Fields) != len(o.Fields) || len(k.Order) != len(o.Order) {
		return false
	}
	for i := range k.Fields {
		if k.Fields[i] != o.Fields[i] {
			return false
		}
	}
	for i := range k.Order {
		if k.Order[i] != o.Order[i] {
			return false
		}
	}
	return true
}

// rowKey extracts the key fields of a row line into dst (slices of line).
func (k Key) rowKey(dst [][]byte, line []byte) ([][]byte, error) {
	dst = dst[:0]
	for range k.Fields {
		dst = append(dst, nil)
	}
	found := 0
	pos := 0
	for i := 0; ; i++ {
		end := bytes.IndexByte(line[pos:], '\t')
		var f []byte
		if end < 0 {
			f = line[pos:]
		} else {
			f = line[pos : pos+end]
		}
		for j, want := range k.Fields {
			if want == i {
				dst[j] = f
				found++
			}
		}
		if found == len(k.Fields) {
			return dst, nil
		}
		if end < 0 {
			return dst, fmt.Errorf("%w: row has %d fields, the key needs field %d", ErrBadRecord, i+1, maxInt(k.Fields)+1)
		}
		pos += end + 1
	}
}

// recordKey splits the key fields of a deletion record.
func (k Key) recordKey(dst [][]byte, rec []byte) ([][]byte, error) {
	dst = dst[:0]
	for {
		end := bytes.IndexByte(rec, '\t')
		if end < 0 {
			dst = append(dst, rec)
			break
		}
		dst = append(dst, rec[:end])
		rec = rec[end+1:]
		if len(dst) > len(k.Fields) {
			break
		}
	}
	if len(dst) != len(k.Fields) {
		return dst, fmt.Errorf("%w: a deletion holds %d key fields, the key has %d", ErrBadRecord, len(dst), len(k.Fields))
	}
	return dst, nil
}

func maxInt(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// compare compares two extracted keys.
func (k Key) compare(a, b [][]byte) (int, error) {
	for i, o := range k.Order {
		var c int
		if o == OrderInt {
			var err error
			if c, err = compareInt(a[i], b[i]); err != nil {
				return 0, err
			}
		} else {
			c = bytes.Compare(a[i], b[i])
		}
		if c != 0 {
			return c, nil
		}
	}
	return 0, nil
}

// canonicalInt reports whether b is a canonical decimal integer: an
// optional "-", digits without a leading zero, "0" not "-0".
func canonicalInt(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
		if len(b) == 1 && b[0] == '0' {
			return false
		}
	}
	if len(b) == 0 || len(b) > 40 || (b[0] == '0' && len(b) > 1) {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func compareInt(a, b []byte) (int, error) {
	if !canonicalInt(a) || !canonicalInt(b) {
		return 0, fmt.Errorf("%w: a key field of order %s is not a canonical integer", ErrBadRecord, OrderInt)
	}
	na, nb := a[0] == '-', b[0] == '-'
	switch {
	case na && !nb:
		return -1, nil
	case !na && nb:
		return 1, nil
	}
	c := len(a) - len(b)
	if c == 0 {
		c = bytes.Compare(a, b)
	}
	if c > 0 {
		c = 1
	} else if c < 0 {
		c = -1
	}
	if na {
		c = -c
	}
	return c, nil
}

// lineReader reads LF-terminated lines of up to MaxLine bytes.
type lineReader struct {
	r    *bufio.Reader
	long []byte
	n    int64 // lines read
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next line without its LF, valid until the next call;
// io.EOF at a clean end.
func (lr *lineReader) next() ([]byte, error) {
	lr.long = lr.long[:0]
	for {
		frag, err := lr.r.ReadSlice('\n')
		if err == nil {
			lr.n++
			if len(lr.long) == 0 {
				return frag[:len(frag)-1], nil
			}
			lr.long = append(lr.long, frag[:len(frag)-1]...)
			if len(lr.long) > MaxLine {
				return nil, fmt.Errorf("%w: line %d is longer than %d bytes", ErrBadRecord, lr.n, MaxLine)
			}
			return lr.long, nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(lr.long)+len(frag) > MaxLine {
				return nil, fmt.Errorf("%w: line %d is longer than %d bytes", ErrBadRecord, lr.n+1, MaxLine)
			}
			lr.long = append(lr.long, frag...)
			continue
		}
		if errors.Is(err, io.EOF) {
			if len(lr.long)+len(frag) > 0 {
				return nil, fmt.Errorf("%w: line %d has no LF", ErrBadRecord, lr.n+1)
			}
			return nil, io.EOF
		}
		return nil, err
	}
}

// CopyKey copies key fields into one buffer, for remembering the previous
// key after the line it came from is gone.
func CopyKey(dst [][]byte, buf []byte, key [][]byte) ([][]byte, []byte) {
	buf = buf[:0]
	for _, f := range key {
		buf = append(buf, f...)
	}
	dst = dst[:0]
	off := 0
	for _, f := range key {
		dst = append(dst, buf[off:off+len(f):off+len(f)])
		off += len(f)
	}
	return dst, buf
}

// OrderCheck is an io.Writer that splits a table stream into lines and
// reports whether they were strictly ascending by a key (and each had the
// key's fields): whether the stream may serve as the base of a delta.
type OrderCheck struct {
	k       Key
	partial []byte
	key     [][]byte
	prev    [][]byte
	prevB   []byte
	hasPrev bool
	bad     bool
}

// NewOrderCheck returns an OrderCheck for k.
func NewOrderCheck(k Key) *OrderCheck {
	c := &OrderCheck{k: k}
	if k.Validate() != nil {
		c.bad = true
	}
	return c
}

// Write checks every complete line in p; it never fails.
func (c *OrderCheck) Write(p []byte) (int, error) {
	n := len(p)
	if c.bad {
		return n, nil
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.partial = append(c.partial, p...)
			if len(c.partial) > MaxLine {
				c.bad = true
			}
			return n, nil
		}
		line := p[:i]
		if len(c.partial) > 0 {
			c.partial = append(c.partial, line...)
			line = c.partial
		}
		c.line(line)
		c.partial = c.partial[:0]
		if c.bad {
			return n, nil
		}
		p = p[i+1:]
	}
	return n, nil
}

func (c *OrderCheck) line(line []byte) {
	var err error
	if c.key, err = c.k.rowKey(c.key, line); err != nil {
		c.bad = true
		return
	}
	if c.hasPrev {
		if cmp, err := c.k.compare(c.prev, c.key); err != nil || cmp >= 0 {
			c.bad = true
			return
		}
	} else if _, err := c.k.compare(c.key, c.key); err != nil {
		c.bad = true
		return
	}
	c.prev, c.prevB = CopyKey(c.prev, c.prevB, c.key)
	c.hasPrev = true
}

// Ascending reports whether every line so far was strictly ascending by
// the key and the stream ended with a complete line.
func (c *OrderCheck) Ascending() bool { return !c.bad && len(c.partial) == 0 }
