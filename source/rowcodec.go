package source

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// RowEncoding is the name of the canonical row encoding of engines that have
// no native line-oriented dump of their own (SQLite, later MariaDB). It is
// recorded in Table.Encoding. The specification below is the one in
// docs/format.md, section "Table streams"; AppendRow and ParseRow implement
// it.
//
// # kluis-row-v1
//
// A table stream is a sequence of rows. Each row is one line: its fields,
// one per column in the order of Table.Columns, separated by a single TAB
// (0x09), followed by a single LF (0x0A). A row of zero fields is an empty
// line. Every field starts with a tag that gives the type of its value, so
// a value reads back with the type it was stored with, which matters for
// engines with dynamic typing such as SQLite:
//
//	\N          NULL (backslash, capital N; nothing else).
//	i<int>      a 64-bit signed integer in decimal: an optional "-" and
//	            digits, no "+", no leading zeros, "0" not "-0"; the value
//	            lies in [-9223372036854775808, 9223372036854775807].
//	r<float>    an IEEE 754 double in the shortest form that reads back
//	            exactly, as Go's strconv.FormatFloat(f, 'g', -1, 64) writes
//	            it: e.g. "r0.1", "r-0", "r1e+21", "r5e-324"; the special
//	            values are "rNaN", "r+Inf" and "r-Inf" (every NaN is
//	            written "rNaN").
//	t<text>     text as its bytes, with four escapes: "\\" for a backslash
//	            (0x5C), "\t" for TAB, "\n" for LF and "\r" for CR (0x0D).
//	            Every other byte, NUL and bytes that are not valid UTF-8
//	            included, stands for itself. The empty text is "t".
//	b<hex>      a blob as lower-case hexadecimal, two digits per byte. The
//	            empty blob is "b".
//
// The encoding is canonical: every row has exactly one encoding, and a
// decoder rejects anything else (an unknown tag, an empty field, a "+" or a
// leading zero, a float not in its shortest form, "\x" for any other x, a
// trailing lone backslash, a raw CR or LF, upper-case or odd-length hex). So
// decoding and re-encoding a valid line gives back the same bytes, and the
// fingerprint of a line (section "Fingerprints", computed over the line
// without its LF) depends only on the row's values.
//
// A line, without its LF, is at most MaxRowLine bytes; a longer line is an
// error on both sides, so a backup never writes a row a restore would
// refuse. A stream whose last line has no LF is an error.
const RowEncoding = "kluis-row-v1"

// MaxRowLine is the longest kluis-row-v1 line, in bytes without its LF.
// A blob of up to 128 MiB fits.
const MaxRowLine = 256 << 20

// ErrBadRow is wrapped by every error about a malformed kluis-row-v1 line.
var ErrBadRow = errors.New("malformed " + RowEncoding + " row")

// Kind is the type of a Value.
type Kind uint8

// The kinds of values kluis-row-v1 carries.
const (
	KindNull Kind = iota
	KindInt
	KindFloat
	KindText
	KindBlob
)

