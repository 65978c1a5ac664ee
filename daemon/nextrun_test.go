package daemon

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/config"
)

// The NEXT RUN of an "@every" tenant is its interval after the newest
// snapshot, as the daemon runs it, not "interval from whenever status was
// asked" (issue 21 point 7).
func TestStatusNextRunEvery(t *testing.T) {
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, ams)
	f := newFixture(t, start, "", "", "", Options{})
	p := f.sqliteDB("a", 10)
	f.writeConfig(fmt.Sprintf(`[{id: praktijk-a, engine: sqlite, path: %s, schedule: "@every 6h"}]`, p), "", "")
	cfg, err := config.Load(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := appliance.New(cfg, nil)
	a.Now = f.clk.Now
	d := New(a, Options{Clock: f.clk})
	if err := d.runBackup(context.Background(), "praktijk-a"); err != nil {
		t.Fatal(err)
	}
	for _, after := range []time.Duration{time.Minute, 2 * time.Hour, 5 * time.Hour} {
		rep := Status(context.Background(), a, start.Add(after))
		if got, want := rep.Tenants[0].NextRun, start.Add(6*time.Hour); !got.Equal(want) {
			t.Errorf("status %s after the backup: next run %s, want %s", after, got.In(ams), want.In(ams))
		}
	}
}
