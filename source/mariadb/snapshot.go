package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/kluis-nl/kluis/source"
)

// snapshot is one REPEATABLE READ READ ONLY transaction with a consistent
// snapshot, on one dedicated connection. Its methods are serialised.
type snapshot struct {
	mu       sync.Mutex
	db       *sql.DB
	conn     *sql.Conn
	password string
	key      []byte
	version  string
	cat      *catalog
	byName   map[string]*tableInfo
	closed   bool
}

var _ source.Snapshot = (*snapshot)(nil)

// ServerVersion returns e.g. "MariaDB 10.11.19".
func (s *snapshot) ServerVersion() string { return s.version }

// Tables returns the base tables in byte order of their names.
func (s *snapshot) Tables() []source.Table {
	out := make([]source.Table, len(s.cat.tables))
	for i, t := range s.cat.tables {
		out[i] = t.table
	}
	return out
}

// Schema writes the pre and post statements as kluis-mariadb-ddl-v1
// streams (see the package documentation for what each holds).
func (s *snapshot) Schema(ctx context.Context, pre, post io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := writeDDL(pre, s.cat.pre); err != nil {
		return fmt.Errorf("mariadb: writing pre-data schema: %w", err)
	}
	if err := writeDDL(post, s.cat.post); err != nil {
		return fmt.Errorf("mariadb: writing post-data schema: %w", err)
	}
	return nil
}

// WriteTable streams the rows of the snapshot's table named t.Name, in
// primary-key order (physical order without one), in kluis-row-v1.
func (s *snapshot) WriteTable(ctx context.Context, t source.Table, w io.Writer) (source.TableResult, error) {
	ti, ok := s.byName[t.Name]
	if !ok {
		return source.TableResult{}, fmt.Errorf("mariadb: no table %q in the snapshot", t.Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return source.TableResult{}, errors.New("mariadb: snapshot is closed")
	}
	enc := source.NewRowEncoder(w, s.key)
	q := selectSQL(ti.table.Table, ti.cols, ti.orderBy)
	if err := streamRows(ctx, s.conn, q, ti.cols, enc); err != nil {
		return source.TableResult{}, redactError(fmt.Errorf("mariadb: table %s: %w", t.Name, err), s.password)
	}
	res, err := enc.Finish()
	if err != nil {
		return source.TableResult{}, fmt.Errorf("mariadb: table %s: %w", t.Name, err)
	}
	return res, nil
}

// Close ends the transaction and the connection, releasing the metadata
// locks.
func (s *snapshot) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.conn != nil {
		// Rolling back a read-only transaction only releases it.
		_, _ = s.conn.ExecContext(context.Background(), "ROLLBACK")
		errs = append(errs, s.conn.Close())
	}
	errs = append(errs, s.db.Close())
	if err := errors.Join(errs...); err != nil {
		return redactError(fmt.Errorf("mariadb: closing the snapshot: %w", err), s.password)
	}
	return nil
}
