package schedule

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var ams = mustTZ("Europe/Amsterdam")

func mustTZ(name string) *time.Location {
	tz, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return tz
}

// recorder records the (fake) start times of every job.
type recorder struct {
	mu   sync.Mutex
	clk  *FakeClock
	runs map[string][]time.Time
}

func newRecorder(clk *FakeClock) *recorder {
	return &recorder{clk: clk, runs: map[string][]time.Time{}}
}

func (r *recorder) job(name, tenant string, spec Spec) Job {
	return Job{Name: name, Tenant: tenant, Kind: "backup", Spec: spec, Run: func(ctx context.Context) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.runs[name] = append(r.runs[name], r.clk.Now())
		return nil
	}}
}

func waitSettled(t *testing.T, s *Scheduler) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !s.Settled() {
		if time.Now().After(deadline) {
			t.Fatal("scheduler did not settle")
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// simulate runs s until the fake clock passes until, jumping from wake-up
// to wake-up.
func simulate(t *testing.T, s *Scheduler, clk *FakeClock, until time.Time) {
	t.Helper()
	for {
		waitSettled(t, s)
		w := s.NextWake()
		if w.IsZero() || w.After(until) {
			clk.Set(until)
			waitSettled(t, s)
			return
		}
		clk.Set(w)
	}
}

func startRun(t *testing.T, s *Scheduler) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; s.Shutdown(time.Millisecond) })
}

func TestWindowSpread(t *testing.T) {
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, ams)
	clk := NewFakeClock(start)
	s := New(Options{Clock: clk, Concurrency: 2})
	rec := newRecorder(clk)
	var jobs []Job
	const tenants = 200
	for i := 0; i < tenants; i++ {
		id := fmt.Sprintf("praktijk_%03d", i)
		jobs = append(jobs, rec.job(id, id, Window(id, time.Hour, 4*time.Hour, ams)))
	}
	s.SetJobs(jobs)
	startRun(t, s)
	simulate(t, s, clk, start.Add(3*24*time.Hour))

	perHour := map[int]int{}
	for i := 0; i < tenants; i++ {
		id := fmt.Sprintf("praktijk_%03d", i)
		runs := rec.runs[id]
		if len(runs) != 3 {
			t.Fatalf("%s ran %d times in 3 days, want 3", id, len(runs))
		}
		for k, r := range runs {
			lt := r.In(ams)
			if lt.Hour() < 1 || lt.Hour() >= 5 {
				t.Errorf("%s ran at %s, outside 01:00-05:00", id, lt)
			}
			if k > 0 && runs[k].Sub(runs[k-1]) != 24*time.Hour {
				t.Errorf("%s: runs %s apart, want 24h", id, runs[k].Sub(runs[k-1]))
			}
			if k == 0 {
				perHour[lt.Hour()]++
			}
		}
	}
	// Deterministic: the same tenant gets the same slot every time.
	if a, b := Window("x", time.Hour, 4*time.Hour, ams), Window("x", time.Hour, 4*time.Hour, ams); a != b {
		t.Fatal("window slot is not deterministic")
	}
	for h := 1; h <= 4; h++ {
		if perHour[h] < tenants/4/2 || perHour[h] > tenants/4*2 {
			t.Errorf("hour %02d has %d of %d tenants: not spread (%v)", h, perHour[h], tenants, perHour)
		}
	}
}

// TestDST runs daily and cron jobs across both DST changes of
// Europe/Amsterdam: every job runs exactly once per local calendar day.
func TestDST(t *testing.T) {
	for _, tc := range []struct {
		name string
		from time.Time
	}{
		{"spring forward 2026-03-29", time.Date(2026, 3, 27, 12, 0, 0, 0, ams)},
		{"fall back 2026-10-25", time.Date(2026, 10, 23, 12, 0, 0, 0, ams)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := NewFakeClock(tc.from)
			s := New(Options{Clock: clk, Concurrency: 4})
			rec := newRecorder(clk)
			cron, err := Parse("30 2 * * *", ams)
			if err != nil {
				t.Fatal(err)
			}
			s.SetJobs([]Job{
				rec.job("in-gap", "a", Daily{Offset: 2*time.Hour + 30*time.Minute, TZ: ams}),
				rec.job("before", "b", Daily{Offset: time.Hour + 15*time.Minute, TZ: ams}),
				rec.job("after", "c", Daily{Offset: 4 * time.Hour, TZ: ams}),
				rec.job("cron", "d", cron),
			})
			startRun(t, s)
			simulate(t, s, clk, tc.from.Add(4*24*time.Hour))
			for name, runs := range rec.runs {
				days := map[string]int{}
				for _, r := range runs {
					days[r.In(ams).Format("2006-01-02")]++
				}
				for d, n := range days {
					if n != 1 {
						t.Errorf("%s ran %d times on %s", name, n, d)
					}
				}
				if len(days) != 4 {
					t.Errorf("%s ran on %d days of 4: %v", name, len(days), runs)
				}
			}
			if len(rec.runs) != 4 {
				t.Errorf("only %d jobs ran", len(rec.runs))
			}
		})
	}
}

