package dossier

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/kluis-nl/kluis/source"
)

// appendMariaDBLiteral appends v, a value in the mapping of source/mariadb
// ("Values"), as a MariaDB literal for column c (c.Type is the manifest's
// COLUMN_TYPE; empty when unknown) that loads back the value the snapshot
// read, in the session of preamble (utf8mb4, time zone +00:00). The
// literals mean the same with and without NO_BACKSLASH_ESCAPES and
// ANSI_QUOTES, and the mariadb client passes them unchanged:
//
//   - text goes in single quotes with quotes doubled, unless it holds a
//     backslash, a CR (the client drops one before a line feed) or a NUL:
//     then, like text that is not UTF-8, it goes as hex, _utf8mb4 X'…' (the
//     server converts it to the column's character set);
//   - the digits of an unsigned value above 2^63-1 in an integer or BIT
//     column go bare (a string would be taken as a BIT's bytes);
//   - a double goes in exponent form (a DOUBLE literal, read exactly);
//   - bytes (BLOB, BINARY, spatial) go as X'…'.
func appendMariaDBLiteral(b []byte, v source.Value, c source.Column) []byte {
	switch v.Kind {
	case source.KindNull:
		return append(b, "NULL"...)
	case source.KindInt:
		return strconv.AppendInt(b, v.Int, 10)
	case source.KindFloat:
		if math.IsNaN(v.Float) || math.IsInf(v.Float, 0) {
			// MariaDB stores neither; a string makes strict mode fail.
			return appendQuoted(b, []byte(strconv.FormatFloat(v.Float, 'g', -1, 64)))
		}
		s := strconv.FormatFloat(v.Float, 'g', -1, 64)
		b = append(b, s...)
		if !strings.ContainsRune(s, 'e') {
			b = append(b, "e0"...)
		}
		return b
	case source.KindBlob:
		return appendHex(b, v.Bytes)
	}
	s := v.Bytes
	switch {
	case isMariaDBInteger(c.Type) && isDecimalDigits(s):
		return append(b, s...)
	case !utf8.Valid(s):
		return appendHex(b, s)
	case strings.ContainsAny(string(s), "\\\r\x00"):
		b = append(b, "_utf8mb4 "...)
		return appendHex(b, s)
	}
	return appendQuoted(b, s)
}

// isMariaDBInteger reports whether a COLUMN_TYPE holds integers (BIT
// included): its values are numbers, never strings.
func isMariaDBInteger(colType string) bool {
	t := strings.ToLower(colType)
	if j := strings.IndexAny(t, "( "); j >= 0 {
		t = t[:j]
	}
	switch t {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year", "bit":
		return true
	}
	return false
}

func isDecimalDigits(s []byte) bool {
	if len(s) == 0 || len(s) > 20 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// openMariaDB connects to the MariaDB (or MySQL) database named in dsn, a
// go-sql-driver DSN ("user@tcp(host:3306)/db"), and begins the target's
// transaction in the session of the dialect's preamble. Without a password
// in the DSN, MYSQL_PWD is used when set. Errors never carry the DSN or
// the password.
func (t *Target) openMariaDB(ctx context.Context, dsn string) error {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return errors.New("mariadb target: the DSN does not parse (not shown: it may hold a password); the form is user:password@tcp(host:3306)/db")
	}
	if cfg.DBName == "" {
		return errors.New("mariadb target: the DSN names no database (…/dbname)")
	}
	if cfg.Passwd == "" {
		cfg.Passwd = os.Getenv("MYSQL_PWD")
	}
	// What this package relies on, whatever the DSN says: statements as
	// sent (no client-side interpolation, one per call), no local files,
	// affected rows counting changed rows only (ON DUPLICATE KEY UPDATE of
	// a column to itself is 0), and the driver's logging off.
	cfg.InterpolateParams = false
	cfg.MultiStatements = false
	cfg.AllowAllFiles = false
	cfg.ClientFoundRows = false
	cfg.ParseTime = false
	cfg.Logger = quietLogger{}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	redact := func(err error) error {
		if err == nil || cfg.Passwd == "" || !strings.Contains(err.Error(), cfg.Passwd) {
			return err
		}
		return &redactedError{msg: strings.ReplaceAll(err.Error(), cfg.Passwd, "xxxxx"), err: err}
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return errors.New("mariadb target: the DSN is not usable")
	}
	db := sql.OpenDB(connector)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return fmt.Errorf("mariadb target: %w", redact(err))
	}
	done := func() { conn.Close(); db.Close() }
	for _, s := range t.d.preamble() {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			done()
			return fmt.Errorf("mariadb target: %s: %w", s, redact(err))
		}
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		done()
		return fmt.Errorf("mariadb target: %w", redact(err))
	}
	// Statements without arguments go over the text protocol, as written.
	t.exec = func(ctx context.Context, q string) (int64, error) {
		r, err := tx.ExecContext(ctx, q)
		if err != nil {
			return 0, redact(err)
		}
		return r.RowsAffected()
	}
	t.exists = func(ctx context.Context, q string) (bool, error) {
		var one int
		err := tx.QueryRowContext(ctx, q).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		return err == nil, redact(err)
	}
	t.query = func(ctx context.Context, q string, dest func() []any, each func()) error {
		return scanSQLRows(tx.QueryContext(ctx, q))(dest, each)
	}
	t.commit = func(context.Context) error {
		err := tx.Commit()
		done()
		return redact(err)
	}
	t.rollback = func() {
		tx.Rollback()
		done()
	}
	return nil
}

// MariaDB error numbers this package branches on.
const (
	erDupEntry         = 1062 // ER_DUP_ENTRY
	erDupEntryWithKey  = 1586 // ER_DUP_ENTRY_WITH_KEY_NAME
	erNoReferencedRow  = 1216 // ER_NO_REFERENCED_ROW
	erNoReferencedRow2 = 1452 // ER_NO_REFERENCED_ROW_2
)

func mariadbErrorNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// redactedError is an error whose message has the password masked; it
// unwraps to the original, for errors.As and errors.Is.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// quietLogger silences the driver's own logging.
type quietLogger struct{}

func (quietLogger) Print(...any) {}
