package appliance

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/repo"
)

// retentionAppliance is an appliance with keys and a state directory,
// on a clock the test sets.
func retentionAppliance(t *testing.T, now *time.Time) *Appliance {
	t.Helper()
	dir := t.TempDir()
	if _, err := repo.InitApplianceKeys(filepath.Join(dir, "master.key"), filepath.Join(dir, "signing.key")); err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse([]byte(`
appliance: {id: ams-1, state_dir: ./state, master_key_file: ./master.key, signing_key_file: ./signing.key}
locations:
  - {name: a, type: dir, path: `+t.TempDir()+`, country: NL, site: Amsterdam, provider: p1}
  - {name: b, type: dir, path: `+t.TempDir()+`, country: NL, site: Groningen, provider: p2}
policy: {retention: {keep_last: 5}}
tenants:
  - {id: praktijk-a, engine: files}
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	a := New(c, nil)
	a.Now = func() time.Time { return *now }
	return a
}

// A signed change line whose effective time is not its time plus its
// delay does not verify (the delay is part of what is recorded, not only
// the effective time).
func TestRetentionDelayMustMatch(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	a := retentionAppliance(t, &now)
	early := now.Add(time.Hour)
	c := RetentionChange{Kind: "retention-change", Tenant: "praktijk-a", Retention: &config.Retention{KeepLast: 1}, Request: "r1", Time: now, Delay: "24h0m0s", Effective: &early}
	if err := a.appendRetention(now, c); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ReadRetentionLog(); err == nil || !strings.Contains(err.Error(), "plus its delay") {
		t.Fatalf("a line whose effective time disagrees with its delay: %v", err)
	}
	if _, err := a.Retention("praktijk-a"); err == nil {
		t.Fatal("Retention read a log with an inconsistent line")
	}
}

// A later change supersedes a pending one, which then never takes
// effect; a cancel written after a change took effect does not undo it.
func TestRetentionPendingSupersededAndLateCancel(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	a := retentionAppliance(t, &now)
	rec := func(req string, keep int, delay string) {
		t.Helper()
		if err := a.RecordRetention(RetentionChange{Tenant: "praktijk-a", Retention: &config.Retention{KeepLast: keep}, Request: req, Delay: delay}); err != nil {
			t.Fatal(err)
		}
	}
	rec("r1", 1, "24h")
	now = now.Add(time.Hour)
	rec("r2", 9, "") // longer: at once
	now = now.Add(48 * time.Hour)
	if eff, err := a.Retention("praktijk-a"); err != nil || eff.KeepLast != 9 {
		t.Fatalf("a superseded pending change took effect: %+v %v", eff, err)
	}
	rec("r3", 2, "1h")
	now = now.Add(2 * time.Hour)
	if _, err := a.CancelRetention("praktijk-a", "r3", "carol", "late"); err == nil {
		t.Fatal("a change in effect was cancelled")
	}
	// Even a cancel line written anyway (root) does not undo it.
	if err := a.appendRetention(now, RetentionCancel{Kind: "retention-cancel", Tenant: "praktijk-a", Request: "r3", Operator: "root", Reason: "late", Time: now}); err != nil {
		t.Fatal(err)
	}
	if eff, err := a.Retention("praktijk-a"); err != nil || eff.KeepLast != 2 || eff.Change.Request != "r3" {
		t.Fatalf("after a late cancel: %+v %v", eff, err)
	}
	if err := a.RecordRetention(RetentionChange{Tenant: "praktijk-a", Retention: &config.Retention{KeepLast: 1}, Request: "r4", Delay: "soon"}); err == nil {
		t.Fatal("a change with a bad delay was recorded")
	}
}
