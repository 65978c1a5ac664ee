package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/synth"
)

const erasureConfig = `appliance: {id: ams-1, state_dir: ./state, master_key_file: ./secrets/master.key, signing_key_file: ./secrets/signing.key, time_zone: Europe/Amsterdam}
locations:
  - {name: amsterdam, type: dir, path: ./loc-a, country: NL, site: Amsterdam, provider: provider-a}
  - {name: groningen, type: dir, path: ./loc-g, country: NL, site: Groningen, provider: provider-b}
tenants:
  - id: praktijk-s
    engine: sqlite
    path: ./praktijk.db
    dossier: practice
    probes:
      - {name: erased-client, sql: "SELECT count(*) FROM clients WHERE id = 3", max: 0, record_result: true}
dossiers:
  practice: {root: clients, key: id, exclude: [audit_log]}
policy: {pack_size: 1MiB}
`

// newErasureEnv is an appliance with erasureConfig: keys, the SQLite
// tenant praktijk-s initialised and backed up once.
func newErasureEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	if err := os.WriteFile(e.cfg, []byte(erasureConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := synth.GenerateSQLiteFile(context.Background(), e.path("praktijk.db"), synth.Tiny, 5); err != nil {
		t.Fatal(err)
	}
	e.keysInit()
	e.mustRun(0, "init", "--tenant", "praktijk-s")
	e.mustRun(0, "backup", "--tenant", "praktijk-s")
	return e
}

func clientRows(t *testing.T, path string, id int) int {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := -1
	if err := db.QueryRow(`SELECT count(*) FROM clients WHERE id = ?`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestErasureRegisterEverywhere (issue 15 §3): an erasure recorded for
// today with a non-canonical id is honoured by every restore path (full
// restore of today's snapshot, --to-dir, dossier show, the restore-test
// scratch); the register and access log are anchored in the repository,
// so deleting or truncating them is an error; they are replicated
// encrypted at both locations and a replacement appliance recovers them.
func TestErasureRegisterEverywhere(t *testing.T) {
	t.Parallel()
	e := newErasureEnv(t)

	// Today's date (appliance time zone), a padded integer id: stored as "3".
	today := time.Now().In(mustLoc(t, "Europe/Amsterdam")).Format("2006-01-02")
	e.mustRun(0, "erasure", "add", "--tenant", "praktijk-s", "--id", " 003 ", "--date", today, "--reason", "AVG art. 17 request")
	var list []struct {
		ID   string    `json:"dossier_id"`
		Time time.Time `json:"erased_at"`
	}
	e.mustJSON(0, &list, "erasure", "list", "--json")
	if len(list) != 1 || list[0].ID != "3" {
		t.Fatalf("erasure list: %+v", list)
	}
	if r := e.run("erasure", "add", "--tenant", "praktijk-s", "--id", "3", "--date", "2999-01-01", "--reason", "x"); r.code != 2 {
		t.Errorf("a future date: %v", r)
	}

	// Full restore of a snapshot taken the same day: the dossier stays out.
	r := e.mustRun(0, "restore", "--tenant", "praktijk-s", "--target-path", e.path("full.db"))
	if !strings.Contains(r.stderr, "re-applied 1 erasure of") || clientRows(t, e.path("full.db"), 3) != 0 || clientRows(t, e.path("full.db"), 4) != 1 {
		t.Errorf("full restore of the erasure day's snapshot kept the dossier: %v", r)
	}
	// dossier show of the erased client is refused, whatever the spelling.
	if r := e.run("dossier", "show", "--tenant", "praktijk-s", "--id", "03"); r.code != 1 || !strings.Contains(r.stderr, "was erased") {
		t.Errorf("dossier show of an erased client: %v", r)
	}
	// --to-dir writes raw streams: refused while the tenant has erasures,
	// and recorded either way.
	if r := e.run("restore", "--tenant", "praktijk-s", "--to-dir", e.path("dir1")); r.code != 1 || !strings.Contains(r.stderr, "erased dossiers") {
		t.Errorf("restore --to-dir with erasures: %v", r)
	}
	if _, err := os.Stat(e.path("dir1")); err == nil {
		t.Errorf("a refused --to-dir restore wrote files")
	}
	e.mustRun(0, "restore", "--tenant", "praktijk-s", "--to-dir", e.path("dir2"), "--override-erasure", "court order 2026/7", "--reason", "forensics")
	access, _ := os.ReadFile(e.path("state", "dossier-access.jsonl"))
	for _, want := range []string{`"action":"restore-full-dir"`, "court order 2026/7", `"action":"restore-full-db"`, `"action":"show"`} {
		if !strings.Contains(string(access), want) {
			t.Errorf("access log lacks %s", want)
		}
	}
	// The restore test applies the register to its scratch before probes.
	var rt struct {
		Report struct {
			Verdict string `json:"verdict"`
			Probes  []struct {
				Name string `json:"name"`
				Got  string `json:"got"`
			} `json:"probes"`
		} `json:"report"`
	}
	e.mustJSON(0, &rt, "restore-test", "--tenant", "praktijk-s", "--json")
	if rep := rt.Report; rep.Verdict != "PASS" || len(rep.Probes) != 1 || rep.Probes[0].Got != "0" {
		t.Errorf("restore-test scratch still holds the erased client: %+v", rep)
	}

	// Replicated encrypted at both locations: register objects whose bytes
	// hold neither the reason nor the log's plaintext.
	for _, loc := range []string{"loc-a", "loc-g"} {
		objs, _ := filepath.Glob(e.path(loc, "praktijk-s", "registers", "*"))
		if len(objs) < 4 {
			t.Errorf("%s holds %d register records, want one per line (>= 4)", loc, len(objs))
		}
		for _, o := range objs {
			b, _ := os.ReadFile(o)
			if strings.Contains(string(b), "AVG") || strings.Contains(string(b), "dossier_id") {
				t.Errorf("%s: register record in plaintext", o)
			}
		}
	}

	// A deleted register: every restore path refuses instead of forgetting.
	reg := e.path("state", "erasures.jsonl")
	saved, _ := os.ReadFile(reg)
	os.Remove(reg)
	for _, args := range [][]string{
		{"restore", "--tenant", "praktijk-s", "--target-path", e.path("full2.db")},
		{"dossier", "restore", "--tenant", "praktijk-s", "--id", "3", "--reason", "x", "--out", e.path("d.sql")},
		{"erasure", "add", "--tenant", "praktijk-s", "--id", "4", "--reason", "x"},
		{"erasure", "list"},
	} {
		if r := e.run(args...); r.code != 1 || !strings.Contains(r.stderr, "anchor") {
			t.Errorf("with the register deleted: %v", r)
		}
	}
	if _, err := os.Stat(e.path("full2.db")); err == nil {
		t.Errorf("a restore ran without the register")
	}
	if r := e.mustRun(0, "erasure", "recover"); !strings.Contains(r.stdout, "erasure register 1 record,") {
		t.Errorf("erasure recover: %v", r)
	}
	if b, _ := os.ReadFile(reg); string(b) != string(saved) {
		t.Errorf("recovered register differs from the original")
	}
	// A truncated access log (last record cut off) is an error too.
	log := e.path("state", "dossier-access.jsonl")
	b, _ := os.ReadFile(log)
	lines := strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
	os.WriteFile(log, []byte(strings.Join(lines[:len(lines)-1], "")), 0o600)
	if r := e.run("dossier", "show", "--tenant", "praktijk-s", "--id", "4"); r.code != 1 || !strings.Contains(r.stderr, "truncated") {
		t.Errorf("with the access log truncated: %v", r)
	}
	if r := e.run("access-log", "verify"); r.code != 1 || !strings.Contains(r.stderr, "truncated") {
		t.Errorf("access-log verify of a truncated log: %v", r)
	}

	// A replacement appliance: same keys and config, empty state_dir.
	os.RemoveAll(e.path("state"))
	e.mustRun(0, "erasure", "recover")
	if r := e.run("dossier", "show", "--tenant", "praktijk-s", "--id", "3"); r.code != 1 || !strings.Contains(r.stderr, "was erased") {
		t.Errorf("after recovery on a new appliance: %v", r)
	}
	r = e.mustRun(0, "restore", "--tenant", "praktijk-s", "--target-path", e.path("full3.db"))
	if clientRows(t, e.path("full3.db"), 3) != 0 {
		t.Errorf("the replacement appliance brought the erased dossier back: %v", r)
	}
	// A location that lost its register records gets them back from sync.
	before, _ := filepath.Glob(e.path("loc-a", "praktijk-s", "registers", "*"))
	os.RemoveAll(e.path("loc-g", "praktijk-s", "registers"))
	e.mustRun(0, "sync", "--tenant", "praktijk-s")
	if after, _ := filepath.Glob(e.path("loc-g", "praktijk-s", "registers", "*")); len(after) != len(before) || len(after) == 0 {
		t.Errorf("sync restored %d of %d register records", len(after), len(before))
	}
	e.mustRun(0, "check", "--tenant", "praktijk-s") // register records are not damage
	var v map[string]any
	if err := json.Unmarshal([]byte(e.mustRun(0, "access-log", "verify", "--json").stdout), &v); err != nil || v["ok"] != true {
		t.Errorf("recovered access log: %v", v)
	}
}

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
