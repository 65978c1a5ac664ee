package main

import (
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/pgtest"
)

// TestRestoreReplaceLive (issue 15 §4): `restore --force` into a configured
// tenant's live database is refused unless --replace-live names that
// tenant; the live database is untouched by the refusal.
func TestRestoreReplaceLive(t *testing.T) {
	t.Parallel()
	e := newSQLiteEnv(t, "", "")
	before, _ := os.ReadFile(e.path("praktijk.db"))
	for _, args := range [][]string{
		{"restore", "--tenant", "praktijk-s", "--target-path", e.path("praktijk.db"), "--force"},
		{"restore", "--tenant", "praktijk-s", "--target-path", "./praktijk.db", "--force"},
		{"restore", "--tenant", "praktijk-s", "--target-path", e.path("praktijk.db"), "--force", "--replace-live", "other"},
	} {
		if r := e.run(args...); r.code != 2 || !strings.Contains(r.stderr, "--replace-live") {
			t.Errorf("restore over the live database: %v", r)
		}
	}
	if after, _ := os.ReadFile(e.path("praktijk.db")); string(after) != string(before) {
		t.Fatalf("a refused restore changed the live database")
	}
	if r := e.run("restore", "--tenant", "praktijk-s", "--target-path", e.path("copy.db"), "--replace-live", "praktijk-s"); r.code != 2 || !strings.Contains(r.stderr, "not tenant praktijk-s's live database") {
		t.Errorf("--replace-live for a target that is not live: %v", r)
	}
	e.mustRun(0, "restore", "--tenant", "praktijk-s", "--target-path", e.path("praktijk.db"), "--force", "--replace-live", "praktijk-s")
}

// TestRestoreReplaceLiveByIdentity (new-user trial, 2026-12-02): `restore
// --replace-live` compared addresses while `dossier restore --into`
// compared identities, so the live database reached through another
// address (here a port forward, as a pooler or an SSH tunnel would be) was
// not recognised and a --force restore replaced it without
// --replace-live. Now the target's identity (cluster and database) is
// compared too.
func TestRestoreReplaceLiveByIdentity(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	dsn := srv.CreateDB(t, "live")
	pgtest.ExecDSN(t, dsn, `CREATE TABLE clients (id int PRIMARY KEY, name text NOT NULL); INSERT INTO clients SELECT g, 'client ' || g FROM generate_series(1, 20) g`)
	e := newEnv(t)
	e.secrets["PostgreSQL password"] = srv.Password
	writeFile(t, e.path("p.dsn"), dsn)
	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.cfg, strings.Replace(string(cfg), "  - {id: praktijk-a, engine: files}", "  - {id: praktijk-p, engine: postgres, dsn_file: ./p.dsn}", 1))
	e.keysInit()
	e.mustRun(0, "init", "--tenant", "praktijk-p")
	e.mustRun(0, "backup", "--tenant", "praktijk-p")
	pgtest.ExecDSN(t, dsn, `INSERT INTO clients VALUES (1000, 'written after the backup')`)

	fwd := forwardTCP(t, srv.Addr())
	writeFile(t, e.path("via-forward.dsn"), dsn+" port="+strconv.Itoa(fwd))
	r := e.run("restore", "--tenant", "praktijk-p", "--snapshot", "latest", "--target-dsn-file", e.path("via-forward.dsn"), "--force")
	if r.code != 2 || !strings.Contains(r.stderr, "live database of tenant praktijk-p") || !strings.Contains(r.stderr, "--replace-live praktijk-p") {
		t.Fatalf("restore over the live database through a port forward: %v", r)
	}
	var n int
	if err := pgtest.ConnectDSN(t, dsn).QueryRow(context.Background(), "SELECT count(*) FROM clients WHERE id = 1000").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the refused restore changed the live database (%d, %v)", n, err)
	}
	e.mustRun(0, "restore", "--tenant", "praktijk-p", "--snapshot", "latest", "--target-dsn-file", e.path("via-forward.dsn"), "--force", "--replace-live", "praktijk-p")
}

// forwardTCP forwards a loopback port to addr until the test ends and
// returns the port: the same server under another address.
func forwardTCP(t *testing.T, addr string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer u.Close()
				go io.Copy(u, c)
				io.Copy(c, u)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}
