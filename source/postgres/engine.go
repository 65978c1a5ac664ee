package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/kluis-nl/kluis/source"
)

// Errors callers can branch on.
var (
	// ErrConcurrentDDL: a table was dropped, renamed, truncated or rewritten
	// between the snapshot and its table locks; retrying will do.
	ErrConcurrentDDL = errors.New("postgres: table changed by concurrent DDL while the snapshot was taken")
)

// Options configure an Engine.
type Options struct {
	// PgDumpPath is the pg_dump binary. By default the one of the server's
	// major version under /usr/lib/postgresql, else a newer one there, else
	// pg_dump on PATH.
	PgDumpPath string
	// Parallel is the number of connections tables are streamed on, all
	// in the same snapshot (default 2).
	Parallel int
	// LockTimeout bounds how long the snapshot waits for a table lock
	// (pg_dump's and its own ACCESS SHARE locks) while another session
	// holds a conflicting one; then Snapshot fails with
	// source.ErrLockTimeout. Zero waits for ever.
	LockTimeout time.Duration

	afterExport func() // test hook: runs right after the snapshot is exported
}

func (o Options) parallel() int {
	if o.Parallel > 0 {
		return o.Parallel
	}
	return 2
}

// Engine opens snapshots of one PostgreSQL database.
type Engine struct {
	dsn  string
	key  []byte
	opts Options
}

var _ source.Engine = (*Engine)(nil)

// New returns an engine for the database at dsn (a libpq URL or
// keyword/value connection string, as pgx accepts) that fingerprints with
// fingerprintKey. Nothing is connected until Snapshot.
func New(dsn string, fingerprintKey []byte, opts Options) *Engine {
	return &Engine{dsn: dsn, key: append([]byte(nil), fingerprintKey...), opts: opts}
}

// Name returns "postgres".
func (e *Engine) Name() string { return "postgres" }

// Snapshot opens a consistent read-only view of the database (see the
// package documentation for the steps and the lock strategy).
func (e *Engine) Snapshot(ctx context.Context) (source.Snapshot, error) {
	cfg, err := parseDSN(e.dsn)
	if err != nil {
		return nil, err
	}
	s, err := openSnapshot(ctx, e, cfg)
	if err != nil {
		return nil, redactError(err, cfg.Password)
	}
	return s, nil
}

func openSnapshot(ctx context.Context, e *Engine, cfg *pgx.ConnConfig) (_ *snapshot, err error) {
	conn, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := &snapshot{conn: conn, password: cfg.Password, key: e.key}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	major, err := serverMajor(ctx, conn)
	if err != nil {
		return nil, err
	}
	s.version = "PostgreSQL " + conn.PgConn().ParameterStatus("server_version")
	pgDump, err := findPgDump(e.opts.PgDumpPath, major)
	if err != nil {
		return nil, err
	}

	if err := execSimple(ctx, conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	var snapshotID string
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.pg_export_snapshot()").Scan(&snapshotID); err != nil {
		return nil, fmt.Errorf("exporting the snapshot: %w", err)
	}
	if e.opts.afterExport != nil {
		e.opts.afterExport()
	}
	// pg_dump starts now (a process, a connection, its catalog reads)
	// while this session reads the catalog; it ends before our locks.
	type dumped struct {
		pre, post []byte
		err       error
	}
	dumpCtx, dumpCancel := context.WithCancel(ctx)
	defer dumpCancel()
	dumpDone := make(chan dumped, 1)
	go func() {
		var d dumped
		d.pre, d.post, d.err = dumpSections(dumpCtx, pgDump, e.dsn, cfg.Password, snapshotID, e.opts.LockTimeout)
		dumpDone <- d
	}()
	defer func() {
		if dumpDone != nil {
			// An error before pg_dump was waited for: end it, and wait,
			// before the transaction whose snapshot it imported ends.
			dumpCancel()
			<-dumpDone
		}
	}()
	if s.largeObjects, err = readLargeObjects(ctx, conn); err != nil {
		return nil, fmt.Errorf("listing large objects: %w", err)
	}
	cat, err := readCatalog(ctx, conn)
	if err != nil {
		return nil, err
	}
	s.tables, s.sequences, s.matviews = cat.tables, cat.sequences, cat.matviews
	if s.privileges, err = readPrivileges(ctx, conn); err != nil {
		return nil, err
	}

	// pg_dump before our locks: see the package documentation.
	d := <-dumpDone
	dumpDone = nil
	s.pre, s.post, err = d.pre, d.post, d.err
	if err != nil {
		// pg_dump fails on a table dropped since the snapshot: say so.
		if changed, cerr := changedRelations(ctx, conn, cat.relations); cerr == nil && len(changed) > 0 {
			return nil, fmt.Errorf("%w: %s was dropped, renamed, truncated or rewritten (%v)", ErrConcurrentDDL, strings.Join(changed, ", "), err)
		}
		return nil, err
	}
	if err := lockAndVerify(ctx, conn, cat.relations, e.opts.LockTimeout); err != nil {
		return nil, err
	}
	if s.sizes, err = tableSizes(ctx, conn, cat.relations); err != nil {
		return nil, err
	}
	if err := s.startWorkers(ctx, cfg, snapshotID, e.opts.parallel()); err != nil {
		return nil, err
	}
	return s, nil
}

