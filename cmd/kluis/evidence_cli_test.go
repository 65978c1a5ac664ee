package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/repo"
)

// appendEvidence signs n synthetic restore-test reports into the env's
// state directory with its signing key, as a restore test would, the
// first on day first (report i on day first+i, so --from/--to select by
// day). Every fourth report fails its fingerprints check.
func (e *env) appendEvidence(n int, first time.Time) {
	e.t.Helper()
	key, err := repo.LoadSigningKey(e.path("secrets", "signing.key"))
	if err != nil {
		e.t.Fatal(err)
	}
	s := evidence.OpenStore(e.path("state"), "ams-1", key, nil)
	recs, err := s.Records()
	if err != nil {
		e.t.Fatal(err)
	}
	for i := len(recs); i < len(recs)+n; i++ {
		started := first.Add(time.Duration(i-len(recs)) * 24 * time.Hour)
		tn := []string{"praktijk-a", "praktijk-b"}[i%2]
		r := evidence.Report{Tenant: tn, Engine: "sqlite", Verdict: evidence.Pass, Started: started, Finished: started.Add(90 * time.Second),
			Snapshot: evidence.Snapshot{ID: fmt.Sprintf("%064x", i+1), Time: started.Add(-6 * time.Hour), Tables: 2, Rows: 1200, Bytes: 1 << 20},
			Location: evidence.Location{Name: []string{"amsterdam", "groningen"}[i%2], Country: "NL", Site: "Amsterdam", Provider: "provider-a"},
			Checks:   []evidence.Check{{Name: evidence.CheckFingerprints, OK: true, Seconds: 1.5, Detail: "2 of 2 tables match the manifest"}},
			Tables:   []evidence.Table{{Name: "clients", Rows: 1200, RowsRestored: 1200, Fingerprint: "ab12", RestoredFingerprint: "ab12", Match: true}},
			RTO:      evidence.RTO{TargetSeconds: 4 * 3600, MeasuredSeconds: 88, OK: true},
			RPO:      evidence.RPO{TargetSeconds: 26 * 3600, SnapshotAgeSeconds: 6 * 3600, LargestGapSeconds: 24 * 3600, OK: true},
			Kluis:    "test"}
		if i%4 == 3 {
			r.Verdict, r.FailedChecks = evidence.Fail, []string{evidence.CheckFingerprints}
			r.Checks[0].OK, r.Checks[0].Detail = false, "clients: restored fingerprint differs from the manifest"
		}
		s.Now = func() time.Time { return r.Finished.Add(time.Second) }
		if _, _, err := s.Append(context.Background(), &r); err != nil {
			e.t.Fatal(err)
		}
	}
}

