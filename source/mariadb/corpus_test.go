package mariadb

import (
	"reflect"
	"sort"
	"testing"

	"github.com/kluis-nl/kluis/internal/mariadbtest"
	"github.com/kluis-nl/kluis/internal/testenv"
)

// TestRoundTripHostileNames backs up and restores a table per name of the
// shared hostile-names corpus (testdata/hostile-names.txt), each with a
// primary key, a column and an index of that name, the column holding the
// name: every name comes back exactly, rows and fingerprints included.
func TestRoundTripHostileNames(t *testing.T) {
	names := testenv.HostileNames(t)
	srv := mariadbtest.Start(t)
	src := srv.CreateDB(t, "corpus")
	var stmts []string
	for _, n := range names {
		stmts = append(stmts, "CREATE TABLE "+q(n)+" (id INT PRIMARY KEY, "+q(n)+" VARCHAR(100) NOT NULL, KEY "+q(n)+" ("+q(n)+")) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
	}
	mariadbtest.ExecDSN(t, src, stmts...)
	db := mariadbtest.OpenDSN(t, src)
	for _, n := range names {
		if _, err := db.Exec("INSERT INTO "+q(n)+" VALUES (1, ?)", n); err != nil {
			t.Fatal(err)
		}
	}

	b := takeBackup(t, src)
	var got []string
	for _, tb := range b.tables {
		if len(tb.Columns) != 2 || tb.Columns[1].Name != tb.Table {
			t.Errorf("table %q: columns %+v", tb.Table, tb.Columns)
		}
		got = append(got, tb.Table)
	}
	want := append([]string(nil), names...)
	sort.Strings(want)
	sort.Strings(got)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("backed-up tables %q\nwant %q", got, want)
	}

	dst := srv.CreateDB(t, "corpus_restored")
	mariadbtest.ExecDSN(t, dst, "DROP DATABASE "+q(dbName(t, dst))) // NewTarget creates it
	restoreInto(t, b, dst)
	again := takeBackup(t, dst)
	if !reflect.DeepEqual(again.tables, b.tables) || !reflect.DeepEqual(again.streams, b.streams) {
		t.Errorf("a backup of the restored database differs from the original backup")
	}
	rdb := mariadbtest.OpenDSN(t, dst)
	for _, n := range names {
		var v string
		if err := rdb.QueryRow("SELECT " + q(n) + " FROM " + q(n)).Scan(&v); err != nil || v != n {
			t.Errorf("table %q: %q, %v", n, v, err)
		}
	}
}