// startWorkers opens n-1 more connections that import the exported
// snapshot, so WriteTable can stream n tables at once. The locks stay with
// the first connection, whose transaction keeps the snapshot alive.
func (s *snapshot) startWorkers(ctx context.Context, cfg *pgx.ConnConfig, snapshotID string, n int) error {
	s.idle = make(chan *pgx.Conn, n)
	s.idle <- s.conn
	for i := 1; i < n; i++ {
		w, err := connect(ctx, cfg)
		if err != nil {
			return err
		}
		s.workers = append(s.workers, w)
		if err := execSimple(ctx, w, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT "+sqlLiteral(snapshotID)); err != nil {
			return fmt.Errorf("importing the snapshot on a worker connection: %w", err)
		}
		s.idle <- w
	}
	return nil
}

func serverMajor(ctx context.Context, conn *pgx.Conn) (int, error) {
	var num string
	if err := conn.QueryRow(ctx, "SHOW server_version_num").Scan(&num); err != nil {
		return 0, fmt.Errorf("server version: %w", err)
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return 0, fmt.Errorf("server version %q: %w", num, err)
	}
	return n / 10000, nil
}

// lockAndVerify takes ACCESS SHARE locks on every relation and checks that
// each is still the relation, with the storage, that the snapshot saw.
func lockAndVerify(ctx context.Context, conn *pgx.Conn, rels []relation, timeout time.Duration) error {
	if len(rels) == 0 {
		return nil
	}
	if timeout > 0 {
		if err := execSimple(ctx, conn, fmt.Sprintf("SET lock_timeout = %d", timeout.Milliseconds())); err != nil {
			return fmt.Errorf("setting lock_timeout: %w", err)
		}
		// The snapshot holds its locks from here on: nothing later waits.
		defer execSimple(ctx, conn, "SET lock_timeout = 0")
	}
	var lock strings.Builder
	lock.WriteString("LOCK TABLE ")
	for i, r := range rels {
		if i > 0 {
			lock.WriteString(", ")
		}
		lock.WriteString("ONLY " + r.ident())
	}
	lock.WriteString(" IN ACCESS SHARE MODE")
	if err := execSimple(ctx, conn, lock.String()); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
			return fmt.Errorf("%w: %s", ErrConcurrentDDL, pgErr.Message)
		}
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
			return fmt.Errorf("%w (lock_timeout %s): %s", source.ErrLockTimeout, timeout, pgErr.Message)
		}
		return fmt.Errorf("locking tables: %w", err)
	}
	changed, err := changedRelations(ctx, conn, rels)
	if err != nil {
		return err
	}
	if len(changed) > 0 {
		return fmt.Errorf("%w: %s was dropped, renamed, truncated or rewritten", ErrConcurrentDDL, strings.Join(changed, ", "))
	}
	return nil
}

// tableSizes returns the size of every table (heap, TOAST and their maps),
// read under the snapshot's locks: pg_table_size takes an ACCESS SHARE lock
// of its own, which this session already holds, so it never waits.
func tableSizes(ctx context.Context, conn *pgx.Conn, rels []relation) (map[string]int64, error) {
	oids := make([]uint32, len(rels))
	for i, r := range rels {
		oids[i] = r.oid
	}
	rows, err := conn.Query(ctx, `SELECT COALESCE(pg_catalog.pg_table_size(t.reloid), 0) FROM unnest($1::oid[]) WITH ORDINALITY AS t(reloid, n) ORDER BY t.n`, oids)
	if err != nil {
		return nil, fmt.Errorf("reading table sizes: %w", err)
	}
	sizes, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("reading table sizes: %w", err)
	}
	if len(sizes) != len(rels) {
		return nil, fmt.Errorf("reading table sizes: %d sizes for %d tables", len(sizes), len(rels))
	}
	out := make(map[string]int64, len(rels))
	for i, r := range rels {
		out[r.qualified()] = sizes[i]
	}
	return out, nil
}

// changedRelations returns the relations whose name no longer resolves to
// the OID the snapshot saw, or whose storage was replaced since (TRUNCATE,
// a table rewrite). Name lookups and pg_relation_filenode read the current
// catalog, not the transaction's snapshot.
func changedRelations(ctx context.Context, conn *pgx.Conn, rels []relation) ([]string, error) {
	idents := make([]string, len(rels))
	oids := make([]uint32, len(rels))
	filenodes := make([]uint32, len(rels))
	for i, r := range rels {
		idents[i], oids[i], filenodes[i] = r.ident(), r.oid, r.filenode
	}
	rows, err := conn.Query(ctx, `
SELECT t.name FROM unnest($1::text[], $2::oid[], $3::oid[]) AS t(name, reloid, filenode)
WHERE pg_catalog.to_regclass(t.name) IS DISTINCT FROM t.reloid
   OR pg_catalog.pg_relation_filenode(t.reloid) IS DISTINCT FROM NULLIF(t.filenode, 0)`, idents, oids, filenodes)
	if err != nil {
		return nil, fmt.Errorf("verifying tables: %w", err)
	}
	changed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("verifying tables: %w", err)
	}
	return changed, nil
}
