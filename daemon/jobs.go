package daemon

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore/dossier"
	"github.com/kluis-nl/kluis/schedule"
	"github.com/kluis-nl/kluis/source"
)

// lastOK is the time of the last successful run per job name.
type lastOK map[string]time.Time

// loadState restores the last results from the history, and for tenants
// the history does not know, from the repository (the newest snapshot):
// the state directory can be lost without losing the schedule.
func (d *Daemon) loadState(ctx context.Context) {
	a := d.Appliance()
	last := d.historyLastOK(a)
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range a.Cfg.Tenants {
		t := &a.Cfg.Tenants[i]
		if !Scheduled(t) {
			continue
		}
		if _, ok := last[JobName(KindBackup, t.ID)]; ok {
			continue // the history set the metrics
		}
		r, err := a.OpenRepo(ctx, t.ID)
		if err != nil {
			continue // no repository yet: the first backup creates it
		}
		s, err := r.FindSnapshot(ctx, "latest") // one manifest, however long the history
		if err != nil {
			continue
		}
		d.fromRepo[JobName(KindBackup, t.ID)] = s.Manifest.Finished
		d.degraded[t.ID] = len(s.Locations) < a.Cfg.Policy.RequiredCopies
		d.metrics.snapshot(t.ID, s.Manifest.Finished, s.Locations, locationNames(a), a.Cfg.Policy.RequiredCopies)
	}
}

func (d *Daemon) historyLastOK(a *appliance.Appliance) lastOK {
	hist, err := a.History()
	if err != nil {
		d.log.Warn("cannot read the job history; catch-up relies on the repositories", "err", err)
	}
	last := lastOK{}
	for _, r := range hist {
		if r.Job == KindRestoreTest && r.Tenant != "" {
			d.metrics.SetRestoreTest(r.Tenant, r.OK)
		}
		if !r.OK {
			continue
		}
		name := JobName(r.Job, r.Tenant)
		if r.Time.After(last[name]) {
			last[name] = r.Time
		}
		if r.Job == KindBackup {
			d.setDegraded(r.Tenant, len(r.Committed) < a.Cfg.Policy.RequiredCopies)
		}
		if r.Job == KindSync {
			d.setDegraded(r.Tenant, false)
		}
		if r.Job == KindBackup && r.Stats != nil {
			d.metrics.duration.WithLabelValues(r.Tenant).Set(r.Duration)
			d.metrics.bytesRead.WithLabelValues(r.Tenant).Set(float64(r.Stats.Read))
			d.metrics.bytesStored.WithLabelValues(r.Tenant).Set(float64(r.Stats.Stored))
			d.metrics.snapshot(r.Tenant, r.Time, r.Committed, locationNames(a), a.Cfg.Policy.RequiredCopies)
		}
	}
	return last
}

func locationNames(a *appliance.Appliance) []string {
	out := make([]string, 0, len(a.Cfg.Locations))
	for _, l := range a.Cfg.Locations {
		out = append(out, l.Name)
	}
	return out
}

