package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/config"
)

// TestRestoreTestSpec: tenants are spread over the hour after the
// schedule, each always at the same offset; "@every" is not shifted.
func TestRestoreTestSpec(t *testing.T) {
	sat := time.Date(2026, 6, 6, 12, 0, 0, 0, ams)
	offsets := map[time.Duration]bool{}
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("praktijk-%d", i)
		s, err := RestoreTestSpec("0 6 * * 0", id, ams)
		if err != nil {
			t.Fatal(err)
		}
		next := s.Next(sat)
		slot := time.Date(2026, 6, 7, 6, 0, 0, 0, ams)
		off := next.Sub(slot)
		if off < 0 || off >= time.Hour {
			t.Fatalf("%s runs at %s, outside the hour after the schedule", id, next)
		}
		offsets[off] = true
		// Deterministic, and weekly from there.
		again, _ := RestoreTestSpec("0 6 * * 0", id, ams)
		if again.Next(sat) != next || s.Next(next) != next.AddDate(0, 0, 7) {
			t.Fatalf("%s: next %s, then %s", id, next, s.Next(next))
		}
		// A time inside the tenant's hour but before its slot still
		// gives this week's slot.
		if s.Next(slot.Add(off/2)) != next {
			t.Fatalf("%s: from inside the hour: %s", id, s.Next(slot.Add(off/2)))
		}
	}
	if len(offsets) < 15 {
		t.Errorf("20 tenants share %d offsets", len(offsets))
	}
	every, err := RestoreTestSpec("@every 90m", "praktijk-a", ams)
	if err != nil || every.Next(sat) != sat.Add(90*time.Minute) {
		t.Errorf("@every: %v %v", every.Next(sat), err)
	}
	if _, err := RestoreTestSpec("61 * * * *", "praktijk-a", ams); err == nil || !strings.Contains(err.Error(), "policy.restore_test.schedule") {
		t.Errorf("bad spec: %v", err)
	}
}

// fakeRestoreTests is a restore-test hook whose results are set per
// tenant; it records its calls.
type fakeRestoreTests struct {
	mu      sync.Mutex
	results map[string]RestoreTestResult
	errs    map[string]error
	calls   map[string][]time.Time
	now     func() time.Time
}

func (f *fakeRestoreTests) hook(ctx context.Context, a *appliance.Appliance, tenant string) (RestoreTestResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[tenant] = append(f.calls[tenant], f.now())
	return f.results[tenant], f.errs[tenant]
}

func (f *fakeRestoreTests) callsOf(tenant string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.calls[tenant]...)
}

