package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/kluis-nl/kluis/source"
)

// Errors callers can branch on.
var (
	// ErrConcurrentDDL: a table was created, dropped, renamed, truncated or
	// rebuilt while the snapshot was being taken; retrying will do.
	ErrConcurrentDDL = errors.New("mariadb: table changed by concurrent DDL while the snapshot was taken")
	// ErrNonTransactional: a table's storage engine (MyISAM, Aria, MEMORY,
	// …) is not covered by the consistent snapshot; the snapshot is refused
	// unless Options.AllowNonTransactional.
	ErrNonTransactional = errors.New("mariadb: table outside the consistent snapshot (not InnoDB)")
	// ErrUnsupported: the database holds an object this engine does not
	// back up faithfully (a system-versioned table, a package); the
	// snapshot is refused rather than silently incomplete.
	ErrUnsupported = errors.New("mariadb: unsupported object")
)

// Options configure an Engine.
type Options struct {
	// AllowNonTransactional backs up tables of engines other than InnoDB
	// (MyISAM, Aria, MEMORY, …) too. Their rows are read when their stream
	// is, not as of the snapshot, so they may be inconsistent with the rest.
	AllowNonTransactional bool
	// LockTimeout bounds how long the snapshot waits for a table's
	// metadata lock (another session's LOCK TABLES … WRITE, ALTER TABLE):
	// the session's lock_wait_timeout and innodb_lock_wait_timeout, in
	// whole seconds (at least 1). Snapshot then fails with
	// source.ErrLockTimeout. Zero keeps the server's defaults (a day).
	LockTimeout time.Duration

	afterStart func() // test hook: runs right after the transaction starts
}

// Engine opens snapshots of one MariaDB (or MySQL) database.
type Engine struct {
	dsn  string
	key  []byte
	opts Options
}

var _ source.Engine = (*Engine)(nil)

// New returns an engine for the database named in dsn, a go-sql-driver DSN
// ("user:pass@tcp(host:port)/db?…"), that fingerprints with fingerprintKey.
// The driver settings this package relies on are forced whatever the DSN
// says (see parseDSN). Nothing is connected until Snapshot.
func New(dsn string, fingerprintKey []byte, opts Options) *Engine {
	return &Engine{dsn: dsn, key: append([]byte(nil), fingerprintKey...), opts: opts}
}

// Name returns "mariadb".
func (e *Engine) Name() string { return "mariadb" }

// Snapshot opens a consistent read-only view of the database (see the
// package documentation for the steps).
func (e *Engine) Snapshot(ctx context.Context) (source.Snapshot, error) {
	cfg, err := parseDSN(e.dsn)
	if err != nil {
		return nil, err
	}
	if cfg.DBName == "" {
		return nil, errors.New("mariadb: the DSN names no database")
	}
	s, err := openSnapshot(ctx, e, cfg)
	if err != nil {
		if errorNumber(err) == erLockWaitTimeout {
			err = fmt.Errorf("%w (lock_timeout %s): %w", source.ErrLockTimeout, e.opts.LockTimeout, err)
		}
		return nil, redactError(fmt.Errorf("mariadb: snapshot of %s: %w", cfg.DBName, err), cfg.Passwd)
	}
	return s, nil
}

func openSnapshot(ctx context.Context, e *Engine, cfg *mysql.Config) (_ *snapshot, err error) {
	db, err := openDB(cfg)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	s := &snapshot{db: db, password: cfg.Passwd, key: e.key, byName: map[string]*tableInfo{}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.conn, err = db.Conn(ctx); err != nil {
		return nil, err
	}
	conn := s.conn
	var version, comment string
	if err := conn.QueryRowContext(ctx, "SELECT VERSION(), @@version_comment").Scan(&version, &comment); err != nil {
		return nil, fmt.Errorf("server version: %w", err)
	}
	s.version = serverVersion(version, comment)

	if _, err := conn.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
		return nil, err
	}
	if e.opts.LockTimeout > 0 {
		secs := max(int64(e.opts.LockTimeout/time.Second), 1)
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("SET SESSION lock_wait_timeout = %d, SESSION innodb_lock_wait_timeout = %d", secs, secs)); err != nil {
			return nil, fmt.Errorf("setting lock_wait_timeout: %w", err)
		}
	}
	before, err := listRelations(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	if err := checkRelations(before, e.opts.AllowNonTransactional); err != nil {
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); err != nil {
		return nil, fmt.Errorf("starting the transaction: %w", err)
	}
	if e.opts.afterStart != nil {
		e.opts.afterStart()
	}
	if err := touchRelations(ctx, conn, before); err != nil {
		return nil, err
	}
	after, err := listRelations(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	if !sameRelations(before, after) {
		return nil, fmt.Errorf("%w: the list of tables changed", ErrConcurrentDDL)
	}
	cat, err := readCatalog(ctx, conn, cfg.DBName, after)
	if err != nil {
		return nil, err
	}
	s.cat = cat
	for _, t := range cat.tables {
		s.byName[t.table.Name] = t
	}
	return s, nil
}

// serverVersion returns e.g. "MariaDB 10.11.19" or "MySQL 8.0.36".
func serverVersion(version, comment string) string {
	v := version
	if i := strings.IndexByte(v, '-'); i >= 0 {
		v = v[:i]
	}
	if strings.Contains(strings.ToLower(version+" "+comment), "mariadb") {
		return "MariaDB " + v
	}
	return "MySQL " + v
}

// checkRelations refuses what a snapshot cannot hold faithfully.
func checkRelations(rels []relation, allowNonTransactional bool) error {
	var nonTx []string
	for _, r := range rels {
		switch r.typ {
		case "BASE TABLE", "SEQUENCE":
		case "SYSTEM VERSIONED":
			return fmt.Errorf("%w: %s is a system-versioned table, whose history a restore would lose", ErrUnsupported, r.name)
		default:
			return fmt.Errorf("%w: %s is of type %q", ErrUnsupported, r.name, r.typ)
		}
		if r.typ == "BASE TABLE" && !strings.EqualFold(r.engine, "InnoDB") {
			nonTx = append(nonTx, r.name+" ("+r.engine+")")
		}
	}
	if len(nonTx) > 0 && !allowNonTransactional {
		return fmt.Errorf("%w: %s; convert them to InnoDB, or allow non-transactional tables", ErrNonTransactional, strings.Join(nonTx, ", "))
	}
	return nil
}

// touchRelations reads one row of every table and sequence inside the
// transaction. That takes a metadata lock on each, held until the
// transaction ends, so that no DDL can change them while the snapshot is
// open; and InnoDB refuses the read (ER_TABLE_DEF_CHANGED) of a table
// created or rebuilt since the snapshot began, as ErrConcurrentDDL.
func touchRelations(ctx context.Context, conn *sql.Conn, rels []relation) error {
	for _, r := range rels {
		rows, err := conn.QueryContext(ctx, "SELECT 1 FROM "+quoteIdent(r.name)+" LIMIT 1")
		if err == nil {
			for rows.Next() {
			}
			err = rows.Err()
			rows.Close()
		}
		if err != nil {
			switch errorNumber(err) {
			case erNoSuchTable, erTableDefChanged:
				return fmt.Errorf("%w: %s: %v", ErrConcurrentDDL, r.name, err)
			}
			return fmt.Errorf("reading %s: %w", r.name, err)
		}
	}
	return nil
}
