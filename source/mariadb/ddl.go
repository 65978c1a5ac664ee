package mariadb

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/kluis-nl/kluis/source"
)

// DDLFormat names the framing of the mariadb engine's schema streams,
// specified here and in docs/format.md, section "MariaDB schema streams".
//
// # kluis-mariadb-ddl-v1
//
// A schema stream (pre or post) is bytes: the line
//
//	-- kluis-mariadb-ddl-v1
//
// followed by zero or more statements, each framed as
//
//	-- statement <N>\n<N bytes of SQL>\n
//
// where <N> is the statement's length in bytes, in decimal without leading
// zeros, at least 1 and at most MaxStatement. The SQL is exactly one
// statement without a terminating ";" or DELIMITER, executed as it is, in
// order, on one connection, in the target database (names in it are not
// qualified with a database). The framing, not a delimiter, says where a
// statement ends, because trigger and routine bodies hold several ";" and
// names and string literals may hold ";" and newlines. A stream that ends
// inside a frame is an error.
const DDLFormat = "kluis-mariadb-ddl-v1"

// MaxStatement is the longest statement a schema stream may hold.
const MaxStatement = source.MaxDDLStatement

// ErrBadDDL is wrapped by every error about a malformed schema stream.
var ErrBadDDL = errors.New("malformed " + DDLFormat + " stream")

const (
	ddlHeader    = "-- " + DDLFormat + "\n"
	ddlStmtStart = "-- statement "
)

// writeDDL writes stmts as one kluis-mariadb-ddl-v1 stream.
func writeDDL(w io.Writer, stmts []string) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString(ddlHeader)
	for _, s := range stmts {
		if len(s) == 0 || len(s) > MaxStatement {
			return fmt.Errorf("mariadb: a statement of %d bytes cannot be framed in %s (1 to %d bytes)", len(s), DDLFormat, MaxStatement)
		}
		bw.WriteString(ddlStmtStart)
		bw.WriteString(strconv.Itoa(len(s)))
		bw.WriteByte('\n')
		bw.WriteString(s)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// DDLReader reads the statements of a kluis-mariadb-ddl-v1 stream
// (docs/format.md, "MariaDB schema streams").
type DDLReader = source.DDLReader

// NewDDLReader returns a reader of the statements in r.
func NewDDLReader(r io.Reader) *DDLReader {
	return source.NewDDLReader(r, DDLFormat, ErrBadDDL)
}

// quoteIdent quotes an identifier with backticks, doubling any inside.
func quoteIdent(id string) string {
	return "`" + strings.ReplaceAll(id, "`", "``") + "`"
}

// quoteString returns s as a string literal, valid whether or not sql_mode
// has NO_BACKSLASH_ESCAPES: quotes are doubled, and a backslash or NUL is
// spelled with CHAR() outside the quotes.
func quoteString(s string) string {
	if !strings.ContainsAny(s, "\\\x00") {
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' || s[i] == 0 {
			if start < i {
				parts = append(parts, "'"+strings.ReplaceAll(s[start:i], "'", "''")+"'")
			}
			parts = append(parts, "CHAR("+strconv.Itoa(int(s[i]))+")")
			start = i + 1
		}
	}
	if start < len(s) {
		parts = append(parts, "'"+strings.ReplaceAll(s[start:], "'", "''")+"'")
	}
	return "CONCAT(" + strings.Join(parts, ", ") + ")"
}

// stripDefiner removes the DEFINER clause from the head of a CREATE VIEW,
// TRIGGER, PROCEDURE, FUNCTION or EVENT statement as SHOW CREATE prints it
// ("CREATE [OR REPLACE] [ALGORITHM=…] DEFINER=`user`@`host` [SQL SECURITY
// …] VIEW …"), so that the object is recreated with the restoring user as
// its definer. Only the clause before the object keyword is touched; a
// statement without one is returned unchanged.
func stripDefiner(stmt string) string {
	lx := lexer{s: stmt}
	lx.space()
	if !lx.keyword("CREATE") {
		return stmt
	}
	for steps := 0; steps < 8; steps++ {
		lx.space()
		start := lx.i
		w := lx.word()
		switch strings.ToUpper(w) {
		case "":
			return stmt
		case "VIEW", "TRIGGER", "PROCEDURE", "FUNCTION", "EVENT", "AGGREGATE", "PACKAGE":
			return stmt
		case "DEFINER":
			lx.space()
			if !lx.char('=') {
				return stmt
			}
			lx.space()
			if !lx.account() {
				return stmt
			}
			end := lx.i
			for end < len(stmt) && (stmt[end] == ' ' || stmt[end] == '\t' || stmt[end] == '\n') {
				end++
			}
			return stmt[:start] + stmt[end:]
		}
		// OR REPLACE, ALGORITHM=x, SQL SECURITY x: skip a word and an
		// optional "=value".
		lx.space()
		if lx.char('=') {
			lx.space()
			lx.word()
		}
	}
	return stmt
}

