package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kluis-nl/kluis/source"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// ErrNotSQLite is wrapped by the error about a file that is not a SQLite
// database.
var ErrNotSQLite = errors.New("not a SQLite database")

// sqliteHeader starts every SQLite 3 database file.
const sqliteHeader = "SQLite format 3\x00"

// Engine takes snapshots of one SQLite database file.
type Engine struct {
	path string
	key  []byte
}

var _ source.Engine = (*Engine)(nil)

// New returns the engine for the database file at path; fingerprintKey keys
// the table fingerprints.
func New(path string, fingerprintKey []byte) *Engine {
	return &Engine{path: path, key: fingerprintKey}
}

// Name returns "sqlite".
func (e *Engine) Name() string { return "sqlite" }

// Snapshot opens the file read-only and starts the read transaction that
// every later read of the snapshot sees.
func (e *Engine) Snapshot(ctx context.Context) (source.Snapshot, error) {
	return openSnapshot(ctx, e.path, e.key)
}

// checkDatabaseFile reports whether path is a SQLite database: a regular
// file that is empty (SQLite's empty database) or starts with the SQLite
// header. A missing file is an error wrapping fs.ErrNotExist, a file with
// another header one wrapping ErrNotSQLite.
func checkDatabaseFile(path string) (empty bool, err error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("sqlite: database file %s does not exist: %w", path, fs.ErrNotExist)
		}
		return false, fmt.Errorf("sqlite: %w", err)
	}
	if !st.Mode().IsRegular() {
		return false, fmt.Errorf("sqlite: %s is not a regular file: %w", path, ErrNotSQLite)
	}
	if st.Size() == 0 {
		return true, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("sqlite: %w", err)
	}
	defer f.Close()
	var hdr [len(sqliteHeader)]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil || string(hdr[:]) != sqliteHeader {
		return false, fmt.Errorf("sqlite: %s: %w (it does not start with the SQLite 3 header)", path, ErrNotSQLite)
	}
	return false, nil
}

// fileDSN returns the driver's name for the database file at path: a
// "file:" URI (so that SQLite's own mode= applies) with the path's '%', '?'
// and '#' escaped, followed by params.
func fileDSN(path string, params ...string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("sqlite: %w", err)
	}
	if strings.ContainsRune(abs, 0) {
		return "", fmt.Errorf("sqlite: path %q contains a NUL byte", path)
	}
	var b strings.Builder
	b.WriteString("file:")
	for i := 0; i < len(abs); i++ {
		switch c := abs[i]; c {
		case '%', '?', '#':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	for i, p := range params {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(p)
	}
	return b.String(), nil
}

// openDB opens a pool of at most one connection: SQLite has one writer,
// and a snapshot's reads must all see one transaction.
func openDB(dsn string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	return db, nil
}

// quoteIdent quotes a name as an SQL identifier, doubling any '"'.
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// quoteString quotes s as an SQL string literal, doubling any single quote.
func quoteString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
