package restoretest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// maxDetail bounds a check's detail in a report.
const maxDetail = 300

// describe turns an error into words fit for a report and a log line: a
// database server's message (which can quote row values: a unique
// violation's detail, MariaDB's "Duplicate entry 'x'", an invalid input
// value) is replaced by its error code; a connection error by its cause,
// without the host, port, role or database it names (connectionText: the
// restore-test server's details stay out of evidence); a strconv error by
// its function;
// kluis's own context around them is kept. Every such error in the tree is
// reduced, however it is wrapped (fmt's "%w (%w)", errors.Join). SQLite's
// messages name tables, columns and SQL, never values, and are kept.
// Secrets are masked.
func describe(err error, secrets ...string) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	var codes []string
	whole := false
	for _, e := range valueErrors(err) {
		inner, code := e.Error(), reducedText(e)
		codes = append(codes, code)
		if strings.Contains(msg, inner) {
			msg = strings.ReplaceAll(msg, inner, code)
		} else {
			whole = true // a wrapper rewrote it: keep no server text
		}
	}
	if whole {
		msg = strings.Join(codes, "; ")
	}
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	return truncate(msg)
}

// valueErrors returns the errors in err's tree whose text can quote a
// value: database servers' errors and strconv's.
func valueErrors(err error) []error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		switch x := e.(type) {
		case nil:
			return
		case *pgconn.PgError, *mysql.MySQLError, *strconv.NumError,
			*pgconn.ConnectError, *net.OpError, *net.DNSError:
			out = append(out, x)
			return
		case interface{ Unwrap() []error }:
			for _, u := range x.Unwrap() {
				walk(u)
			}
		case interface{ Unwrap() error }:
			walk(x.Unwrap())
		}
	}
	walk(err)
	return out
}

// reducedText is a value-quoting error's replacement: its code.
func reducedText(err error) string {
	switch e := err.(type) {
	case *pgconn.PgError:
		return fmt.Sprintf("postgres error SQLSTATE %s (%s)", e.Code, e.Severity)
	case *mysql.MySQLError:
		return fmt.Sprintf("mariadb error %d (SQLSTATE %s)", e.Number, string(e.SQLState[:]))
	case *strconv.NumError:
		return "strconv." + e.Func + ": " + e.Err.Error()
	case *pgconn.ConnectError, *net.OpError, *net.DNSError:
		return connectionText(err)
	}
	return "error"
}

// connectionText is a connection error without the infrastructure it
// names (host, address, port, role or user, database): pgconn's
// ConnectError and the net package's errors quote them all. What remains
// is the cause: a server's error code, the system error (connection
// refused, …), a host name that did not resolve, a timeout.
func connectionText(err error) string {
	var pgErr *pgconn.PgError
	var errno syscall.Errno
	var dnsErr *net.DNSError
	var netErr net.Error
	cause := "failed"
	switch {
	case errors.As(err, &pgErr):
		cause = reducedText(pgErr)
	case errors.As(err, &errno):
		cause = errno.Error()
	case errors.As(err, &dnsErr):
		cause = "host name not found"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		cause = "timed out"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		cause = "connection closed by the server"
	}
	return "could not connect to the server: " + cause
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
