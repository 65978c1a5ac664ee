package synth

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// openSQLite opens a fresh database file in a temporary directory.
func openSQLite(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "praktijk.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("PRAGMA foreign_keys = ON; PRAGMA synchronous = OFF"); err != nil {
		t.Fatal(err)
	}
	return db
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// dump reads every table of the schema: one string per row, rows in
// primary-key order (audit_log: ordered by all columns).
func dump(t *testing.T, db *sql.DB, d Dialect) map[string][]string {
	t.Helper()
	di, err := d.impl()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, tb := range Tables(d) {
		order := tb.PrimaryKey
		if len(order) == 0 {
			order = tb.Columns
		}
		out[tb.Name] = queryRows(t, db, "SELECT * FROM "+di.quote(tb.Name)+" ORDER BY "+quoteList(di, order))
	}
	return out
}

func queryRows(t *testing.T, db *sql.DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var out []string
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for i, v := range vals {
			if i > 0 {
				b.WriteByte('|')
			}
			switch x := v.(type) {
			case []byte:
				b.WriteString("x" + hex.EncodeToString(x))
			case string:
				fmt.Fprintf(&b, "%q", x)
			case time.Time:
				b.WriteString(x.UTC().Format(time.RFC3339Nano))
			default:
				fmt.Fprintf(&b, "%v", x)
			}
		}
		out = append(out, b.String())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func queryInt(t *testing.T, db *sql.DB, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// sameDump fails the test at the first difference.
func sameDump(t *testing.T, what string, a, b map[string][]string) {
	t.Helper()
	for _, name := range TableNames() {
		ra, rb := a[name], b[name]
		if len(ra) != len(rb) {
			t.Errorf("%s: table %s has %d rows vs %d", what, name, len(ra), len(rb))
			continue
		}
		for i := range ra {
			if ra[i] != rb[i] {
				t.Errorf("%s: table %s row %d differs:\n%.300s\n%.300s", what, name, i, ra[i], rb[i])
				break
			}
		}
	}
}

func countRows(d map[string][]string) map[string]int {
	out := map[string]int{}
	for k, v := range d {
		out[k] = len(v)
	}
	return out
}

func itoa64(n int64) string { return fmt.Sprint(n) }
