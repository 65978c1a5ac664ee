package schedule

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestSoakMonth (issue 21, soak): 200 tenants, each with a daily backup
// in a window slot, a daily retention and an hourly sync, run for a
// simulated month on a fake clock; one job in 50 fails and is retried.
// Goroutines and open files are the same after the month as after the
// first day, and the heap has not grown beyond noise: the scheduler keeps
// no per-run state. KLUIS_SOAK_DAYS changes the month (30 days, ~8 s;
// 7 under -race).
func TestSoakMonth(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: not in -short")
	}
	days := 30
	if raceEnabled {
		days = 7 // the race detector makes each run ~10× dearer
	}
	if v := os.Getenv("KLUIS_SOAK_DAYS"); v != "" {
		fmt.Sscan(v, &days)
	}
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, ams)
	clk := NewFakeClock(start)
	s := New(Options{Clock: clk, Concurrency: 2, Retry: Retry{Attempts: 3, Backoff: 5 * time.Minute}})
	hourly, _ := Parse("@every 1h", ams)
	var runs atomic.Int64
	var jobs []Job
	for i := 0; i < 200; i++ {
		tn := fmt.Sprintf("praktijk-%03d", i)
		run := func(ctx context.Context) error {
			if runs.Add(1)%50 == 0 {
				return fmt.Errorf("transient failure")
			}
			return nil
		}
		jobs = append(jobs,
			Job{Name: "backup/" + tn, Tenant: tn, Kind: "backup", Spec: Window(tn, time.Hour, 4*time.Hour, ams), Run: run, CatchUp: true, MaxAge: 24 * time.Hour},
			Job{Name: "retention/" + tn, Tenant: tn, Kind: "retention", Spec: Daily{Offset: 5 * time.Hour, TZ: ams}, Run: run},
			Job{Name: "sync/" + tn, Tenant: tn, Kind: "sync", Spec: hourly, Run: run})
	}
	s.SetJobs(jobs)
	startRun(t, s)
	sample := func() (goroutines int, heap uint64, fds int) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		ents, _ := os.ReadDir("/proc/self/fd")
		return runtime.NumGoroutine(), ms.HeapAlloc, len(ents)
	}
	simulate(t, s, clk, start.Add(24*time.Hour))
	g1, h1, f1 := sample()
	r1 := runs.Load()
	simulate(t, s, clk, start.Add(time.Duration(days)*24*time.Hour))
	g2, h2, f2 := sample()
	r2 := runs.Load()
	t.Logf("soak: %d tenants, %d days, %d job runs; goroutines %d → %d, heap %d KiB → %d KiB, open files %d → %d",
		200, days, r2, g1, g2, h1>>10, h2>>10, f1, f2)
	if want := int64(200 * (24 + 2) * days * 9 / 10); r2 < want {
		t.Errorf("%d runs in %d days, want at least %d", r2, days, want)
	}
	if r2-r1 <= 0 {
		t.Fatal("nothing ran after the first day")
	}
	if g2 > g1+2 {
		t.Errorf("goroutines grew from %d to %d", g1, g2)
	}
	if f2 > f1+2 {
		t.Errorf("open files grew from %d to %d", f1, f2)
	}
	if h2 > h1*2+(4<<20) {
		t.Errorf("heap grew from %d KiB to %d KiB", h1>>10, h2>>10)
	}
}