// setJobs builds the job set from the current config and hands it to the
// scheduler.
func (d *Daemon) setJobs() {
	a := d.Appliance()
	tz := a.TimeZone()
	last := d.historyLastOK(a)
	d.mu.Lock()
	for name, at := range d.fromRepo {
		if at.After(last[name]) {
			last[name] = at
		}
	}
	d.mu.Unlock()
	var jobs []schedule.Job
	retSpec, retErr := RetentionSpec(a.Cfg, tz)
	if retErr != nil {
		d.log.Error("retention not scheduled", "err", retErr)
	}
	rlog, chErr := a.ReadRetentionLog()
	if chErr != nil {
		// Retention is scheduled for every tenant then, and each job
		// fails on the log, forgetting nothing.
		d.log.Error("the approved retention changes do not verify: retention forgets nothing until they do", "err", chErr)
		rlog = &appliance.RetentionLog{}
	}
	d.metrics.setRetentionPending(rlog.Pending)
	// retains: tenant's retention forgets something (policy.retention or
	// an approved change, docs/ops.md "Retention"), or will when its
	// pending change takes effect: the job runs then, no restart needed.
	retains := func(tenant string) bool {
		if rlog.InForce[tenant] != nil || rlog.Pending[tenant] != nil || chErr != nil {
			return true
		}
		return !policyRetention(a.Cfg.Policy.Retention).Empty()
	}
	if policyRetention(a.Cfg.Policy.Retention).Empty() && len(rlog.InForce)+len(rlog.Pending) == 0 && chErr == nil {
		d.log.Info("retention not scheduled: policy.retention keeps everything (no keep_* set)")
	}
	rtSpec := d.opts.Hooks.RestoreTestSchedule
	if rtSpec == "" {
		rtSpec = a.Cfg.Policy.RestoreTest.Schedule
	}
	lastTest := lastRestoreTests(a, d.log)
	hourly, _ := schedule.Parse("@every 1h", tz)
	tenants := 0
	for i := range a.Cfg.Tenants {
		t := a.Cfg.Tenants[i]
		if !Scheduled(&t) {
			d.log.Info("tenant not scheduled: engine files has no unattended source", "tenant", t.ID)
			continue
		}
		spec, err := BackupSpec(a.Cfg, &t, tz)
		if err != nil {
			d.log.Error("tenant not scheduled", "tenant", t.ID, "err", err)
			continue
		}
		tenants++
		id := t.ID
		name := JobName(KindBackup, id)
		jobs = append(jobs, schedule.Job{Name: name, Tenant: id, Kind: KindBackup, Spec: spec,
			CatchUp: true, LastSuccess: last[name], MaxAge: DailyMaxAge,
			Run: func(ctx context.Context) error { return d.runBackup(ctx, id) }})
		if retErr == nil && retains(id) {
			name := JobName(KindRetention, id)
			// Retention missed while the appliance was down is caught up
			// like a backup, the first one too; a tenant never backed up
			// has nothing to forget yet.
			backedUp := !last[JobName(KindBackup, id)].IsZero()
			jobs = append(jobs, schedule.Job{Name: name, Tenant: id, Kind: KindRetention, Spec: retSpec,
				CatchUp: backedUp, LastSuccess: last[name], MaxAge: 2 * DailyMaxAge,
				Run: func(ctx context.Context) error { return d.runRetention(ctx, id) }})
		}
		// Sync runs at start too: its listings decide whether to copy.
		jobs = append(jobs, schedule.Job{Name: JobName(KindSync, id), Tenant: id, Kind: KindSync, Spec: hourly, CatchUp: true,
			Run: func(ctx context.Context) error { return d.runSync(ctx, id) }})
		if retErr == nil {
			jobs = append(jobs, d.historyJobs(id, retSpec, last)...)
		}
		if hook := d.opts.Hooks.RestoreTest; hook != nil {
			// Its backups run regardless; the test is still scheduled and
			// fails (recorded) until the config is fixed.
			gap := a.Cfg.RestoreTestGap(&t)
			d.metrics.setRestoreTestRunnable(id, gap == "")
			if gap != "" {
				d.log.Error("restore tests of this tenant cannot run until the config is fixed; its backups run", "tenant", id, "problem", gap)
			}
			spec, err := RestoreTestSpec(rtSpec, id, tz)
			if err != nil {
				d.log.Error("restore tests not scheduled", "tenant", id, "err", err)
			} else {
				// A test missed while the appliance was down runs at start,
				// but never before the first scheduled one (a new tenant
				// has nothing to restore yet).
				name := JobName(KindRestoreTest, id)
				ran := lastTest[id].Time
				jobs = append(jobs, schedule.Job{Name: name, Tenant: id, Kind: KindRestoreTest, Spec: spec,
					CatchUp: !ran.IsZero(), LastSuccess: ran,
					Run: func(ctx context.Context) error { return d.runRestoreTest(ctx, id, hook) }})
			}
		}
	}
	if hook := d.opts.Hooks.EvidenceSync; hook != nil {
		jobs = append(jobs, schedule.Job{Name: KindEvidenceSync, Tenant: evidenceTenant, Kind: KindEvidenceSync, Spec: hourly,
			Run: func(ctx context.Context) error {
				err := hook(ctx, d.Appliance())
				if err != nil {
					d.log.Warn("evidence not yet at every location", "job", KindEvidenceSync, "err", err)
				}
				return err
			}})
	}
	if len(a.Cfg.Discover) > 0 {
		jobs = append(jobs, schedule.Job{Name: KindDiscover, Tenant: discoverTenant, Kind: KindDiscover, Spec: hourly,
			Run: func(ctx context.Context) error {
				before := tenantIDs(d.Appliance())
				d.discover(ctx)
				if tenantIDs(d.Appliance()) != before { // one dropped and one added is a change too
					d.setJobs()
				} else {
					d.updateGone(d.Appliance()) // a retire since the last run
				}
				return nil
			}})
	}
	// Tenants that are gone keep their snapshots under retention.
	for _, g := range d.updateGone(a) {
		id := g.Tenant
		if retErr == nil && retains(id) {
			name := JobName(KindRetention, id)
			jobs = append(jobs, schedule.Job{Name: name, Tenant: id, Kind: KindRetention, Spec: retSpec,
				CatchUp: true, LastSuccess: last[name], MaxAge: 2 * DailyMaxAge,
				Run: func(ctx context.Context) error { return d.runRetention(ctx, id) }})
		}
	}
	timeout := a.Cfg.Policy.JobTimeout.D()
	for i := range jobs {
		jobs[i].Run = withDeadline(jobs[i], timeout)
	}
	d.metrics.tenants.Set(float64(tenants))
	d.sched.SetJobs(jobs)
}

