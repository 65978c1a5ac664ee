package dossier

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/source"

	_ "modernc.org/sqlite" // driver "sqlite"
)

// ErrSharedMissing is returned when rows the dossier refers to outside
// itself are missing from the target.
var ErrSharedMissing = errors.New("shared rows the dossier refers to are missing from the target")

// Target is a live database receiving a dossier (or an erasure) in one
// transaction: nothing is visible until Commit, and Rollback (or Close
// without Commit) undoes everything.
type Target struct {
	d        dialect
	tables   []source.TableMeta
	oc       OnConflict
	exec     func(ctx context.Context, sql string) (int64, error)
	exists   func(ctx context.Context, sql string) (bool, error)
	commit   func(ctx context.Context) error
	rollback func()
	// query runs q in the transaction, scanning each row into dest().
	query    func(ctx context.Context, q string, dest func() []any, each func()) error
	ins      *inserter
	buf      []byte
	triggers TriggerMode
	// skippedKeys holds, per table, the rows --on-conflict skip left as
	// they were (not compared with the snapshot).
	skippedKeys map[string]map[string]bool

	// Inserted and Skipped count rows per table.
	Inserted map[string]int64
	Skipped  map[string]int64
}

// OpenTarget opens the target database of engine: a SQLite file that must
// exist, a PostgreSQL DSN, or a MariaDB (go-sql-driver) DSN naming the
// database. A DSN may carry a password; it is never logged or put in an
// error. It begins the transaction.
func OpenTarget(ctx context.Context, engine, where string, tables []source.TableMeta, oc OnConflict) (*Target, error) {
	return openTarget(ctx, engine, where, tables, oc, TriggersCheck)
}

func openTarget(ctx context.Context, engine, where string, tables []source.TableMeta, oc OnConflict, tm TriggerMode) (*Target, error) {
	d, err := newDialect(engine)
	if err != nil {
		return nil, err
	}
	t := &Target{d: d, tables: tables, oc: oc, triggers: tm, Inserted: map[string]int64{}, Skipped: map[string]int64{}, skippedKeys: map[string]map[string]bool{}}
	if tm == TriggersDisable && engine == "sqlite" {
		return nil, errors.New("sqlite target: triggers cannot be disabled in SQLite; use --triggers check or fire")
	}
	switch engine {
	case "sqlite":
		if strings.ContainsRune(where, '?') {
			return nil, fmt.Errorf("sqlite target %q: a '?' would be read as driver options", where)
		}
		if _, err := os.Stat(where); err != nil {
			return nil, fmt.Errorf("sqlite target: %w", err)
		}
		db, err := sql.Open("sqlite", where)
		if err != nil {
			return nil, err
		}
		conn, err := db.Conn(ctx)
		if err != nil {
			db.Close()
			return nil, err
		}
		done := func() { conn.Close(); db.Close() }
		for _, s := range []string{"PRAGMA foreign_keys = ON", "PRAGMA busy_timeout = 10000", "BEGIN IMMEDIATE", "PRAGMA defer_foreign_keys = ON"} {
			if _, err := conn.ExecContext(ctx, s); err != nil {
				done()
				return nil, fmt.Errorf("sqlite target: %s: %w", s, err)
			}
		}
		t.exec = func(ctx context.Context, q string) (int64, error) {
			r, err := conn.ExecContext(ctx, q)
			if err != nil {
				return 0, err
			}
			return r.RowsAffected()
		}
		t.exists = func(ctx context.Context, q string) (bool, error) {
			var one int
			err := conn.QueryRowContext(ctx, q).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return false, nil
			}
			return err == nil, err
		}
		t.query = func(ctx context.Context, q string, dest func() []any, each func()) error {
			return scanSQLRows(conn.QueryContext(ctx, q))(dest, each)
		}
		t.commit = func(ctx context.Context) error {
			_, err := conn.ExecContext(ctx, "COMMIT")
			done()
			return err
		}
		t.rollback = func() {
			conn.ExecContext(context.Background(), "ROLLBACK")
			done()
		}
	case "postgres":
		cfg, err := pgx.ParseConfig(where)
		if err != nil {
			return nil, errors.New("postgres target: the DSN does not parse")
		}
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("postgres target: %w", err)
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			conn.Close(ctx)
			return nil, err
		}
		for _, s := range d.preamble() {
			if _, err := tx.Exec(ctx, strings.Replace(s, "SET ", "SET LOCAL ", 1), pgx.QueryExecModeSimpleProtocol); err != nil {
				tx.Rollback(ctx)
				conn.Close(ctx)
				return nil, fmt.Errorf("postgres target: %s: %w", s, err)
			}
		}
		t.exec = func(ctx context.Context, q string) (int64, error) {
			tag, err := tx.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol)
			return tag.RowsAffected(), err
		}
		t.exists = func(ctx context.Context, q string) (bool, error) {
			var one int
			err := tx.QueryRow(ctx, q, pgx.QueryExecModeSimpleProtocol).Scan(&one)
			if errors.Is(err, pgx.ErrNoRows) {
				return false, nil
			}
			return err == nil, err
		}
		if tm == TriggersDisable {
			if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica", pgx.QueryExecModeSimpleProtocol); err != nil {
				tx.Rollback(ctx)
				conn.Close(ctx)
				return nil, fmt.Errorf("postgres target: --triggers disable needs a role that may set session_replication_role (a superuser, or on PostgreSQL 15+ one granted SET ON PARAMETER session_replication_role): %w", err)
			}
		}
		t.query = func(ctx context.Context, q string, dest func() []any, each func()) error {
			rows, err := tx.Query(ctx, q, pgx.QueryExecModeSimpleProtocol)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				if err := rows.Scan(dest()...); err != nil {
					return err
				}
				each()
			}
			return rows.Err()
		}
		t.commit = func(ctx context.Context) error {
			err := tx.Commit(ctx)
			conn.Close(context.Background())
			return err
		}
		t.rollback = func() {
			tx.Rollback(context.Background())
			conn.Close(context.Background())
		}
	case "mariadb":
		if err := t.openMariaDB(ctx, where); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// CheckShared reports the shared rows missing from the target, as an
