package demo

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/synth"
)

// TestDemoLeavesAWorkingInstallation runs the demo into a temporary
// directory and checks what it leaves, not how fast: a valid config, keys
// with mode 0600, a repository per tenant at both locations holding two
// snapshots each, a signed restore-test report per tenant at both
// locations and an evidence export that verifies with only its public key,
// no scratch database left behind, the restored dossier in the access log,
// and a second night that stored far less than the first.
func TestDemoLeavesAWorkingInstallation(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "demo")
	var out strings.Builder
	sum, err := Run(ctx, Options{Dir: dir, Scale: synth.ScaleForBytes(2 << 20), Out: &out})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	cfg, err := config.Load(sum.Config)
	if err != nil {
		t.Fatalf("the demo's config does not validate: %v", err)
	}
	for _, f := range []string{cfg.Appliance.MasterKeyFile, cfg.Appliance.SigningKeyFile} {
		fi, err := os.Stat(cfg.Resolve(f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	a := appliance.New(cfg, nil)
	for _, tenant := range Tenants {
		for _, loc := range sum.Locations {
			snaps, err := os.ReadDir(filepath.Join(loc, tenant, "snapshots"))
			if err != nil || len(snaps) != 2 {
				t.Errorf("%s at %s: want 2 snapshots, got %d (%v)", tenant, loc, len(snaps), err)
			}
		}
		r, err := a.OpenRepo(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		results, err := r.Check(ctx, repo.CheckOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range results {
			if !c.OK() {
				t.Errorf("%s at %s: %v", tenant, c.Location, c.Errors)
			}
		}
	}
	// The evidence: one signed report per tenant in the state directory and
	// at both locations, and an export that verifies with only its public key.
	// Every tenant tested once at each location.
	want := len(Tenants) * len(sum.Locations)
	if sum.Reports != want {
		t.Errorf("%d restore-test reports, want %d", sum.Reports, want)
	}
	for _, loc := range sum.Locations {
		reps, err := filepath.Glob(filepath.Join(loc, "_evidence", cfg.Appliance.ID, "key-*", "leaf", "*"))
		if err != nil || len(reps) != want {
			t.Errorf("evidence at %s: want %d reports, got %d (%v)", loc, want, len(reps), err)
		}
	}
	pubPEM, err := os.ReadFile(filepath.Join(sum.EvidenceExport, evidence.PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := repo.ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	v, err := evidence.VerifyDir(sum.EvidenceExport, pub, evidence.VerifyOptions{Appliance: cfg.Appliance.ID})
	if err != nil || !v.OK() || v.Reports != want {
		t.Errorf("the evidence export does not verify: %v %+v", err, v)
	}
	for _, f := range []string{evidence.SummaryFile, evidence.CheckpointFile} {
		if fi, err := os.Stat(filepath.Join(sum.EvidenceExport, f)); err != nil || fi.Size() == 0 {
			t.Errorf("evidence export lacks %s: %v", f, err)
		}
	}
	html, _ := os.ReadFile(filepath.Join(sum.EvidenceExport, evidence.SummaryFile))
	for _, tenant := range Tenants {
		if !strings.Contains(string(html), tenant) {
			t.Errorf("the HTML summary does not mention %s", tenant)
		}
	}
	if strings.Contains(string(html), ">never<") {
		t.Error("the HTML summary shows a location never proven, though every tenant was tested at both")
	}
	// The scratch databases of the restore tests are gone.
	if left, _ := filepath.Glob(filepath.Join(cfg.Resolve(cfg.Policy.RestoreTest.ScratchDir), "*")); len(left) > 0 {
		t.Errorf("restore tests left scratch files behind: %v", left)
	}
	if b, err := os.ReadFile(sum.Dossier); err != nil || !strings.Contains(string(b), "INSERT INTO") {
		t.Errorf("restored dossier %s: %v", sum.Dossier, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "state", "dossier-access.jsonl")); err != nil || !strings.Contains(string(b), "restore-sql") {
		t.Errorf("the dossier restore is not in the access log: %v", err)
	}
	if sum.RestoreTables == 0 {
		t.Error("the restore compared no tables")
	}
	if sum.SecondStored*2 > sum.FirstStored {
		t.Errorf("night 2 stored %d bytes, night 1 %d: the increment should be far smaller", sum.SecondStored, sum.FirstStored)
	}
	if !strings.Contains(out.String(), "Try next") {
		t.Errorf("the demo ends with a tour; got:\n%s", out.String())
	}
	if _, err := Run(ctx, Options{Dir: dir, Scale: synth.Tiny}); err == nil {
		t.Error("a second demo into a non-empty directory must be refused")
	}
}
