package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/pgtest"
)

// Issue 18.4: `config check --online` logs in to the restore-test server
// with the DSN file's credentials: a wrong password is named there (the
// config field, "refused the login"), not by a first restore test that
// writes a permanent FAIL. The password is never printed.
func TestConfigCheckOnlineRestoreTestServerWrongPassword(t *testing.T) {
	srv := pgtest.Start(t)
	if !srv.PasswordAuth {
		t.Skip("the PostgreSQL server does not check passwords")
	}
	e := newRepoEnv(t)
	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg = []byte(strings.Replace(string(cfg), "policy: {pack_size: 1MiB}",
		"policy: {pack_size: 1MiB, restore_test: {server_dsn_file: ./rt.dsn}}", 1))
	writeFile(t, e.cfg, string(cfg))
	const wrong = "not-the-rt-password"
	e.secrets["wrong password"] = wrong
	e.secrets["superuser password"] = srv.Password
	writeFile(t, e.path("rt.dsn"), pgtest.WithPassword(srv.DSN("postgres"), wrong))
	r := e.run("config", "check", "--online")
	if r.code != 1 || !strings.Contains(r.stdout, "restore-test server: FAILED") ||
		!strings.Contains(r.stdout, "policy.restore_test.server_dsn_file") || !strings.Contains(r.stdout, "refused the login") {
		t.Fatalf("config check --online with a wrong restore-test password: %v", r)
	}
	r = e.run("config", "check", "--online", "--json")
	var out struct {
		OK      bool `json:"ok"`
		Servers struct {
			OK       bool     `json:"ok"`
			Problems []string `json:"problems"`
		} `json:"restore_test_servers"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.OK || out.Servers.OK || len(out.Servers.Problems) != 1 ||
		!strings.Contains(out.Servers.Problems[0], "refused the login") {
		t.Fatalf("config check --online --json: %v: %s", err, r.stdout)
	}
}
