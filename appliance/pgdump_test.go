package appliance

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/internal/pgtest"
)

// TestOnlineChecksPgDump (issue 18 point 9): `config check --online` runs
// the pg_dump a backup would use for each PostgreSQL tenant, a real
// server: the configured policy.pg_dump must exist, run, and be at least
// the server's major version; each failure names the config key.
func TestOnlineChecksPgDump(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.CreateDB(t, "pgdump_check")
	dir := t.TempDir()
	fake := func(name, version string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\necho '"+version+"'\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	check := func(pgDump string) OnlineResult {
		t.Helper()
		c := &config.Config{Dir: dir, Tenants: []config.Tenant{{ID: "pg-a", Engine: "postgres", DSN: dsn}}}
		c.Policy.PgDump = pgDump
		rs := New(c, slog.New(slog.NewTextHandler(io.Discard, nil))).CheckDatabases(context.Background())
		if len(rs) != 1 {
			t.Fatalf("%d results, want 1", len(rs))
		}
		return rs[0]
	}

	real := srv.Tool(t, "pg_dump")
	if r := check(real); !r.OK || !strings.Contains(r.Detail, "pg_dump (PostgreSQL)") || !strings.Contains(r.Detail, real) {
		t.Errorf("the server's own pg_dump: %+v, want ok naming its version and path", r)
	}
	if r := check(filepath.Join(dir, "no-such-pg_dump")); r.OK || !strings.Contains(r.Error, "policy.pg_dump") {
		t.Errorf("a missing policy.pg_dump: %+v, want a failure naming policy.pg_dump", r)
	}
	if r := check(fake("old", "pg_dump (PostgreSQL) 9.6.24")); r.OK || !strings.Contains(r.Error, "older than the server") || !strings.Contains(r.Error, "policy.pg_dump") {
		t.Errorf("pg_dump 9.6: %+v, want a failure saying it is older than the server", r)
	}
	if r := check(fake("notpg", "something else")); r.OK || !strings.Contains(r.Error, "is not a pg_dump version") {
		t.Errorf("a binary that is not pg_dump: %+v", r)
	}
	broken := filepath.Join(dir, "broken")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if r := check(broken); r.OK || !strings.Contains(r.Error, "does not run") {
		t.Errorf("a pg_dump that fails: %+v", r)
	}
	// Relative to the config's directory.
	if r := check(filepath.Base(fake("new", fmt.Sprintf("pg_dump (PostgreSQL) %d.0", 99)))); !r.OK {
		t.Errorf("a relative policy.pg_dump of a newer major: %+v", r)
	}
}
