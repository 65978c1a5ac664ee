package daemon

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/config"
)

// A tenant backed up before the appliance went down, whose first
// retention slot passed while it was down, gets that retention at the next
// start, as a missed backup does (issue 21 point 6).
func TestFirstRetentionCaughtUp(t *testing.T) {
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, ams)
	f := newFixture(t, start, "", "", "", Options{})
	p := f.sqliteDB("a", 10)
	f.writeConfig(fmt.Sprintf(`[{id: praktijk-a, engine: sqlite, path: %s}]`, p), "", "")
	cfg, err := config.Load(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := appliance.New(cfg, nil)
	a.Now = f.clk.Now
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
