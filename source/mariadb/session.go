package mariadb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/kluis-nl/kluis/dsn"
)

// sessionSQL makes what the server prints a function of the data alone; the
// snapshot and every Target connection run it right after connecting, so a
// restored table reads back byte for byte what was backed up.
//
//   - SET NAMES utf8mb4: text travels as utf8mb4 both ways, whatever the
//     column's character set (the server converts losslessly).
//   - time_zone '+00:00': TIMESTAMP values print and load in UTC.
//   - sql_mode NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION, nothing else:
//     no strict mode, NO_ZERO_DATE or NO_ZERO_IN_DATE (zero dates and the
//     empty ENUM value load as they were read), no ANSI_QUOTES or
//     PAD_CHAR_TO_FULL_LENGTH (SHOW CREATE and CHAR output unchanged), a 0
//     loaded into an AUTO_INCREMENT column stays 0, and a missing storage
//     engine is an error instead of a silent substitution. A load never
//     converts a value silently unnoticed: the fingerprint check catches it.
//   - net_read_timeout, net_write_timeout and wait_timeout one day, and (on
//     MariaDB) max_statement_time 0: a table stream may wait long on a slow
//     upload or download without the server dropping the connection.
const sessionSQL = "SET time_zone = '+00:00', sql_mode = '" + sessionSQLMode + "', " +
	"net_read_timeout = 86400, net_write_timeout = 86400, wait_timeout = 86400" +
	" /*M!100100 , max_statement_time = 0 */"

const sessionSQLMode = "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION"

// targetSQL is run on every Target connection after sessionSQL: a restore
// loads tables in any order and without re-checking what was checked when
// the rows were first written.
const targetSQL = "SET foreign_key_checks = 0, unique_checks = 0"

// errInvalidDSN is returned for a DSN that does not parse. It carries no
// detail: a malformed DSN may hold a password where no redaction would
// recognise it.
var errInvalidDSN = errors.New("mariadb: the DSN does not parse (not shown: it may hold a password); the form is " + DSNForm)

// DSNForm is the expected form of a MariaDB/MySQL DSN, for messages.
const DSNForm = "user:password@tcp(host:3306)/db (or user@unix(/run/mysqld/mysqld.sock)/db)"

// parseDSN parses a go-sql-driver DSN and forces the driver settings this
// package relies on, whatever the DSN says: temporal values as text
// (parseTime off), plain column names, server-side placeholders (never
// client-side interpolation), one statement per query, no local files, and
// the driver's logging off (its messages would bypass redaction).
func parseDSN(dsn string) (*mysql.Config, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, errInvalidDSN
	}
	cfg.ParseTime = false
	cfg.ColumnsWithAlias = false
	cfg.InterpolateParams = false
	cfg.MultiStatements = false
	cfg.AllowAllFiles = false
	cfg.ClientFoundRows = false
	cfg.Loc = time.UTC
	cfg.Logger = nopLogger{}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	return cfg, nil
}

// openDB returns a pool whose every connection has run setup.
func openDB(cfg *mysql.Config, setup ...string) (*sql.DB, error) {
	base, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, errInvalidDSN
	}
	return sql.OpenDB(&connector{base: base, setup: append([]string{"SET NAMES utf8mb4", sessionSQL}, setup...)}), nil
}

// connector runs session statements on every new connection.
type connector struct {
	base  driver.Connector
	setup []string
}

func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ex, ok := conn.(driver.ExecerContext)
	if !ok {
		conn.Close()
		return nil, errors.New("mariadb: driver connection cannot execute statements")
	}
	for _, q := range c.setup {
		if _, err := ex.ExecContext(ctx, q, nil); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

func (c *connector) Driver() driver.Driver { return c.base.Driver() }

// nopLogger silences the driver's own logging.
type nopLogger struct{}

func (nopLogger) Print(...any) {}

// redactError masks password, in every spelling a connection string or
// URL could carry it (dsn.RedactSecret), in err's message; the result
// unwraps to err, so errors.Is (context.Canceled, …) keeps working.
func redactError(err error, password string) error {
	return dsn.RedactSecretError(err, password)
}

// redactString masks password in s as redactError does.
func redactString(s, password string) string { return dsn.RedactSecret(s, password) }

// Server error numbers this package branches on.
const (
	erNoSuchTable     = 1146 // ER_NO_SUCH_TABLE
	erTableDefChanged = 1412 // ER_TABLE_DEF_CHANGED
	erLockWaitTimeout = 1205 // ER_LOCK_WAIT_TIMEOUT
)

func errorNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}
