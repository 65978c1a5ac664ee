package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeysInitMasterOnly (new-user trial, 2026-12-02): an appliance that
// lost only its master key (the signing key, state and locations are
// intact) was a dead end: `keys init` refused because signing.key exists,
// and `keys recover` needs a master key to wrap under. Now every command
// points to `keys init --master-only --identity FILE`; without the
// identity it refuses while a repository exists (writing nothing); with
// it, it makes a new master key and re-wraps every tenant key, accepting
// only key files signed by the appliance's own signing key (a planted one
// is ignored and named). The snapshot then restores and check passes, the
// old key file listed as superseded. On an appliance without repositories
// `--master-only` just makes the key.
func TestKeysInitMasterOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.withRecoveryRecipient()
	initRepo(e)
	input := e.path("in.bin")
	writeData(t, seededRand(t), input, 1<<20)
	snap := e.backup(0, input)
	recovery := e.path("recovery.txt")
	writeFile(t, recovery, id.String()+"\n")
	e.secrets["recovery identity"] = id.String()
	signingBefore, err := os.ReadFile(e.path("secrets", "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	planted := forgeKeyFile(t, e.path("loc-a"))

	master := e.path("secrets", "master.key")
	if err := os.Remove(master); err != nil {
		t.Fatal(err)
	}
	// Every way in says what to do.
	for _, args := range [][]string{{"snapshots", "--tenant", tenant}, {"config", "check"}, {"keys", "recover", "--tenant", tenant, "--identity", recovery}} {
		r := e.run(args...)
		if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "keys init --master-only --identity FILE") {
			t.Errorf("%v with the master key lost does not point to keys init --master-only: %v", args, r)
		}
	}
	if r := e.run("keys", "init"); r.code != 1 || !strings.Contains(r.stderr, "--master-only") {
		t.Errorf("keys init with signing.key present does not point to --master-only: %v", r)
	}
	// Without the identity: refused, nothing written.
	r := e.run("keys", "init", "--master-only")
	if r.code != 1 || !strings.Contains(r.stderr, "nothing was written") || !strings.Contains(r.stderr, tenant+" (at amsterdam, groningen)") {
		t.Errorf("keys init --master-only with a repository: want exit 1 naming it, got %v", r)
	}
	if _, err := os.Stat(master); err == nil {
		t.Fatal("a refused keys init --master-only created the master key")
	}

	var out struct {
		OK      bool `json:"ok"`
		Tenants []masterOnlyTenant
	}
	e.mustJSON(0, &out, "keys", "init", "--master-only", "--identity", recovery)
	e.addKeySecrets(master, e.path("secrets", "signing.key"))
	if !out.OK || len(out.Tenants) != 1 || out.Tenants[0].Error != "" || len(out.Tenants[0].Locations) != 2 {
		t.Fatalf("keys init --master-only --identity: %+v", out)
	}
	if w := strings.Join(out.Tenants[0].Locations[0].Warnings, "\n"); !strings.Contains(w, planted) {
		t.Errorf("the planted key file at amsterdam is not named: %+v", out.Tenants[0].Locations)
	}
	if fi, err := os.Stat(master); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new master key: %v %v", fi, err)
	}
	if now, _ := os.ReadFile(e.path("secrets", "signing.key")); !bytes.Equal(now, signingBefore) {
		t.Error("keys init --master-only changed the signing key")
	}
	e.restoreEqual(snap, input)
	for _, l := range e.checkOK() {
		if len(l.Notes) != 1 || !strings.Contains(l.Notes[0], "superseded") {
			t.Errorf("check at %s: notes %q, want the old key file superseded", l.Location, l.Notes)
		}
	}
	e.backup(0, input)
	if r := e.run("keys", "init", "--master-only", "--identity", recovery); r.code != 1 || !strings.Contains(r.stderr, "refusing to overwrite") {
		t.Errorf("second keys init --master-only: %v", r)
	}

	// A fresh appliance that lost its master key before any backup.
	f := newEnv(t)
	f.keysInit()
	if err := os.Remove(f.path("secrets", "master.key")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"loc-a", "loc-g"} { // mounted, empty
		if err := os.MkdirAll(f.path(d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	f.mustRun(0, "keys", "init", "--master-only")
	f.addKeySecrets(f.path("secrets", "master.key"), f.path("secrets", "signing.key"))
	f.mustRun(0, "init", "--tenant", tenant)
	if r := f.run("keys", "init", "--identity", filepath.Join(f.dir, "x")); r.code != 2 {
		t.Errorf("--identity without --master-only: want a usage error, got %v", r)
	}
}
