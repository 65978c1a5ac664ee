package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/config"
)

// oneTenant writes a config of one SQLite tenant, praktijk-a, and
// returns it and its appliance on the fixture's clock.
func (f *fixture) oneTenant() (*config.Config, *appliance.Appliance) {
	f.t.Helper()
	p := f.sqliteDB("a", 10)
	f.writeConfig(fmt.Sprintf(`[{id: praktijk-a, engine: sqlite, path: %s}]`, p), "", "")
	cfg, err := config.Load(f.cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	a := appliance.New(cfg, nil)
	a.Now = f.clk.Now
	return cfg, a
}

// A tenant backed up before the appliance went down, whose first
// retention slot passed while it was down, gets that retention at the next
// start, as a missed backup does (issue 21 point 6).
func TestFirstRetentionCaughtUp(t *testing.T) {
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, ams)
	f := newFixture(t, start, "", "", "", Options{})
	cfg, a := f.oneTenant()
	// Three backups by hand (the CLI, or a daemon that then went down).
	d0 := New(a, Options{Clock: f.clk})
	for i := 0; i < 3; i++ {
		if err := d0.runBackup(context.Background(), "praktijk-a"); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(time.Hour)
	}
	// The daemon starts two days later, at noon: the retention slots (end of
	// the backup window) of both nights passed.
	f.clk.Set(start.Add(48 * time.Hour))
	f.d = New(appliance.New(cfg, f.d.log), Options{Clock: f.clk, Log: f.d.log})
	f.run()
	f.settle()
	hist, _ := f.d.Appliance().History()
	ran := 0
	for _, r := range hist {
		if r.Job == KindRetention && r.OK {
			ran++
		}
	}
	if ran != 1 {
		t.Fatalf("%d retention runs at start, want 1 (the missed first one)", ran)
	}
	if n := len(f.snapshots("praktijk-a")); n != 2 {
		t.Errorf("%d snapshots after retention keep_last 2, want 2", n)
	}
}

// retentionFixture is a daemon of one tenant, praktijk-a, on the
// fixture's clock, and backups(n) that takes n backups an hour apart.
func retentionFixture(t *testing.T) (*fixture, *appliance.Appliance, *Daemon, func(int)) {
	f := newFixture(t, time.Date(2026, 6, 1, 12, 0, 0, 0, ams), "", "", "", Options{})
	_, a := f.oneTenant()
	d := New(a, Options{Clock: f.clk})
	f.d = d
	return f, a, d, func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			if err := d.runBackup(context.Background(), "praktijk-a"); err != nil {
				t.Fatal(err)
			}
			f.clk.Advance(time.Hour)
		}
	}
}

// The nightly retention follows a tenant's approved retention change (a
// portal four-eyes request, appliance.RecordRetention) in place of
// policy.retention, and policy.retention again after a change back; a
// change log edited on disk fails the job before anything is forgotten
// (never a silent fall back to policy.retention).
func TestRetentionFollowsApprovedChange(t *testing.T) {
	f, a, d, backups := retentionFixture(t)
	ctx := context.Background()
	backups(4)
	if err := a.RecordRetention(appliance.RetentionChange{Tenant: "praktijk-a", Retention: &config.Retention{KeepLast: 1}, Reason: "r", Requester: "portal:ada", Approver: "bert", Request: "req1"}); err != nil {
		t.Fatal(err)
	}
	if err := d.runRetention(ctx, "praktijk-a"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.snapshots("praktijk-a")); n != 1 {
		t.Fatalf("%d snapshots after the change to keep_last 1, want 1", n)
	}
	// A change the config refuses is not recorded.
	if err := a.RecordRetention(appliance.RetentionChange{Tenant: "praktijk-a", Retention: &config.Retention{KeepLast: -1}}); err == nil {
		t.Fatal("a negative keep count was recorded")
	}
	backups(2)
	if err := a.RecordRetention(appliance.RetentionChange{Tenant: "praktijk-a", Reason: "back", Requester: "portal:ada", Approver: "bert", Request: "req2"}); err != nil {
		t.Fatal(err)
	}
	if eff, err := a.Retention("praktijk-a"); err != nil || eff.Change != nil || eff.KeepLast != 2 || eff.Source() != "policy.retention" {
		t.Fatalf("after the change back: %+v %v", eff, err)
	}
	if err := d.runRetention(ctx, "praktijk-a"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.snapshots("praktijk-a")); n != 2 {
		t.Fatalf("%d snapshots after the change back to policy (keep_last 2), want 2", n)
	}
	backups(1)
	log := filepath.Join(a.StateDir(), appliance.RetentionFileName)
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(log, []byte(strings.Replace(string(b), `"keep_last":1`, `"keep_last":7`, 1)), 0o600)
	if err := d.runRetention(ctx, "praktijk-a"); err == nil || !strings.Contains(err.Error(), appliance.RetentionFileName) {
		t.Fatalf("retention with an edited change log: %v", err)
	}
	if n := len(f.snapshots("praktijk-a")); n != 3 {
		t.Fatalf("%d snapshots after a failed retention, want the 3 there were", n)
	}
}

