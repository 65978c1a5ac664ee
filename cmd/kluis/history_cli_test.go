package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/synth"
)

// Issue 14 point 4 through the CLI: the newest manifests deleted at one
// location. check fails there naming them; restore latest with the other
// location down refuses unless --allow-partial or --location says so;
// sync copies the manifests back.
func TestHistoryErasedCLI(t *testing.T) {
	t.Parallel()
	e := newRepoEnv(t)
	in1, in2, in3 := e.path("in1.bin"), e.path("in2.bin"), e.path("in3.bin")
	rng := seededRand(t)
	writeData(t, rng, in1, 64<<10)
	writeData(t, rng, in2, 64<<10)
	writeData(t, rng, in3, 64<<10)
	e.backup(0, in1)
	s2 := e.backup(0, in2)
	s3 := e.backup(0, in3)
	for _, s := range []string{s2, s3} {
		if err := os.Remove(e.path("loc-a", tenant, "snapshots", s)); err != nil {
			t.Fatal(err)
		}
	}

	var out checkOutput
	e.mustJSON(1, &out, "check", "--tenant", tenant)
	for _, l := range out.Locations {
		errs := strings.Join(l.Errors, "\n")
		switch l.Location {
		case "amsterdam":
			for _, s := range []string{s2, s3} {
				if !strings.Contains(errs, "snapshot "+s[:8]) {
					t.Errorf("check at amsterdam does not name %s: %s", s[:8], errs)
				}
			}
		case "groningen":
			if errs != "" {
				t.Errorf("check at groningen: %s", errs)
			}
		}
	}

	// groningen down: latest would silently be the oldest snapshot.
	if err := os.Rename(e.path("loc-g"), e.path("loc-g.unmounted")); err != nil {
		t.Fatal(err)
	}
	r := e.run("restore", "--tenant", tenant, "--snapshot", "latest", "--to-dir", e.path("out"))
	if r.code != 1 || !strings.Contains(r.stderr, "restore refused") || !strings.Contains(r.stderr, "--allow-partial") {
		t.Errorf("restore latest with groningen down: want a refusal, got %v", r)
	}
	if _, err := os.Stat(e.path("out")); err == nil {
		t.Error("the refused restore wrote output")
	}
	if r := e.restoreEqual("latest", in1, "--allow-partial"); !strings.Contains(r.stderr, "warning") {
		t.Errorf("restore --allow-partial does not warn: %v", r)
	}
	e.restoreEqual("latest", in1, "--location", "amsterdam")
	if err := os.Rename(e.path("loc-g.unmounted"), e.path("loc-g")); err != nil {
		t.Fatal(err)
	}

	e.mustRun(0, "sync", "--tenant", tenant)
	for _, s := range []string{s2, s3} {
		if _, err := os.Stat(e.path("loc-a", tenant, "snapshots", s)); err != nil {
			t.Errorf("sync did not restore manifest %s at amsterdam: %v", s[:8], err)
		}
	}
	e.checkOK()
	e.restoreEqual("latest", in3)

	// Erased at both: only the ledger knows. latest refuses; the operator
	// acknowledges the loss and the history is consistent again.
	for _, loc := range []string{"loc-a", "loc-g"} {
		if err := os.Remove(e.path(loc, tenant, "snapshots", s3)); err != nil {
			t.Fatal(err)
		}
	}
	if r := e.run("check", "--tenant", tenant); r.code != 1 || strings.Count(r.stdout, "history was erased") != 2 {
		t.Errorf("check after erasure at both: %v", r)
	}
	if r := e.run("restore", "--tenant", tenant, "--to-dir", e.path("out")); r.code != 1 || !strings.Contains(r.stderr, s3[:8]) {
		t.Errorf("restore latest with the newest snapshot erased everywhere: %v", r)
	}
	if r := e.mustRun(0, "forget", "--tenant", tenant, "--acknowledge-lost"); !strings.Contains(r.stdout, "1 snapshot acknowledged as lost") {
		t.Errorf("forget --acknowledge-lost: %v", r)
	}
	e.checkOK()
	e.restoreEqual("latest", in2)
}

// TestDossierLatestPartialView (new-user trial, 2026-12-02): `dossier
// show` and `dossier restore` resolved --snapshot latest without the guard
// `restore latest` has, so with a location down they silently showed an
// older snapshot's dossier. Now they refuse the same way, and
// --allow-partial accepts the newest snapshot reachable, with a warning.
func TestDossierLatestPartialView(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := `appliance: {id: ams-1, state_dir: ./state, master_key_file: ./secrets/master.key, signing_key_file: ./secrets/signing.key}
locations:
  - {name: amsterdam, type: dir, path: ./loc-a, country: NL, site: Amsterdam, provider: provider-a}
  - {name: groningen, type: dir, path: ./loc-g, country: NL, site: Groningen, provider: provider-b}
tenants:
  - {id: ` + dossierTenant + `, engine: sqlite, path: ./praktijk.db, dossier: practice}
dossiers:
  practice: {root: clients, key: id}
policy: {pack_size: 1MiB}
`
	writeFile(t, e.cfg, cfg)
	if err := synth.GenerateSQLiteFile(context.Background(), e.path("praktijk.db"), synth.Tiny, 5); err != nil {
		t.Fatal(err)
	}
	e.keysInit()
	e.mustRun(0, "init", "--tenant", dossierTenant)
	e.mustRun(0, "backup", "--tenant", dossierTenant)
	var out struct {
		Snapshot string `json:"snapshot"`
	}
	e.mustJSON(0, &out, "backup", "--tenant", dossierTenant)
	newest := out.Snapshot
	// The newest snapshot is gone at amsterdam; groningen is down.
	if err := os.Remove(e.path("loc-a", dossierTenant, "snapshots", newest)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(e.path("loc-g"), e.path("loc-g.unmounted")); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"dossier", "show", "--tenant", dossierTenant, "--id", "3"},
		{"dossier", "restore", "--tenant", dossierTenant, "--id", "3", "--reason", "ticket 7", "--out", e.path("d.sql")},
	} {
		r := e.run(args...)
		if r.code != 1 || !strings.Contains(r.stderr, args[0]+" "+args[1]+" refused") || !strings.Contains(r.stderr, "--allow-partial") {
			t.Errorf("%v with groningen down: want a refusal, got %v", args, r)
		}
		if r := e.run(append(args, "--allow-partial")...); r.code != 0 || !strings.Contains(r.stderr, "warning: --allow-partial") {
			t.Errorf("%v --allow-partial: %v", args, r)
		}
	}
}
