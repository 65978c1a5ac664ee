package source

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// DDLReader reads the statements of a length-framed schema stream
// (docs/format.md, "Schema streams"): the line "-- <format>", then
// statements each framed as "-- statement <N>\n<N bytes>\n". The SQLite
// and MariaDB engines share it; only the format name differs. It holds one
// statement at a time.
type DDLReader struct {
	r         *bufio.Reader
	ddlHeader string
	errBad    error
	header    bool
	n         int
	err       error
}

// MaxDDLStatement is the longest statement a framed schema stream may hold.
const MaxDDLStatement = 64 << 20

const ddlStmtStart = "-- statement "

// NewDDLReader returns a reader of the statements in r, a stream of the
// named format; errBad is wrapped by every error about a malformed stream.
func NewDDLReader(r io.Reader, format string, errBad error) *DDLReader {
	return &DDLReader{r: bufio.NewReaderSize(r, 64<<10), ddlHeader: "-- " + format + "\n", errBad: errBad}
}

// Next returns the next statement, or io.EOF after the last one. After an
// error every call returns the same error.
func (d *DDLReader) Next() (string, error) {
	if d.err != nil {
		return "", d.err
	}
	s, err := d.next()
	if err != nil {
		d.err = err
	}
	return s, err
}

func (d *DDLReader) next() (string, error) {
	if !d.header {
		line, err := d.readLine(len(d.ddlHeader))
		if err != nil {
			if errors.Is(err, io.EOF) {
				return "", fmt.Errorf("%w: empty stream", d.errBad)
			}
			return "", err
		}
		if line != d.ddlHeader {
			return "", fmt.Errorf("%w: it does not start with %q", d.errBad, d.ddlHeader[:len(d.ddlHeader)-1])
		}
		d.header = true
	}
	line, err := d.readLine(len(ddlStmtStart) + 12)
	if err != nil {
		return "", err // io.EOF between frames is the end of the stream
	}
	d.n++
	if len(line) < len(ddlStmtStart)+2 || line[:len(ddlStmtStart)] != ddlStmtStart {
		return "", fmt.Errorf("%w: statement %d: bad frame line", d.errBad, d.n)
	}
	digits := line[len(ddlStmtStart) : len(line)-1]
	n, err := strconv.Atoi(digits)
	if err != nil || n < 1 || n > MaxDDLStatement || strconv.Itoa(n) != digits {
		return "", fmt.Errorf("%w: statement %d: bad length", d.errBad, d.n)
	}
	buf := make([]byte, n+1)
	if _, err := io.ReadFull(d.r, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return "", fmt.Errorf("%w: statement %d is truncated", d.errBad, d.n)
		}
		return "", err
	}
	if buf[n] != '\n' {
		return "", fmt.Errorf("%w: statement %d is not followed by a newline", d.errBad, d.n)
	}
	return string(buf[:n]), nil
}

// readLine reads one line of at most max bytes including its '\n'. A clean
// end of input before the line starts is io.EOF.
func (d *DDLReader) readLine(max int) (string, error) {
	var line []byte
	for {
		c, err := d.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if len(line) == 0 {
					return "", io.EOF
				}
				return "", fmt.Errorf("%w: it ends in an unterminated line", d.errBad)
			}
			return "", err
		}
		line = append(line, c)
		if c == '\n' {
			return string(line), nil
		}
		if len(line) >= max {
			return "", fmt.Errorf("%w: a frame line is too long", d.errBad)
		}
	}
}
