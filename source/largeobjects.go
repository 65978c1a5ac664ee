package source

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Large objects (PostgreSQL) travel in one stream of their own
// (docs/format.md, "Large-object stream"):
//
//	-- kluis-large-objects-v1\n
//	lo <oid> <size>\n<size bytes>\n      (one per object, ascending oid)
//
// Each object counts as one row of the stream's fingerprint, the line
// "<oid>\t<hex SHA-256 of its contents>", so a restore is compared with the
// backup as a table is.

// LargeObjectsFormat names the large-object stream format.
const LargeObjectsFormat = "kluis-large-objects-v1"

// MaxLargeObject is the largest object a stream may hold: PostgreSQL's
// limit (4 TiB).
const MaxLargeObject = 4 << 40

// ErrBadLargeObjects wraps every error about a malformed large-object stream.
var ErrBadLargeObjects = errors.New("malformed large-object stream")

// LargeObjectSnapshot is a Snapshot of a database that holds large objects.
type LargeObjectSnapshot interface {
	// LargeObjects reports how many objects the snapshot holds.
	LargeObjects() int
	// WriteLargeObjects streams every object's contents, never holding one
	// whole in memory.
	WriteLargeObjects(ctx context.Context, w io.Writer) (TableResult, error)
}

// LargeObjectTarget is a Target that can load a large-object stream.
type LargeObjectTarget interface {
	LoadLargeObjects(ctx context.Context, r io.Reader) error
	FingerprintLargeObjects(ctx context.Context) (TableResult, error)
}

// LargeObjectReader reads a large-object stream one object at a time.
type LargeObjectReader struct {
	r      *bufio.Reader
	header bool
	left   int64 // bytes of the current object not yet read
	cur    bool
	last   uint32
	n      int
	err    error
}

// NewLargeObjectReader returns a reader of the stream r.
func NewLargeObjectReader(r io.Reader) *LargeObjectReader {
	return &LargeObjectReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next advances to the next object and returns its oid and size; its
// contents are then read with Read. io.EOF after the last one.
func (l *LargeObjectReader) Next() (oid uint32, size int64, err error) {
	if l.err != nil {
		return 0, 0, l.err
	}
	oid, size, err = l.next()
	if err != nil {
		l.err = err
	}
	return oid, size, err
}

func (l *LargeObjectReader) next() (uint32, int64, error) {
	if l.cur {
		if _, err := io.Copy(io.Discard, l); err != nil {
			return 0, 0, err
		}
		c, err := l.r.ReadByte()
		if err != nil {
			return 0, 0, l.truncated(err)
		}
		if c != '\n' {
			return 0, 0, fmt.Errorf("%w: object %d is not followed by a newline", ErrBadLargeObjects, l.last)
		}
		l.cur = false
	}
	if !l.header {
		line, err := l.line(64)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, 0, fmt.Errorf("%w: empty stream", ErrBadLargeObjects)
			}
			return 0, 0, err
		}
		if line != "-- "+LargeObjectsFormat {
			return 0, 0, fmt.Errorf("%w: it does not start with %q", ErrBadLargeObjects, "-- "+LargeObjectsFormat)
		}
		l.header = true
	}
	line, err := l.line(64)
	if err != nil {
		return 0, 0, err
	}
	f := strings.Split(line, " ")
	if len(f) != 3 || f[0] != "lo" {
		return 0, 0, fmt.Errorf("%w: bad object line", ErrBadLargeObjects)
	}
	o, err1 := strconv.ParseUint(f[1], 10, 32)
	size, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || size < 0 || size > MaxLargeObject || strconv.FormatUint(o, 10) != f[1] || strconv.FormatInt(size, 10) != f[2] {
		return 0, 0, fmt.Errorf("%w: bad object line", ErrBadLargeObjects)
	}
	if l.n > 0 && uint32(o) <= l.last {
		return 0, 0, fmt.Errorf("%w: object %d out of order", ErrBadLargeObjects, o)
	}
	l.n++
	l.last, l.left, l.cur = uint32(o), size, true
	return uint32(o), size, nil
}

// Read reads the current object's contents.
func (l *LargeObjectReader) Read(p []byte) (int, error) {
	if !l.cur || l.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return n, l.truncated(err)
		}
		return n, err
	}
	return n, nil
}

func (l *LargeObjectReader) truncated(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: object %d is truncated", ErrBadLargeObjects, l.last)
	}
	return err
}

func (l *LargeObjectReader) line(max int) (string, error) {
	var b []byte
	for {
		c, err := l.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) && len(b) == 0 {
				return "", io.EOF
			}
			if errors.Is(err, io.EOF) {
				return "", fmt.Errorf("%w: it ends in an unterminated line", ErrBadLargeObjects)
			}
			return "", err
		}
		if c == '\n' {
			return string(b), nil
		}
		b = append(b, c)
		if len(b) >= max {
			return "", fmt.Errorf("%w: a line is too long", ErrBadLargeObjects)
		}
	}
}

// LargeObjectRow is the fingerprint row of one object.
func LargeObjectRow(oid uint32, sha256Hex string) []byte {
	return []byte(strconv.FormatUint(uint64(oid), 10) + "\t" + sha256Hex)
}
