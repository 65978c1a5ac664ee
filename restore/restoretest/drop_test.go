package restoretest

import (
	"context"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/pgtest"
)

// TestPGDropEndsSessions: a scratch database with a session still
// connected is dropped both with DROP DATABASE … WITH (FORCE) (PostgreSQL
// 13+) and the way taken on older servers (sessions ended with
// pg_terminate_backend, then DROP), and dropping it again passes.
func TestPGDropEndsSessions(t *testing.T) {
	srv := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	server := srv.DSN("postgres")
	defer func(f func(int) bool) { pgForceDrop = f }(pgForceDrop)
	for _, force := range []bool{true, false} {
		name := map[bool]string{true: "with FORCE", false: "terminating sessions"}[force]
		t.Run(name, func(t *testing.T) {
			pgForceDrop = func(int) bool { return force }
			entry, err := ledgerWrite(t.TempDir(), ledgerEntry{Name: ScratchName("drop-test", time.Now()), Appliance: "t", Token: newToken()})
			if err != nil {
				t.Fatal(err)
			}
			entry.entry.Owner = entry.entry.Name
			sc, err := newPGScratch(ctx, server, entry)
			if err != nil {
				t.Fatal(err)
			}
			held := pgtest.ConnectDSN(t, sc.dsn)
			if _, err := held.Exec(ctx, "BEGIN; CREATE TABLE t (id int); INSERT INTO t VALUES (1)"); err != nil {
				t.Fatal(err)
			}
			if err := sc.Drop(ctx); err != nil {
				t.Fatalf("Drop: %v", err)
			}
			if err := held.Ping(ctx); err == nil {
				t.Error("the session on the dropped database still answers")
			}
			if err := sc.Drop(ctx); err != nil {
				t.Errorf("dropping a dropped database: %v", err)
			}
		})
	}
}
