package main

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestSyncRepair (issue 18 point 8): a pack damaged at one local location
// is found by check --read-data but not by a plain sync (it compares
// names); sync --repair replaces it from the other location, after which
// check --read-data is clean at both and that location alone restores.
func TestSyncRepair(t *testing.T) {
	t.Parallel()
	e := newRepoEnv(t)
	input := e.path("in.bin")
	writeData(t, seededRand(t), input, 4<<20)
	e.backup(0, input)

	ps := packs(t, e.path("loc-a"))
	sort.Strings(ps)
	victim := ps[len(ps)/2]
	hash := filepath.Base(victim)
	p := filepath.Join(e.path("loc-a"), filepath.FromSlash(victim))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 0x40
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o400); err != nil {
		t.Fatal(err)
	}
	if r := e.run("check", "--tenant", tenant, "--read-data", "--location", "amsterdam"); r.code != 1 || !strings.Contains(r.stdout, hash) {
		t.Fatalf("check --read-data --location amsterdam: want exit 1 naming pack %s, got %v", hash, r)
	}
	// A plain sync compares names: the damaged copy is not its business.
	if r := e.run("sync", "--tenant", tenant); r.code != 0 || strings.Contains(r.stdout, "repaired") {
		t.Fatalf("plain sync: %v", r)
	}
	r := e.mustRun(0, "sync", "--tenant", tenant, "--repair")
	if !strings.Contains(r.stdout, "location amsterdam: complete") || !strings.Contains(r.stdout, "repaired 1 damaged copy") {
		t.Errorf("sync --repair: want amsterdam complete with 1 repaired copy, got %v", r)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o400 {
		t.Errorf("the repaired pack: %v, mode %v, want 0400", err, fi.Mode().Perm())
	}
	e.checkOK("--location", "amsterdam")
	e.checkOK("--location", "groningen")
	// Amsterdam alone, with groningen gone.
	if err := os.RemoveAll(e.path("loc-g")); err != nil {
		t.Fatal(err)
	}
	e.restoreEqual("latest", input, "--location", "amsterdam")
}
