package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/source"
)

// A table held in ACCESS EXCLUSIVE by another session (a 12-minute ALTER,
// a LOCK TABLE) makes the snapshot give up after its lock timeout with
// source.ErrLockTimeout, instead of waiting in pg_dump for as long as the
// other session likes (issue 21 point 3). Without a lock timeout it waits.
func TestSnapshotLockTimeout(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.CreateDB(t, "locked")
	pgtest.ExecDSN(t, dsn, `CREATE TABLE clients (id int PRIMARY KEY, name text); INSERT INTO clients VALUES (1, 'a');
		CREATE TABLE notes (id int PRIMARY KEY, body text)`)
	holder := pgtest.ConnectDSN(t, dsn)
	ctx := testContext(t)
	if _, err := holder.Exec(ctx, "BEGIN; LOCK TABLE notes IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}

	e := New(dsn, testKey, Options{PgDumpPath: srv.Tool(t, "pg_dump"), LockTimeout: 300 * time.Millisecond})
	snap, err := e.Snapshot(ctx)
	if err == nil {
		snap.Close()
		t.Fatal("snapshot succeeded while a table was locked ACCESS EXCLUSIVE")
	}
	if !errors.Is(err, source.ErrLockTimeout) {
		t.Fatalf("error %v, want source.ErrLockTimeout", err)
	}
	t.Logf("locked: %v", err)

	// Without a lock timeout the snapshot waits (here until its context
	// ends), which is what stalled every job slot.
	e0 := New(dsn, testKey, Options{PgDumpPath: srv.Tool(t, "pg_dump")})
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if snap, err := e0.Snapshot(wctx); err == nil {
		snap.Close()
		t.Fatal("snapshot without a lock timeout did not wait for the lock")
	} else if errors.Is(err, source.ErrLockTimeout) {
		t.Fatalf("no lock timeout set, yet %v", err)
	}
	// pg_dump, ended with the snapshot's context, took its server session
	// with it: SIGTERM makes it cancel its query. (Killed, its session
	// would wait on for the lock, holding the others.)
	watcher := pgtest.ConnectDSN(t, dsn) // outside the holder's transaction: a fresh pg_stat_activity each time
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := watcher.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump' AND datname = current_database()").Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pg_dump sessions still waiting after the snapshot gave up", waiting)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Released, the snapshot goes through with the timeout set.
	if _, err := holder.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	snap, err = e.Snapshot(ctx)
	if err != nil {
		t.Fatalf("snapshot after the lock was released: %v", err)
	}
	snap.Close()
}