func (k Kind) String() string {
	switch k {
	case KindNull:
		return "null"
	case KindInt:
		return "int"
	case KindFloat:
		return "float"
	case KindText:
		return "text"
	case KindBlob:
		return "blob"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is one field of a row. Int holds a KindInt value, Float a KindFloat
// value and Bytes the contents of a KindText or KindBlob value; the other
// fields are zero.
type Value struct {
	Kind  Kind
	Int   int64
	Float float64
	Bytes []byte
}

// NullValue returns the NULL value.
func NullValue() Value { return Value{} }

// IntValue returns an integer value.
func IntValue(i int64) Value { return Value{Kind: KindInt, Int: i} }

// FloatValue returns a float value.
func FloatValue(f float64) Value { return Value{Kind: KindFloat, Float: f} }

// TextValue returns a text value holding b (not copied).
func TextValue(b []byte) Value { return Value{Kind: KindText, Bytes: b} }

// BlobValue returns a blob value holding b (not copied).
func BlobValue(b []byte) Value { return Value{Kind: KindBlob, Bytes: b} }

// Equal reports whether v and w encode to the same field: the same kind and
// the same integer, the same float bits (any NaN equals any NaN, -0 does not
// equal +0) or the same bytes.
func (v Value) Equal(w Value) bool {
	if v.Kind != w.Kind {
		return false
	}
	switch v.Kind {
	case KindInt:
		return v.Int == w.Int
	case KindFloat:
		if math.IsNaN(v.Float) {
			return math.IsNaN(w.Float)
		}
		return math.Float64bits(v.Float) == math.Float64bits(w.Float)
	case KindText, KindBlob:
		return string(v.Bytes) == string(w.Bytes)
	}
	return true
}

const hexDigits = "0123456789abcdef"

// AppendRow appends the kluis-row-v1 line of row, with its LF, to dst. A
// Value of an unknown Kind is encoded as NULL.
func AppendRow(dst []byte, row []Value) []byte {
	for i, v := range row {
		if i > 0 {
			dst = append(dst, '\t')
		}
		dst = appendValue(dst, v)
	}
	return append(dst, '\n')
}

func appendValue(dst []byte, v Value) []byte {
	switch v.Kind {
	case KindInt:
		return strconv.AppendInt(append(dst, 'i'), v.Int, 10)
	case KindFloat:
		return strconv.AppendFloat(append(dst, 'r'), v.Float, 'g', -1, 64)
	case KindText:
		dst = append(dst, 't')
		start := 0
		for i, c := range v.Bytes {
			var esc byte
			switch c {
			case '\\':
				esc = '\\'
			case '\t':
				esc = 't'
			case '\n':
				esc = 'n'
			case '\r':
				esc = 'r'
			default:
				continue
			}
			dst = append(dst, v.Bytes[start:i]...)
			dst = append(dst, '\\', esc)
			start = i + 1
		}
		return append(dst, v.Bytes[start:]...)
	case KindBlob:
		dst = append(dst, 'b')
		for _, c := range v.Bytes {
			dst = append(dst, hexDigits[c>>4], hexDigits[c&0x0f])
		}
		return dst
	}
	return append(dst, '\\', 'N')
}

// ParseRow decodes one kluis-row-v1 line, without its LF, appending the
// values to dst[:0]. Text and blob values are copied out of line.
func ParseRow(dst []Value, line []byte) ([]Value, error) {
	vals, _, err := parseRow(dst[:0], nil, line)
	return vals, err
}

// parseRow decodes line, appending values to vals and text and blob
// contents to arena. Values refer into arena, which is grown (and then
// reallocated) once, before any value refers into it.
func parseRow(vals []Value, arena, line []byte) ([]Value, []byte, error) {
	if len(line) == 0 {
		return vals, arena, nil
	}
	if cap(arena) < len(line) {
		arena = make([]byte, 0, len(line))
	}
	arena = arena[:0]
	field := 0
	for {
		end := indexByte(line, '\t')
		f := line
		if end >= 0 {
			f = line[:end]
		}
		v, a, err := parseField(arena, f)
		if err != nil {
			return vals, arena, fmt.Errorf("%w: field %d: %v", ErrBadRow, field+1, err)
		}
		arena = a
		vals = append(vals, v)
		if end < 0 {
			return vals, arena, nil
		}
		line = line[end+1:]
		field++
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// parseField decodes one field. Text and blob bytes are appended to arena,
// whose capacity suffices, so the returned Value may refer into it.
func parseField(arena, f []byte) (Value, []byte, error) {
	if len(f) == 0 {
		return Value{}, arena, errors.New("empty field")
	}
	body := f[1:]
	switch f[0] {
	case '\\':
		if len(body) == 1 && body[0] == 'N' {
			return Value{}, arena, nil
		}
		return Value{}, arena, errors.New(`a field starting with a backslash must be \N`)
	case 'i':
		n, err := parseInt(body)
		return Value{Kind: KindInt, Int: n}, arena, err
	case 'r':
		x, err := parseFloat(body)
		return Value{Kind: KindFloat, Float: x}, arena, err
	case 't':
		start := len(arena)
		for i := 0; i < len(body); i++ {
			c := body[i]
			switch c {
			case '\\':
				i++
				if i == len(body) {
					return Value{}, arena, errors.New("text ends in a lone backslash")
				}
				switch body[i] {
				case '\\':
					c = '\\'
				case 't':
					c = '\t'
				case 'n':
					c = '\n'
				case 'r':
					c = '\r'
				default:
					return Value{}, arena, fmt.Errorf("unknown escape \\%q in text", body[i])
				}
			case '\r', '\n':
				return Value{}, arena, errors.New("raw CR or LF in text (must be escaped)")
			}
			arena = append(arena, c)
		}
		return Value{Kind: KindText, Bytes: arena[start:len(arena):len(arena)]}, arena, nil
	case 'b':
		if len(body)%2 != 0 {
			return Value{}, arena, errors.New("odd number of hex digits in blob")
		}
		start := len(arena)
		for i := 0; i < len(body); i += 2 {
			hi, ok1 := unhex(body[i])
			lo, ok2 := unhex(body[i+1])
			if !ok1 || !ok2 {
				return Value{}, arena, errors.New("blob is not lower-case hex")
			}
			arena = append(arena, hi<<4|lo)
		}
		return Value{Kind: KindBlob, Bytes: arena[start:len(arena):len(arena)]}, arena, nil
	}
	return Value{}, arena, fmt.Errorf("unknown type tag %q", f[0])
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// parseInt parses a canonical decimal int64.
func parseInt(b []byte) (int64, error) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, errors.New("integer has no digits")
	}
	if b[0] == '0' && (len(b) > 1 || neg) {
		return 0, errors.New("integer is not canonical (leading zero or -0)")
	}
	limit := uint64(math.MaxInt64)
	if neg {
		limit++
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errors.New("integer has a non-digit")
		}
		d := uint64(c - '0')
		if n > (limit-d)/10 {
			return 0, errors.New("integer out of int64 range")
		}
		n = n*10 + d
	}
	if neg {
		return int64(-n), nil // n <= 2^63: -n wraps to the right value
	}
	return int64(n), nil
}

// parseFloat parses a float in exactly the form appendValue writes.
func parseFloat(b []byte) (float64, error) {
	if len(b) == 0 || len(b) > 32 {
		return 0, errors.New("float is not canonical")
	}
	x, err := strconv.ParseFloat(string(b), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, errors.New("float does not parse")
	}
	var buf [32]byte
	if string(strconv.AppendFloat(buf[:0], x, 'g', -1, 64)) != string(b) {
		return 0, errors.New("float is not in its shortest canonical form")
	}
	return x, nil
}

// RowEncoder writes a kluis-row-v1 table stream (docs/format.md, "Table
// streams") and fingerprints it.
type RowEncoder struct {
	w    *bufio.Writer
	fp   *Fingerprinter
	line []byte
	max  int
}

// NewRowEncoder returns a RowEncoder writing to w, fingerprinting every row
// with fingerprintKey.
func NewRowEncoder(w io.Writer, fingerprintKey []byte) *RowEncoder {
	return &RowEncoder{
		w:   bufio.NewWriterSize(w, 256<<10),
		fp:  NewFingerprinter(fingerprintKey),
		max: MaxRowLine,
	}
}

// Encode writes one row. A row whose line would exceed MaxRowLine is an
// error and is not written.
func (e *RowEncoder) Encode(row []Value) error {
	e.line = AppendRow(e.line[:0], row)
	n := len(e.line) - 1
	if n > e.max {
		return fmt.Errorf("row %d encodes to %d bytes, more than the %d-byte limit of %s",
			e.fp.rows+1, n, e.max, RowEncoding)
	}
	e.fp.AddRow(e.line[:n])
	_, err := e.w.Write(e.line)
	if cap(e.line) > 4<<20 {
		e.line = nil // do not keep one huge row's buffer for the rest of a table
	}
	return err
}

// Finish flushes what is buffered and returns the row count and
// fingerprint of the rows encoded.
func (e *RowEncoder) Finish() (TableResult, error) {
	if err := e.w.Flush(); err != nil {
		return TableResult{}, err
	}
	return e.fp.Result(), nil
}

// RowDecoder reads a kluis-row-v1 table stream row by row (docs/format.md,
// "Table streams"). It holds at most one line in memory.
type RowDecoder struct {
	r     *bufio.Reader
	max   int
	rows  int64
	long  []byte // a line longer than the reader's buffer, assembled
	line  []byte
	vals  []Value
	arena []byte
	err   error // sticky: after an error the stream position is unknown
}

// NewRowDecoder returns a RowDecoder reading from r that accepts lines of
// up to MaxRowLine bytes.
func NewRowDecoder(r io.Reader) *RowDecoder {
	return NewRowDecoderSize(r, MaxRowLine)
}

// NewRowDecoderSize returns a RowDecoder reading from r that accepts lines
// of up to maxLine bytes (without the LF).
func NewRowDecoderSize(r io.Reader, maxLine int) *RowDecoder {
	return &RowDecoder{r: bufio.NewReaderSize(r, 64<<10), max: maxLine}
}

// Next decodes the next row. The values, and the bytes they hold, are
// valid until the following call. At the end of a well-formed stream Next
// returns io.EOF. After an error every call returns the same error.
func (d *RowDecoder) Next() ([]Value, error) {
	if d.err != nil {
		return nil, d.err
	}
	line, err := d.readLine()
	if err != nil {
		d.err = err
		return nil, err
	}
	d.rows++
	d.vals, d.arena, err = parseRow(d.vals[:0], d.arena, line)
	if err != nil {
		d.err = fmt.Errorf("row %d: %w", d.rows, err)
		return nil, d.err
	}
	if cap(d.arena) > 4<<20 {
		d.arena = nil // the values still refer to it; the next row gets its own
	}
	return d.vals, nil
}

// Line returns the raw line, without its LF, of the row Next returned last;
// it is valid until the following call.
func (d *RowDecoder) Line() []byte { return d.line }

// Rows returns the number of lines read so far.
func (d *RowDecoder) Rows() int64 { return d.rows }

func (d *RowDecoder) readLine() ([]byte, error) {
	d.long = d.long[:0]
	for {
		frag, err := d.r.ReadSlice('\n')
		if err == nil {
			if len(d.long) == 0 {
				d.line = frag[:len(frag)-1]
			} else {
				d.long = append(d.long, frag[:len(frag)-1]...)
				d.line = d.long
			}
			if len(d.line) > d.max {
				return nil, d.tooLong()
			}
			return d.line, nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(d.long)+len(frag) > d.max {
				return nil, d.tooLong()
			}
			d.long = append(d.long, frag...)
			continue
		}
		if errors.Is(err, io.EOF) {
			if len(d.long)+len(frag) > 0 {
				return nil, fmt.Errorf("%w: row %d: stream ends in an unterminated row", ErrBadRow, d.rows+1)
			}
			return nil, io.EOF
		}
		return nil, err
	}
}

func (d *RowDecoder) tooLong() error {
	d.long = nil
	return fmt.Errorf("%w: row %d is longer than %d bytes", ErrBadRow, d.rows+1, d.max)
}