// withDeadline bounds one run of a job by policy.job_timeout: a job stuck
// on anything (a source that never answers, a location that hangs) is
// cancelled, frees its slot and is retried, and its error says why.
func withDeadline(j schedule.Job, timeout time.Duration) func(context.Context) error {
	run := j.Run
	if timeout <= 0 {
		return run
	}
	return func(ctx context.Context) error {
		jctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		err := run(jctx)
		if err != nil && ctx.Err() == nil && errors.Is(jctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s of %s cancelled after policy.job_timeout (%s): %w", j.Kind, j.Tenant, timeout, err)
		}
		return err
	}
}

// shutDown reports whether a job's context was cancelled by the daemon's
// shutdown, not by its policy.job_timeout: a run cut off by shutdown is
// no verdict, one that ran out of time is a failure to record.
func shutDown(ctx context.Context) bool {
	return ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded)
}

// timedOut says so in err when the job ran out of its policy.job_timeout.
func timedOut(ctx context.Context, err error) error {
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("cancelled after policy.job_timeout: %w", err)
	}
	return err
}

func tenantIDs(a *appliance.Appliance) string {
	ids := make([]string, len(a.Cfg.Tenants))
	for i, t := range a.Cfg.Tenants {
		ids[i] = t.ID
	}
	return strings.Join(ids, "\n")
}

// RetentionChanged rebuilds the jobs after an approved retention change
// (a tenant whose retention kept everything gets its retention job).
func (d *Daemon) RetentionChanged() { d.setJobs() }

func policyRetention(p config.Retention) repo.Retention {
	return repo.Retention{KeepLast: p.KeepLast, KeepDaily: p.KeepDaily, KeepWeekly: p.KeepWeekly, KeepMonthly: p.KeepMonthly}
}

// runBackup takes one snapshot of a tenant database.
func (d *Daemon) runBackup(ctx context.Context, tenant string) (err error) {
	a := d.Appliance()
	t, err := a.Cfg.Tenant(tenant)
	if err != nil {
		return err // removed by a reload or a discovery since it was queued
	}
	log := d.log.With("tenant", tenant, "job", KindBackup)
	var res *repo.Result
	defer func() {
		if res == nil && err != nil {
			a.RecordBackup(tenant, nil, err)
		}
	}()
	lock, err := a.Lock(ctx, tenant, false)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	r, err := a.OpenOrInitRepo(ctx, tenant)
	if err != nil {
		return err
	}
	newEngine := d.opts.Engine
	if newEngine == nil {
		newEngine = func(a *appliance.Appliance, t *config.Tenant, key []byte) (source.Engine, error) {
			return a.Engine(t, key)
		}
	}
	eng, err := newEngine(a, t, r.FingerprintKey())
	if err != nil {
		return err
	}
	res, err = backup.DatabaseIndexed(ctx, r, eng, a.BackupOptions(), dossier.BackupIndex(a.Cfg, tenant))
	if err != nil && res != nil {
		a.RecordBackup(tenant, res, err)
	}
	if err != nil {
		if errors.Is(err, source.ErrLockTimeout) {
			// Waiting longer would hold a job slot the other tenants need.
			log.Warn("backup gave up waiting for a table lock on the source: job slot freed, will retry",
				"lock_timeout", a.Cfg.TenantLockTimeout(t).String(), "err", err)
		}
		if errors.Is(ctx.Err(), context.Canceled) {
			log.Warn("backup cancelled: nothing committed")
		}
		return err
	}
	st := res.Stats
	d.metrics.duration.WithLabelValues(tenant).Set(res.Finished.Sub(res.Started).Seconds())
	d.metrics.bytesRead.WithLabelValues(tenant).Set(float64(st.Read))
	d.metrics.bytesStored.WithLabelValues(tenant).Set(float64(st.Stored))
	d.metrics.snapshot(tenant, res.Finished, res.Committed, locationNames(a), a.Cfg.Policy.RequiredCopies)
	log.Info("snapshot committed", "snapshot", res.ID.Short(), "locations", res.Committed,
		"bytes_read", st.Read, "bytes_stored", st.Stored, "seconds", res.Finished.Sub(res.Started).Seconds())
	// Degraded is what the listings say now (every snapshot, not only
	// this one): see reconcile.go.
	p := d.observe(ctx, a, tenant, r)
	if res.Reseal.HasOld() {
		// The re-sealed packs' old copies go under the exclusive lock.
		lock.Unlock()
		a.FinishReseal(ctx, r, tenant, res)
	}
	a.RecordBackup(tenant, res, nil)
	if res.Degraded(a.Cfg.Policy.RequiredCopies) || (p != nil && needsSync(p)) {
		// Sync of degraded snapshots: see docs/ops.md ("Daemon"). The next
		// backup with the location back copies what it misses.
		log.Warn("snapshot degraded: sync queued", "snapshot", res.ID.Short(), "committed", len(res.Committed), "required", a.Cfg.Policy.RequiredCopies)
		d.setDegraded(tenant, true)
		d.sched.Trigger(JobName(KindSync, tenant)) // runs once this backup has released the tenant
	}
	return nil
}