// runNoConfig runs kluis in an empty directory with no KLUIS_* variables:
// no kluis.yaml anywhere it could find one.
func (e *env) runNoConfig(args ...string) result {
	e.t.Helper()
	c := exec.Command(kluisBin, args...)
	c.Dir = e.t.TempDir()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KLUIS_") {
			c.Env = append(c.Env, kv)
		}
	}
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	r, err := e.finish(args, &stdout, &stderr, c.Run())
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// TestEvidenceCLI walks the auditor's workflow: list, show, export on the
// appliance; verify with only the public key and no config; tampering
// caught with the report and the reason; a kept checkpoint that proves
// the next export did not rewrite or cut off history.
func TestEvidenceCLI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.keysInit()
	ams, _ := time.LoadLocation("Europe/Amsterdam")
	day1 := time.Date(2026, 3, 1, 6, 0, 0, 0, ams)
	e.appendEvidence(8, day1)

	// list
	r := e.mustRun(0, "evidence", "list")
	for _, want := range []string{"SEQ", "praktijk-a", "praktijk-b", "FAIL", "fingerprints", "8 reports, 2 failed"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("evidence list lacks %q:\n%s", want, r.stdout)
		}
	}
	var rows []evidenceRow
	e.mustJSON(0, &rows, "evidence", "list", "--tenant", "praktijk-b", "--from", "2026-03-02", "--to", "2026-03-06")
	if len(rows) != 3 || rows[0].Seq != 2 || rows[2].Seq != 6 || rows[2].Verdict != "PASS" {
		t.Errorf("list --tenant --from --to: %+v", rows)
	}
	if r := e.run("evidence", "list", "--from", "March"); r.code != 2 {
		t.Errorf("bad --from: %v", r)
	}

	// show
	r = e.mustRun(0, "evidence", "show", "4")
	for _, want := range []string{"Report 4 of appliance ams-1: FAIL (failed: fingerprints)", "Checks", "FAIL  fingerprints", "Tables", "clients", "RTO", "1m 28s", "RPO"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("evidence show lacks %q:\n%s", want, r.stdout)
		}
	}
	var rec evidence.Record
	e.mustJSON(0, &rec, "evidence", "show", "2")
	if rec.Seq != 2 || rec.Report.Tenant != "praktijk-b" || len(rec.Hash) != 64 {
		t.Errorf("show --json: %+v", rec)
	}
	if r := e.run("evidence", "show", "99"); r.code != 1 || !strings.Contains(r.stderr, "no report 99") {
		t.Errorf("show 99: %v", r)
	}
	if r := e.run("evidence", "show", "x"); r.code != 2 {
		t.Errorf("show x: %v", r)
	}

	// export
	out := e.path("export-q1")
	r = e.mustRun(0, "evidence", "export", "--out", out)
	if !strings.Contains(r.stdout, "exported reports 1 to 8") {
		t.Errorf("export: %v", r)
	}
	for _, f := range []string{"00000001.json", "00000008.json", evidence.CheckpointFile, evidence.PublicKeyFile, evidence.SummaryFile, evidence.ReadmeFile} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("export lacks %s", f)
		}
	}
	if r := e.run("evidence", "export", "--out", out); r.code != 1 || !strings.Contains(r.stderr, "exists") {
		t.Errorf("export into a non-empty dir: %v", r)
	}
	if r := e.run("evidence", "export", "--out", e.path("none"), "--from", "2027-01-01"); r.code != 1 || !strings.Contains(r.stderr, "no restore-test reports in the period") {
		t.Errorf("export of an empty period: %v", r)
	}
	pub := e.path("appliance.pub")
	if err := os.WriteFile(pub, []byte(e.mustRun(0, "keys", "public").stdout), 0o644); err != nil {
		t.Fatal(err)
	}

	// verify: no config at all
	r = e.runNoConfig("evidence", "verify", "--public-key", pub, out)
	if r.code != 0 || !strings.Contains(r.stdout, "VERIFIED") || !strings.Contains(r.stdout, "reports 1 to 8 of appliance ams-1") {
		t.Fatalf("verify: %v", r)
	}
	if r := e.runNoConfig("evidence", "verify", out, "--public-key", pub, "--json"); r.code != 0 || !strings.Contains(r.stdout, `"ok": true`) {
		t.Errorf("verify DIR --public-key --json: %v", r)
	}
	if r := e.runNoConfig("evidence", "verify", out); r.code != 2 || !strings.Contains(r.stderr, "--public-key FILE is required") {
		t.Errorf("verify without a key: %v", r)
	}

	// tampering, each caught with the report and the reason
	tampered := e.path("tampered")
	copyDir(t, out, tampered)
	b, _ := os.ReadFile(filepath.Join(tampered, "00000004.json"))
	os.WriteFile(filepath.Join(tampered, "00000004.json"), bytes.Replace(b, []byte(`"verdict":"FAIL"`), []byte(`"verdict":"PASS"`), 1), 0o644)
	os.Remove(filepath.Join(tampered, "00000006.json"))
	r = e.runNoConfig("evidence", "verify", "--public-key", pub, tampered)
	if r.code != 1 || !strings.Contains(r.stdout, "NOT VERIFIED") ||
		!strings.Contains(r.stdout, "00000004.json: EDITED: the signature does not verify with the given public key and report 5 no longer links to it") ||
		!strings.Contains(r.stdout, "REMOVED: report 6 is missing: report 7 follows report 5") {
		t.Errorf("tampered export: %v", r)
	}
	var jv struct {
		OK       bool               `json:"ok"`
		Problems []evidence.Problem `json:"problems"`
	}
	if err := jsonDecode(e.runNoConfig("evidence", "verify", "--public-key", pub, "--json", tampered), 1, &jv); err != nil || jv.OK || len(jv.Problems) != 2 {
		t.Errorf("tampered export, --json: %+v %v", jv, err)
	}

	// The first reports of a full export removed: its checkpoint names
	// report 1.
	cut := e.path("first-removed")
	copyDir(t, out, cut)
	os.Remove(filepath.Join(cut, "00000001.json"))
	os.Remove(filepath.Join(cut, "00000002.json"))
	r = e.runNoConfig("evidence", "verify", "--public-key", pub, cut)
	if r.code != 1 || !strings.Contains(r.stdout, "00000001.json: REMOVED: checkpoint.json") || !strings.Contains(r.stdout, "reports 1 to 2 were removed") {
		t.Errorf("export without its first two reports: %v", r)
	}

	// The auditor keeps q1's checkpoint; the next export extends it (from
	// report 4: an export carries the report just before its period).
	e.appendEvidence(4, day1.AddDate(0, 0, 8))
	q2 := e.path("export-q2")
	e.mustRun(0, "evidence", "export", "--out", q2, "--from", "2026-03-05")
	r = e.runNoConfig("evidence", "verify", "--public-key", pub, "--checkpoint", filepath.Join(out, "checkpoint.json"), q2)
	if r.code != 0 || !strings.Contains(r.stdout, "matches: the chain from report 4 (the first here) up to report 8 is unchanged since") {
		t.Errorf("q2 with q1's checkpoint: %v", r)
	}
	// An export that stops short of the kept checkpoint is caught (to
	// report 7: the report just after its period goes along).
	q2cut := e.path("export-q2-cut")
	e.mustRun(0, "evidence", "export", "--out", q2cut, "--to", "2026-03-06")
	r = e.runNoConfig("evidence", "verify", "--public-key", pub, "--checkpoint", filepath.Join(out, "checkpoint.json"), q2cut)
	if r.code != 1 || !strings.Contains(r.stdout, "TRUNCATED") || !strings.Contains(r.stdout, "says the chain had 8 reports, but the newest here is report 7") {
		t.Errorf("a shortened export with q1's checkpoint: %v", r)
	}

	// A state directory whose chain was tampered with: list refuses.
	p := e.path("state", "evidence", "00000003.json")
	os.Chmod(p, 0o600)
	b, _ = os.ReadFile(p)
	os.WriteFile(p, bytes.Replace(b, []byte(`"rows":1200`), []byte(`"rows":1201`), 1), 0o600)
	if r := e.run("evidence", "list"); r.code != 1 || !strings.Contains(r.stderr, "00000003.json: EDITED") {
		t.Errorf("list on a tampered chain: %v", r)
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		copyFile(t, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
	}
}

