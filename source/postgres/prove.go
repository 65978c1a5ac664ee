package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/kluis-nl/kluis/source"
)

var _ source.ProvingTarget = (*Target)(nil)

// copyInSQL is the COPY statement that loads tb. FREEZE writes the rows
// frozen and the pages all-visible (the table was truncated in the same
// transaction), so reading them back right after the load does not dirty
// every page again to set hint bits, and the restored database needs no
// anti-wraparound vacuum of its whole contents later.
func copyInSQL(tb source.Table) string {
	sql := "COPY " + pgx.Identifier{tb.Schema, tb.Table}.Sanitize()
	if len(tb.Columns) > 0 {
		sql += " (" + columnList(tb.Columns) + ")"
	}
	return sql + " FROM STDIN (FREEZE)"
}

// checkLoadable refuses a table this target cannot load.
func checkLoadable(tb source.Table) error {
	if tb.Encoding != Encoding {
		return fmt.Errorf("postgres: table %s: cannot load encoding %q, only %q", tb.Name, tb.Encoding, Encoding)
	}
	if tb.Schema == "" || tb.Table == "" {
		return fmt.Errorf("postgres: table %q without schema or name", tb.Name)
	}
	return nil
}

// load loads tb in one transaction on conn: TRUNCATE ONLY, COPY … FROM
// STDIN (FREEZE), then a count of the rows this transaction wrote to every
// user table. stale is true when it wrote to any other table, or other
// than the rows copied to tb (code the load ran, such as a volatile
// function in a CHECK constraint, changed data): fingerprints read before
// may no longer hold.
func (t *Target) load(ctx context.Context, conn *pgx.Conn, tb source.Table, rows io.Reader) (oid int64, stale bool, err error) {
	if err := checkLoadable(tb); err != nil {
		return 0, false, err
	}
	ident := pgx.Identifier{tb.Schema, tb.Table}.Sanitize()
	fail := func(err error) (int64, bool, error) {
		execSimple(context.Background(), conn, "ROLLBACK")
		return 0, false, redactError(fmt.Errorf("loading table %s: %w", tb.Name, err), t.cfg.Password)
	}
	if err := execSimple(ctx, conn, "BEGIN"); err != nil {
		return fail(err)
	}
	before, err := rowWrites(ctx, conn)
	if err != nil {
		return fail(err)
	}
	if err := execSimple(ctx, conn, "TRUNCATE ONLY "+ident); err != nil {
		return fail(err)
	}
	tag, err := conn.PgConn().CopyFrom(ctx, rows, copyInSQL(tb))
	if err != nil {
		return fail(err)
	}
	if err := conn.QueryRow(ctx, "SELECT $1::pg_catalog.regclass::pg_catalog.oid::pg_catalog.int8", ident).Scan(&oid); err != nil {
		return fail(err)
	}
	after, err := rowWrites(ctx, conn)
	if err != nil {
		return fail(err)
	}
	for rel, n := range after {
		if n -= before[rel]; n != 0 && (rel != oid || n != tag.RowsAffected()) {
			stale = true
		}
	}
	if err := execSimple(ctx, conn, "COMMIT"); err != nil {
		return fail(err)
	}
	return oid, stale, nil
}

// LoadAndFingerprint loads tb like LoadTable and, on the same connection
// right after the load committed, reads the table back from the server
// and fingerprints what the server returns (docs/evidence.md, "What a
// report proves"): the fingerprint is of the rows the server holds, not of
// the stream sent to it, so a value the server's input function changes
// (a numeric typmod rounding, an extension type of another version, an
// encoding) shows as a mismatch. The table's storage file is noted;
// ApplyPostData reports the fingerprint stale if it changes.
func (t *Target) LoadAndFingerprint(ctx context.Context, tb source.Table, rows io.Reader) (res source.TableResult, stale bool, err error) {
	if err := checkLoadable(tb); err != nil {
		return source.TableResult{}, false, err
	}
	conn, err := t.acquire(ctx)
	if err != nil {
		return source.TableResult{}, false, err
	}
	defer func() { t.release(conn, err) }()
	oid, stale, err := t.load(ctx, conn, tb, rows)
	if err != nil {
		return source.TableResult{}, false, err
	}
	t.committed(tb)
	var node int64
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.pg_relation_filenode($1::pg_catalog.int8::pg_catalog.oid)::pg_catalog.int8", oid).Scan(&node); err != nil {
		return source.TableResult{}, false, redactError(fmt.Errorf("table %s: %w", tb.Name, err), t.cfg.Password)
	}
	res, err = copyOut(ctx, conn, tb, false, nil, t.key)
	if err != nil {
		return source.TableResult{}, false, redactError(fmt.Errorf("fingerprinting table %s: %w", tb.Name, err), t.cfg.Password)
	}
	t.mu.Lock()
	if t.proved == nil {
		t.proved = map[int64]int64{}
	}
	t.proved[oid] = node
	t.mu.Unlock()
	return res, stale, nil
}