// TestRestoreTestJobs: restore tests run at each tenant's slot in the
// hour after the schedule, never at start for a tenant never tested; a
// PASS sets kluis_restore_test_ok to 1; a FAIL sets it to 0, is logged at
// error level with the failed checks and evidence record, is not retried,
// and fails `kluis status`; a test that cannot run is retried and fails
// status too.
func TestRestoreTestJobs(t *testing.T) {
	sat := time.Date(2026, 6, 6, 12, 0, 0, 0, ams)
	fake := &fakeRestoreTests{
		results: map[string]RestoreTestResult{
			"praktijk-a": {Passed: true, Location: "amsterdam", Snapshot: "abcd", EvidenceSeq: 7},
			"praktijk-b": {Passed: false, FailedChecks: []string{"fetch", "restore"}, Location: "groningen", Snapshot: "bcde", EvidenceSeq: 8},
		},
		errs:  map[string]error{"praktijk-c": errors.New("policy.restore_test.server_dsn_file: no such file")},
		calls: map[string][]time.Time{},
	}
	f := newFixture(t, sat, "", "", "", Options{Hooks: Hooks{RestoreTest: fake.hook}})
	fake.now = f.clk.Now
	p := f.sqliteDB("a", 5)
	f.writeConfig(fmt.Sprintf(`[{id: praktijk-a, engine: sqlite, path: %[1]s}, {id: praktijk-b, engine: sqlite, path: %[1]s}, {id: praktijk-c, engine: sqlite, path: %[1]s}]`, p), "", "")
	cfg, err := config.Load(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.d.Reload(context.Background(), cfg)
	f.run()
	f.settle()
	for _, tn := range []string{"praktijk-a", "praktijk-b", "praktijk-c"} {
		if n := len(fake.callsOf(tn)); n != 0 {
			t.Fatalf("%s: restore test ran at start (%d), before its first slot", tn, n)
		}
	}
	f.until(time.Date(2026, 6, 7, 8, 0, 0, 0, ams))
	for tn, want := range map[string]int{"praktijk-a": 1, "praktijk-b": 1, "praktijk-c": 3} {
		calls := fake.callsOf(tn)
		if len(calls) != want {
			t.Errorf("%s: %d restore tests, want %d", tn, len(calls), want)
			continue
		}
		spec, _ := RestoreTestSpec(config.DefaultRestoreTestSchedule, tn, ams)
		if !calls[0].Equal(spec.Next(sat)) {
			t.Errorf("%s: tested at %s, want its slot %s", tn, calls[0].In(ams), spec.Next(sat).In(ams))
		}
	}

	_, body := scrape(t, f.d.Handler(), "/metrics")
	for _, want := range []string{
		`kluis_restore_test_ok{tenant="praktijk-a"} 1`,
		`kluis_restore_test_ok{tenant="praktijk-b"} 0`,
		`kluis_restore_test_ok{tenant="praktijk-c"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	logs := f.logs.String()
	var failed string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"msg":"restore test FAILED"`) {
			failed = line
		}
	}
	for _, want := range []string{`"level":"ERROR"`, `"tenant":"praktijk-b"`, `"failed_checks":"fetch,restore"`, `"evidence_seq":8`, `"location":"groningen"`} {
		if !strings.Contains(failed, want) {
			t.Errorf("the FAIL log line lacks %s: %s", want, failed)
		}
	}
	if !strings.Contains(logs, `"msg":"restore test passed"`) || !strings.Contains(logs, `"msg":"restore test did not run to a verdict"`) {
		t.Errorf("logs lack the pass or the error")
	}

	rep := Status(context.Background(), f.d.Appliance(), f.clk.Now())
	if rep.OK {
		t.Error("status ok with a failed restore test")
	}
	for _, ts := range rep.Tenants {
		problems := strings.Join(ts.Problems, "; ")
		switch ts.Tenant {
		case "praktijk-a":
			if !ts.OK() || ts.RestoreTest != "passed" || ts.RestoreTestLocation != "amsterdam" {
				t.Errorf("a: %+v", ts)
			}
		case "praktijk-b":
			if ts.OK() || ts.RestoreTest != "failed" || !strings.Contains(problems, "restore test FAILED: fetch, restore") {
				t.Errorf("b: %+v", ts)
			}
		case "praktijk-c":
			if ts.OK() || !strings.Contains(problems, "server_dsn_file") {
				t.Errorf("c: %+v", ts)
			}
		}
	}

	// A later pass clears b.
	fake.mu.Lock()
	fake.results["praktijk-b"] = RestoreTestResult{Passed: true, Location: "amsterdam"}
	fake.mu.Unlock()
	f.until(time.Date(2026, 6, 14, 8, 0, 0, 0, ams))
	for _, ts := range Status(context.Background(), f.d.Appliance(), f.clk.Now()).Tenants {
		if ts.Tenant == "praktijk-b" && (!ts.OK() || ts.RestoreTest != "passed") {
			t.Errorf("b after a pass: %+v", ts)
		}
	}
}

