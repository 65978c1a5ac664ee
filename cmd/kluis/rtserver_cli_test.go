package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/pgtest"
)

// TestConfigCheckRestoreTestRole: `config check --online` connects to the
// restore-test server and refuses a role that is a superuser (it would
// run every tenant's schema code with the server's programs and files at
// hand), naming the problem in text and --json; the documented role
// (CREATEDB CREATEROLE, nothing more) passes. No password is printed.
func TestConfigCheckRestoreTestRole(t *testing.T) {
	srv := pgtest.Start(t)
	e := newRepoEnv(t)
	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg = []byte(strings.Replace(string(cfg), "policy: {pack_size: 1MiB}",
		"policy: {pack_size: 1MiB, restore_test: {server_dsn_file: ./rt.dsn}}", 1))
	if err := os.WriteFile(e.cfg, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	writeDSN := func(dsn string) {
		if err := os.WriteFile(e.path("rt.dsn"), []byte(dsn), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeDSN(srv.DSN("postgres"))
	e.secrets["superuser password"] = srv.Password
	r := e.run("config", "check", "--online")
	if r.code == 0 || !strings.Contains(r.stdout, "restore-test server: FAILED") || !strings.Contains(r.stdout, "SUPERUSER") {
		t.Fatalf("config check --online with a superuser: %+v", r)
	}
	r = e.run("config", "check", "--online", "--json")
	var out struct {
		OK      bool `json:"ok"`
		Servers struct {
			OK       bool     `json:"ok"`
			Problems []string `json:"problems"`
		} `json:"restore_test_servers"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.OK || out.Servers.OK ||
		len(out.Servers.Problems) != 1 || !strings.Contains(out.Servers.Problems[0], "SUPERUSER") {
		t.Fatalf("config check --online --json: %v: %s", err, r.stdout)
	}

	const password = "rt-cli-s3cret"
	srv.Exec(t, "postgres", "CREATE ROLE kluis_restore_test LOGIN CREATEDB CREATEROLE PASSWORD '"+password+"'")
	t.Cleanup(func() { srv.Exec(t, "postgres", "DROP ROLE IF EXISTS kluis_restore_test") })
	e.secrets["restore-test password"] = password
	writeDSN(fmt.Sprintf("host=%s port=%d user=kluis_restore_test password=%s dbname=postgres sslmode=disable", srv.Host, srv.Port, password))
	e.mustRun(0, "config", "check", "--online")
}
