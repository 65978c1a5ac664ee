package sqlite

import (
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/kluis-nl/kluis/internal/testenv"
)

// TestRoundTripHostileNames backs up and restores a table per name of the
// shared hostile-names corpus (testdata/hostile-names.txt), each with a
// column of the same name holding the name, and an index named after it:
// every name comes back exactly.
func TestRoundTripHostileNames(t *testing.T) {
	names := testenv.HostileNames(t)
	q := quoteIdent
	var stmts []string
	for _, n := range names {
		stmts = append(stmts,
			"CREATE TABLE "+q(n)+" (id INTEGER PRIMARY KEY, "+q(n)+" TEXT NOT NULL)",
			"CREATE INDEX "+q("i "+n)+" ON "+q(n)+" ("+q(n)+")")
	}
	src := filepath.Join(t.TempDir(), "corpus.db")
	db := createDB(t, src, stmts)
	for _, n := range names {
		if _, err := db.Exec("INSERT INTO "+q(n)+" (id, "+q(n)+") VALUES (1, ?)", n); err != nil {
			t.Fatal(err)
		}
	}
	b := takeBackup(t, src)
	var got []string
	for _, tb := range b.tables {
		got = append(got, tb.Name)
	}
	want := append([]string(nil), names...)
	sort.Strings(want)
	sort.Strings(got)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("backed-up tables %q\nwant %q", got, want)
	}
	dst := filepath.Join(t.TempDir(), "restored.db")
	restore(t, b, dst)
	if w, g := dumpDB(t, src), dumpDB(t, dst); !reflect.DeepEqual(w, g) {
		t.Errorf("restored database differs:\n got %q\nwant %q", g, w)
	}
	rdb := createDB(t, dst, nil)
	for _, n := range names {
		var v string
		if err := rdb.QueryRow("SELECT " + q(n) + " FROM " + q(n)).Scan(&v); err != nil || v != n {
			t.Errorf("table %q: %q, %v", n, v, err)
		}
	}
}