func jsonDecode(r result, want int, v any) error {
	if r.code != want {
		return fmt.Errorf("want exit %d: %v", want, r)
	}
	return json.Unmarshal([]byte(r.stdout), v)
}

// TestEvidenceVerifyCannotVerify: verify exits 2 when it could not verify
// at all (a key file or directory that cannot be read, a key file that is
// not a key), so scripts tell that from NOT VERIFIED (1); with the wrong
// key it says so without an empty appliance name.
func TestEvidenceVerifyCannotVerify(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.keysInit()
	e.appendEvidence(3, time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC))
	out := e.path("export")
	e.mustRun(0, "evidence", "export", "--out", out)
	pub := e.path("appliance.pub")
	if err := os.WriteFile(pub, []byte(e.mustRun(0, "keys", "public").stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	notKey := e.path("not-a-key.pub")
	os.WriteFile(notKey, []byte("hello\n"), 0o644)
	for name, args := range map[string][]string{
		"absent key file":        {"--public-key", e.path("absent.pub"), out},
		"key file is a dir":      {"--public-key", e.path("state"), out},
		"not a key":              {"--public-key", notKey, out},
		"absent directory":       {"--public-key", pub, e.path("absent")},
		"directory is a file":    {"--public-key", pub, pub},
		"absent checkpoint file": {"--public-key", pub, "--checkpoint", e.path("absent.json"), out},
	} {
		r := e.runNoConfig(append([]string{"evidence", "verify"}, args...)...)
		if r.code != 2 || r.stderr == "" || strings.Contains(r.stdout, "VERIFIED") {
			t.Errorf("%s: want exit 2 and a message, got %v", name, r)
		}
	}

	_, other, _ := ed25519.GenerateKey(nil)
	pem, err := repo.EncodePublicKey(other.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	wrong := e.path("wrong.pub")
	os.WriteFile(wrong, pem, 0o644)
	r := e.runNoConfig("evidence", "verify", "--public-key", wrong, out)
	if r.code != 1 || !strings.Contains(r.stdout, "NOT VERIFIED") || !strings.Contains(r.stdout, "no report verifies with the given public key") ||
		strings.Contains(r.stdout, "appliance ,") || strings.Contains(r.stdout, "appliance  ") {
		t.Errorf("verify with the wrong key: %v", r)
	}
}
