package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/internal/s3test"
	"github.com/kluis-nl/kluis/synth"
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

// Issue 18.4: the tested S3 location does not answer (its endpoint, behind
// a proxy, closes every connection): `kluis restore-test` reports verdict
// ERROR naming the location, exits 4 (not 1, a failed backup), and the
// signed report in the evidence log says the test could not run.
func TestRestoreTestLocationUnreachableIsNotAFail(t *testing.T) {
	e, srv := newS3Env(t)
	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	proxy := s3test.NewProxy(t, srv[0])
	s := strings.Replace(string(cfg), srv[0].Endpoint, proxy.URL, 1)
	s = strings.Replace(s, "  - {id: praktijk-a, engine: files}", "  - {id: praktijk-s, engine: sqlite, path: ./praktijk.db}", 1)
	writeFile(t, e.cfg, s)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := synth.GenerateSQLiteFile(ctx, e.path("praktijk.db"), synth.Tiny, 7); err != nil {
		t.Fatal(err)
	}
	e.keysInit()
	e.mustRun(0, "init", "--tenant", "praktijk-s")
	e.mustRun(0, "backup", "--tenant", "praktijk-s")

	proxy.Set(s3test.Faults{Down: true})
	r := e.run("restore-test", "--tenant", "praktijk-s", "--location", "s3-ams")
	if r.code != exitNotRun || !strings.Contains(r.stdout, "verdict: ERROR") || !strings.Contains(r.stdout, "location s3-ams is") {
		t.Fatalf("restore test of an unreachable location: %v", r)
	}
	proxy.Set(s3test.Faults{})
	if r := e.run("status"); !strings.Contains(r.stdout+r.stderr, "could not run (the test rig, not the backup)") {
		t.Errorf("status after a restore test that could not run: %v", r)
	}
	var out struct {
		Report evidence.Report `json:"report"`
	}
	e.mustJSON(0, &out, "restore-test", "--tenant", "praktijk-s", "--location", "s3-ams")
	if out.Report.Verdict != evidence.Pass {
		t.Fatalf("after the location came back: %+v", out.Report)
	}
	// Both reports are in the signed log: the ERROR one as such.
	var rows []struct {
		Verdict string `json:"verdict"`
		Cause   string `json:"cause"`
	}
	e.mustJSON(0, &rows, "evidence", "list")
	if len(rows) != 2 || rows[0].Verdict != evidence.Error || !strings.Contains(rows[0].Cause, "location s3-ams is") || rows[1].Verdict != evidence.Pass {
		t.Errorf("evidence list: %+v", rows)
	}
	if r := e.mustRun(0, "evidence", "list"); !strings.Contains(r.stdout, "1 could not run") || !strings.Contains(r.stdout, "0 failed") {
		t.Errorf("evidence list: %v", r)
	}
}
