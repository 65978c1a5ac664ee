package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore"
	"github.com/kluis-nl/kluis/schedule"
	"github.com/kluis-nl/kluis/source"
)

// TenantStatus is one tenant's line in `kluis status`.
type TenantStatus struct {
	Tenant     string `json:"tenant"`
	Engine     string `json:"engine"`
	Discovered bool   `json:"discovered,omitempty"`
	// Gone is true for a tenant that was backed up and is no longer
	// declared or discovered, and no operator retired it yet: a problem.
	Gone bool `json:"gone,omitempty"`
	// LastSuccess is when the newest snapshot finished (zero: none).
	LastSuccess time.Time `json:"last_success,omitzero"`
	AgeSeconds  float64   `json:"age_seconds,omitempty"`
	Snapshot    string    `json:"snapshot,omitempty"`
	// Locations holds the newest snapshot; Copies counts snapshots per
	// location that could be listed; Unreachable names the locations that
	// could not (never shown as 0 snapshots).
	Locations   []string       `json:"locations"`
	Copies      map[string]int `json:"copies_per_location"`
	Unreachable []string       `json:"unreachable_locations,omitempty"`
	// Degraded is true when any snapshot is at fewer than
	// policy.required_copies locations or a location cannot be listed;
	// DegradedSnapshots counts the snapshots at too few locations, from the
	// listings and the ledger (every snapshot, not only the newest).
	Degraded          bool `json:"degraded"`
	DegradedSnapshots int  `json:"degraded_snapshots"`
	// Missing counts, per location, the snapshots another location or the
	// ledger has that it lacks; Lost counts committed snapshots at no
	// location (history erased).
	Missing map[string]int `json:"missing_per_location,omitempty"`
	Lost    int            `json:"lost_snapshots,omitempty"`
	NextRun time.Time      `json:"next_run,omitzero"`
	// RestoreTest is the last restore-test verdict: "passed", "failed" or
	// "never"; RestoreTestTime when it ran, RestoreTestLocation the
	// location it read from. A failed last test is a problem.
	RestoreTest         string    `json:"restore_test"`
	RestoreTestTime     time.Time `json:"restore_test_time,omitzero"`
	RestoreTestLocation string    `json:"restore_test_location,omitempty"`
	// LastBackupError is the error of the newest backup attempt when it
	// failed after the newest snapshot; WaitingOnLock is true when that
	// attempt gave up waiting for a table lock on the source
	// (policy.lock_timeout): it freed its job slot and is retried.
	LastBackupError string `json:"last_backup_error,omitempty"`
	WaitingOnLock   bool   `json:"waiting_on_lock,omitempty"`
	// Retention is the tenant's effective retention and RetentionSource
	// where it comes from: policy.retention, or an approved portal
	// request (docs/ops.md, "Retention").
	Retention       *config.Retention `json:"retention,omitempty"`
	RetentionSource string            `json:"retention_source,omitempty"`
	// RetentionPending is an approved change that shortens the tenant's
	// retention and takes effect at its Effective time
	// (policy.retention_shorten_delay) unless cancelled first with
	// `kluis retention cancel`; until then Retention holds.
	RetentionPending *appliance.RetentionChange `json:"retention_pending,omitempty"`
	// Problems make the status fail (exit 1); empty when all is well.
	Problems []string `json:"problems,omitempty"`
	// Warnings need attention but do not fail the status: the tenant's
	// scheduled restore test cannot run (no restore-test server).
	Warnings []string `json:"warnings,omitempty"`
}

// OK reports whether the tenant meets its RPO target and copy count.
func (s *TenantStatus) OK() bool { return len(s.Problems) == 0 }

// Report is the whole `kluis status`.
type Report struct {
	Time    time.Time      `json:"time"`
	OK      bool           `json:"ok"`
	Tenants []TenantStatus `json:"tenants"`
	// Errors are problems not tied to one tenant (a discovery server down).
	Errors []string `json:"errors,omitempty"`
	// Retired lists tenants an operator retired (`kluis tenants retire`):
	// gone, acknowledged, snapshots under retention.
	Retired []GoneTenant `json:"retired,omitempty"`
}

