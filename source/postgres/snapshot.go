package postgres

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kluis-nl/kluis/source"
)

// snapshot is an open REPEATABLE READ transaction with its tables locked.
// WriteTable runs on a small pool of connections that all see the same
// exported snapshot (SET TRANSACTION SNAPSHOT), so tables stream in
// parallel, as pg_dump -j does; the first connection holds the locks.
type snapshot struct {
	mu        sync.Mutex
	conn      *pgx.Conn
	workers   []*pgx.Conn    // extra connections importing the snapshot
	idle      chan *pgx.Conn // connections free for WriteTable
	password  string
	key       []byte
	version   string
	tables    []source.Table
	sequences []sequenceValue
	matviews  []string
	pre, post []byte

	privileges   *source.Privileges
	largeObjects []largeObject
	sizes        map[string]int64 // table name → bytes on the server (pg_table_size)
}

var (
	_ source.Snapshot   = (*snapshot)(nil)
	_ source.TableSizer = (*snapshot)(nil)
)

// TableSize returns the size of table name's heap and TOAST data when the
// snapshot locked it (pg_table_size), or 0.
func (s *snapshot) TableSize(name string) int64 { return s.sizes[name] }

func (s *snapshot) ServerVersion() string { return s.version }

// Tables returns the leaf tables in (schema, table) byte order.
func (s *snapshot) Tables() []source.Table {
	out := make([]source.Table, len(s.tables))
	copy(out, s.tables)
	return out
}

// Schema writes pg_dump's pre-data section to pre, and its post-data
// section plus sequence values and materialized view refreshes to post.
func (s *snapshot) Schema(ctx context.Context, pre, post io.Writer) error {
	if _, err := pre.Write(s.pre); err != nil {
		return fmt.Errorf("writing pre-data schema: %w", err)
	}
	if _, err := post.Write(s.postWithExtras()); err != nil {
		return fmt.Errorf("writing post-data schema: %w", err)
	}
	return nil
}

// postWithExtras returns the post-data section with sequence values and
// materialized view refreshes inserted before pg_dump's closing
// \unrestrict line (which must stay last for psql).
func (s *snapshot) postWithExtras() []byte {
	var extra bytes.Buffer
	comments := s.largeObjectComments()
	if len(s.sequences) > 0 || len(s.matviews) > 0 || len(comments) > 0 {
		extra.WriteString("--\n-- kluis: sequence values read in the snapshot, materialized view contents\n--\n\n")
		extra.WriteString("SET standard_conforming_strings = on;\n")
		extra.WriteString("SELECT pg_catalog.set_config('search_path', '', false);\n")
	}
	for _, q := range s.sequences {
		fmt.Fprintf(&extra, "SELECT pg_catalog.setval(%s, %d, %t);\n", sqlLiteral(q.ident), q.value, q.isCalled)
	}
	for _, m := range s.matviews {
		fmt.Fprintf(&extra, "REFRESH MATERIALIZED VIEW %s;\n", m)
	}
	for _, c := range comments {
		extra.WriteString(c + "\n")
	}
	if extra.Len() > 0 {
		extra.WriteString("\n")
	}
	head, tail := splitTrailer(s.post)
	out := make([]byte, 0, len(s.post)+extra.Len())
	out = append(out, head...)
	out = append(out, extra.Bytes()...)
	return append(out, tail...)
}

// WriteTable streams t's rows with COPY … TO STDOUT in text format, in
// primary-key order, teeing them into w and a fingerprint.
func (s *snapshot) WriteTable(ctx context.Context, t source.Table, w io.Writer) (source.TableResult, error) {
	s.mu.Lock()
	idle := s.idle
	s.mu.Unlock()
	if idle == nil {
		return source.TableResult{}, errors.New("postgres: snapshot is closed")
	}
	var conn *pgx.Conn
	select {
	case conn = <-idle:
	case <-ctx.Done():
		return source.TableResult{}, ctx.Err()
	}
	res, err := copyOut(ctx, conn, t, true, w, s.key)
	idle <- conn
	if err != nil {
		return source.TableResult{}, redactError(fmt.Errorf("table %s: %w", t.Name, err), s.password)
	}
	return res, nil
}

