package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/synth"
)

const dossierTenant = "praktijk-s"

// TestDossierCLI walks the support workflow of docs/dossier.md on a SQLite
// tenant: show, restore to a file, the erasure register with refusal and
// override, a full restore that re-applies the erasure, and the access log
// with its verification and tamper detection.
func TestDossierCLI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := `appliance: {id: ams-1, state_dir: ./state, master_key_file: ./secrets/master.key, signing_key_file: ./secrets/signing.key}
locations:
  - {name: amsterdam, type: dir, path: ./loc-a, country: NL, site: Amsterdam, provider: provider-a}
  - {name: groningen, type: dir, path: ./loc-g, country: NL, site: Groningen, provider: provider-b}
tenants:
  - {id: ` + dossierTenant + `, engine: sqlite, path: ./praktijk.db, dossier: practice}
dossiers:
  practice: {root: clients, key: id, exclude: [audit_log]}
policy: {pack_size: 1MiB}
`
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := synth.GenerateSQLiteFile(context.Background(), e.path("praktijk.db"), synth.Tiny, 5); err != nil {
		t.Fatal(err)
	}
	e.keysInit()
	e.mustRun(0, "init", "--tenant", dossierTenant)
	e.mustRun(0, "backup", "--tenant", dossierTenant)

	var show struct {
		Tables []struct {
			Table string `json:"table"`
			Rows  int64  `json:"rows"`
		} `json:"tables"`
		Shared []struct {
			Table string `json:"table"`
		} `json:"shared"`
	}
	e.mustJSON(0, &show, "dossier", "show", "--tenant", dossierTenant, "--id", "3", "--operator", "support-jan")
	if len(show.Tables) < 5 || show.Tables[0].Table != "clients" || show.Tables[0].Rows != 1 || len(show.Shared) == 0 {
		t.Fatalf("dossier show: %+v", show)
	}
	if r := e.run("dossier", "restore", "--tenant", dossierTenant, "--id", "3", "--out", e.path("d.sql")); r.code != 2 || !strings.Contains(r.stderr, "--reason is required") {
		t.Errorf("restore without --reason: %v", r)
	}
	e.mustRun(0, "dossier", "restore", "--tenant", dossierTenant, "--id", "3", "--reason", "ticket 4711: dossier damaged", "--out", e.path("d.sql"))
	if b, err := os.ReadFile(e.path("d.sql")); err != nil || !strings.Contains(string(b), `INSERT INTO "clients"`) || !strings.Contains(string(b), "COMMIT;") {
		t.Errorf("SQL file: %v\n%.300s", err, b)
	}
	e.mustRun(0, "dossier", "restore", "--tenant", dossierTenant, "--id", "3", "--reason", "review", "--format", "json", "--out", e.path("d.json"))
	var doc map[string]any
	if b, _ := os.ReadFile(e.path("d.json")); json.Unmarshal(b, &doc) != nil {
		t.Errorf("JSON file does not parse")
	}

	e.mustRun(0, "erasure", "add", "--tenant", dossierTenant, "--id", "3", "--reason", "AVG art. 17 request of 2026-01-02")
	if r := e.mustRun(0, "erasure", "list"); !strings.Contains(r.stdout, "AVG art. 17 request") {
		t.Errorf("erasure list: %v", r)
	}
	if r := e.run("dossier", "restore", "--tenant", dossierTenant, "--id", "3", "--reason", "again", "--out", e.path("d2.sql")); r.code != 1 || !strings.Contains(r.stderr, "was erased") {
		t.Errorf("restoring an erased dossier: %v", r)
	}
	if _, err := os.Stat(e.path("d2.sql")); err == nil {
		t.Errorf("a refused restore wrote its file")
	}
	e.mustRun(0, "dossier", "restore", "--tenant", dossierTenant, "--id", "3", "--reason", "again", "--override-erasure", "court order 2026/12", "--out", e.path("d3.sql"))

	r := e.mustRun(0, "restore", "--tenant", dossierTenant, "--target-path", e.path("full.db"))
	if !strings.Contains(r.stderr, "re-applied 1 erasures") {
		t.Errorf("full restore did not report the erasure: %v", r)
	}
	db, err := sql.Open("sqlite", e.path("full.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n3, n4, t3 int
	db.QueryRow(`SELECT count(*) FROM clients WHERE id = 3`).Scan(&n3)
	db.QueryRow(`SELECT count(*) FROM clients WHERE id = 4`).Scan(&n4)
	db.QueryRow(`SELECT count(*) FROM treatments WHERE client_id = 3`).Scan(&t3)
	if n3 != 0 || t3 != 0 || n4 != 1 {
		t.Errorf("after the full restore: client 3 %d rows (treatments %d), client 4 %d", n3, t3, n4)
	}

	// Into the restored database, which lacks dossier 3: one transaction.
	r = e.mustRun(0, "dossier", "restore", "--tenant", dossierTenant, "--id", "3", "--reason", "ticket 4712", "--override-erasure", "court order 2026/12", "--into", e.path("full.db"))
	if !strings.Contains(r.stdout, "inserted in one transaction") {
		t.Errorf("--into: %v", r)
	}
	db.QueryRow(`SELECT count(*) FROM clients WHERE id = 3`).Scan(&n3)
	if n3 != 1 {
		t.Errorf("after --into, client 3 has %d rows", n3)
	}
	if r := e.run("dossier", "restore", "--tenant", dossierTenant, "--id", "3", "--reason", "again", "--override-erasure", "court order 2026/12", "--into", e.path("full.db")); r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("second --into without --on-conflict skip: %v", r)
	}
	e.mustRun(0, "dossier", "restore", "--tenant", dossierTenant, "--id", "3", "--reason", "again", "--override-erasure", "court order 2026/12", "--into", e.path("full.db"), "--on-conflict", "skip")

	r = e.mustRun(0, "access-log", "verify")
	if !strings.Contains(r.stdout, "8 records") {
		t.Errorf("access log should hold show, 3 restores to files, the refused one and 3 into the database: %v", r)
	}
	pub := e.mustRun(0, "keys", "public")
	os.WriteFile(e.path("pub.pem"), []byte(pub.stdout), 0o644)
	e.mustRun(0, "access-log", "verify", "--public-key", e.path("pub.pem"))
	logFile := e.path("state", "dossier-access.jsonl")
	b, _ := os.ReadFile(logFile)
	if !strings.Contains(string(b), "support-jan") || !strings.Contains(string(b), "was erased") || !strings.Contains(string(b), "court order") {
		t.Errorf("access log lacks operator, refusal or override:\n%s", b)
	}
	os.WriteFile(logFile, []byte(strings.Replace(string(b), "support-jan", "support-els", 1)), 0o600)
	if r := e.run("access-log", "verify"); r.code != 1 || !strings.Contains(r.stderr, "does not verify") {
		t.Errorf("edited access log: %v", r)
	}
}
