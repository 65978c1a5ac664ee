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

// The nightly retention follows a tenant's approved retention change (a
// portal four-eyes request, appliance.RecordRetention) in place of
// policy.retention, and policy.retention again after a change back; a
// change log edited on disk fails the job before anything is forgotten
// (never a silent fall back to policy.retention).
func TestRetentionFollowsApprovedChange(t *testing.T) {
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, ams)
	f := newFixture(t, start, "", "", "", Options{})
	_, a := f.oneTenant()
	d := New(a, Options{Clock: f.clk})
	f.d = d
	ctx := context.Background()
	backups := func(n int) {
		for i := 0; i < n; i++ {
			if err := d.runBackup(ctx, "praktijk-a"); err != nil {
				t.Fatal(err)
			}
			f.clk.Advance(time.Hour)
		}
	}
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
