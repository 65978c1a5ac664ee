package daemon

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/internal/pgtest"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/schedule"
	"github.com/kluis-nl/kluis/source"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var ams, _ = time.LoadLocation("Europe/Amsterdam")

// syncBuffer is a log sink shared by goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fixture is an appliance in a temp dir with two local locations, a fake
// clock and a daemon.
type fixture struct {
	t    *testing.T
	dir  string
	cfg  string
	clk  *schedule.FakeClock
	logs *syncBuffer
	d    *Daemon
}

const configTemplate = `
appliance: {id: ams-1, state_dir: ./state, master_key_file: ./master.key, signing_key_file: ./signing.key}
locations:
  - {name: amsterdam, type: dir, path: ./loc-a, country: NL, site: Amsterdam, provider: a}
  - {name: groningen, type: dir, path: ./loc-g, country: NL, site: Groningen, provider: b}
tenants: %s
policy: {pack_size: 1MiB, retention: {keep_last: 2}%s}
discover: %s
`

func newFixture(t *testing.T, start time.Time, tenants, policy, discover string, opts Options) *fixture {
	t.Helper()
	dir := t.TempDir()
	if _, err := repo.InitApplianceKeys(filepath.Join(dir, "master.key"), filepath.Join(dir, "signing.key")); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"loc-a", "loc-g"} {
		if err := os.Mkdir(filepath.Join(dir, l), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{t: t, dir: dir, cfg: filepath.Join(dir, "kluis.yaml"), clk: schedule.NewFakeClock(start), logs: &syncBuffer{}}
	f.writeConfig(tenants, policy, discover)
	cfg, err := config.Load(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Clock, opts.Log = f.clk, log
	f.d = New(appliance.New(cfg, log), opts)
	return f
}

func (f *fixture) writeConfig(tenants, policy, discover string) {
	f.t.Helper()
	if tenants == "" {
		tenants = "[]"
	}
	if discover == "" {
		discover = "[]"
	}
	if policy != "" {
		policy = ", " + policy
	}
	if err := os.WriteFile(f.cfg, []byte(fmt.Sprintf(configTemplate, tenants, policy, discover)), 0o600); err != nil {
		f.t.Fatal(err)
	}
}

// sqliteDB creates a small SQLite tenant database.
func (f *fixture) sqliteDB(name string, rows int) string {
	f.t.Helper()
	p := filepath.Join(f.dir, name+".db")
	db, err := sql.Open("sqlite", p)
	if err != nil {
		f.t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE clients (id INTEGER PRIMARY KEY, name TEXT NOT NULL)`); err != nil {
		f.t.Fatal(err)
	}
	for i := 0; i < rows; i++ {
		if _, err := db.Exec(`INSERT INTO clients (name) VALUES (?)`, fmt.Sprintf("client %d of %s", i, name)); err != nil {
			f.t.Fatal(err)
		}
	}
	return p
}

// run starts the daemon; the returned stop is SIGTERM and waits for Run.
func (f *fixture) run() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			// Let a running job finish: move the fake clock past the grace.
			for {
				select {
				case err := <-done:
					if err != nil {
						f.t.Errorf("Run: %v", err)
					}
					return
				case <-time.After(time.Millisecond):
					f.clk.Advance(time.Hour)
				}
			}
		})
	}
	f.t.Cleanup(stop)
	return stop
}

func (f *fixture) settle() {
	f.t.Helper()
	f.settleWithin(30 * time.Second)
}

func (f *fixture) settleWithin(d time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(d)
	for !f.d.Scheduler().Settled() {
		if time.Now().After(deadline) {
			f.t.Fatal("daemon did not settle")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// until moves the fake clock from wake-up to wake-up up to t.
func (f *fixture) until(t time.Time) {
	f.t.Helper()
	for {
		f.settle()
		w := f.d.Scheduler().NextWake()
		if w.IsZero() || w.After(t) {
			f.clk.Set(t)
			f.settle()
			return
		}
		f.clk.Set(w)
	}
}

func (f *fixture) snapshots(tenant string) []repo.SnapshotInfo {
	f.t.Helper()
	r, err := f.d.Appliance().OpenRepo(context.Background(), tenant)
	if err != nil {
		f.t.Fatal(err)
	}
	s, err := r.Snapshots(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func scrape(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDaemonEndToEnd: two SQLite tenants that were never backed up are
// caught up at start; the next day each is backed up in its window slot
// and retention runs after the window; status and /metrics report it.
func TestDaemonEndToEnd(t *testing.T) {
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, ams)
	f := newFixture(t, start, "", "", "", Options{})
	a, b := f.sqliteDB("a", 50), f.sqliteDB("b", 80)
	f.writeConfig(fmt.Sprintf(`[{id: praktijk-a, engine: sqlite, path: %s}, {id: praktijk-b, engine: sqlite, path: %s, schedule: "0 */6 * * *"}]`, a, b), "", "")
	cfg, err := config.Load(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.d.Reload(context.Background(), cfg)
	f.run()
	f.settle()
	for _, tn := range []string{"praktijk-a", "praktijk-b"} {
		if n := len(f.snapshots(tn)); n != 1 {
			t.Fatalf("%s: %d snapshots after catch-up, want 1", tn, n)
		}
	}
	f.until(time.Date(2026, 6, 2, 5, 30, 0, 0, ams))
	sa, sb := f.snapshots("praktijk-a"), f.snapshots("praktijk-b")
	if len(sa) != 2 {
		t.Errorf("praktijk-a: %d snapshots, want 2 (catch-up, window slot)", len(sa))
	} else if h := sa[1].Manifest.Started.In(ams).Hour(); h < 1 || h >= 5 {
		t.Errorf("praktijk-a backed up at %s, outside the window", sa[1].Manifest.Started.In(ams))
	}
	// praktijk-b ran every 6 h (12:00, 18:00, 00:00) and retention at the
	// end of the window (05:00) kept the last 2.
	if len(sb) != 2 {
		t.Errorf("praktijk-b: %d snapshots after retention (keep_last 2), want 2", len(sb))
	}
	for _, s := range append(sa, sb...) {
		if len(s.Locations) != 2 {
			t.Errorf("snapshot %s at %v, want both locations", s.ID.Short(), s.Locations)
		}
	}
	hist, _ := f.d.Appliance().History()
	var ret int
	for _, r := range hist {
		if r.Job == KindRetention && r.OK {
			ret++
		}
	}
	if ret != 2 {
		t.Errorf("%d successful retention runs, want 2 (one per tenant)", ret)
	}

	rep := Status(context.Background(), f.d.Appliance(), f.clk.Now())
	if !rep.OK {
		t.Errorf("status not ok: %+v", rep)
	}
	for _, ts := range rep.Tenants {
		if ts.NextRun.IsZero() || ts.RestoreTest != "never" || ts.Copies["amsterdam"] != 2 {
			t.Errorf("status %+v", ts)
		}
	}

	code, body := scrape(t, f.d.Handler(), "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`kluis_backup_last_success_timestamp_seconds{tenant="praktijk-a"}`,
		`kluis_backup_duration_seconds{tenant="praktijk-b"}`,
		`kluis_backup_bytes_read{tenant="praktijk-a"}`,
		`kluis_backup_bytes_stored{tenant="praktijk-a"}`,
		`kluis_snapshot_copies{tenant="praktijk-a"} 2`,
		`kluis_snapshot_at_location{location="groningen",tenant="praktijk-b"} 1`,
		`kluis_snapshot_degraded{tenant="praktijk-a"} 0`,
		`kluis_snapshot_age_seconds{tenant="praktijk-a"}`,
		`kluis_tenants 2`,
		`kluis_jobs_running 0`,
		`go_goroutines `,
		`process_open_fds `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code, body := scrape(t, f.d.Handler(), "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, `"job":"backup"`) || !strings.Contains(logs, `"tenant":"praktijk-a"`) || !strings.Contains(logs, `"snapshot":`) {
		t.Errorf("logs lack tenant/job/snapshot fields:\n%s", logs[:min(len(logs), 2000)])
	}
}

func TestStatusExitConditions(t *testing.T) {
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, ams)
	f := newFixture(t, start, "", "", "", Options{})
	p := f.sqliteDB("a", 10)
	f.writeConfig(fmt.Sprintf(`[{id: praktijk-a, engine: sqlite, path: %s}, {id: praktijk-new, engine: sqlite, path: %s}]`, p, p), "rpo_target: 26h", "")
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
	one := func(rep *Report, id string) TenantStatus {
		for _, ts := range rep.Tenants {
			if ts.Tenant == id {
				return ts
			}
		}
		t.Fatalf("no %s in status", id)
		return TenantStatus{}
	}
	for _, tc := range []struct {
		name    string
		at      time.Duration
		prepare func()
		ok      bool
		problem string
	}{
		{"fresh", time.Hour, nil, true, ""},
		{"just inside the RPO", 25 * time.Hour, nil, true, ""},
		{"stale beyond the RPO", 27 * time.Hour, nil, false, "over the RPO target"},
		{"degraded: one location lost its copy", time.Hour, func() {
			os.RemoveAll(filepath.Join(f.dir, "loc-g", "praktijk-a", "snapshots"))
		}, false, "1 of 2 required locations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prepare != nil {
				tc.prepare()
			}
			rep := Status(context.Background(), a, start.Add(tc.at))
			ts := one(rep, "praktijk-a")
			if ts.OK() != tc.ok || (tc.problem != "" && !strings.Contains(strings.Join(ts.Problems, ";"), tc.problem)) {
				t.Errorf("ok=%v problems=%v, want ok=%v with %q", ts.OK(), ts.Problems, tc.ok, tc.problem)
			}
			if rep.OK {
				t.Error("the never backed-up tenant must fail the report")
			}
			if n := one(rep, "praktijk-new"); n.OK() {
				t.Error("a tenant without any backup is ok")
			}
		})
	}
}

// TestReloadBadConfigKeepsOld drives the reload function: a bad config is
// refused and the old jobs keep running; a good one replaces them.
func TestReloadBadConfigKeepsOld(t *testing.T) {
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, ams)
	f := newFixture(t, start, "", "", "", Options{})
	p := f.sqliteDB("a", 5)
	f.writeConfig(fmt.Sprintf(`[{id: praktijk-a, engine: sqlite, path: %s}]`, p), "", "")
	if err := f.d.ReloadFile(context.Background(), f.cfg); err != nil {
		t.Fatal(err)
	}
	f.run()
	f.settle()
	if f.d.Scheduler().Next(JobName(KindBackup, "praktijk-a")).IsZero() {
		t.Fatal("no backup job")
	}
	for _, bad := range []struct{ name, tenants, policy string }{
		{"bad cron", fmt.Sprintf(`[{id: praktijk-b, engine: sqlite, path: %s, schedule: "61 * * * *"}]`, p), ""},
		{"unknown key", `[{id: praktijk-b, engine: sqlite, pth: x}]`, ""},
		{"bad window", fmt.Sprintf(`[{id: praktijk-b, engine: sqlite, path: %s}]`, p), `backup_window: "25:00-03:00"`},
	} {
		f.writeConfig(bad.tenants, bad.policy, "")
		err := f.d.ReloadFile(context.Background(), f.cfg)
		if err == nil {
			t.Fatalf("%s: reload accepted", bad.name)
		}
		if _, err := f.d.Appliance().Cfg.Tenant("praktijk-a"); err != nil {
			t.Fatalf("%s: the old config was dropped", bad.name)
		}
		if f.d.Scheduler().Next(JobName(KindBackup, "praktijk-a")).IsZero() {
			t.Fatalf("%s: the old jobs were dropped", bad.name)
		}
		if !strings.Contains(f.logs.String(), "config reload refused") {
			t.Errorf("%s: the refusal is not logged", bad.name)
		}
	}
	f.writeConfig(fmt.Sprintf(`[{id: praktijk-b, engine: sqlite, path: %s}]`, p), "", "")
	if err := f.d.ReloadFile(context.Background(), f.cfg); err != nil {
		t.Fatal(err)
	}
	f.settle()
	if !f.d.Scheduler().Next(JobName(KindBackup, "praktijk-a")).IsZero() {
		t.Error("a removed tenant is still scheduled")
	}
	if len(f.snapshots("praktijk-b")) != 1 {
		t.Error("the new tenant was not caught up after the reload")
	}
}

// slowEngine wraps an engine so every table waits for gate (or the
// context).
type slowEngine struct {
	source.Engine
	gate    chan struct{}
	entered chan struct{}
}

func (e slowEngine) Snapshot(ctx context.Context) (source.Snapshot, error) {
	s, err := e.Engine.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return slowSnap{s, e}, nil
}

type slowSnap struct {
	source.Snapshot
	e slowEngine
}

func (s slowSnap) WriteTable(ctx context.Context, t source.Table, w io.Writer) (source.TableResult, error) {
	select {
	case s.e.entered <- struct{}{}:
	default:
	}
	select {
	case <-s.e.gate:
	case <-ctx.Done():
		return source.TableResult{}, ctx.Err()
	}
	return s.Snapshot.WriteTable(ctx, t, w)
}

// TestShutdownGrace: on SIGTERM a backup that finishes within
// policy.shutdown_grace commits; one that does not is cancelled, commits
// nothing, and leaves the repository clean.
func TestShutdownGrace(t *testing.T) {
	for _, tc := range []struct {
		name      string
		finishes  bool
		snapshots int
	}{
		{"slow backup finishes within the grace", true, 1},
		{"backup over the grace is cancelled", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Date(2026, 6, 1, 12, 0, 0, 0, ams)
			slow := slowEngine{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
			f := newFixture(t, start, "", "", "", Options{Engine: func(a *appliance.Appliance, t *config.Tenant, key []byte) (source.Engine, error) {
				eng, err := a.Engine(t, key)
				slow.Engine = eng
				return slow, err
			}})
			p := f.sqliteDB("a", 20)
			f.writeConfig(fmt.Sprintf(`[{id: praktijk-a, engine: sqlite, path: %s}]`, p), "shutdown_grace: 5m", "")
			if err := f.d.ReloadFile(context.Background(), f.cfg); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- f.d.Run(ctx) }()
			<-slow.entered // the catch-up backup is reading a table
			cancel()       // SIGTERM
			// Run logs this after its loop stopped (and its timer with it),
			// right before Shutdown starts the grace timer.
			waitUntil(t, func() bool { return strings.Contains(f.logs.String(), "shutting down: no new jobs") })
			waitUntil(t, func() bool { return f.clk.Timers() == 1 })
			if tc.finishes {
				f.clk.Advance(4 * time.Minute)
				close(slow.gate)
			} else {
				f.clk.Advance(5 * time.Minute)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			// No new job starts after SIGTERM.
			if n := len(f.snapshots("praktijk-a")); n != tc.snapshots {
				t.Fatalf("%d snapshots, want %d", n, tc.snapshots)
			}
			r, err := f.d.Appliance().OpenRepo(context.Background(), "praktijk-a")
			if err != nil {
				t.Fatal(err)
			}
			checks, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range checks {
				if !c.OK() {
					t.Errorf("check at %s after shutdown: %v", c.Location, c.Errors)
				}
			}
		})
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// TestDegradedBackupIsSynced: a backup while one location is away commits
// at the other (degraded); the sync job queued right after it fails while
// the location is away, and its retry after the backoff copies what the
// location missed: status and metrics are healthy again.
func TestDegradedBackupIsSynced(t *testing.T) {
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, ams)
	f := newFixture(t, start, "", "", "", Options{})
	p := f.sqliteDB("a", 30)
	f.writeConfig(fmt.Sprintf(`[{id: praktijk-a, engine: sqlite, path: %s}]`, p), "retry: {attempts: 3, backoff: 5m}", "")
	if err := f.d.ReloadFile(context.Background(), f.cfg); err != nil {
		t.Fatal(err)
	}
	f.run()
	f.settle()
	locG := filepath.Join(f.dir, "loc-g")
	if err := os.Rename(locG, locG+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+".touch", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if !f.d.Scheduler().Trigger(JobName(KindBackup, "praktijk-a")) {
		t.Fatal("trigger refused")
	}
	f.settle()
	if rep := Status(context.Background(), f.d.Appliance(), f.clk.Now()); rep.OK {
		t.Fatal("status ok while degraded")
	}
	if _, body := scrape(t, f.d.Handler(), "/metrics"); !strings.Contains(body, `kluis_snapshot_degraded{tenant="praktijk-a"} 1`) ||
		!strings.Contains(body, `kluis_job_failures_total{job="sync",tenant="praktijk-a"} 1`) {
		t.Errorf("metrics do not show the degraded snapshot and the failed sync:\n%s", body)
	}
	if err := os.Rename(locG+".away", locG); err != nil {
		t.Fatal(err)
	}
	f.until(start.Add(6 * time.Minute)) // the sync retry after the 5m backoff
	rep := Status(context.Background(), f.d.Appliance(), f.clk.Now())
	if !rep.OK {
		t.Fatalf("status after sync: %+v", rep.Tenants)
	}
	if _, body := scrape(t, f.d.Handler(), "/metrics"); !strings.Contains(body, `kluis_snapshot_degraded{tenant="praktijk-a"} 0`) {
		t.Errorf("metrics still degraded after sync")
	}
}

// TestDaemonReseals: the daemon's backup job re-seals a backup that stored
// more than policy.reseal, deletes the old packs once it has released its
// shared lock (under the exclusive one), and records it in the history;
// the repository then checks clean.
func TestDaemonReseals(t *testing.T) {
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, ams)
	f := newFixture(t, start, "", "", "", Options{})
	// Notes of some variety (a table of one repeated line compresses as
	// well at zstd's fastest level as at its best), in one transaction.
	a := filepath.Join(f.dir, "a.db")
	db, err := sql.Open("sqlite", a)
	if err != nil {
		t.Fatal(err)
	}
	words := strings.Fields("hoofdpijn rugpijn hoest vermoeidheid duizeligheid koorts rust vocht paracetamol controle verwijzing fysiotherapie bloeddruk")
	tx, _ := db.Begin()
	tx.Exec(`CREATE TABLE notes (id INTEGER PRIMARY KEY, client INTEGER NOT NULL, note TEXT NOT NULL)`)
	for i := range 30000 {
		note := fmt.Sprintf("%s, %s; advies %s (%d)", words[i*7%len(words)], words[(i*i+3)%len(words)], words[(i/5+i*13)%len(words)], i*7919%100003)
		if _, err := tx.Exec(`INSERT INTO notes (client, note) VALUES (?, ?)`, i*31%5003, note); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	f.writeConfig(fmt.Sprintf(`[{id: praktijk-a, engine: sqlite, path: %s}]`, a), "reseal: 64KiB", "")
	cfg, err := config.Load(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.d.Reload(context.Background(), cfg)
	f.run()
	f.settle()
	hist, _ := f.d.Appliance().History()
	var rs map[string]any
	for _, r := range hist {
		if r.Job == KindBackup && r.OK {
			rs, _ = r.Extra[appliance.ExtraReseal].(map[string]any)
		}
	}
	if rs == nil || rs["packs"] == float64(0) || rs["old_packs_deleted"] != rs["packs"] || rs["error"] != nil || rs["old_packs_error"] != nil {
		t.Fatalf("backup history's reseal: %v", rs)
	}
	t.Logf("re-seal: %v", rs)
	r, err := f.d.Appliance().OpenRepo(context.Background(), "praktijk-a")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := r.Check(context.Background(), repo.CheckOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if !c.OK() || len(c.Warnings) > 0 {
			t.Errorf("check at %s after the re-seal: errors %v, warnings %v", c.Location, c.Errors, c.Warnings)
		}
	}
}
