package synth

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	_ "modernc.org/sqlite" // driver "sqlite"
)

// GenerateSQLiteFile creates the SQLite database file path (which must not
// hold tables yet) and generates into it, with foreign keys enforced. The
// file uses the default rollback journal, so it is complete once this
// returns.
func GenerateSQLiteFile(ctx context.Context, path string, s Scale, seed uint64) error {
	if strings.ContainsRune(path, '?') {
		return fmt.Errorf("synth: SQLite path %q: the driver reads what follows '?' as options", path)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return fmt.Errorf("synth: open %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // the pragma is per connection
	if _, err := db.ExecContext(ctx, "PRAGMA foreign_keys = ON"); err != nil {
		return fmt.Errorf("synth: open %s: %w", path, err)
	}
	if err := Generate(ctx, db, SQLite, s, seed); err != nil {
		return err
	}
	return db.Close()
}
