package schedule

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestTriggerDuringRetryQueuesOnce reproduces issue 21 point 1: a sync job
// waiting for a retry is triggered again (a degraded backup of the same
// tenant) while the tenant is busy; its retry time then comes. The old
// scheduler queued it twice, the first run reset the attempt counter and
// the second computed Backoff << -1: "negative shift amount", outside the
// job-level recover, and the daemon died.
func TestTriggerDuringRetryQueuesOnce(t *testing.T) {
	start := time.Date(2026, 6, 1, 3, 0, 0, 0, ams)
	clk := NewFakeClock(start)
	var mu sync.Mutex
	var syncRuns []int // attempt numbers seen by OnDone for the sync job
	s := New(Options{Clock: clk, Concurrency: 2, Retry: Retry{Attempts: 3, Backoff: time.Minute},
		OnDone: func(j Job, attempt int, err error, willRetry bool) {
			if j.Kind == "sync" {
				mu.Lock()
				syncRuns = append(syncRuns, attempt)
				mu.Unlock()
			}
		}})
	hourly, _ := Parse("@every 1h", ams)
	fail := true // the sync's next outcome
	release := make(chan struct{})
	backupStarted := make(chan struct{}, 1)
	s.SetJobs([]Job{
		{Name: "sync/a", Tenant: "a", Kind: "sync", Spec: hourly, Run: func(ctx context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			if fail {
				fail = false // fails once, then the next run succeeds …
				return errors.New("location down")
			}
			fail = true // … and the one after fails again
			return nil
		}},
		{Name: "backup/a", Tenant: "a", Kind: "backup", Spec: hourly, Run: func(ctx context.Context) error {
			backupStarted <- struct{}{}
			<-release
			return nil
		}},
	})
	startRun(t, s)
	// The sync fails: a retry is pending at +1m.
	if !s.Trigger("sync/a") {
		t.Fatal("trigger refused")
	}
	waitSettled(t, s)
	// A backup of the same tenant runs and, degraded, triggers the sync.
	s.Trigger("backup/a")
	<-backupStarted
	s.Trigger("sync/a")
	// The retry time comes while the backup still holds the tenant.
	clk.Advance(time.Minute)
	time.Sleep(time.Millisecond)
	close(release)
	waitSettled(t, s)
	mu.Lock()
	defer mu.Unlock()
	// One failed attempt, then one run (the trigger and the due retry are
	// the same work) as attempt 2, which succeeds.
	if len(syncRuns) != 2 || syncRuns[0] != 1 || syncRuns[1] != 2 {
		t.Fatalf("sync attempts %v, want [1 2]", syncRuns)
	}
	// No retry left pending: the next run is an hour after the success.
	if w, want := s.Next("sync/a"), start.Add(time.Minute+time.Hour); !w.Equal(want) {
		t.Errorf("next sync %s, want %s (no retry left pending)", w, want)
	}
}

func TestBackoffBounded(t *testing.T) {
	for _, tc := range []struct {
		base time.Duration
		n    int
		want time.Duration
	}{
		{time.Minute, 1, time.Minute},
		{time.Minute, 3, 4 * time.Minute},
		{time.Minute, 0, time.Minute},
		{time.Minute, -1, time.Minute},
		{time.Minute, 200, MaxBackoff},
		{time.Hour, 64, MaxBackoff},
		{0, 5, 0},
	} {
		if got := Backoff(tc.base, tc.n); got != tc.want {
			t.Errorf("Backoff(%s, %d) = %s, want %s", tc.base, tc.n, got, tc.want)
		}
	}
}

// TestBookkeepingPanicContained: a panic in the bookkeeping after a run
// (here OnDone) costs that job its retry; the process, the slot and the
// other tenants' jobs go on.
func TestBookkeepingPanicContained(t *testing.T) {
	start := time.Date(2026, 6, 1, 3, 0, 0, 0, ams)
	clk := NewFakeClock(start)
	s := New(Options{Clock: clk, Concurrency: 1, Retry: Retry{Attempts: 3, Backoff: time.Minute},
		OnDone: func(j Job, attempt int, err error, willRetry bool) {
			if j.Tenant == "a" {
				panic("bookkeeping bug")
			}
		}})
	every, _ := Parse("@every 10m", ams)
	rec := newRecorder(clk)
	bad := rec.job("backup/a", "a", every)
	bad.Run = func(ctx context.Context) error { return errors.New("boom") }
	s.SetJobs([]Job{bad, rec.job("backup/b", "b", every)})
	startRun(t, s)
	simulate(t, s, clk, start.Add(35*time.Minute))
	if n := len(rec.runs["backup/b"]); n != 3 {
		t.Errorf("tenant b ran %d times in 35 minutes, want 3", n)
	}
	if st, _ := s.State("backup/a"); st != "idle" {
		t.Errorf("tenant a's job is %q after its bookkeeping panicked, want idle", st)
	}
	if s.Running() != 0 {
		t.Errorf("%d jobs still hold a slot", s.Running())
	}
}

// An "@every" job is due its interval after its last success: a config
// reload or a discovery (both call SetJobs) does not push it back, and
// `kluis status` can say when it runs (issue 21 point 7).
func TestEveryAnchoredOnLastSuccess(t *testing.T) {
	start := time.Date(2026, 6, 1, 3, 0, 0, 0, ams)
	clk := NewFakeClock(start)
	s := New(Options{Clock: clk})
	every6h, _ := Parse("@every 6h", ams)
	rec := newRecorder(clk)
	j := rec.job("backup/a", "a", every6h)
	j.CatchUp, j.LastSuccess = true, start.Add(-2*time.Hour)
	s.SetJobs([]Job{j})
	want := start.Add(4 * time.Hour)
	if got := s.Next("backup/a"); !got.Equal(want) {
		t.Fatalf("next %s, want %s (6h after the last success)", got, want)
	}
	startRun(t, s)
	for i := 0; i < 3; i++ { // hourly discoveries re-set the jobs
		clk.Advance(time.Hour)
		waitSettled(t, s)
		s.SetJobs([]Job{j})
	}
	if got := s.Next("backup/a"); !got.Equal(want) {
		t.Fatalf("after reloads next %s, want %s", got, want)
	}
	simulate(t, s, clk, start.Add(11*time.Hour))
	if runs := rec.runs["backup/a"]; len(runs) != 2 || !runs[0].Equal(want) || !runs[1].Equal(want.Add(6*time.Hour)) {
		t.Errorf("runs %v, want at %s and 6h later", runs, want)
	}
	if got, w := NextSlot(every6h, want.Add(6*time.Hour), start.Add(11*time.Hour)), want.Add(12*time.Hour); !got.Equal(w) {
		t.Errorf("NextSlot %s, want %s", got, w)
	}
}
