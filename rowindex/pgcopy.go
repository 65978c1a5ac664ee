package rowindex

import (
	"errors"
	"fmt"
)

// ErrBadCopyLine is wrapped by every error about a malformed pg-copy-text
// line.
var ErrBadCopyLine = errors.New("malformed pg-copy-text row")

// ParseCopyLine decodes one line (without its LF) of PostgreSQL's COPY text
// format (docs/format.md, "Table streams", pg-copy-text) into fields: nil
// for NULL ("\N" alone), else the unescaped bytes. It accepts every escape
// COPY FROM accepts — \b \f \n \r \t \v \\, \ followed by one to three
// octal digits, \x followed by one or two hex digits, and a backslash
// before any other byte standing for that byte — and rejects a raw CR or
// LF and a trailing lone backslash. The fields share one freshly allocated
// arena; dst is reused.
func ParseCopyLine(dst [][]byte, line []byte) ([][]byte, error) {
	dst = dst[:0]
	arena := make([]byte, 0, len(line))
	start := 0
	for i := 0; ; i++ {
		if i < len(line) && line[i] != '\t' {
			continue
		}
		f := line[start:i]
		if len(f) == 2 && f[0] == '\\' && f[1] == 'N' {
			dst = append(dst, nil)
		} else {
			off := len(arena)
			var err error
			arena, err = unescapeCopy(arena, f)
			if err != nil {
				return nil, fmt.Errorf("field %d: %w", len(dst)+1, err)
			}
			dst = append(dst, arena[off:len(arena):len(arena)])
		}
		if i == len(line) {
			return dst, nil
		}
		start = i + 1
	}
}

func unescapeCopy(dst, f []byte) ([]byte, error) {
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c == '\r' || c == '\n' {
			return nil, fmt.Errorf("raw line break: %w", ErrBadCopyLine)
		}
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		if i == len(f) {
			return nil, fmt.Errorf("trailing backslash: %w", ErrBadCopyLine)
		}
		switch c = f[i]; c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'v':
			dst = append(dst, '\v')
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := int(c - '0')
			for k := 0; k < 2 && i+1 < len(f) && f[i+1] >= '0' && f[i+1] <= '7'; k++ {
				i++
				v = v*8 + int(f[i]-'0')
			}
			dst = append(dst, byte(v))
		case 'x':
			if i+1 < len(f) && isHex(f[i+1]) {
				i++
				v := unhexDigit(f[i])
				if i+1 < len(f) && isHex(f[i+1]) {
					i++
					v = v<<4 | unhexDigit(f[i])
				}
				dst = append(dst, v)
			} else {
				dst = append(dst, 'x')
			}
		case '\r', '\n':
			return nil, fmt.Errorf("raw line break: %w", ErrBadCopyLine)
		default:
			dst = append(dst, c)
		}
	}
	return dst, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhexDigit(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
