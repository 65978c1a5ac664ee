package mariadb

import (
	"errors"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/mariadbtest"
	"github.com/kluis-nl/kluis/source"
)

// A table held by another session's LOCK TABLES … WRITE makes the
// snapshot give up after its lock timeout with source.ErrLockTimeout
// instead of waiting up to the server's lock_wait_timeout (a day) — issue
// 21 point 3.
func TestSnapshotLockTimeout(t *testing.T) {
	srv := mariadbtest.Start(t)
	dsn := srv.CreateDB(t, "locked")
	mariadbtest.ExecDSN(t, dsn, "CREATE TABLE clients (id INT PRIMARY KEY, name TEXT) ENGINE=InnoDB",
		"INSERT INTO clients VALUES (1, 'a')", "CREATE TABLE notes (id INT PRIMARY KEY, body TEXT) ENGINE=InnoDB")
	ctx := testCtx(t)
	pool := mariadbtest.OpenDSN(t, dsn)
	holder, err := pool.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.ExecContext(ctx, "LOCK TABLES notes WRITE"); err != nil {
		t.Fatal(err)
	}
	e := New(dsn, testKey, Options{LockTimeout: time.Second})
	snap, err := e.Snapshot(ctx)
	if err == nil {
		snap.Close()
		t.Fatal("snapshot succeeded while a table was locked for writing")
	}
	if !errors.Is(err, source.ErrLockTimeout) {
		t.Fatalf("error %v, want source.ErrLockTimeout", err)
	}
	if _, err := holder.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
		t.Fatal(err)
	}
	snap, err = e.Snapshot(ctx)
	if err != nil {
		t.Fatalf("snapshot after the lock was released: %v", err)
	}
	snap.Close()
}