func TestOverrides(t *testing.T) {
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, ams)
	clk := NewFakeClock(start)
	s := New(Options{Clock: clk, Concurrency: 2})
	rec := newRecorder(clk)
	every, _ := Parse("@every 6h", ams)
	cron, _ := Parse("15 22 * * *", ams)
	s.SetJobs([]Job{rec.job("every", "a", every), rec.job("cron", "b", cron)})
	startRun(t, s)
	simulate(t, s, clk, start.Add(48*time.Hour))
	if n := len(rec.runs["every"]); n != 8 {
		t.Errorf("@every 6h ran %d times in 48h, want 8", n)
	}
	for _, r := range rec.runs["cron"] {
		if lt := r.In(ams); lt.Hour() != 22 || lt.Minute() != 15 {
			t.Errorf("cron job ran at %s, want 22:15", lt)
		}
	}
	if n := len(rec.runs["cron"]); n != 2 {
		t.Errorf("cron job ran %d times in 48h, want 2", n)
	}
	if _, err := Parse("61 * * * *", ams); err == nil {
		t.Error("a bad cron spec was accepted")
	}
}

func TestCatchUp(t *testing.T) {
	slot := Daily{Offset: 2 * time.Hour, TZ: ams} // 02:00 every day
	now := time.Date(2026, 6, 10, 9, 0, 0, 0, ams)
	for _, tc := range []struct {
		name    string
		now     time.Time
		last    time.Time
		catchUp bool
	}{
		{"never backed up", now, time.Time{}, true},
		{"down for three days", now, now.Add(-72 * time.Hour), true},
		{"missed this morning's slot", now, time.Date(2026, 6, 9, 2, 0, 5, 0, ams), true},
		{"ran this morning", now, time.Date(2026, 6, 10, 2, 0, 5, 0, ams), false},
		{"restarted before today's slot", time.Date(2026, 6, 10, 1, 0, 0, 0, ams), time.Date(2026, 6, 9, 2, 0, 5, 0, ams), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := NewFakeClock(tc.now)
			s := New(Options{Clock: clk, Concurrency: 1})
			rec := newRecorder(clk)
			j := rec.job("backup/a", "a", slot)
			j.CatchUp, j.LastSuccess, j.MaxAge = true, tc.last, 24*time.Hour
			s.SetJobs([]Job{j})
			startRun(t, s)
			waitSettled(t, s)
			ran := len(rec.runs["backup/a"]) == 1
			if ran != tc.catchUp {
				t.Fatalf("ran at start: %v, want %v", ran, tc.catchUp)
			}
			if ran && !rec.runs["backup/a"][0].Equal(tc.now) {
				t.Errorf("catch-up ran at %s, want at start %s", rec.runs["backup/a"][0], tc.now)
			}
			// The next regular slot still comes (not a day later).
			simulate(t, s, clk, time.Date(2026, 6, 11, 3, 0, 0, 0, ams))
			last := rec.runs["backup/a"][len(rec.runs["backup/a"])-1]
			if want := time.Date(2026, 6, 11, 2, 0, 0, 0, ams); !last.Equal(want) {
				t.Errorf("last run %s, want %s", last, want)
			}
		})
	}
}

// blocker is a job that runs until released, counting concurrency.
type blocker struct {
	release           chan struct{}
	running, max, ran atomic.Int32
	perTenant         sync.Map
}

