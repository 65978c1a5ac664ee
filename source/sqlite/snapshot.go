package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/kluis-nl/kluis/source"
)

// snapshot is one read transaction on one dedicated connection.
type snapshot struct {
	path   string
	key    []byte
	db     *sql.DB
	conn   *sql.Conn
	cat    *catalog
	byName map[string]*tableInfo

	mu     sync.Mutex // one statement stream at a time on conn
	closed bool
}

var _ source.Snapshot = (*snapshot)(nil)

func openSnapshot(ctx context.Context, path string, key []byte) (_ *snapshot, err error) {
	if _, err := checkDatabaseFile(path); err != nil {
		return nil, err
	}
	dsn, err := fileDSN(path, "mode=ro", "_pragma=busy_timeout(10000)", "_pragma=query_only(1)")
	if err != nil {
		return nil, err
	}
	db, err := openDB(dsn)
	if err != nil {
		return nil, err
	}
	s := &snapshot{path: path, key: key, db: db}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.conn, err = db.Conn(ctx); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// A deferred transaction takes its read snapshot at its first read,
	// which readCatalog makes at once; every later read sees that state.
	if _, err = s.conn.ExecContext(ctx, "BEGIN"); err != nil {
		return nil, fmt.Errorf("sqlite: begin read transaction on %s: %w", path, err)
	}
	if s.cat, err = readCatalog(ctx, s.conn); err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return nil, fmt.Errorf("sqlite: read schema of %s: %w", path, err)
	}
	s.byName = make(map[string]*tableInfo, len(s.cat.tables))
	for _, t := range s.cat.tables {
		s.byName[t.table.Name] = t
	}
	return s, nil
}

// ServerVersion returns e.g. "SQLite 3.50.4".
func (s *snapshot) ServerVersion() string { return "SQLite " + s.cat.version }

// Tables lists the tables, shadow tables of virtual tables included,
// sorted by name.
func (s *snapshot) Tables() []source.Table {
	ts := make([]source.Table, len(s.cat.tables))
	for i, t := range s.cat.tables {
		ts[i] = t.table
	}
	return ts
}

// Schema writes the pre and post statements as kluis-sqlite-ddl-v1
// streams.
//
// pre: the page size, auto-vacuum mode and text encoding; every CREATE
// TABLE in creation order; virtual tables as rows of sqlite_schema. post:
// views, indexes and triggers (each in creation order), the exact contents
// of sqlite_sequence, user_version and application_id, and WAL mode if the
// database uses it.
func (s *snapshot) Schema(ctx context.Context, pre, post io.Writer) error {
	for _, part := range []struct {
		w     io.Writer
		stmts []string
	}{{pre, s.cat.pre}, {post, s.cat.post}} {
		d := &ddlWriter{w: part.w}
		for _, st := range part.stmts {
			if err := ctx.Err(); err != nil {
				return err
			}
			d.stmt(st)
		}
		if err := d.close(); err != nil {
			return fmt.Errorf("sqlite: write schema: %w", err)
		}
	}
	return nil
}

// WriteTable streams the rows of the snapshot's table named t.Name, in
// primary-key order (rowid order without one), in kluis-row-v1.
func (s *snapshot) WriteTable(ctx context.Context, t source.Table, w io.Writer) (source.TableResult, error) {
	ti, ok := s.byName[t.Name]
	if !ok {
		return source.TableResult{}, fmt.Errorf("sqlite: no table %q in the snapshot of %s", t.Name, s.path)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return source.TableResult{}, fmt.Errorf("sqlite: snapshot of %s is closed", s.path)
	}
	enc := source.NewRowEncoder(w, s.key)
	q := selectRows(ti.table.Table, ti.table.Columns, ti.orderBy)
	if err := streamRows(ctx, s.conn, q, len(ti.table.Columns), enc); err != nil {
		return source.TableResult{}, fmt.Errorf("sqlite: table %q: %w", t.Name, err)
	}
	res, err := enc.Finish()
	if err != nil {
		return source.TableResult{}, fmt.Errorf("sqlite: table %q: %w", t.Name, err)
	}
	return res, nil
}

// Close ends the read transaction and closes the connection.
func (s *snapshot) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.conn != nil {
		// Rolling back a read transaction only releases it; an error here
		// (e.g. none was begun) leaves nothing behind.
		_, _ = s.conn.ExecContext(context.Background(), "ROLLBACK")
		errs = append(errs, s.conn.Close())
	}
	errs = append(errs, s.db.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close snapshot of %s: %w", s.path, err)
	}
	return nil
}
