package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/schedule"
	"github.com/kluis-nl/kluis/source"
)

// Job kinds.
const (
	KindBackup      = "backup"
	KindRetention   = "retention"
	KindRestoreTest = "restore-test"
	KindDiscover    = "discover"
	KindSync        = "sync"
	// KindEvidenceSync copies restore-test reports a location lacks.
	KindEvidenceSync = "evidence-sync"
)

// discoverTenant is the exclusivity key of the discover job (no tenant
// id can start with '_').
const discoverTenant = "_discover"

// evidenceTenant is the exclusivity key of the evidence-sync job.
const evidenceTenant = "_evidence"

// DailyMaxAge is how old a tenant's last successful backup may be before
// the daemon runs one at start (catch-up).
const DailyMaxAge = 24 * time.Hour

// RestoreTestResult is what a restore-test hook reports of a test that
// ran to a verdict.
type RestoreTestResult struct {
	Passed bool
	// FailedChecks names the failed checks (evidence/report.go).
	FailedChecks []string
	Location     string
	Snapshot     string
	// Cause is set when the test could not run because of the test rig
	// (verdict ERROR): the location or restore-test server that failed.
	Cause string
	// EvidenceSeq is the report's record in the evidence log; 0 when the
	// report could not be written (the hook then also returns an error).
	EvidenceSeq uint64
}

// RestoreTestResultOf summarises a restore-test report written to the
// evidence log as record seq (nil: no report, the zero result).
func RestoreTestResultOf(rep *evidence.Report, seq uint64) RestoreTestResult {
	if rep == nil {
		return RestoreTestResult{}
	}
	return RestoreTestResult{Passed: rep.Verdict == evidence.Pass, FailedChecks: rep.FailedChecks, Cause: rep.Cause,
		Location: rep.Location.Name, Snapshot: rep.Snapshot.ID, EvidenceSeq: seq}
}

// RestoreTestFunc runs one tenant's restore test. An error means the test
// did not reach a verdict, or its report was not written; a FAIL verdict
// is a result, not an error.
type RestoreTestFunc func(ctx context.Context, a *appliance.Appliance, tenant string) (RestoreTestResult, error)

// Hooks are job kinds that other packages fill in.
type Hooks struct {
	// RestoreTest, when set, is scheduled for every database tenant at
	// RestoreTestSchedule (a cron spec; empty: policy.restore_test.schedule),
	// each tenant at its own offset in the hour after it (RestoreTestSpec).
	// When nil, no restore-test job exists.
	RestoreTest         RestoreTestFunc
	RestoreTestSchedule string
	// EvidenceSync, when set, runs hourly: it copies to every location the
	// restore-test reports it lacks (a location that was down during a
	// test). Every restore test's own append does the same.
	EvidenceSync func(ctx context.Context, a *appliance.Appliance) error
}

// Options configure a Daemon.
type Options struct {
	Clock schedule.Clock
	Log   *slog.Logger
	Hooks Hooks
	// Engine, when set, replaces appliance.Engine (tests wrap a real engine
	// to make it slow).
	Engine func(a *appliance.Appliance, t *config.Tenant, key []byte) (source.Engine, error)
}

// Daemon schedules and runs every tenant's jobs.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	clock   schedule.Clock
	sched   *schedule.Scheduler
	metrics *Metrics

	mu         sync.Mutex
	base       *appliance.Appliance // the loaded config (declared tenants)
	app        *appliance.Appliance // base plus discovered tenants
	discovered []config.Tenant
	fromRepo   map[string]time.Time  // newest snapshot of tenants the history does not know
	degraded   map[string]bool       // tenants whose newest snapshot lacks copies
	gone       map[string]GoneTenant // backed up, no longer declared or discovered
}

// New returns a Daemon for a validated config. Call Start (or Run).
func New(a *appliance.Appliance, opts Options) *Daemon {
	if opts.Clock == nil {
		opts.Clock = schedule.RealClock{}
	}
	if opts.Log == nil {
		opts.Log = a.Log
	}
	d := &Daemon{opts: opts, log: opts.Log, clock: opts.Clock, fromRepo: map[string]time.Time{}, degraded: map[string]bool{}, gone: map[string]GoneTenant{}}
	pol := a.Cfg.Policy
	d.sched = schedule.New(schedule.Options{
		Clock: opts.Clock, Concurrency: pol.MaxConcurrentJobs, Log: opts.Log,
		Retry:  schedule.Retry{Attempts: pol.Retry.Attempts, Backoff: pol.Retry.Backoff.D()},
		OnDone: d.onDone,
	})
	d.metrics = newMetrics(opts.Clock.Now, func() float64 { return float64(d.sched.Running()) })
	d.setBase(a)
	return d
}

func (d *Daemon) setBase(a *appliance.Appliance) {
	a.Now = d.clock.Now
	a.Log = d.log
	d.mu.Lock()
	d.base = a
	d.app = a.WithTenants(d.discovered)
	d.mu.Unlock()
}

// Appliance returns the current appliance (declared and discovered
// tenants).
func (d *Daemon) Appliance() *appliance.Appliance {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.app
}

// Scheduler returns the daemon's scheduler (for status and tests).
func (d *Daemon) Scheduler() *schedule.Scheduler { return d.sched }

// Metrics returns the daemon's metrics.
func (d *Daemon) Metrics() *Metrics { return d.metrics }

// Start discovers tenants, loads the last results from the history (and
// the repositories for tenants the history does not know), and sets the
// jobs. Catch-up runs are queued here.
func (d *Daemon) Start(ctx context.Context) {
	d.logTenantProblems()
	d.discover(ctx)
	d.loadState(ctx)
	d.setJobs()
}