// Status reports every tenant (declared and discovered) from the
// repositories (snapshot manifests and where they are; no pack is read)
// and the job history (restore-test verdicts). A tenant fails when its
// newest snapshot is older than policy.rpo_target, missing, or at fewer
// than policy.required_copies locations, or when its last restore test
// failed (or could not run).
func Status(ctx context.Context, a *appliance.Appliance, now time.Time) *Report {
	rep := &Report{Time: now}
	if len(a.Cfg.Discover) > 0 {
		res := a.Discover(ctx)
		for _, err := range res.Errors {
			rep.Errors = append(rep.Errors, err.Error())
		}
		for _, c := range res.Collisions {
			rep.Errors = append(rep.Errors, "tenant discovery: "+c.Error())
		}
		a = a.WithTenants(res.Tenants)
	}
	hist, err := a.History()
	if err != nil {
		rep.Errors = append(rep.Errors, fmt.Sprintf("job history: %v", err))
	}
	lastTest := map[string]appliance.Record{}
	lastBackup := map[string]appliance.Record{}
	for _, r := range hist {
		if r.Job == KindRestoreTest && !r.Time.Before(lastTest[r.Tenant].Time) {
			lastTest[r.Tenant] = r
		}
		if r.Job == KindBackup && !r.Time.Before(lastBackup[r.Tenant].Time) {
			lastBackup[r.Tenant] = r
		}
	}
	// Every restore reads the erasure register and the access log against
	// their anchors: status is not ok when they cannot be verified.
	var reg *restore.Register
	if key, err := a.SigningKey(); err != nil {
		rep.Errors = append(rep.Errors, fmt.Sprintf("erasure register and access log cannot be verified: %v", err))
	} else {
		reg = &restore.Register{StateDir: a.StateDir(), Key: key, Appliance: a.Cfg.Appliance.ID}
	}
	rlog, chErr := a.ReadRetentionLog()
	if chErr != nil {
		rep.Errors = append(rep.Errors, fmt.Sprintf("approved retention changes: %v (retention forgets nothing until they verify)", chErr))
	}
	for i := range a.Cfg.Tenants {
		st := tenantStatus(ctx, a, &a.Cfg.Tenants[i], now, reg)
		if chErr == nil {
			eff := a.RetentionOf(rlog.InForce, st.Tenant)
			st.Retention, st.RetentionSource = &eff.Retention, eff.Source()
			st.RetentionPending = rlog.Pending[st.Tenant]
		}
		if r, ok := lastBackup[st.Tenant]; ok && !r.OK && r.Time.After(st.LastSuccess) {
			st.LastBackupError = r.Error
			when := r.Time.UTC().Format(time.RFC3339)
			// The record's flag; the text only for records of older
			// versions, which have none.
			lock, flagged := r.Extra[appliance.ExtraLockTimeout].(bool)
			if !flagged {
				lock = strings.Contains(r.Error, source.ErrLockTimeout.Error())
			}
			if lock {
				st.WaitingOnLock = true
				st.Problems = append(st.Problems, fmt.Sprintf("waiting on a table lock on the source: the backup at %s gave up after lock_timeout and will retry", when))
			} else {
				st.Problems = append(st.Problems, fmt.Sprintf("last backup attempt (%s) failed: %s", when, r.Error))
			}
		}
		if r, ok := lastTest[st.Tenant]; ok {
			st.RestoreTest, st.RestoreTestTime = "failed", r.Time
			if loc, ok := r.Extra["location"].(string); ok {
				st.RestoreTestLocation = loc
			}
			if r.OK {
				st.RestoreTest = "passed"
			} else {
				why := r.Error
				if why == "" {
					why = "restore test FAILED"
				}
				st.Problems = append(st.Problems, fmt.Sprintf("last restore test (%s) failed: %s", r.Time.UTC().Format(time.RFC3339), why))
			}
		}
		if p := verifyProblem(hist, st.Tenant); p != "" {
			st.Problems = append(st.Problems, p)
		}
		rep.Tenants = append(rep.Tenants, st)
	}
	// A tenant that vanished is a problem until retired; with a discovery
	// block failing we cannot tell vanished from unreachable (the error
	// already fails the report).
	if len(rep.Errors) == 0 {
		for _, g := range GoneTenants(a, hist) {
			if g.Retired {
				rep.Retired = append(rep.Retired, g)
				continue
			}
			rep.Tenants = append(rep.Tenants, TenantStatus{Tenant: g.Tenant, Gone: true, LastSuccess: g.LastBackup,
				Copies: map[string]int{}, Locations: []string{}, RestoreTest: "never", Problems: []string{goneProblem(g)}})
		}
	}
	rep.OK = len(rep.Errors) == 0
	for _, t := range rep.Tenants {
		if !t.OK() {
			rep.OK = false
		}
	}
	return rep
}

