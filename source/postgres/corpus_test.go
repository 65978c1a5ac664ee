package postgres

import (
	"context"
	"reflect"
	"sort"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/internal/testenv"
)

// TestRoundTripHostileNames backs up and restores a table per name of the
// shared hostile-names corpus (testdata/hostile-names.txt) in a schema of
// the same name, each with a primary key and a column of that name
// holding the name: every name comes back exactly, rows and fingerprints
// included.
func TestRoundTripHostileNames(t *testing.T) {
	names := testenv.HostileNames(t)
	srv := pgtest.Start(t)
	src := srv.CreateDB(t, "corpus source")
	q := func(s string) string { return pgx.Identifier{s}.Sanitize() }
	sql := ""
	for _, n := range names {
		sql += "CREATE SCHEMA " + q(n) + ";\nCREATE TABLE " + q(n) + "." + q(n) + " (id int PRIMARY KEY, " + q(n) + " text NOT NULL);\n"
	}
	pgtest.ExecDSN(t, src, sql)
	conn := pgtest.ConnectDSN(t, src)
	for _, n := range names {
		if _, err := conn.Exec(context.Background(), "INSERT INTO "+q(n)+"."+q(n)+" VALUES (1, $1)", n); err != nil {
			t.Fatal(err)
		}
	}

	b := takeBackup(t, newEngine(t, srv, src))
	var got []string
	for _, tb := range b.tables {
		if tb.Schema != tb.Table || len(tb.Columns) != 2 || tb.Columns[1].Name != tb.Table {
			t.Errorf("table %q: schema %q, columns %+v", tb.Table, tb.Schema, tb.Columns)
		}
		got = append(got, tb.Table)
	}
	want := append([]string(nil), names...)
	sort.Strings(want)
	sort.Strings(got)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("backed-up tables %q\nwant %q", got, want)
	}

	dst := srv.DSN(srv.UniqueName("corpus restored"))
	t.Cleanup(func() { srv.DropDB(t, dbName(t, dst)) })
	restoreInto(t, b, dst, TargetOptions{Parallel: 2}) // fingerprints checked inside
	again := takeBackup(t, newEngine(t, srv, dst))
	if !reflect.DeepEqual(again.tables, b.tables) || !reflect.DeepEqual(again.streams, b.streams) {
		t.Errorf("a backup of the restored database differs from the original backup")
	}
	rconn := pgtest.ConnectDSN(t, dst)
	for _, n := range names {
		var v string
		if err := rconn.QueryRow(context.Background(), "SELECT "+q(n)+" FROM "+q(n)+"."+q(n)).Scan(&v); err != nil || v != n {
			t.Errorf("table %q: %q, %v", n, v, err)
		}
	}
}