func (b *blocker) job(name, tenant string, spec Spec) Job {
	return Job{Name: name, Tenant: tenant, Kind: "backup", Spec: spec, Run: func(ctx context.Context) error {
		v, _ := b.perTenant.LoadOrStore(tenant, new(atomic.Int32))
		if v.(*atomic.Int32).Add(1) > 1 {
			panic("two jobs of one tenant at once")
		}
		defer v.(*atomic.Int32).Add(-1)
		n := b.running.Add(1)
		for {
			m := b.max.Load()
			if n <= m || b.max.CompareAndSwap(m, n) {
				break
			}
		}
		defer b.running.Add(-1)
		b.ran.Add(1)
		select {
		case <-b.release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}}
}

func TestConcurrencyAndNoOverlap(t *testing.T) {
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, ams)
	clk := NewFakeClock(start)
	s := New(Options{Clock: clk, Concurrency: 2})
	b := &blocker{release: make(chan struct{})}
	every, _ := Parse("@every 1m", ams)
	var jobs []Job
	for i := 0; i < 5; i++ {
		tn := fmt.Sprintf("t%d", i)
		jobs = append(jobs, b.job("backup/"+tn, tn, every))
		// A second job kind of the same tenant, due at the same moments.
		jobs = append(jobs, b.job("retention/"+tn, tn, every))
	}
	s.SetJobs(jobs)
	startRun(t, s)
	// Ten minutes of slots pass while the first jobs block.
	for i := 0; i < 10; i++ {
		clk.Advance(time.Minute)
		time.Sleep(200 * time.Microsecond)
	}
	waitFor(t, func() bool { return b.running.Load() == 2 })
	if s.Running() != 2 {
		t.Fatalf("%d running, want the limit 2", s.Running())
	}
	// Release everything; queued jobs run, each one once (slots that came
	// while a job was queued or running were coalesced).
	close(b.release)
	waitSettled(t, s)
	if m := b.max.Load(); m != 2 {
		t.Errorf("max concurrency %d, want 2", m)
	}
	if n := b.ran.Load(); n != 10 {
		t.Errorf("%d runs, want 10 (each job once)", n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(50 * time.Microsecond)
	}
}

func TestRetryBackoff(t *testing.T) {
	start := time.Date(2026, 6, 1, 1, 59, 0, 0, ams)
	for _, tc := range []struct {
		name     string
		failures int
		attempts int
		want     []time.Duration // offsets of attempts after the slot
	}{
		{"succeeds at the third attempt", 2, 3, []time.Duration{0, 5 * time.Minute, 15 * time.Minute}},
		{"gives up after three", 10, 3, []time.Duration{0, 5 * time.Minute, 15 * time.Minute}},
		{"no retry", 10, 1, []time.Duration{0}},
		{"first time right", 0, 3, []time.Duration{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := NewFakeClock(start)
			var retries atomic.Int32
			s := New(Options{Clock: clk, Concurrency: 1, Retry: Retry{Attempts: tc.attempts, Backoff: 5 * time.Minute},
				OnDone: func(j Job, attempt int, err error, willRetry bool) {
					if willRetry {
						retries.Add(1)
					}
				}})
			var at []time.Time
			n := 0
			slot := Daily{Offset: 2 * time.Hour, TZ: ams}
			s.SetJobs([]Job{{Name: "backup/a", Tenant: "a", Spec: slot, Run: func(ctx context.Context) error {
				at = append(at, clk.Now())
				n++
				if n <= tc.failures {
					return errors.New("location unreachable")
				}
				return nil
			}}})
			startRun(t, s)
			simulate(t, s, clk, start.Add(3*time.Hour))
			slotAt := time.Date(2026, 6, 1, 2, 0, 0, 0, ams)
			if len(at) != len(tc.want) {
				t.Fatalf("attempts at %v, want offsets %v", at, tc.want)
			}
			for i, w := range tc.want {
				if got := at[i].Sub(slotAt); got != w {
					t.Errorf("attempt %d at +%s, want +%s", i+1, got, w)
				}
			}
			if r := int(retries.Load()); r != len(tc.want)-1 {
				t.Errorf("OnDone saw %d retries, want %d", r, len(tc.want)-1)
			}
		})
	}
}

func TestShutdownGrace(t *testing.T) {
	for _, tc := range []struct {
		name      string
		finishes  bool // the job finishes within the grace period
		cancelled bool
	}{
		{"slow job finishes within grace", true, false},
		{"job over grace is cancelled", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := NewFakeClock(time.Date(2026, 6, 1, 0, 0, 0, 0, ams))
			s := New(Options{Clock: clk, Concurrency: 1})
			started := make(chan struct{})
			release := make(chan struct{})
			var gotErr atomic.Value
			s.SetJobs([]Job{{Name: "backup/a", Tenant: "a", Spec: Daily{TZ: ams}, Run: func(ctx context.Context) error {
				close(started)
				select {
				case <-release:
					gotErr.Store("finished")
				case <-ctx.Done():
					gotErr.Store("cancelled")
				}
				return nil
			}}})
			s.Trigger("backup/a")
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { s.Run(ctx); close(done) }()
			<-started
			cancel() // SIGTERM
			<-done
			timers := clk.Timers()
			res := make(chan bool)
			go func() { res <- s.Shutdown(5 * time.Minute) }()
			waitFor(t, func() bool { return clk.Timers() > timers })
			if tc.finishes {
				clk.Advance(4 * time.Minute)
				close(release)
			} else {
				clk.Advance(5 * time.Minute)
			}
			if c := <-res; c != tc.cancelled {
				t.Errorf("Shutdown cancelled=%v, want %v", c, tc.cancelled)
			}
			want := "finished"
			if tc.cancelled {
				want = "cancelled"
			}
			if g := gotErr.Load(); g != want {
				t.Errorf("job %v, want %s", g, want)
			}
			if s.Trigger("backup/a") {
				// Trigger queues, but nothing starts after shutdown.
				time.Sleep(time.Millisecond)
				if s.Running() != 0 {
					t.Error("a job started after shutdown")
				}
			}
		})
	}
}