// updateGone finds the tenants that are gone (GoneTenants), logs each
// one that newly vanished at error level, removes their metric series and
// sets kluis_tenant_gone until they are retired. It returns them all.
func (d *Daemon) updateGone(a *appliance.Appliance) []GoneTenant {
	hist, err := a.History()
	if err != nil {
		return nil
	}
	gone := GoneTenants(a, hist)
	now := map[string]GoneTenant{}
	d.mu.Lock()
	prev := d.gone
	for _, g := range gone {
		now[g.Tenant] = g
	}
	d.gone = now
	d.mu.Unlock()
	for _, g := range gone {
		d.metrics.forget(g.Tenant)
		if g.Retired {
			d.metrics.gone.DeleteLabelValues(g.Tenant)
			continue
		}
		d.metrics.gone.WithLabelValues(g.Tenant).Set(1)
		if _, seen := prev[g.Tenant]; !seen {
			d.log.Error("tenant is gone: no longer declared or discovered; its snapshots stay under retention. Acknowledge with `kluis tenants retire`",
				"tenant", g.Tenant, "last_backup", g.LastBackup)
		}
	}
	for id := range prev {
		if _, still := now[id]; !still {
			d.metrics.gone.DeleteLabelValues(id) // back (re-discovered or re-declared)
		}
	}
	return gone
}

func (d *Daemon) isGone(tenant string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.gone[tenant]
	return ok
}

func (d *Daemon) setDegraded(tenant string, v bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if v {
		d.degraded[tenant] = true
	} else {
		delete(d.degraded, tenant)
	}
}

func (d *Daemon) isDegraded(tenant string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.degraded[tenant]
}

// runSync copies what a lagging location misses (repo.Repo.Sync) for a
// degraded tenant, under the tenant's shared lock; a healthy tenant is
// left alone. It fails (and is retried) until every location is complete.
func (d *Daemon) runSync(ctx context.Context, tenant string) (err error) {
	a := d.Appliance()
	if _, err := a.Cfg.Tenant(tenant); err != nil {
		return err
	}
	// From the listings, not from memory: a one-copy snapshot no job
	// recorded (a kill between the manifest writes) is found here too.
	if p := d.observe(ctx, a, tenant, nil); p == nil || !needsSync(p) {
		return nil
	}
	rec, record := d.jobRecord(a, tenant, KindSync)
	defer func() { record(err) }()
	lock, err := a.Lock(ctx, tenant, false)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	r, err := a.OpenRepo(ctx, tenant)
	if err != nil {
		return err
	}
	res, err := r.Sync(ctx)
	if err != nil {
		return err
	}
	copied, incomplete := 0, 0
	for _, l := range res {
		copied += l.Copied
		if !l.Complete() {
			incomplete++
			d.log.Warn("sync incomplete", "tenant", tenant, "job", KindSync, "location", l.Location, "missing", l.Missing, "err", l.Error)
		}
	}
	rec.Extra["objects_copied"] = copied
	if incomplete > 0 {
		return fmt.Errorf("sync: %d of %d locations still incomplete", incomplete, len(res))
	}
	if s, err := r.FindSnapshot(ctx, "latest"); err == nil {
		d.metrics.snapshot(tenant, s.Manifest.Finished, s.Locations, locationNames(a), a.Cfg.Policy.RequiredCopies)
	}
	if p := d.observe(ctx, a, tenant, r); p != nil && needsSync(p) {
		return errors.New("sync: the locations' listings still differ")
	}
	d.log.Info("sync complete: tenant no longer degraded", "tenant", tenant, "job", KindSync, "objects_copied", copied)
	return nil
}