func tenantStatus(ctx context.Context, a *appliance.Appliance, t *config.Tenant, now time.Time, reg *restore.Register) TenantStatus {
	pol := a.Cfg.Policy
	st := TenantStatus{Tenant: t.ID, Engine: t.Engine, Discovered: t.Discovered, Copies: map[string]int{}, Locations: []string{}, RestoreTest: "never"}
	var spec schedule.Spec
	if Scheduled(t) {
		if sp, err := BackupSpec(a.Cfg, t, a.TimeZone()); err == nil {
			spec = sp
			st.NextRun = spec.Next(now)
		}
	}
	st.Problems = append(st.Problems, a.Cfg.TenantProblems()[t.ID]...)
	if gap := a.Cfg.RestoreTestGap(t); gap != "" {
		// With probes someone meant the tenant to be tested: a problem.
		if len(t.Probes) > 0 {
			st.Problems = append(st.Problems, gap)
		} else {
			st.Warnings = append(st.Warnings, gap)
		}
	}
	r, err := a.OpenRepo(ctx, t.ID)
	if errors.Is(err, repo.ErrNotFound) {
		st.Problems = append(st.Problems, "no repository yet (no backup has run)")
		return st
	}
	if err != nil {
		st.Problems = append(st.Problems, err.Error())
		return st
	}
	if reg != nil {
		if _, err := reg.Erasures(ctx, r); err != nil {
			st.Problems = append(st.Problems, fmt.Sprintf("erasure register and access log cannot be verified, so every restore of this tenant is refused: %v", err))
		}
	}
	// The newest snapshot only: one manifest, however long the history
	// (the snapshot time cache, docs/format.md).
	newest, err := r.FindSnapshot(ctx, "latest")
	if err != nil && !errors.Is(err, repo.ErrNotFound) {
		st.Problems = append(st.Problems, err.Error())
		return st
	}
	if p, err := r.Presence(ctx); err != nil {
		st.Problems = append(st.Problems, err.Error())
	} else {
		presenceStatus(&st, p, pol.RequiredCopies)
	}
	if err != nil {
		st.Problems = append(st.Problems, "no snapshot")
		return st
	}
	st.LastSuccess, st.Snapshot, st.Locations = newest.Manifest.Finished, newest.ID.Short(), newest.Locations
	if spec != nil {
		// The daemon runs an "@every" job its interval after the last
		// success (schedule.NextSlot).
		st.NextRun = schedule.NextSlot(spec, newest.Manifest.Finished, now)
	}
	age := now.Sub(newest.Manifest.Finished)
	st.AgeSeconds = age.Seconds()
	if rpo := pol.RPOTarget.D(); age > rpo {
		st.Problems = append(st.Problems, fmt.Sprintf("newest snapshot is %s old, over the RPO target %s", age.Round(time.Minute), rpo))
	}
	if len(newest.Locations) < pol.RequiredCopies && len(st.Unreachable) == 0 {
		st.Degraded = true
		st.Problems = append(st.Problems, fmt.Sprintf("newest snapshot is at %d of %d required locations", len(newest.Locations), pol.RequiredCopies))
	}
	return st
}

// presenceStatus fills in what the listings and the ledger say
// (repo.Presence): unreachable locations, snapshots at too few
// locations, snapshots missing per location, and lost history. Each is a
// problem.
func presenceStatus(st *TenantStatus, p *repo.Presence, required int) {
	for _, loc := range p.Locations {
		if set, ok := p.At[loc]; ok {
			st.Copies[loc] = len(set)
		} else {
			st.Unreachable = append(st.Unreachable, loc)
			st.Problems = append(st.Problems, fmt.Sprintf("location %s cannot be listed: %s", loc, p.Unreachable[loc]))
		}
	}
	under := p.UnderCopies(required)
	st.DegradedSnapshots = len(under)
	st.Degraded = degradedPresence(p, required)
	if len(under) > 0 && len(st.Unreachable) == 0 {
		st.Problems = append(st.Problems, fmt.Sprintf("%d snapshots at fewer than %d required locations (e.g. %s): the nightly reconcile or `kluis sync --tenant %s` copies them",
			len(under), required, under[0].Short(), st.Tenant))
	}
	for loc, hs := range p.Missing() {
		if len(hs) > 0 {
			if st.Missing == nil {
				st.Missing = map[string]int{}
			}
			st.Missing[loc] = len(hs)
		}
	}
	if lost := p.Lost(); len(lost) > 0 {
		st.Lost = len(lost)
		st.Problems = append(st.Problems, fmt.Sprintf("%d committed snapshots are at no location (history erased, e.g. %s): see `kluis check --tenant %s`",
			len(lost), lost[0].Short(), st.Tenant))
	}
	if p.LedgerErr != "" {
		st.Problems = append(st.Problems, "ledger: "+p.LedgerErr)
	}
}
