package postgres

import (
	"bytes"
	"regexp"
	"unicode/utf8"
)

// pg_dump (since 17.6, 16.10, 15.14, …) brackets plain-text output in
// `\restrict KEY` … `\unrestrict KEY`, psql meta-commands that stop a hostile
// object definition from running meta-commands of its own in psql.
var (
	restrictLine   = regexp.MustCompile(`^\\restrict ([A-Za-z0-9]+)\s*$`)
	unrestrictLine = regexp.MustCompile(`^\\unrestrict ([A-Za-z0-9]+)\s*$`)
)

// isTrivia reports whether a line is blank or an SQL line comment: lines that
// may surround pg_dump's \restrict and \unrestrict.
func isTrivia(line []byte) bool {
	l := bytes.TrimSpace(line)
	return len(l) == 0 || bytes.HasPrefix(l, []byte("--"))
}

// stripRestrict blanks pg_dump's leading \restrict line and the matching
// trailing \unrestrict line so the text can be sent to the server, keeping
// line numbers. Only lines preceded (or followed) by nothing but blank and
// comment lines are touched, so a line inside a quoted body never is. Any
// other meta-command is left for the server to reject as a syntax error; it
// is never interpreted.
func stripRestrict(ddl []byte) []byte {
	lines := bytes.SplitAfter(ddl, []byte("\n"))
	key := ""
	for i, l := range lines {
		if isTrivia(l) {
			continue
		}
		if m := restrictLine.FindSubmatch(bytes.TrimRight(l, "\r\n")); m != nil {
			key = string(m[1])
			lines[i] = []byte("\n")
		}
		break
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if isTrivia(lines[i]) {
			continue
		}
		if m := unrestrictLine.FindSubmatch(bytes.TrimRight(lines[i], "\r\n")); m != nil && (key == "" || string(m[1]) == key) {
			lines[i] = []byte("\n")
		}
		break
	}
	return bytes.Join(lines, nil)
}

// splitTrailer splits pg_dump output at the start of its closing
// \unrestrict line, so that statements can be appended inside the restricted
// region. Without such a line, tail is empty.
func splitTrailer(ddl []byte) (head, tail []byte) {
	lines := bytes.SplitAfter(ddl, []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		if isTrivia(lines[i]) {
			continue
		}
		if unrestrictLine.Match(bytes.TrimRight(lines[i], "\r\n")) {
			cut := 0
			for _, l := range lines[:i] {
				cut += len(l)
			}
			return ddl[:cut], ddl[cut:]
		}
		break
	}
	return ddl, nil
}

// lineAt returns the line number and the line of text at a server error
// position: 1-based, in characters.
func lineAt(text []byte, position int) (int, string) {
	off := 0
	for n := 1; n < position && off < len(text); n++ {
		_, size := utf8.DecodeRune(text[off:])
		off += size
	}
	n := bytes.Count(text[:off], []byte("\n")) + 1
	start := bytes.LastIndexByte(text[:off], '\n') + 1
	end := bytes.IndexByte(text[off:], '\n')
	if end < 0 {
		end = len(text)
	} else {
		end += off
	}
	line := string(text[start:end])
	if len(line) > 200 {
		line = line[:200] + "…"
	}
	return n, line
}