// runRetention forgets snapshots by the tenant's retention
// (policy.retention or an approved change) and prunes, holding the
// tenant's lock exclusively.
func (d *Daemon) runRetention(ctx context.Context, tenant string) (err error) {
	a := d.Appliance()
	if _, err := a.Cfg.Tenant(tenant); err != nil && !d.isGone(tenant) {
		return err
	}
	rec, record := d.jobRecord(a, tenant, KindRetention)
	defer func() { record(err) }()
	lock, err := a.Lock(ctx, tenant, true)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	r, err := a.OpenGoneRepo(ctx, tenant) // checked above: declared, discovered or gone
	if errors.Is(err, repo.ErrNotFound) {
		return nil // nothing backed up yet
	}
	if err != nil {
		return err
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return err
	}
	// policy.retention, or the tenant's approved change; a change log
	// that does not verify fails the job before anything is forgotten. A
	// change that shortens retention counts from its effective time on
	// (policy.retention_shorten_delay), read at every run.
	rlog, err := a.ReadRetentionLog()
	if err != nil {
		return err
	}
	d.metrics.setRetentionPending(rlog.Pending)
	eff := a.RetentionOf(rlog.InForce, tenant)
	if p := rlog.Pending[tenant]; p != nil {
		d.log.Info("a retention change that shortens retention is pending", "tenant", tenant, "request", p.Request, "effective", p.Effective.UTC())
	}
	pol := policyRetention(eff.Retention)
	if pol.Empty() {
		d.log.Info("retention keeps everything", "tenant", tenant, "job", KindRetention, "source", eff.Source())
		return nil
	}
	ds, err := repo.ApplyRetention(snaps, pol, a.TimeZone())
	if err != nil {
		return err
	}
	var remove []repo.Hash
	for _, dc := range ds {
		if !dc.Keep {
			remove = append(remove, dc.Snapshot.ID)
		}
	}
	if len(remove) > 0 {
		if _, err := r.Forget(ctx, remove); err != nil {
			return err
		}
	}
	pr, err := r.Prune(ctx, repo.PruneOptions{Grace: time.Hour})
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	rec.Extra["forgotten"], rec.Extra["packs_deleted"], rec.Extra["bytes_freed"] = len(remove), pr.PacksDeleted, pr.BytesFreed
	d.log.Info("retention applied", "tenant", tenant, "job", KindRetention, "forgotten", len(remove), "kept", len(ds)-len(remove), "packs_deleted", pr.PacksDeleted, "retention", eff.Source())
	return nil
}

// RestoreTestSpec is when a tenant's restore test runs: spec (a cron spec
// or descriptor in tz) shifted by the tenant's own offset within the hour
// after it, so that tenants are spread as backups are in their window; the
// same tenant always gets the same offset. An "@every" interval is
// relative to the daemon's start already and is not shifted.
func RestoreTestSpec(spec, tenant string, tz *time.Location) (schedule.Spec, error) {
	s, err := schedule.Parse(spec, tz)
	if err != nil {
		return nil, fmt.Errorf("policy.restore_test.schedule: %w", err)
	}
	if _, ok := s.(cron.ConstantDelaySchedule); ok {
		return s, nil
	}
	h := fnv.New64a()
	h.Write([]byte(KindRestoreTest + "/" + tenant))
	return shiftedSpec{inner: s, offset: time.Duration(h.Sum64()%3600) * time.Second}, nil
}

// shiftedSpec is a Spec whose every slot comes offset later.
type shiftedSpec struct {
	inner  schedule.Spec
	offset time.Duration
}

func (s shiftedSpec) Next(t time.Time) time.Time {
	n := s.inner.Next(t.Add(-s.offset))
	if n.IsZero() {
		return n
	}
	return n.Add(s.offset)
}

