package mariadb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/kluis-nl/kluis/source"
)

// ErrTargetNotEmpty: the target database already holds tables, views,
// sequences, routines or events and TargetOptions.Force was not given.
var ErrTargetNotEmpty = errors.New("mariadb: target database is not empty")

// DefaultParallel is the number of connections a Target uses when
// TargetOptions.Parallel is not set.
const DefaultParallel = 4

// TargetOptions configure a Target.
type TargetOptions struct {
	// Force replaces a non-empty target database: it is dropped and created
	// anew. Only ever point a forced restore at a scratch or restore-test
	// server.
	Force bool
	// Parallel bounds the connections used by concurrent LoadTable and
	// Fingerprint calls; DefaultParallel when 0.
	Parallel int
}

// Target is a MariaDB database being restored into.
type Target struct {
	db        *sql.DB
	name      string
	password  string
	key       []byte
	maxPacket int64
	method    loadMethod
}

var _ source.Target = (*Target)(nil)

// systemDatabases are never dropped, not even with Force.
var systemDatabases = map[string]bool{"mysql": true, "information_schema": true, "performance_schema": true, "sys": true}

// NewTarget prepares the database named in dsn for a restore: it is created
// (CHARACTER SET utf8mb4; the schema stream then sets the original
// defaults) when absent, used when empty, and refused with
// ErrTargetNotEmpty when it holds anything — unless opts.Force, which drops
// and recreates it. The user needs the privileges to create and drop it.
func NewTarget(ctx context.Context, dsn string, fingerprintKey []byte, opts TargetOptions) (*Target, error) {
	cfg, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if cfg.DBName == "" {
		return nil, errors.New("mariadb: the target DSN names no database")
	}
	t, err := newTarget(ctx, cfg, fingerprintKey, opts)
	if err != nil {
		return nil, redactError(fmt.Errorf("mariadb: target %s: %w", cfg.DBName, err), cfg.Passwd)
	}
	return t, nil
}

func newTarget(ctx context.Context, cfg *mysql.Config, key []byte, opts TargetOptions) (*Target, error) {
	if err := prepareDatabase(ctx, cfg, opts.Force); err != nil {
		return nil, err
	}
	n := opts.Parallel
	if n <= 0 {
		n = DefaultParallel
	}
	db, err := openDB(cfg, targetSQL)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	t := &Target{db: db, name: cfg.DBName, password: cfg.Passwd, key: append([]byte(nil), key...)}
	// Connect once now, so a bad target fails here rather than mid-restore.
	var localInfile int64
	if err := db.QueryRowContext(ctx, "SELECT @@max_allowed_packet, @@local_infile").Scan(&t.maxPacket, &localInfile); err != nil {
		db.Close()
		return nil, err
	}
	t.method = loadInsert
	if localInfile == 1 {
		t.method = loadInfile
	}
	if forceLoad != loadAuto {
		t.method = forceLoad
	}
	return t, nil
}

func prepareDatabase(ctx context.Context, cfg *mysql.Config, force bool) error {
	name := cfg.DBName
	maint := cfg.Clone()
	maint.DBName = ""
	db, err := openDB(maint)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var n int64
	err = db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name).Scan(&n)
	if err != nil {
		return err
	}
	create := "CREATE DATABASE " + quoteIdent(name) + " CHARACTER SET utf8mb4"
	if n == 0 {
		if _, err := db.ExecContext(ctx, create); err != nil {
			return fmt.Errorf("creating the database: %w", err)
		}
		return nil
	}
	var objects int64
	err = db.QueryRowContext(ctx, `SELECT
  (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?)
+ (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?)
+ (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?)`, name, name, name).Scan(&objects)
	if err != nil {
		return fmt.Errorf("inspecting the database: %w", err)
	}
	if objects == 0 {
		return nil
	}
	if !force {
		return fmt.Errorf("%w: it holds %d objects (restore into a new database, or force to drop and recreate it)", ErrTargetNotEmpty, objects)
	}
	if systemDatabases[strings.ToLower(name)] {
		return fmt.Errorf("mariadb: refusing to drop system database %s", name)
	}
	if _, err := db.ExecContext(ctx, "DROP DATABASE "+quoteIdent(name)); err != nil {
		return fmt.Errorf("dropping the database: %w", err)
	}
	if _, err := db.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("creating the database: %w", err)
	}
	return nil
}

