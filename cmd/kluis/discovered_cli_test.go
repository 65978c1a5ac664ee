package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/synth"
)

// TestDiscoveredTenantsInEveryCommand: a tenant found by a discover block
// is a tenant for every command, as it is for the daemon (issue 18.1):
// before, `snapshots`, `backup`, `check`, `restore` … said `no tenant
// "p-zuid" in the config` and `sync` skipped it silently. An unknown
// tenant lists the known ids.
func TestDiscoveredTenantsInEveryCommand(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := `appliance: {id: ams-1, state_dir: ./state, master_key_file: ./secrets/master.key, signing_key_file: ./secrets/signing.key}
locations:
  - {name: amsterdam, type: dir, path: ./loc-a, country: NL, site: Amsterdam, provider: provider-a}
  - {name: groningen, type: dir, path: ./loc-g, country: NL, site: Groningen, provider: provider-b}
tenants:
  - {id: praktijk-a, engine: files}
discover:
  - {engine: sqlite, pattern: ./practices/*.db, id_template: "p-{db}"}
policy: {pack_size: 1MiB}
`
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(e.path("practices"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := synth.GenerateSQLiteFile(context.Background(), e.path("practices", "zuid.db"), synth.Tiny, 3); err != nil {
		t.Fatal(err)
	}
	e.keysInit()
	const id = "p-zuid"
	e.mustRun(0, "init", "--tenant", id)
	e.mustRun(0, "backup", "--tenant", id)
	if r := e.mustRun(0, "snapshots", "--tenant", id); !strings.Contains(r.stdout, "amsterdam") {
		t.Errorf("snapshots of a discovered tenant: %v", r)
	}
	e.mustRun(0, "check", "--tenant", id)
	e.mustRun(0, "restore", "--tenant", id, "--snapshot", "latest", "--to-dir", e.path("out"))

	var synced struct {
		Tenants []tenantSync `json:"tenants"`
	}
	e.mustJSON(0, &synced, "sync")
	found := false
	for _, s := range synced.Tenants {
		found = found || s.Tenant == id
	}
	if !found {
		t.Errorf("sync without --tenant skipped the discovered tenant: %+v", synced)
	}

	r := e.run("snapshots", "--tenant", "p-noord")
	if r.code != 2 || !strings.Contains(r.stderr, "known: p-zuid, praktijk-a") {
		t.Errorf("an unknown tenant: want exit 2 listing the known ids, got %v", r)
	}
}
