package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kluis-nl/kluis/synth"
)

// drConfig is erasureConfig with the offline recovery recipient set.
func drConfig(t *testing.T, id *age.X25519Identity) string {
	t.Helper()
	const old = "signing_key_file: ./secrets/signing.key,"
	if !strings.Contains(erasureConfig, old) {
		t.Fatalf("erasureConfig changed: no %q", old)
	}
	return strings.Replace(erasureConfig, old, old+" recovery_recipient: "+id.Recipient().String()+",", 1)
}

// drLose is the appliance lost: its state directory and both key files
// gone; only the config and the offline recovery kit are left.
func drLose(t *testing.T, e *env) {
	t.Helper()
	for _, p := range []string{"state", "secrets"} {
		if err := os.RemoveAll(e.path(p)); err != nil {
			t.Fatal(err)
		}
	}
}

// drStatusProblems returns every tenant problem `kluis status --json`
// reports, and its exit code.
func drStatusProblems(t *testing.T, e *env) ([]string, int) {
	t.Helper()
	r := e.run("status", "--json")
	var rep struct {
		Tenants []struct {
			Problems []string `json:"problems"`
		} `json:"tenants"`
		Errors []string `json:"errors"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("status --json: %v: %v", err, r)
	}
	out := rep.Errors
	for _, ts := range rep.Tenants {
		out = append(out, ts.Problems...)
	}
	return out, r.code
}

func hasProblem(ps []string, sub string) bool {
	for _, p := range ps {
		if strings.Contains(p, sub) {
			return true
		}
	}
	return false
}

// TestDisasterRecoveryNewSigningKey (issue 18 point 2; the register
// blocker): the documented disaster recovery — a new appliance with a NEW
// signing key, the same appliance id, `kluis keys recover
// --signing-public-key` with the lost appliance's public key from the
// recovery kit, `kluis erasure recover` — leaves an appliance whose
// restores work (the erasure still honoured), whose status is honest
// before the registers are rebuilt, and whose registers continue the
// lost appliance's with a key rotation line.
func TestDisasterRecoveryNewSigningKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.cfg, []byte(drConfig(t, id)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.path("recovery.txt"), []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.secrets["recovery identity"] = id.String()
	if err := synth.GenerateSQLiteFile(context.Background(), e.path("praktijk.db"), synth.Tiny, 5); err != nil {
		t.Fatal(err)
	}
	e.keysInit()
	e.mustRun(0, "init", "--tenant", "praktijk-s")
	e.mustRun(0, "backup", "--tenant", "praktijk-s")
	e.mustRun(0, "erasure", "add", "--tenant", "praktijk-s", "--id", "3", "--reason", "AVG art. 17 request")
	e.mustRun(0, "dossier", "show", "--tenant", "praktijk-s", "--id", "4", "--reason", "support call")
	e.mustRun(0, "restore-test", "--tenant", "praktijk-s")
	e.mustRun(0, "restore-test", "--tenant", "praktijk-s")
	// The recovery kit: the signing public key (what auditors hold).
	oldPub := e.mustRun(0, "keys", "public").stdout
	if err := os.WriteFile(e.path("old-signing.pub"), []byte(oldPub), 0o600); err != nil {
		t.Fatal(err)
	}

	// What the auditor kept from the lost appliance: an export.
	e.mustRun(0, "evidence", "export", "--out", e.path("old-export"))

	drLose(t, e)
	e.keysInit() // the new appliance: a new master key and a NEW signing key
	if e.mustRun(0, "keys", "public").stdout == oldPub {
		t.Fatal("keys init made the same signing key")
	}
	r := e.mustRun(0, "keys", "recover", "--tenant", "praktijk-s", "--identity", e.path("recovery.txt"), "--signing-public-key", e.path("old-signing.pub"))
	if !strings.Contains(r.stdout, "trusted previous signing key") {
		t.Errorf("keys recover does not say it trusts the previous key: %v", r)
	}
	var keys []struct {
		ID      string `json:"id"`
		Current bool   `json:"current"`
	}
	e.mustJSON(0, &keys, "keys", "previous", "--json")
	if len(keys) != 2 || !keys[0].Current || keys[1].Current {
		t.Fatalf("keys previous: %+v", keys)
	}

	// Before the registers are rebuilt, status must not say ok: every
	// restore would be refused.
	ps, code := drStatusProblems(t, e)
	if code != 1 || !hasProblem(ps, "erasure register and access log cannot be verified") {
		t.Errorf("status before erasure recover: exit %d, problems %q", code, ps)
	}
	if r := e.run("restore", "--tenant", "praktijk-s", "--target-path", e.path("early.db")); r.code != 1 || !strings.Contains(r.stderr, "erasure recover") {
		t.Errorf("restore before erasure recover: %v", r)
	}

	r = e.mustRun(0, "erasure", "recover")
	if !strings.Contains(r.stdout, "erasure register 1 record,") {
		t.Errorf("erasure recover: %v", r)
	}
	// Both logs now continue with a rotation line signed by the new key.
	for _, f := range []string{"erasures.jsonl", "dossier-access.jsonl"} {
		b, _ := os.ReadFile(e.path("state", f))
		if !strings.Contains(string(b), `"kind":"key-rotation"`) {
			t.Errorf("%s has no key rotation line", f)
		}
	}
	ps, _ = drStatusProblems(t, e)
	if hasProblem(ps, "erasure register") || !hasProblem(ps, "kluis evidence continue") {
		t.Errorf("status after erasure recover (registers ok, evidence not yet continued): %q", ps)
	}

	// Restores work, and the erasure is honoured.
	r = e.mustRun(0, "restore", "--tenant", "praktijk-s", "--target-path", e.path("full.db"))
	if clientRows(t, e.path("full.db"), 3) != 0 || clientRows(t, e.path("full.db"), 4) != 1 {
		t.Errorf("full restore after the recovery: %v", r)
	}
	if r := e.run("dossier", "show", "--tenant", "praktijk-s", "--id", "3"); r.code != 1 || !strings.Contains(r.stderr, "was erased") {
		t.Errorf("dossier show of the erased client after the recovery: %v", r)
	}
	e.mustRun(0, "dossier", "restore", "--tenant", "praktijk-s", "--id", "4", "--reason", "x", "--out", e.path("d4.sql"))
	e.mustRun(0, "erasure", "add", "--tenant", "praktijk-s", "--id", "5", "--reason", "second request")
	var list []struct {
		ID string `json:"dossier_id"`
	}
	e.mustJSON(0, &list, "erasure", "list", "--json")
	if len(list) != 2 {
		t.Errorf("erasure list across the key change: %+v", list)
	}
	e.mustRun(0, "access-log", "verify")

	// Evidence: the new log continues the lost one, a new restore test
	// writes evidence, and an export spanning both verifies with both keys.
	r = e.mustRun(0, "evidence", "continue", "--identity", e.path("recovery.txt"))
	if !strings.Contains(r.stdout, "continues the log of key") {
		t.Errorf("evidence continue: %v", r)
	}
	if ps, _ := drStatusProblems(t, e); hasProblem(ps, "evidence continue") {
		t.Errorf("status after evidence continue: %q", ps)
	}
	e.mustRun(0, "restore-test", "--tenant", "praktijk-s")
	if r := e.mustRun(0, "evidence", "list"); !strings.Contains(r.stdout, "record 1 continues the log of previous key") {
		t.Errorf("evidence list does not show the continuation: %v", r)
	}
	e.mustRun(0, "evidence", "export", "--out", e.path("export"))
	newPub := e.mustRun(0, "keys", "public").stdout
	if err := os.WriteFile(e.path("new-signing.pub"), []byte(newPub), 0o600); err != nil {
		t.Fatal(err)
	}
	r = e.mustRun(0, "evidence", "verify", "--public-key", e.path("new-signing.pub"), "--previous-key", e.path("old-signing.pub"), e.path("export"))
	if !strings.Contains(r.stdout, "the link holds") {
		t.Errorf("verify across the fork: %v", r)
	}
	if r := e.run("evidence", "verify", "--public-key", e.path("new-signing.pub"), e.path("export")); r.code != 1 || !strings.Contains(r.stdout, "--previous-key") {
		t.Errorf("verify without the previous key: %v", r)
	}
	// The auditor's download from the portal carries the previous key's
	// log too, and verifies the same way.
	web := portalExport(t, e, "", time.Now().AddDate(0, 0, -90), time.Now().AddDate(0, 0, 1))
	if subs, _ := filepath.Glob(filepath.Join(web, "previous-*")); len(subs) != 1 {
		t.Errorf("the portal's export after the recovery holds %d previous logs", len(subs))
	}
	if r := e.mustRun(0, "evidence", "verify", "--public-key", e.path("new-signing.pub"), "--previous-key", e.path("old-signing.pub"), web); !strings.Contains(r.stdout, "the link holds") {
		t.Errorf("verify the portal's export across the fork: %v", r)
	}
	// The auditor's kept checkpoint of the lost appliance's log: its
	// checkpoint.note is checked against the previous log; its
	// checkpoint.json is named for what it is (a new-user trial was told
	// "edited, or signed by another key").
	e.mustRun(0, "evidence", "verify", "--public-key", e.path("new-signing.pub"), "--previous-key", e.path("old-signing.pub"),
		"--checkpoint", e.path("old-export", "checkpoint.note"), e.path("export"))
	if r := e.run("evidence", "verify", "--public-key", e.path("new-signing.pub"), "--previous-key", e.path("old-signing.pub"),
		"--checkpoint", e.path("old-export", "checkpoint.json"), e.path("export")); r.code != 2 || !strings.Contains(r.stderr, "checkpoint.note kept from that export") {
		t.Errorf("verify with the lost appliance's checkpoint.json: %v", r)
	}
	// The previous log in the export cut back to its first checkpoint
	// (one the lost key really signed, read at a location): the
	// continuation names a checkpoint that log does not have.
	subs, _ := filepath.Glob(e.path("export", "previous-*"))
	if len(subs) != 1 {
		t.Fatalf("export holds %d previous logs", len(subs))
	}
	sub := subs[0]
	carried, _ := os.ReadFile(filepath.Join(sub, "checkpoint.note"))
	notes, _ := filepath.Glob(e.path("loc-a", "_evidence", "ams-1", "key-"+strings.TrimPrefix(filepath.Base(sub), "previous-"), "checkpoint", "*"))
	var first []byte
	for _, n := range notes {
		if b, _ := os.ReadFile(n); string(b) != string(carried) && strings.Contains(string(b), "\n1\n") {
			first = b
		}
	}
	if first == nil {
		t.Fatalf("no first checkpoint of the old log at the location (%d notes)", len(notes))
	}
	os.Remove(filepath.Join(sub, "00000002.json"))
	os.WriteFile(filepath.Join(sub, "checkpoint.note"), first, 0o600)
	tree, _ := os.ReadFile(filepath.Join(sub, "tree.txt"))
	os.WriteFile(filepath.Join(sub, "tree.txt"), tree[:65], 0o600)
	if r := e.run("evidence", "verify", "--public-key", e.path("new-signing.pub"), "--previous-key", e.path("old-signing.pub"), e.path("export")); r.code != 1 || !strings.Contains(r.stdout, "does not have") {
		t.Errorf("verify with the previous log cut back: %v", r)
	}

	// This appliance is lost too. Its successor is given only this
	// appliance's key: the rotation lines vouch for the first one's.
	second := e.mustRun(0, "keys", "public").stdout
	if err := os.WriteFile(e.path("second.pub"), []byte(second), 0o600); err != nil {
		t.Fatal(err)
	}
	drLose(t, e)
	e.keysInit()
	if r := e.run("keys", "recover", "--tenant", "praktijk-s", "--identity", e.path("recovery.txt")); r.code != 0 {
		t.Fatalf("keys recover without the signing key: %v", r)
	}
	if r := e.run("erasure", "recover"); r.code != 1 || !strings.Contains(r.stderr, "does not trust") {
		t.Errorf("erasure recover without the previous key: %v", r)
	}
	e.mustRun(0, "keys", "previous", "--add", e.path("second.pub"))
	e.mustRun(0, "erasure", "recover")
	if r := e.run("dossier", "show", "--tenant", "praktijk-s", "--id", "5"); r.code != 1 || !strings.Contains(r.stderr, "was erased") {
		t.Errorf("dossier show of an erased client on the third appliance: %v", r)
	}
	e.mustRun(0, "restore", "--tenant", "praktijk-s", "--target-path", e.path("third.db"))
	if clientRows(t, e.path("third.db"), 3) != 0 || clientRows(t, e.path("third.db"), 5) != 0 {
		t.Errorf("the third appliance brought an erased dossier back")
	}
}