// lastRestoreTests returns each tenant's newest restore-test record in the
// job history.
func lastRestoreTests(a *appliance.Appliance, log *slog.Logger) map[string]appliance.Record {
	hist, err := a.History()
	if err != nil {
		log.Warn("cannot read the job history", "err", err)
	}
	out := map[string]appliance.Record{}
	for _, r := range hist {
		if r.Job == KindRestoreTest && !r.Time.Before(out[r.Tenant].Time) {
			out[r.Tenant] = r
		}
	}
	return out
}

// RecordRestoreTest appends a restore test's outcome to the job history
// (where `kluis status` and the daemon's metrics read it): OK only for a
// PASS; the failed checks, location, snapshot and evidence record as
// extras. The CLI records its runs the same way.
func RecordRestoreTest(a *appliance.Appliance, tenant string, started time.Time, res RestoreTestResult, err error) appliance.Record {
	now := a.Now()
	rec := appliance.Record{Time: now.UTC(), Tenant: tenant, Job: KindRestoreTest, OK: err == nil && res.Passed,
		Duration: now.Sub(started).Seconds(), Extra: map[string]any{}}
	switch {
	case err != nil:
		rec.Error = err.Error()
	case res.Cause != "":
		rec.Error = "restore test could not run (the test rig, not the backup): " + res.Cause
	case !res.Passed:
		rec.Error = "restore test FAILED: " + strings.Join(res.FailedChecks, ", ")
	}
	if res.Location != "" {
		rec.Extra["location"] = res.Location
	}
	if res.Snapshot != "" {
		rec.Snapshot = res.Snapshot
	}
	if len(res.FailedChecks) > 0 {
		rec.Extra["failed_checks"] = res.FailedChecks
	}
	if res.EvidenceSeq > 0 {
		rec.Extra["evidence_seq"] = res.EvidenceSeq
	}
	if werr := a.AppendHistory(rec); werr != nil {
		a.Log.Warn("cannot record job history", "tenant", tenant, "err", werr)
	}
	return rec
}

// runRestoreTest runs the restore-test hook, records its verdict in the
// history and the kluis_restore_test_ok metric, and logs a FAIL at error
// level. A FAIL verdict is not retried (it is the result); a test that did
// not reach a verdict is (and also sets the metric to 0). A test cut off
// by shutdown is not recorded.
func (d *Daemon) runRestoreTest(ctx context.Context, tenant string, hook RestoreTestFunc) error {
	a := d.Appliance()
	log := d.log.With("tenant", tenant, "job", KindRestoreTest)
	started := d.clock.Now()
	res, err := hook(ctx, a, tenant)
	if err != nil && shutDown(ctx) {
		log.Warn("restore test interrupted: nothing recorded", "err", err)
		return err
	}
	err = timedOut(ctx, err)
	RecordRestoreTest(a, tenant, started, res, err)
	ok := err == nil && res.Passed
	d.metrics.SetRestoreTest(tenant, ok)
	switch {
	case err != nil:
		log.Error("restore test did not run to a verdict", "err", err, "location", res.Location, "evidence_seq", res.EvidenceSeq)
		return err
	case res.Cause != "":
		log.Error("restore test could not run: the test rig failed, not the backup (verdict ERROR)", "cause", res.Cause,
			"location", res.Location, "evidence_seq", res.EvidenceSeq)
		return nil
	case !res.Passed:
		log.Error("restore test FAILED", "failed_checks", strings.Join(res.FailedChecks, ","), "location", res.Location,
			"snapshot", res.Snapshot, "evidence_seq", res.EvidenceSeq)
		return nil
	}
	log.Info("restore test passed", "location", res.Location, "snapshot", res.Snapshot, "evidence_seq", res.EvidenceSeq,
		"seconds", d.clock.Now().Sub(started).Seconds())
	return nil
}

// jobRecord starts the job-history record of one job run; record, deferred
// with the job's error, stamps its time, outcome and duration and appends it
// (a history that cannot be written is logged, never fatal). The job may add
// to rec.Extra meanwhile.
func (d *Daemon) jobRecord(a *appliance.Appliance, tenant, kind string) (rec *appliance.Record, record func(error)) {
	started := d.clock.Now()
	rec = &appliance.Record{Tenant: tenant, Job: kind, Extra: map[string]any{}}
	return rec, func(err error) {
		rec.Time, rec.OK, rec.Duration = d.clock.Now().UTC(), err == nil, d.clock.Now().Sub(started).Seconds()
		if err != nil {
			rec.Error = err.Error()
		}
		if werr := a.AppendHistory(*rec); werr != nil {
			d.log.Warn("cannot record job history", "tenant", tenant, "err", werr)
		}
	}
}
