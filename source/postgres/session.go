package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/kluis-nl/kluis/dsn"
)

// sessionSettings make COPY's text output a function of the data alone: the
// snapshot and every Target connection run them, so the bytes of a restored
// table match the bytes backed up.
//
//   - DateStyle, IntervalStyle, TimeZone: date, time and interval output.
//   - extra_float_digits 3: shortest exact float output.
//   - bytea_output hex, client_encoding UTF8.
//   - search_path empty (pg_catalog only): regclass and the like print
//     schema-qualified; every statement of ours qualifies what it names.
//   - lc_monetary C: money output.
//   - row_security off: a row-level security policy makes a read fail
//     instead of silently leaving rows out of the backup.
//   - statement_timeout, lock_timeout and idle_in_transaction_session_timeout
//     0: the snapshot stays open while the caller uploads, however long.
const sessionSettings = `SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
SET TimeZone = 'UTC';
SET extra_float_digits = 3;
SET bytea_output = 'hex';
SET client_encoding = 'UTF8';
SET search_path = '';
SET lc_monetary = 'C';
SET row_security = off;
SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;`

// errInvalidDSN is returned for a connection string that does not parse. It
// deliberately carries no detail: a malformed string may hold a password in
// a place no redaction would recognise.
var errInvalidDSN = errors.New("postgres: invalid connection string (not shown: it may hold a password)")

// parseDSN parses a connection string, with an error that cannot leak it.
func parseDSN(dsn string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, errInvalidDSN
	}
	return cfg, nil
}

// connect opens a connection and applies sessionSettings.
func connect(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, redactError(err, cfg.Password)
	}
	if err := execSimple(ctx, conn, sessionSettings); err != nil {
		conn.Close(context.Background())
		return nil, redactError(err, cfg.Password)
	}
	return conn, nil
}

// execSimple runs one or more statements through the simple query protocol.
func execSimple(ctx context.Context, conn *pgx.Conn, sql string) error {
	_, err := conn.PgConn().Exec(ctx, sql).ReadAll()
	return err
}

// redactError masks password, in every spelling a connection string or
// URL could carry it (dsn.RedactSecret), in err's message; the result
// unwraps to err, so errors.Is (context.Canceled, …) keeps working.
func redactError(err error, password string) error {
	return dsn.RedactSecretError(err, password)
}

// redactString masks password in s as redactError does.
func redactString(s, password string) string { return dsn.RedactSecret(s, password) }