// error wrapping ErrSharedMissing that names each table and key.
func (t *Target) CheckShared(ctx context.Context, shared []SharedRef) error {
	var missing []string
	for _, s := range shared {
		tr, err := t.d.groupRef(s.Table, t.tables)
		if err != nil {
			return err
		}
		var miss []string
		for i, k := range s.Keys {
			var b []byte
			b = append(b, "SELECT 1 FROM "+tr+" WHERE "...)
			for j, c := range s.Columns {
				q, err := t.d.ident(c)
				if err != nil {
					return err
				}
				if j > 0 {
					b = append(b, " AND "...)
				}
				b = append(b, q+" = "...)
				b = t.d.appendColumnLiteral(b, k[j], columnOf(t.tables, s.Table, c))
			}
			b = append(b, " LIMIT 1"...)
			ok, err := t.exists(ctx, string(b))
			if err != nil {
				return fmt.Errorf("checking shared rows in %s: %w", s.Table, err)
			}
			if !ok {
				miss = append(miss, s.Display[i])
			}
		}
		if len(miss) > 0 {
			missing = append(missing, fmt.Sprintf("%s: %d of %d referenced rows missing (%s)", s.Table, len(miss), len(s.Keys), strings.Join(miss, "; ")))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w:\n  %s\nrestore those rows first (they are not part of the dossier), or restore into a database that has them", ErrSharedMissing, strings.Join(missing, "\n  "))
	}
	return nil
}

// BeginTable implements Sink.
func (t *Target) BeginTable(_ context.Context, tm source.TableMeta) error {
	ins, err := t.d.newInserter(tm, t.oc)
	t.ins = ins
	return err
}

// Row implements Sink.
func (t *Target) Row(ctx context.Context, tm source.TableMeta, row []source.Value) error {
	t.buf = t.ins.append(t.buf[:0], row)
	n, err := t.exec(ctx, string(t.buf))
	if err != nil {
		if t.oc == ConflictFail && isConflict(err) {
			return fmt.Errorf("table %s: a dossier row already exists in the target (use --on-conflict skip to keep the existing rows): %w", tm.Name, err)
		}
		return fmt.Errorf("table %s: %w", tm.Name, err)
	}
	if n == 0 {
		t.Skipped[tm.Name]++
		if t.skippedKeys[tm.Name] == nil {
			t.skippedKeys[tm.Name] = map[string]bool{}
		}
		t.skippedKeys[tm.Name][rowKey(tm, row)] = true
		return nil
	}
	t.Inserted[tm.Name]++
	if t.triggers == TriggersDisable && t.d.engine == "mariadb" {
		if err := t.resetRow(ctx, tm, row); err != nil {
			return fmt.Errorf("table %s: setting the row back to the snapshot's values: %w", tm.Name, err)
		}
	}
	return nil
}

// EndTable implements Sink.
func (t *Target) EndTable(context.Context, source.TableMeta, int64) error { return nil }

// Exec runs one statement in the transaction (used by erasure).
func (t *Target) Exec(ctx context.Context, q string) (int64, error) { return t.exec(ctx, q) }

// Commit commits the transaction and closes the connection.
func (t *Target) Commit(ctx context.Context) error {
	c := t.commit
	t.commit, t.rollback = nil, nil
	if c == nil {
		return errors.New("transaction already finished")
	}
	return c(ctx)
}

// Close rolls back unless committed.
func (t *Target) Close() {
	if t.rollback != nil {
		t.rollback()
		t.commit, t.rollback = nil, nil
	}
}

func isFKViolation(err error) bool {
	switch mariadbErrorNumber(err) {
	case erNoReferencedRow, erNoReferencedRow2:
		return true
	}
	s := err.Error()
	return strings.Contains(s, "FOREIGN KEY constraint failed") || strings.Contains(s, "SQLSTATE 23503")
}

// IntoResult reports a dossier restored into a database.
type IntoResult struct {
	*Result
	Inserted int64 `json:"inserted"`
	Skipped  int64 `json:"skipped"`
	// Triggers is the trigger mode; Differences lists the tables whose
	// rows the target changed (only ever committed with TriggersFire).
	Triggers    TriggerMode  `json:"triggers"`
	Differences []Difference `json:"differences,omitempty"`
}

// IntoOptions tune RestoreIntoWith.
type IntoOptions struct {
	OnConflict OnConflict
	Triggers   TriggerMode
	// CheckTarget, when set, is given the identity of the database the
	// target connection reached (TargetIdentity), before anything is
	// written; an error refuses the restore and nothing is written.
	CheckTarget func(context.Context, TargetIdentity) error
}

// RestoreInto restores the dossier id of snapshot m into the live database
// where (a SQLite path, a PostgreSQL or a MariaDB DSN) in one transaction,
// parents before children. Shared rows the dossier refers to must exist in the
// target: when one is missing nothing is committed and the error (wrapping
// ErrSharedMissing) names each. The snapshot's streams are read once; only
// when an insert fails on a foreign key are they read again, to say which
// shared rows are missing.
func RestoreInto(ctx context.Context, src StreamSource, m *repo.Manifest, p *Plan, id, where string, oc OnConflict) (*IntoResult, error) {
	return RestoreIntoWith(ctx, src, m, p, id, where, IntoOptions{OnConflict: oc})
}

// RestoreIntoWith is RestoreInto with a trigger mode. Before committing,
// every inserted row is read back in the transaction and compared with the
// snapshot's (the streams are read a second time): with TriggersCheck and
// TriggersDisable a difference rolls back and the error (wrapping
// ErrTriggerChanged) names the table, the columns and the table's
// triggers; with TriggersFire the differences are committed and listed.
func RestoreIntoWith(ctx context.Context, src StreamSource, m *repo.Manifest, p *Plan, id, where string, opts IntoOptions) (*IntoResult, error) {
	oc := opts.OnConflict
	if opts.Triggers == "" {
		opts.Triggers = TriggersCheck
	}
	tables, err := backup.Tables(m)
	if err != nil {
		return nil, err
	}
	t, err := openTarget(ctx, m.Engine, where, tables, oc, opts.Triggers)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	if opts.CheckTarget != nil {
		tid, err := t.identity(ctx, m.Engine, where)
		if err != nil {
			return nil, err
		}
		if err := opts.CheckTarget(ctx, tid); err != nil {
			return nil, err
		}
	}
	res, err := Extract(ctx, src, m, p, id, t)
	if err != nil {
		t.Close()
		if isFKViolation(err) {
			if serr := sharedMissing(ctx, src, m, p, id, where, tables); serr != nil {
				return nil, serr
			}
		}
		return nil, err
	}
	// SQLite checks foreign keys at commit (deferred), PostgreSQL and
	// MariaDB already did at every insert, and a schema may declare none
	// (edges:): either way say clearly what is missing.
	if err := t.CheckShared(ctx, res.Shared); err != nil {
		return nil, err
	}
	out := &IntoResult{Result: res, Triggers: opts.Triggers}
	v := &verifier{t: t, diffs: map[string]*Difference{}, cols: map[string]map[string]bool{}}
	if _, err := Extract(ctx, src, m, p, id, v); err != nil {
		return nil, fmt.Errorf("comparing the restored rows with the snapshot: %w", err)
	}
	if out.Differences, err = v.result(ctx); err != nil {
		return nil, err
	}
	if len(out.Differences) > 0 && opts.Triggers != TriggersFire {
		var lines []string
		for _, d := range out.Differences {
			lines = append(lines, d.String())
		}
		hint := "restore with --triggers disable to insert the rows as they were, or --triggers fire to keep what the triggers did"
		if opts.Triggers == TriggersDisable {
			hint = "the rows could not be set back to the snapshot's values (an UPDATE trigger?); restore with --triggers fire to keep what the triggers did"
		}
		return nil, fmt.Errorf("%w; nothing was committed:\n  %s\n%s", ErrTriggerChanged, strings.Join(lines, "\n  "), hint)
	}
	for _, v := range t.Inserted {
		out.Inserted += v
	}
	for _, v := range t.Skipped {
		out.Skipped += v
	}
	if err := t.Commit(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

func sharedMissing(ctx context.Context, src StreamSource, m *repo.Manifest, p *Plan, id, where string, tables []source.TableMeta) error {
	pre, err := Extract(ctx, src, m, p, id, nil)
	if err != nil {
		return nil
	}
	t, err := OpenTarget(ctx, m.Engine, where, tables, ConflictFail)
	if err != nil {
		return nil
	}
	defer t.Close()
	return t.CheckShared(ctx, pre.Shared)
}

func isConflict(err error) bool {
	switch mariadbErrorNumber(err) {
	case erDupEntry, erDupEntryWithKey:
		return true
	}
	s := err.Error()
	return strings.Contains(s, "UNIQUE constraint failed") || strings.Contains(s, "SQLSTATE 23505") || strings.Contains(s, "duplicate key")
}
