package dossier

import "github.com/kluis-nl/kluis/rowindex"

// ErrBadCopyLine is wrapped by every error about a malformed pg-copy-text
// line (rowindex.ErrBadCopyLine).
var ErrBadCopyLine = rowindex.ErrBadCopyLine

// ParseCopyLine decodes one pg-copy-text line (rowindex.ParseCopyLine).
func ParseCopyLine(dst [][]byte, line []byte) ([][]byte, error) {
	return rowindex.ParseCopyLine(dst, line)
}

// AppendCopyField appends the COPY text encoding PostgreSQL writes for a
// field (nil is NULL). ParseCopyLine(AppendCopyField(v)) gives back v.
func AppendCopyField(dst, v []byte) []byte {
	if v == nil {
		return append(dst, '\\', 'N')
	}
	for _, c := range v {
		switch c {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\v':
			dst = append(dst, '\\', 'v')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
