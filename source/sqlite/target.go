package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/kluis-nl/kluis/source"
)

// ErrTargetExists is wrapped by the error of NewTarget about a file that
// already holds a database.
var ErrTargetExists = errors.New("target database already exists")

// Target restores into a SQLite database file.
type Target struct {
	path string
	key  []byte
	db   *sql.DB
	// sem admits one user of the database at a time: SQLite has one
	// writer, and a wait for it must end with the caller's context.
	sem chan struct{}
}

var _ source.Target = (*Target)(nil)

// siblings are the files SQLite keeps beside a database; a stale one
// would be replayed into a new database of the same name.
var siblings = []string{"-wal", "-shm", "-journal"}

// NewTarget opens path for a restore. A missing or empty file, or a SQLite
// database without any schema, is (re)created. A database with a schema is
// refused with ErrTargetExists unless force is set, in which case it is
// removed first. A file that is not a SQLite database is never touched.
func NewTarget(path string, fingerprintKey []byte, force bool) (*Target, error) {
	if err := prepareTargetFile(path, force); err != nil {
		return nil, err
	}
	dsn, err := fileDSN(path, "_pragma=foreign_keys(0)", "_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, err
	}
	db, err := openDB(dsn)
	if err != nil {
		return nil, err
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	sem := make(chan struct{}, 1)
	return &Target{path: path, key: fingerprintKey, db: db, sem: sem}, nil
}

// prepareTargetFile leaves no file, or an empty one, at path.
func prepareTargetFile(path string, force bool) error {
	empty, err := checkDatabaseFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		empty = true
	case err != nil:
		if errors.Is(err, ErrNotSQLite) {
			return fmt.Errorf("%w; refusing to overwrite it", err)
		}
		return err
	}
	if !empty {
		hasSchema, err := databaseHasSchema(path)
		if err != nil {
			return err
		}
		if hasSchema && !force {
			return fmt.Errorf("sqlite: %s: %w (restore with force to replace it)", path, ErrTargetExists)
		}
	}
	var stale []string
	for _, suffix := range siblings {
		if _, err := os.Lstat(path + suffix); err == nil {
			stale = append(stale, path+suffix)
		}
	}
	if len(stale) > 0 && !force && empty {
		return fmt.Errorf("sqlite: %s: %w: leftover %s would be replayed into it (restore with force to remove)",
			path, ErrTargetExists, strings.Join(stale, ", "))
	}
	if !empty {
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("sqlite: %w", err)
		}
	}
	for _, f := range stale {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("sqlite: %w", err)
		}
	}
	return createPrivate(path)
}

// createPrivate makes the (absent or empty) target file mode 0600 before
// SQLite opens it: the restored rows are personal data, and SQLite gives
// its journal and WAL files the database file's mode. Without this the
// driver created it 0644 (less the umask).
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return nil
}

// databaseHasSchema reports whether the SQLite database at path holds any
// schema object or a user_version or application_id.
func databaseHasSchema(path string) (bool, error) {
	dsn, err := fileDSN(path, "mode=ro", "_pragma=busy_timeout(10000)")
	if err != nil {
		return false, err
	}
	db, err := openDB(dsn)
	if err != nil {
		return false, err
	}
	defer db.Close()
	var n int64
	err = db.QueryRow(`SELECT (SELECT count(*) FROM main.sqlite_schema)
		+ (SELECT user_version FROM pragma_user_version)
		+ (SELECT application_id FROM pragma_application_id) != 0`).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("sqlite: inspect existing %s: %w", path, err)
	}
	return n != 0, nil
}

