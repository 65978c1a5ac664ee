package restoretest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// maxDetail bounds a check's detail in a report.
const maxDetail = 300

// describe turns an error into words fit for a report and a log line: a
// database server's message (which can quote row values: a unique
// violation's detail, MariaDB's "Duplicate entry 'x'", an invalid input
// value) is replaced by its error code; a strconv error by its function;
// kluis's own context around them is kept. SQLite's messages name
// tables, columns and SQL, never values, and are kept. Secrets are masked.
func describe(err error, secrets ...string) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		msg = replaceTail(msg, pgErr.Error(), fmt.Sprintf("postgres error SQLSTATE %s (%s)", pgErr.Code, pgErr.Severity))
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		msg = replaceTail(msg, myErr.Error(), fmt.Sprintf("mariadb error %d (SQLSTATE %s)", myErr.Number, string(myErr.SQLState[:])))
	}
	var numErr *strconv.NumError
	if errors.As(err, &numErr) {
		msg = replaceTail(msg, numErr.Error(), "strconv."+numErr.Func+": "+numErr.Err.Error())
	}
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	return truncate(msg)
}

// replaceTail replaces inner in msg by repl; when inner does not occur
// (a wrapper rewrote it), everything is replaced, so that no server text
// survives.
func replaceTail(msg, inner, repl string) string {
	if i := strings.Index(msg, inner); i >= 0 {
		return msg[:i] + repl + msg[i+len(inner):]
	}
	return repl
}

// truncate shortens s to maxDetail bytes on a rune boundary.
func truncate(s string) string {
	if len(s) <= maxDetail {
		return s
	}
	cut := maxDetail - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
