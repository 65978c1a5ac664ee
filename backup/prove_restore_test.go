package backup_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore"
	"github.com/kluis-nl/kluis/source/postgres"
)

// A restore proves each table as it loads; code that the post-data runs
// later (here a materialized view refresh calling a function that inserts
// a row) changes a table after it was proven. The restore must notice and
// read the tables again, and so report the difference instead of a match.
func TestRestoreNoticesRowsChangedAfterTheirProof(t *testing.T) {
	ctx := testCtx(t)
	srv := pgtest.Start(t)
	src := srv.CreateDB(t, "practice")
	pgtest.ExecDSN(t, src, `
CREATE TABLE public.t (id int PRIMARY KEY, note text);
INSERT INTO public.t SELECT i, 'row ' || i FROM generate_series(1, 500) i;
CREATE TABLE public.audit (n serial PRIMARY KEY, at text);
CREATE FUNCTION public.touch() RETURNS int LANGUAGE sql VOLATILE AS
  $$ INSERT INTO public.audit (at) VALUES ('refresh') RETURNING n $$;
CREATE MATERIALIZED VIEW public.mv AS SELECT public.touch() AS n;`)
	r := newRepo(t, "prove")
	res, err := backup.Database(ctx, r, postgres.New(src, r.FingerprintKey(), postgres.Options{}), repo.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := r.FindSnapshot(ctx, res.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	target, err := postgres.NewTarget(ctx, srv.CreateDB(t, "restored"), r.FingerprintKey(), postgres.TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	got, err := restore.ToDatabase(ctx, r, snap, target, restore.DBOptions{Parallel: 2})
	if !errors.Is(err, restore.ErrFingerprintMismatch) {
		t.Fatalf("restore: %v, want a fingerprint mismatch (the refresh added a row to public.audit)", err)
	}
	if bad := got.Mismatches(); len(bad) != 1 || bad[0] != "public.audit" {
		t.Errorf("mismatches %v, want [public.audit]", bad)
	}
}

// A post-data entry that fails while tables still load fails the restore
// with the entry's error: here an index whose function refuses to run in
// the restored database.
func TestRestorePostDataFailureFailsTheRestore(t *testing.T) {
	ctx := testCtx(t)
	srv := pgtest.Start(t)
	src := srv.CreateDB(t, "practice")
	pgtest.ExecDSN(t, src, `
CREATE FUNCTION public.boom(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF pg_catalog.current_database() LIKE '%restored%' THEN RAISE EXCEPTION 'boom in the restored database'; END IF;
  RETURN x;
END $$;
CREATE TABLE public.small (id int PRIMARY KEY);
INSERT INTO public.small SELECT i FROM generate_series(1, 10) i;
CREATE INDEX small_boom ON public.small (public.boom(id));
CREATE TABLE public.big (id int PRIMARY KEY, note text);
INSERT INTO public.big SELECT i, repeat('x', 200) FROM generate_series(1, 20000) i;
CREATE TABLE public.other (id int PRIMARY KEY, note text);
INSERT INTO public.other SELECT i, repeat('y', 200) FROM generate_series(1, 10000) i;`)
	r := newRepo(t, "fail")
	res, err := backup.Database(ctx, r, postgres.New(src, r.FingerprintKey(), postgres.Options{}), repo.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := r.FindSnapshot(ctx, res.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	target, err := postgres.NewTarget(ctx, srv.CreateDB(t, "restored"), r.FingerprintKey(), postgres.TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	_, err = restore.ToDatabase(ctx, r, snap, target, restore.DBOptions{Parallel: 2})
	if err == nil || !strings.Contains(err.Error(), "post-data schema") || !strings.Contains(err.Error(), "boom in the restored database") {
		t.Fatalf("restore: %v, want the post-data entry's error", err)
	}
}