func (t *Target) acquire(ctx context.Context) error {
	select {
	case t.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *Target) release() { <-t.sem }

// ApplySchema executes the statements of a kluis-sqlite-ddl-v1 stream in
// order. Runs of statements other than PRAGMAs (which may not run inside a
// transaction) each run in one transaction.
func (t *Target) ApplySchema(ctx context.Context, ddl io.Reader) error {
	if err := t.acquire(ctx); err != nil {
		return err
	}
	defer t.release()
	conn, err := t.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", t.path, err)
	}
	defer conn.Close()
	inTx := false
	end := func() error {
		if !inTx {
			return nil
		}
		inTx = false
		_, err := conn.ExecContext(context.WithoutCancel(ctx), "COMMIT")
		return err
	}
	defer func() {
		if inTx {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	r := NewDDLReader(ddl)
	for i := 1; ; i++ {
		stmt, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("sqlite: schema for %s: %w", t.path, err)
		}
		pragma := isPragma(stmt)
		if pragma {
			err = end()
		} else if !inTx {
			_, err = conn.ExecContext(ctx, "BEGIN")
			inTx = err == nil
		}
		if err == nil {
			_, err = conn.ExecContext(ctx, stmt)
		}
		if err != nil {
			return fmt.Errorf("sqlite: schema for %s: statement %d: %w", t.path, i, err)
		}
	}
	if err := end(); err != nil {
		return fmt.Errorf("sqlite: schema for %s: commit: %w", t.path, err)
	}
	return nil
}

func isPragma(stmt string) bool {
	s := strings.TrimLeft(stmt, " \t\r\n")
	return len(s) >= 6 && strings.EqualFold(s[:6], "PRAGMA")
}

// LoadTable inserts the rows of a kluis-row-v1 stream into t in one
// transaction. Foreign keys are not enforced during a restore.
func (t *Target) LoadTable(ctx context.Context, tbl source.Table, rows io.Reader) error {
	if tbl.Encoding != source.RowEncoding {
		return fmt.Errorf("sqlite: table %q: cannot load encoding %q", tbl.Name, tbl.Encoding)
	}
	if len(tbl.Columns) == 0 {
		return fmt.Errorf("sqlite: table %q has no columns", tbl.Name)
	}
	if err := t.acquire(ctx); err != nil {
		return err
	}
	defer t.release()
	if err := t.load(ctx, tbl, rows); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			err = cerr // what failed is the rolled-back transaction
		}
		return fmt.Errorf("sqlite: load table %q into %s: %w", tbl.Name, t.path, err)
	}
	return nil
}

func (t *Target) load(ctx context.Context, tbl source.Table, rows io.Reader) error {
	tx, err := t.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	stmt, err := tx.PrepareContext(ctx, insertRow(tableName(tbl), tbl.Columns))
	if err != nil {
		return err
	}
	defer stmt.Close()
	// Each row's insert runs without the context, which would start a
	// watcher per call; the context is checked between rows instead.
	rowCtx := context.WithoutCancel(ctx)
	args := make([]any, len(tbl.Columns))
	dec := source.NewRowDecoder(rows)
	for {
		vals, err := dec.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		n := dec.Rows()
		if n%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if len(vals) != len(args) {
			return fmt.Errorf("row %d has %d fields for %d columns", n, len(vals), len(args))
		}
		for i, v := range vals {
			if args[i], err = toArg(v); err != nil {
				return fmt.Errorf("row %d column %d: %w", n, i+1, err)
			}
		}
		if _, err := stmt.ExecContext(rowCtx, args...); err != nil {
			return fmt.Errorf("row %d: %w", n, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return tx.Commit()
}

// insertRow returns the INSERT statement for one row of cols.
func insertRow(table string, cols []source.Column) string {
	var b strings.Builder
	b.WriteString("INSERT INTO main.")
	b.WriteString(quoteIdent(table))
	b.WriteString(" (")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(c.Name))
	}
	b.WriteString(") VALUES (")
	for i := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("?")
	}
	b.WriteString(")")
	return b.String()
}

// tableName is the unqualified name of a table in this engine.
func tableName(t source.Table) string {
	if t.Table != "" {
		return t.Table
	}
	return t.Name
}

// Fingerprint reads a loaded table back in its canonical encoding and
// returns its row count and fingerprint.
func (t *Target) Fingerprint(ctx context.Context, tbl source.Table) (source.TableResult, error) {
	if len(tbl.Columns) == 0 {
		return source.TableResult{}, fmt.Errorf("sqlite: table %q has no columns", tbl.Name)
	}
	if err := t.acquire(ctx); err != nil {
		return source.TableResult{}, err
	}
	defer t.release()
	var order []string
	for _, c := range tbl.PrimaryKey {
		order = append(order, quoteIdent(c))
	}
	enc := source.NewRowEncoder(io.Discard, t.key)
	q := selectRows(tableName(tbl), tbl.Columns, order)
	if err := streamRows(ctx, t.db, q, len(tbl.Columns), enc); err != nil {
		return source.TableResult{}, fmt.Errorf("sqlite: fingerprint table %q in %s: %w", tbl.Name, t.path, err)
	}
	return enc.Finish()
}

// Close closes the database.
func (t *Target) Close() error {
	if err := t.db.Close(); err != nil {
		return fmt.Errorf("sqlite: close %s: %w", t.path, err)
	}
	return nil
}
