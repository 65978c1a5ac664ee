package main

import (
	"os"
	"strings"
	"testing"
)

// TestConfigCheckMissingFiles (issue 18 point 9): offline `config check`
// reports a missing master key, signing key and DSN file. A fresh
// appliance is told to run `kluis keys init`; one that already has
// backups (a tenant repository here, state) is told not to, and where to
// get its key back; so is every command that needs the missing key.
func TestConfigCheckMissingFiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	withDSN := strings.Replace(string(cfg), "tenants:\n", "tenants:\n  - {id: pg-a, engine: postgres, dsn_file: ./secrets/pg-a.dsn}\n", 1)
	if err := os.WriteFile(e.cfg, []byte(withDSN), 0o600); err != nil {
		t.Fatal(err)
	}
	// A command run before the keys exist leaves lock files: no history.
	if err := os.MkdirAll(e.path("state", "locks"), 0o700); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OK       bool `json:"ok"`
		Problems []struct{ Path, Message string }
	}
	e.mustJSON(2, &doc, "config", "check")
	got := map[string]string{}
	for _, p := range doc.Problems {
		got[p.Path] = p.Message
	}
	if doc.OK || !strings.Contains(got["appliance.master_key_file"], "kluis keys init") || !strings.Contains(got["appliance.signing_key_file"], "kluis keys init") ||
		!strings.Contains(got["tenants[0].dsn_file"], "pg-a.dsn (tenant pg-a) does not exist") {
		t.Errorf("fresh appliance: want the missing keys (with keys init) and the DSN file, got %+v", doc)
	}

	// An appliance with backups whose master key is gone.
	if err := os.WriteFile(e.cfg, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	e.keysInit()
	e.mustRun(0, "init", "--tenant", tenant)
	e.mustRun(0, "config", "check")
	if err := os.Remove(e.path("secrets", "master.key")); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"config", "check"}, {"snapshots", "--tenant", tenant}} {
		r := e.run(args...)
		if r.code == 0 || !strings.Contains(r.stderr, "master.key does not exist") || !strings.Contains(r.stderr, "do NOT run `kluis keys init`") ||
			!strings.Contains(r.stderr, "kluis keys recover") || !strings.Contains(r.stderr, "location amsterdam holds tenant "+tenant) {
			t.Errorf("%v with backups and no master key: want advice against keys init, got %v", args, r)
		}
	}
}
