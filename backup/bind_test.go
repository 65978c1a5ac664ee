package backup_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/internal/mariadbtest"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/source"
	"github.com/kluis-nl/kluis/source/mariadb"
	"github.com/kluis-nl/kluis/source/postgres"
)

// TestSourceBinding: a tenant is bound to its database's identity at its
// first backup; a backup of another database under the same tenant id —
// one whose name differs only in case (praktijk_A next to praktijk_a, the
// discovery takeover), or the same name dropped and created again — is
// refused and commits nothing, until --rebind accepts it.
func TestSourceBinding(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		srv := pgtest.Start(t)
		base := srv.UniqueName("praktijk")
		create := func(db string) {
			srv.Exec(t, "postgres", "CREATE DATABASE "+pgx.Identifier{db}.Sanitize())
			srv.Exec(t, db, "CREATE TABLE clients (id int PRIMARY KEY); INSERT INTO clients VALUES (1)")
		}
		lower, upper := base+"_a", base+"_A"
		for _, db := range []string{lower, upper} {
			create(db)
			t.Cleanup(func() { srv.DropDB(t, db) })
		}
		recreate := func() {
			srv.DropDB(t, lower)
			create(lower)
		}
		sourceBinding(t, "postgres", func(db string, key []byte) source.Engine {
			return postgres.New(srv.DSN(db), key, postgres.Options{})
		}, lower, upper, recreate)
	})
	t.Run("mariadb", func(t *testing.T) {
		srv := mariadbtest.Start(t)
		base := srv.UniqueName("praktijk")
		create := func(db string) {
			srv.Exec(t, "", "CREATE DATABASE "+mariadbtest.QuoteIdent(db))
			srv.Exec(t, db, "CREATE TABLE clients (id int PRIMARY KEY)", "INSERT INTO clients VALUES (1)")
		}
		lower, upper := base+"_a", base+"_A"
		for _, db := range []string{lower, upper} {
			create(db)
			t.Cleanup(func() { srv.DropDB(t, db) })
		}
		sourceBinding(t, "mariadb", func(db string, key []byte) source.Engine {
			return mariadb.New(srv.DSN(db), key, mariadb.Options{})
		}, lower, upper, nil)
	})
}

func sourceBinding(t *testing.T, engine string, open func(db string, key []byte) source.Engine, lower, upper string, recreate func()) {
	ctx := testCtx(t)
	r := newRepo(t, "praktijk_a")
	snapshots := func() []repo.SnapshotInfo {
		s, err := r.Snapshots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	_, err := backup.Database(ctx, r, open(lower, r.FingerprintKey()), repo.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bound := snapshots()[0].Manifest.SourceIdentity
	if !strings.HasPrefix(bound, engine+":") || !strings.Contains(bound, `"`+lower+`"`) {
		t.Fatalf("the first snapshot is bound to %q", bound)
	}
	// The same database again: accepted.
	if _, err := backup.Database(ctx, r, open(lower, r.FingerprintKey()), repo.BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	refused := func(what string) {
		t.Helper()
		db := lower
		if what == "case" {
			db = upper
		}
		_, err := backup.Database(ctx, r, open(db, r.FingerprintKey()), repo.BackupOptions{})
		if !errors.Is(err, backup.ErrSourceChanged) || !strings.Contains(err.Error(), "--rebind") {
			t.Fatalf("%s: backup of another database: %v, want ErrSourceChanged", what, err)
		}
		if n := len(snapshots()); n != 2 {
			t.Fatalf("%s: %d snapshots after the refusal, want 2", what, n)
		}
	}
	refused("case")
	if recreate != nil {
		recreate()
		refused("dropped and created again")
	}
	if _, err := backup.Database(ctx, r, open(upper, r.FingerprintKey()), repo.BackupOptions{Rebind: true}); err != nil {
		t.Fatalf("--rebind: %v", err)
	}
	// Bound to the new one now; the old one is refused.
	if _, err := backup.Database(ctx, r, open(upper, r.FingerprintKey()), repo.BackupOptions{}); err != nil {
		t.Fatalf("after --rebind: %v", err)
	}
	if _, err := backup.Database(ctx, r, open(lower, r.FingerprintKey()), repo.BackupOptions{}); !errors.Is(err, backup.ErrSourceChanged) {
		t.Fatalf("the old database after --rebind: %v", err)
	}
}