// rowWrites returns, per table oid, the rows this session inserted,
// updated or deleted in user tables and has not yet reported to the
// cumulative statistics: pg_stat_xact_all_tables holds the current
// transaction's counts, and may still hold earlier transactions' until the
// session flushes them (never in the middle of a transaction), so callers
// compare two readings taken in one transaction.
func rowWrites(ctx context.Context, conn *pgx.Conn) (map[int64]int64, error) {
	rows, err := conn.Query(ctx, rowWritesSQL)
	if err != nil {
		return nil, err
	}
	out := map[int64]int64{}
	for rows.Next() {
		var oid, n int64
		if err := rows.Scan(&oid, &n); err != nil {
			rows.Close()
			return nil, err
		}
		out[oid] = n
	}
	return out, rows.Err()
}

// ApplyPostData executes a post-data section (DDL from Snapshot.Schema)
// the way pg_restore -j does: indexes and primary key, unique, exclusion,
// check and foreign key constraints on up to parallel connections, each
// entry once every earlier entry it shares a table with is done (two
// indexes on one table build side by side; anything that takes a table's
// exclusive lock waits for the others), and every other entry (triggers,
// rules, policies, index attachments, comments, sequence values,
// materialized view refreshes, anything on a table in an inheritance or
// partition tree) alone and in order. Each entry is one transaction. A
// section the splitter cannot read with certainty runs whole, in one
// transaction, as ApplySchema does. StartPostData runs the same section
// beside the loads.
//
// stale is true when any statement wrote rows to a user table, or any
// table fingerprinted by LoadAndFingerprint got a new storage file
// (TRUNCATE, a rewrite), or the section creates event triggers (which run
// user code on later DDL), or the section could not be split (what it
// does cannot be told): fingerprints read at load time then no longer
// prove the final contents, and the caller reads them again.
func (t *Target) ApplyPostData(ctx context.Context, ddl io.Reader, parallel int) (stale bool, err error) {
	p, err := t.startPostData(ctx, ddl, parallel, nil)
	if err != nil {
		return false, err
	}
	return p.Finish()
}

func entrySQL(e ddlEntry) string {
	var b strings.Builder
	for _, s := range e.stmts {
		if s.isEmpty() {
			continue
		}
		b.WriteString(s.text)
		b.WriteString(";\n")
	}
	return b.String()
}

// runEntry executes sql in one transaction on conn and reports whether it
// wrote rows to any user table. An entry that overlaps the loads waits for
// a lock at most overlapLockTimeout.
func (t *Target) runEntry(ctx context.Context, conn *pgx.Conn, sql string, overlaps bool) (stale bool, err error) {
	if strings.TrimSpace(sql) == "" {
		return false, nil
	}
	fail := func(err error) (bool, error) {
		execSimple(context.Background(), conn, "ROLLBACK")
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Position > 0 {
			n, line := lineAt([]byte(sql), int(pgErr.Position))
			err = fmt.Errorf("line %d: %q: %w", n, line, err)
		}
		return false, redactError(fmt.Errorf("applying schema: %w", err), t.cfg.Password)
	}
	if err := execSimple(ctx, conn, "BEGIN"); err != nil {
		return fail(err)
	}
	if overlaps {
		if err := execSimple(ctx, conn, "SET LOCAL lock_timeout = '"+overlapLockTimeout+"'"); err != nil {
			return fail(err)
		}
	}
	before, err := rowWrites(ctx, conn)
	if err != nil {
		return fail(err)
	}
	if err := execSimple(ctx, conn, sql); err != nil {
		return fail(err)
	}
	after, err := rowWrites(ctx, conn)
	if err != nil {
		return fail(err)
	}
	if err := execSimple(ctx, conn, "COMMIT"); err != nil {
		return fail(err)
	}
	for rel, n := range after {
		if n != before[rel] {
			stale = true
		}
	}
	return stale, nil
}

// filenodesChanged reports whether a table fingerprinted at load time has
// another storage file now (or is gone).
func (t *Target) filenodesChanged(ctx context.Context, conn *pgx.Conn) (bool, error) {
	t.mu.Lock()
	proved := make(map[int64]int64, len(t.proved))
	for k, v := range t.proved {
		proved[k] = v
	}
	t.mu.Unlock()
	if len(proved) == 0 {
		return false, nil
	}
	rows, err := conn.Query(ctx, filenodesSQL)
	if err != nil {
		return false, redactError(err, t.cfg.Password)
	}
	now := map[int64]int64{}
	for rows.Next() {
		var oid, node int64
		if err := rows.Scan(&oid, &node); err != nil {
			rows.Close()
			return false, err
		}
		now[oid] = node
	}
	if err := rows.Err(); err != nil {
		return false, redactError(err, t.cfg.Password)
	}
	for oid, node := range proved {
		if n, ok := now[oid]; !ok || n != node {
			return true, nil
		}
	}
	return false, nil
}