// A change that shortens retention (recorded with a delay, as the portal
// backend does for one) is not applied before its effective time, is
// applied after it by the next run (no restart), and one cancelled on
// the appliance first never is; status shows it pending. A line whose
// effective time was moved earlier on disk fails verification and the
// job forgets nothing.
func TestRetentionShorteningWaits(t *testing.T) {
	f, a, d, backups := retentionFixture(t)
	ctx := context.Background()
	retain := func(want int, when string) {
		t.Helper()
		if err := d.runRetention(ctx, "praktijk-a"); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if n := len(f.snapshots("praktijk-a")); n != want {
			t.Fatalf("%s: %d snapshots, want %d", when, n, want)
		}
	}
	shorten := func(req string) {
		t.Helper()
		if err := a.RecordRetention(appliance.RetentionChange{Tenant: "praktijk-a", Retention: &config.Retention{KeepLast: 1}, Reason: "r", Requester: "portal:ada", Approver: "bert", Request: req, Delay: "24h"}); err != nil {
			t.Fatal(err)
		}
	}
	backups(4)
	// Cancelled: never applied, even long after its effective time.
	shorten("req1")
	f.clk.Advance(time.Hour)
	if _, err := a.CancelRetention("praktijk-a", "req1", "", "r"); err == nil {
		t.Fatal("a cancel without an operator was accepted")
	}
	if _, err := a.CancelRetention("praktijk-a", "nope", "carol", "r"); err == nil {
		t.Fatal("a cancel of a request that is not pending was accepted")
	}
	if _, err := a.CancelRetention("praktijk-a", "req1", "carol", "tricked"); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(48 * time.Hour)
	retain(2, "48h after a cancelled change (policy keep_last 2)")
	l, err := a.ReadRetentionLog()
	if err != nil || l.Pending["praktijk-a"] != nil || l.Cancelled["praktijk-a"].Cancel.Operator != "carol" || l.Cancelled["praktijk-a"].Change.Request != "req1" {
		t.Fatalf("log after the cancel: %+v %v", l, err)
	}
	// Pending: the old counts hold until the effective time.
	backups(2)
	shorten("req2")
	rep := Status(ctx, a, f.clk.Now())
	if p := rep.Tenants[0].RetentionPending; p == nil || p.Request != "req2" || !p.Effective.Equal(f.clk.Now().Add(24*time.Hour)) || rep.Tenants[0].RetentionSource != "policy.retention" {
		t.Fatalf("status of a pending change: %+v", rep.Tenants[0])
	}
	f.clk.Advance(23 * time.Hour)
	retain(2, "23h after a shortening change")
	if _, err := a.CancelRetention("praktijk-a", "req1", "carol", "again"); err == nil {
		t.Fatal("cancelling a cancelled change again was accepted")
	}
	f.clk.Advance(2 * time.Hour)
	retain(1, "25h after a shortening change")
	if _, err := a.CancelRetention("praktijk-a", "req2", "carol", "late"); err == nil {
		t.Fatal("a change already in effect was cancelled")
	}
	if rep := Status(ctx, a, f.clk.Now()); rep.Tenants[0].RetentionPending != nil || !strings.Contains(rep.Tenants[0].RetentionSource, "req2") {
		t.Fatalf("status after the effective time: %+v", rep.Tenants[0])
	}
	// Back to policy (longer: at once), then a pending shortening whose
	// effective time is moved earlier on disk.
	if err := a.RecordRetention(appliance.RetentionChange{Tenant: "praktijk-a", Reason: "back", Requester: "portal:ada", Approver: "bert", Request: "req3"}); err != nil {
		t.Fatal(err)
	}
	backups(3)
	retain(2, "after the change back to policy")
	backups(1)
	shorten("req4")
	p := filepath.Join(a.StateDir(), appliance.RetentionFileName)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	l, err = a.ReadRetentionLog()
	if err != nil || l.Pending["praktijk-a"] == nil {
		t.Fatalf("req4 not pending: %v", err)
	}
	eff, _ := l.Pending["praktijk-a"].Effective.MarshalJSON()
	early, _ := f.clk.Now().Add(-time.Hour).UTC().MarshalJSON()
	edited := strings.Replace(string(b), `"effective":`+string(eff), `"effective":`+string(early), 1)
	if edited == string(b) {
		t.Fatal("effective time not found in the log")
	}
	os.WriteFile(p, []byte(edited), 0o600)
	if err := d.runRetention(ctx, "praktijk-a"); err == nil || !strings.Contains(err.Error(), appliance.RetentionFileName) {
		t.Fatalf("retention with an effective time moved earlier: %v", err)
	}
	if n := len(f.snapshots("praktijk-a")); n != 3 {
		t.Fatalf("%d snapshots after a failed retention, want the 3 there were", n)
	}
}