// Run starts the daemon and serves until ctx ends, then stops starting
// jobs and gives running ones policy.shutdown_grace to finish before
// cancelling them (a cancelled backup commits nothing).
func (d *Daemon) Run(ctx context.Context) error {
	d.Start(ctx)
	err := d.sched.Run(ctx)
	grace := d.Appliance().Cfg.Policy.ShutdownGrace.D()
	d.log.Info("shutting down: no new jobs", "running", d.sched.Running(), "grace", grace.String())
	if d.sched.Shutdown(grace) {
		d.log.Warn("running jobs were cancelled at the end of the grace period; they committed nothing")
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Reload replaces the config with cfg (already validated by config.Load)
// and rebuilds the jobs; running jobs go on.
func (d *Daemon) Reload(ctx context.Context, cfg *config.Config) {
	old := d.Appliance()
	a := appliance.New(cfg, d.log)
	d.setBase(a)
	pol := cfg.Policy
	d.sched.SetLimits(pol.MaxConcurrentJobs, schedule.Retry{Attempts: pol.Retry.Attempts, Backoff: pol.Retry.Backoff.D()})
	d.logTenantProblems()
	d.discover(ctx)
	d.setJobs()
	d.log.Info("config reloaded", "tenants", len(d.Appliance().Cfg.Tenants), "previous_tenants", len(old.Cfg.Tenants))
}

// ReloadFile loads and validates the config at path and, if it is valid,
// reloads. A bad config keeps the old one running; the error says why.
func (d *Daemon) ReloadFile(ctx context.Context, path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		d.log.Error("config reload refused: keeping the running config", "err", err)
		return err
	}
	d.Reload(ctx, cfg)
	return nil
}

// Handler serves /metrics and /healthz.
func (d *Daemon) Handler() http.Handler {
	return d.metrics.handler(func() error { return nil })
}

// discover runs tenant discovery. A block that fails keeps the tenants it
// found last time (a database server that is down for a moment must not
// make tenants disappear).
func (d *Daemon) discover(ctx context.Context) {
	d.mu.Lock()
	base, prev := d.base, d.discovered
	d.mu.Unlock()
	if len(base.Cfg.Discover) == 0 {
		d.mu.Lock()
		d.discovered = nil
		d.app = base.WithTenants(nil)
		d.mu.Unlock()
		return
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	res := base.Discover(cctx)
	cancel()
	found := res.Tenants
	if len(res.Errors) > 0 {
		for _, err := range res.Errors {
			d.log.Error("tenant discovery failed", "err", err)
		}
		have, clash := map[string]bool{}, collided(res)
		for _, t := range found {
			have[t.ID] = true
		}
		for _, t := range prev {
			// A colliding id is not kept either: it fails closed.
			if !have[t.ID] && !clash[t.ID] && !declared(base.Cfg, t.ID) {
				found = append(found, t)
			}
		}
	}
	d.noteDiscovery(res, prev, found)
	d.mu.Lock()
	d.discovered = found
	d.app = base.WithTenants(found)
	d.mu.Unlock()
}

// logTenantProblems logs, at error level, every tenant whose own files
// are unusable (config.TenantProblems): that tenant's jobs fail (and count
// in kluis_job_failures_total, and `kluis status` shows why) while every
// other tenant runs.
func (d *Daemon) logTenantProblems() {
	for id, ps := range d.Appliance().Cfg.TenantProblems() {
		for _, p := range ps {
			d.log.Error("tenant cannot be backed up until this is fixed; the other tenants run", "tenant", id, "problem", p)
		}
	}
}

func declared(c *config.Config, id string) bool {
	_, err := c.Tenant(id)
	return err == nil
}

func (d *Daemon) onDone(j schedule.Job, attempt int, err error, willRetry bool) {
	if err != nil && j.Tenant != discoverTenant && j.Tenant != evidenceTenant {
		d.metrics.failures.WithLabelValues(j.Tenant, j.Kind).Inc()
	}
}

// JobName names a tenant's job of a kind.
func JobName(kind, tenant string) string { return kind + "/" + tenant }

// BackupSpec is when a tenant is backed up: its own schedule when set,
// else its deterministic slot in policy.backup_window.
func BackupSpec(c *config.Config, t *config.Tenant, tz *time.Location) (schedule.Spec, error) {
	if t.Schedule != "" {
		return schedule.Parse(t.Schedule, tz)
	}
	start, length, err := config.ParseWindow(c.Policy.BackupWindow)
	if err != nil {
		return nil, fmt.Errorf("policy.backup_window: %w", err)
	}
	return schedule.Window(t.ID, start, length, tz), nil
}

// RetentionSpec is when retention runs: policy.retention_time, else the
// end of the backup window.
func RetentionSpec(c *config.Config, tz *time.Location) (schedule.Spec, error) {
	if c.Policy.RetentionTime != "" {
		at, err := config.ParseClock(c.Policy.RetentionTime)
		if err != nil {
			return nil, err
		}
		return schedule.Daily{Offset: at, TZ: tz}, nil
	}
	start, length, err := config.ParseWindow(c.Policy.BackupWindow)
	if err != nil {
		return nil, err
	}
	return schedule.Daily{Offset: start + length, TZ: tz}, nil
}

// Scheduled reports whether the daemon backs up a tenant: database
// engines only (a files tenant has no source to read unattended).
func Scheduled(t *config.Tenant) bool { return t.Engine != "files" }