// Close ends the transaction and the connection; it releases the locks.
func (s *snapshot) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, w := range s.workers {
		w.Close(ctx)
	}
	err := s.conn.Close(ctx) // closing the connection ends the transaction
	s.conn, s.workers, s.idle = nil, nil, nil
	return redactError(err, s.password)
}

// copyOutSQL is the COPY statement that streams t. The snapshot orders rows
// by primary key; a fingerprint does not need order.
func copyOutSQL(t source.Table, ordered bool) string {
	var b strings.Builder
	b.WriteString("COPY (SELECT ")
	b.WriteString(columnList(t.Columns))
	b.WriteString(" FROM ONLY ")
	b.WriteString(pgx.Identifier{t.Schema, t.Table}.Sanitize())
	if ordered && len(t.PrimaryKey) > 0 {
		b.WriteString(" ORDER BY ")
		for i, c := range t.PrimaryKey {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(pgx.Identifier{c}.Sanitize())
		}
	}
	b.WriteString(") TO STDOUT")
	return b.String()
}

func columnList(cols []source.Column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = pgx.Identifier{c.Name}.Sanitize()
	}
	return strings.Join(names, ", ")
}

// copyOut runs t's COPY TO on conn into w (nil: fingerprint only).
func copyOut(ctx context.Context, conn *pgx.Conn, t source.Table, ordered bool, w io.Writer, key []byte) (source.TableResult, error) {
	if t.Schema == "" || t.Table == "" {
		return source.TableResult{}, errors.New("table without schema or name")
	}
	tee := &teeWriter{fp: source.NewFingerprintWriter(key)}
	if w != nil {
		tee.bw = bufio.NewWriterSize(w, 256<<10)
	}
	tag, err := conn.PgConn().CopyTo(ctx, tee, copyOutSQL(t, ordered))
	if err != nil {
		return source.TableResult{}, err
	}
	if tee.bw != nil {
		if err := tee.bw.Flush(); err != nil {
			return source.TableResult{}, err
		}
	}
	res, err := tee.fp.Result()
	if err != nil {
		return source.TableResult{}, err
	}
	if res.Rows != tag.RowsAffected() {
		return source.TableResult{}, fmt.Errorf("COPY reported %d rows, the stream held %s", tag.RowsAffected(), strconv.FormatInt(res.Rows, 10))
	}
	return res, nil
}

// teeWriter writes COPY data to an optional buffered writer and a
// fingerprint. COPY text escapes newlines inside values, so every line is a
// row.
type teeWriter struct {
	bw *bufio.Writer
	fp *source.FingerprintWriter
}

func (t *teeWriter) Write(p []byte) (int, error) {
	if t.bw != nil {
		if _, err := t.bw.Write(p); err != nil {
			return 0, err
		}
	}
	return t.fp.Write(p)
}

// SampleTable writes the first rows rows a scan of t finds, in the
// stream's encoding (source.Sampler): a LIMIT stops the scan after a few
// pages, in the snapshot's transaction.
func (s *snapshot) SampleTable(ctx context.Context, t source.Table, w io.Writer, rows int) error {
	s.mu.Lock()
	idle := s.idle
	s.mu.Unlock()
	if idle == nil {
		return errors.New("postgres: snapshot is closed")
	}
	if t.Schema == "" || t.Table == "" || rows <= 0 {
		return errors.New("postgres: sample of a table without schema or name, or of no rows")
	}
	var conn *pgx.Conn
	select {
	case conn = <-idle:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { idle <- conn }()
	q := fmt.Sprintf("COPY (SELECT %s FROM ONLY %s LIMIT %d) TO STDOUT",
		columnList(t.Columns), pgx.Identifier{t.Schema, t.Table}.Sanitize(), rows)
	if _, err := conn.PgConn().CopyTo(ctx, w, q); err != nil {
		return redactError(fmt.Errorf("sample of table %s: %w", t.Name, err), s.password)
	}
	return nil
}