// rewriteSeqRefs removes the database qualifier db from nextval(),
// lastval() and setval() calls outside string literals and quoted names:
// SHOW CREATE TABLE prints a DEFAULT NEXT VALUE FOR seq as
// nextval(`db`.`seq`), which restored into another database would point
// back at the original one.
func rewriteSeqRefs(stmt, db string) string {
	qdb := quoteIdent(db) + "."
	var b strings.Builder
	lx := lexer{s: stmt}
	last := 0
	for lx.i < len(stmt) {
		c := stmt[lx.i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			lx.quoted(c)
		case isWordByte(c):
			w := lx.word()
			switch strings.ToLower(w) {
			case "nextval", "lastval", "setval":
				if strings.HasPrefix(stmt[lx.i:], "("+qdb) {
					b.WriteString(stmt[last : lx.i+1])
					lx.i += 1 + len(qdb)
					last = lx.i
				}
			}
		case c == '-' && strings.HasPrefix(stmt[lx.i:], "-- "), c == '#':
			for lx.i < len(stmt) && stmt[lx.i] != '\n' {
				lx.i++
			}
		case c == '/' && strings.HasPrefix(stmt[lx.i:], "/*") && !strings.HasPrefix(stmt[lx.i:], "/*!") && !strings.HasPrefix(stmt[lx.i:], "/*M!"):
			if end := strings.Index(stmt[lx.i+2:], "*/"); end >= 0 {
				lx.i += end + 4
			} else {
				lx.i = len(stmt)
			}
		default:
			lx.i++
		}
	}
	if last == 0 {
		return stmt
	}
	b.WriteString(stmt[last:])
	return b.String()
}

// lexer scans the few pieces of MariaDB syntax this package must find its
// way through.
type lexer struct {
	s string
	i int
}

func (l *lexer) space() {
	for l.i < len(l.s) {
		switch l.s[l.i] {
		case ' ', '\t', '\n', '\r':
			l.i++
		default:
			return
		}
	}
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// word reads an unquoted word.
func (l *lexer) word() string {
	start := l.i
	for l.i < len(l.s) && isWordByte(l.s[l.i]) {
		l.i++
	}
	return l.s[start:l.i]
}

func (l *lexer) keyword(k string) bool {
	save := l.i
	if strings.EqualFold(l.word(), k) {
		return true
	}
	l.i = save
	return false
}

func (l *lexer) char(c byte) bool {
	if l.i < len(l.s) && l.s[l.i] == c {
		l.i++
		return true
	}
	return false
}

// quoted skips a quoted string or name starting with q at l.i: a doubled
// quote stands for itself, and in strings a backslash escapes the next byte.
func (l *lexer) quoted(q byte) bool {
	if !l.char(q) {
		return false
	}
	for l.i < len(l.s) {
		c := l.s[l.i]
		l.i++
		switch {
		case c == '\\' && q != '`':
			l.i++
		case c == q:
			if l.i < len(l.s) && l.s[l.i] == q {
				l.i++
				continue
			}
			return true
		}
	}
	return false
}

// part reads a user or host name: quoted or a bare word.
func (l *lexer) part() bool {
	if l.i >= len(l.s) {
		return false
	}
	switch c := l.s[l.i]; c {
	case '`', '\'', '"':
		return l.quoted(c)
	}
	return l.word() != ""
}

// account reads user[@host], or CURRENT_USER[()], or a role name.
func (l *lexer) account() bool {
	if l.keyword("CURRENT_USER") {
		save := l.i
		l.space()
		if l.char('(') {
			l.space()
			if !l.char(')') {
				return false
			}
		} else {
			l.i = save
		}
		return true
	}
	if !l.part() {
		return false
	}
	if l.char('@') {
		return l.part()
	}
	return true
}