// TestEvidenceSyncJob: with the EvidenceSync hook set, the daemon runs it
// every hour (not per tenant), and a failing run is logged without
// counting as any tenant's job failure.
func TestEvidenceSyncJob(t *testing.T) {
	start := time.Date(2026, 6, 6, 12, 0, 0, 0, ams)
	var mu sync.Mutex
	var runs []time.Time
	var f *fixture
	hook := func(ctx context.Context, a *appliance.Appliance) error {
		mu.Lock()
		defer mu.Unlock()
		runs = append(runs, f.clk.Now())
		if len(runs) == 1 {
			return errors.New("location groningen: connection refused")
		}
		return nil
	}
	f = newFixture(t, start, "", "", "", Options{Hooks: Hooks{EvidenceSync: hook}})
	f.run()
	f.until(start.Add(3*time.Hour + time.Minute))
	mu.Lock()
	n := len(runs)
	mu.Unlock()
	if n < 3 || n > 4 {
		t.Fatalf("evidence sync ran %d times in 3 hours, want hourly", n)
	}
	if !strings.Contains(f.logs.String(), `"msg":"evidence not yet at every location"`) {
		t.Errorf("a failed evidence sync is not logged:\n%s", f.logs.String())
	}
}

// TestRestoreTestRunnable (new-user trial, 2026-12-02): a PostgreSQL
// tenant with probes but no policy.restore_test.server_dsn_file made the
// config invalid, so the daemon (every tenant's backups) did not start.
// Now the config loads; the daemon logs at error level that the tenant's
// restore tests cannot run, sets kluis_restore_test_runnable to 0 for it
// (1 for a SQLite tenant), and status fails that tenant (probes: it was
// meant to be tested) while a PostgreSQL tenant without probes gets a
// warning, not a problem.
func TestRestoreTestRunnable(t *testing.T) {
	sat := time.Date(2026, 6, 6, 12, 0, 0, 0, ams)
	fake := &fakeRestoreTests{calls: map[string][]time.Time{}}
	f := newFixture(t, sat, "", "", "", Options{Hooks: Hooks{RestoreTest: fake.hook}})
	fake.now = f.clk.Now
	p := f.sqliteDB("a", 5)
	f.writeConfig(fmt.Sprintf(`[{id: sq, engine: sqlite, path: %s},
  {id: pg-p, engine: postgres, dsn_file: ./p.dsn, probes: [{name: clients, sql: "SELECT count(*) FROM clients", min: 1}]},
  {id: pg-q, engine: postgres, dsn_file: ./q.dsn}]`, p), "", "")
	cfg, err := config.Load(f.cfg)
	if err != nil {
		t.Fatalf("probes without a restore-test server stop the daemon: %v", err)
	}
	f.d.Reload(context.Background(), cfg)
	_, body := scrape(t, f.d.Handler(), "/metrics")
	for _, want := range []string{
		`kluis_restore_test_runnable{tenant="sq"} 1`,
		`kluis_restore_test_runnable{tenant="pg-p"} 0`,
		`kluis_restore_test_runnable{tenant="pg-q"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	logs := f.logs.String()
	for _, id := range []string{"pg-p", "pg-q"} {
		found := false
		for _, line := range strings.Split(logs, "\n") {
			found = found || strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, "restore tests of this tenant cannot run") &&
				strings.Contains(line, `"tenant":"`+id+`"`) && strings.Contains(line, "policy.restore_test.server_dsn_file")
		}
		if !found {
			t.Errorf("no error log line for %s: %s", id, logs)
		}
	}
	for _, ts := range Status(context.Background(), f.d.Appliance(), f.clk.Now()).Tenants {
		problems, warnings := strings.Join(ts.Problems, "; "), strings.Join(ts.Warnings, "; ")
		switch ts.Tenant {
		case "pg-p":
			if !strings.Contains(problems, "restore tests (and their 1 probe) cannot run") {
				t.Errorf("pg-p: %+v", ts)
			}
		case "pg-q":
			if strings.Contains(problems, "cannot run") || !strings.Contains(warnings, "scheduled restore test cannot run") {
				t.Errorf("pg-q: %+v", ts)
			}
		case "sq":
			if len(ts.Warnings) > 0 {
				t.Errorf("sq: %+v", ts)
			}
		}
	}
}