// ApplySchema executes the statements of a kluis-mariadb-ddl-v1 stream in
// order on one connection of its own, which is discarded afterwards (the
// stream sets sql_mode for triggers and routines). MariaDB commits every
// DDL statement by itself: a failure leaves the statements before it
// applied.
func (t *Target) ApplySchema(ctx context.Context, ddl io.Reader) error {
	conn, err := t.db.Conn(ctx)
	if err != nil {
		return redactError(fmt.Errorf("mariadb: target %s: %w", t.name, err), t.password)
	}
	defer discard(conn)
	r := NewDDLReader(ddl)
	for i := 1; ; i++ {
		stmt, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("mariadb: schema: %w", err)
		}
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return redactError(fmt.Errorf("mariadb: schema statement %d (%s): %w", i, headOf(stmt), err), t.password)
		}
	}
}

// headOf returns the start of a statement's first line, for errors.
func headOf(stmt string) string {
	if i := strings.IndexByte(stmt, '\n'); i >= 0 {
		stmt = stmt[:i]
	}
	if len(stmt) > 100 {
		stmt = stmt[:100] + "…"
	}
	return stmt
}

// discard closes a connection whose session state is not to be reused:
// the pool drops it instead of taking it back.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
}

// LoadTable loads a kluis-row-v1 stream written by Snapshot.WriteTable in
// one transaction (see load.go). Safe for concurrent use with other tables.
func (t *Target) LoadTable(ctx context.Context, tb source.Table, rows io.Reader) error {
	if tb.Encoding != Encoding {
		return fmt.Errorf("mariadb: table %s: cannot load encoding %q, only %q", tb.Name, tb.Encoding, Encoding)
	}
	cols, err := targetColumns(tb)
	if err != nil {
		return err
	}
	conn, err := t.db.Conn(ctx)
	if err != nil {
		return redactError(fmt.Errorf("mariadb: loading table %s: %w", tb.Name, err), t.password)
	}
	err = t.load(ctx, conn, tableName(tb), cols, rows)
	if err != nil {
		discard(conn)
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w (%w)", cerr, err)
		}
		return redactError(fmt.Errorf("mariadb: loading table %s: %w", tb.Name, err), t.password)
	}
	return conn.Close()
}

// Fingerprint recomputes a loaded table's fingerprint with the query and
// conversions WriteTable uses (without ORDER BY: the fingerprint does not
// depend on order).
func (t *Target) Fingerprint(ctx context.Context, tb source.Table) (source.TableResult, error) {
	cols, err := targetColumns(tb)
	if err != nil {
		return source.TableResult{}, err
	}
	enc := source.NewRowEncoder(io.Discard, t.key)
	if err := streamRows(ctx, t.db, selectSQL(tableName(tb), cols, nil), cols, enc); err != nil {
		return source.TableResult{}, redactError(fmt.Errorf("mariadb: fingerprinting table %s: %w", tb.Name, err), t.password)
	}
	return enc.Finish()
}

// Close closes the Target's connections.
func (t *Target) Close() error {
	return redactError(t.db.Close(), t.password)
}

// tableName is the unqualified name of a table in this engine.
func tableName(t source.Table) string {
	if t.Table != "" {
		return t.Table
	}
	return t.Name
}

// targetColumns rebuilds the columns of a table from its manifest entry:
// the value kind follows from the recorded COLUMN_TYPE.
func targetColumns(tb source.Table) ([]column, error) {
	if len(tb.Columns) == 0 {
		return nil, fmt.Errorf("mariadb: table %s has no columns", tb.Name)
	}
	cols := make([]column, len(tb.Columns))
	for i, c := range tb.Columns {
		dt := typeName(c.Type)
		cols[i] = column{name: c.Name, colType: c.Type, dataType: dt, nullable: c.Nullable, kind: kindOf(dt)}
	}
	return cols, nil
}
