package restoretest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore"
	"github.com/kluis-nl/kluis/source"
)

// Options say what a restore test tests and how it reports.
type Options struct {
	// Tenant is the tenant id (required).
	Tenant string
	// Snapshot is a snapshot id or unique prefix; empty or "latest" is the
	// newest snapshot at the tested location.
	Snapshot string
	// Location is the location to read from; empty picks the one least
	// recently tested according to Previous (PickLocation).
	Location string
	// Previous are earlier reports (the evidence log), for PickLocation.
	Previous []evidence.Report
	// Now is the clock of the report's times and of the RPO (default the
	// appliance's clock). Durations are measured on the real clock.
	Now func() time.Time
	// Progress, when set, is called as the fetch (bytes) and the restore
	// (tables) advance.
	Progress func(check string, done, total int64)
	// Log receives a line per failed check (default the appliance's).
	Log *slog.Logger
	// Version is the kluis version written into the report.
	Version string
	// ProbeTimeout bounds each probe (default DefaultProbeTimeout).
	ProbeTimeout time.Duration
	// Parallel is the number of tables restored at once (default 2).
	Parallel int
	// PackCacheBytes bounds the verified packs kept on disk under
	// policy.restore_test.scratch_dir between the fetch and the restore
	// (0: DefaultPackCacheBytes; negative: none, the restore reads every
	// pack from the location again).
	PackCacheBytes int64

	// beforeFingerprint, set by tests (export_test.go), runs on a writable
	// connection to the scratch database after the load and before the
	// first fingerprint.
	beforeFingerprint func(ctx context.Context, db *sql.DB) error
	// wrapTarget, set by tests (export_test.go), wraps the restore
	// target; db is a writable connection to the scratch database.
	wrapTarget func(tg source.Target, db *sql.DB) source.Target
	// beforeCheck, set by tests (export_test.go), runs as each check
	// starts: tests take the location away there.
	beforeCheck func(check string)
	// readBudget, set by tests (export_test.go), is the repository's
	// read budget (0: repo.DefaultReadBudget).
	readBudget int64
}

// dropTimeout bounds the removal of the scratch database, which runs even
// when the test's context has ended.
const dropTimeout = 2 * time.Minute

// CheckSchema: the restored objects (and, where the roles exist, owners and
// privileges) equal what the snapshot recorded; its detail says how many
// owner and privilege statements were skipped (object names only).
const CheckSchema = "schema"

// checkOrder is the order of a report's checks.
var checkOrder = []string{
	evidence.CheckSnapshot, evidence.CheckFetch, evidence.CheckRestore, evidence.CheckFingerprints,
	CheckSchema, evidence.CheckProbes, evidence.CheckRTO, evidence.CheckRPO, evidence.CheckStale, evidence.CheckDropScratch,
}

// Run runs one restore test and returns its report: verdict PASS when
// every check passed; ERROR when the test could not run because of the
// test rig — the tested location unreachable or gone (also mid-test), the
// restore-test server refusing the login, not answering or refusing to
// create the scratch database — with Cause naming the location or the
// server; else FAIL naming the failed checks. Every failure of the test
// itself is a report, not an error.
//
// Run returns an error without a report when the test cannot start: a
// *SetupError for the configuration (unknown tenant or location, a files
// tenant, no restore-test server configured for the engine, a server that
// is a tenant's own), or the tenant's lock not taken. It returns a report
// together with an error wrapping the context's error when the test was
// interrupted: the scratch database is dropped all the same, and callers
// do not record such a report as evidence.
func Run(ctx context.Context, a *appliance.Appliance, opts Options) (rep *evidence.Report, err error) {
	rt, err := prepare(ctx, a, opts)
	if err != nil {
		return nil, &SetupError{err}
	}
	lock, err := a.Lock(ctx, rt.t.ID, false)
	if err != nil {
		return nil, fmt.Errorf("restore test of %s: %w", rt.t.ID, err)
	}
	defer lock.Unlock()
	defer func() {
		if p := recover(); p != nil {
			rt.log.Error("restore test: internal error", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			rt.record(rt.current, false, 0, truncate(fmt.Sprintf("internal error: %v", p)))
			rt.abort = "skipped: internal error in " + rt.current
		}
		rt.dropScratch(ctx)
		if rt.rloc != nil {
			rt.rloc.remove()
		}
		rep = rt.finish()
		if cerr := ctx.Err(); cerr != nil {
			err = fmt.Errorf("restore test of %s interrupted: %w", rt.t.ID, cerr)
		}
	}()
	rt.checkSnapshot(ctx)
	rt.checkFetch(ctx)
	rt.checkRestore(ctx)
	rt.checkProbes(ctx)
	rt.checkRTO()
	rt.checkRPO()
	rt.checkStale()
	return nil, nil // the deferred function builds the report
}

// SetupError is returned by Run for a test that cannot start with this
// configuration (tenant, location, restore-test server).
type SetupError struct{ Err error }

func (e *SetupError) Error() string { return e.Err.Error() }
func (e *SetupError) Unwrap() error { return e.Err }

// run is one restore test in progress.
type run struct {
	a        *appliance.Appliance
	opts     Options
	t        *config.Tenant
	loc      config.Location
	log      *slog.Logger
	server   string   // restore-test server DSN (postgres, mariadb)
	secret   string   // its password, masked in details
	serverID identity // the restore-test server's identity
	settings string   // its role's settings before the test (serverSettings)

	rep     *evidence.Report
	started time.Time // real clock
	checks  map[string]evidence.Check
	current string // the check running (for a panic)
	abort   string // set when the remaining checks cannot run

	r          *repo.Repo
	snap       repo.SnapshotInfo
	snaps      []repo.SnapshotInfo
	scratch    scratch
	dropped    bool
	restoreDur time.Duration

	rloc *rigLocation // the tested location with its pack cache
	rig  string       // why the test rig failed (verdict ERROR)
}

// prepare resolves what is tested and refuses what cannot start.
func prepare(ctx context.Context, a *appliance.Appliance, opts Options) (*run, error) {
	if opts.Tenant == "" {
		return nil, errors.New("restore test: no tenant given")
	}
	t, err := a.Cfg.Tenant(opts.Tenant)
	if err != nil {
		return nil, err
	}
	switch t.Engine {
	case "sqlite", "postgres", "mariadb", "mysql":
	default:
		return nil, fmt.Errorf("tenant %s has engine %s: restore tests are for database tenants (check a files tenant with `kluis check --read-data`)", t.ID, t.Engine)
	}
	locName := opts.Location
	if locName == "" {
		locName = PickLocation(a.Cfg, t.ID, opts.Previous)
	}
	lc, err := a.Cfg.Location(locName)
	if err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = a.Now
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = a.Log
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.ProbeTimeout <= 0 {
		opts.ProbeTimeout = DefaultProbeTimeout
	}
	rt := &run{a: a, opts: opts, t: t, loc: *lc, checks: map[string]evidence.Check{},
		log: opts.Log.With("tenant", t.ID, "location", lc.Name, "job", "restore-test")}
	if fam := family(t.Engine); fam != "" {
		if rt.server, err = serverDSN(a.Cfg, fam); err != nil {
			return nil, fmt.Errorf("tenant %s (%s): %w", t.ID, t.Engine, err)
		}
		rt.secret = dsnPassword(fam, rt.server)
		if rt.serverID, err = checkServer(ctx, a.Cfg, fam, rt.server); err != nil {
			return nil, err
		}
		if rt.settings, err = serverSettings(ctx, fam, rt.server); err != nil {
			return nil, fmt.Errorf("%s: %s", serverField(fam), describe(err, rt.secret))
		}
	}
	rt.started = time.Now()
	rt.rep = &evidence.Report{
		Schema: evidence.Schema, Appliance: a.Cfg.Appliance.ID, Tenant: t.ID, Engine: t.Engine,
		Started:  opts.Now().UTC(),
		Location: EvidenceLocation(*lc),
		Kluis:    opts.Version,
		Tables:   []evidence.Table{}, Probes: []evidence.Probe{}, FailedChecks: []string{},
	}
	return rt, nil
}

// record sets a check's result.
func (rt *run) record(name string, ok bool, d time.Duration, detail string) {
	if name == "" {
		return
	}
	rt.checks[name] = evidence.Check{Name: name, OK: ok, Seconds: d.Seconds(), Detail: truncate(detail)}
	if !ok {
		rt.log.Warn("restore test check failed", "check", name, "detail", truncate(detail))
	} else {
		rt.log.Debug("restore test check passed", "check", name, "seconds", d.Seconds())
	}
}

// ok reports whether a check ran and passed.
func (rt *run) ok(name string) bool { return rt.checks[name].OK }

// ready reports whether a check can run: every check it needs passed and
// the test was not interrupted. Otherwise it records the check as skipped.
func (rt *run) ready(ctx context.Context, name string, needs ...string) bool {
	rt.current = name
	if h := rt.opts.beforeCheck; h != nil {
		h(name)
	}
	if rt.abort != "" {
		rt.record(name, false, 0, rt.abort)
		return false
	}
	for _, n := range needs {
		if !rt.ok(n) {
			rt.record(name, false, 0, "skipped: "+n+" failed")
			return false
		}
	}
	if ctx.Err() != nil {
		rt.record(name, false, 0, "skipped: interrupted")
		return false
	}
	return true
}

func (rt *run) fail(name string, t0 time.Time, err error) {
	if cause := rt.rigCause(name, err); cause != "" {
		rt.rig = cause
		rt.record(name, false, time.Since(t0), "could not run: "+cause)
		return
	}
	rt.record(name, false, time.Since(t0), describe(err, rt.secret))
}

// rigCause tells, for the first failed check that reads the location or
// uses the restore-test server, whether the test rig failed rather than
// the backup: the tested location's repository cannot be read at all (a
// probe after the failure, or a transport error seen during the test),
// or the restore-test server no longer answers. It returns "" for a
// failure of the backup.
func (rt *run) rigCause(name string, err error) string {
	if rt.rig != "" || errors.Is(err, context.Canceled) {
		return ""
	}
	for n, c := range rt.checks {
		if !c.OK && n != name {
			return "" // an earlier check failed: this one follows from it
		}
	}
	switch name {
	case evidence.CheckSnapshot, evidence.CheckFetch, evidence.CheckRestore:
	default:
		return ""
	}
	if rt.rloc != nil {
		// A repository missing from the start is a missing copy (FAIL); one
		// that was there at the snapshot check and is gone now, or a
		// location that does not answer, is the rig.
		if lerr := rt.rloc.locationGone(context.Background(), rt.t.ID); lerr != nil && (name != evidence.CheckSnapshot || !errors.Is(lerr, repo.ErrNotFound)) {
			return fmt.Sprintf("location %s %s during the %s check; the backup was not tested", rt.loc.Name, locationProblem(lerr), name)
		}
	} else if name == evidence.CheckSnapshot && !errors.Is(err, repo.ErrCorrupt) && !errors.Is(err, repo.ErrNotFound) && !errors.Is(err, repo.ErrWrongKey) {
		return fmt.Sprintf("location %s could not be opened (%s); the backup was not tested", rt.loc.Name, locationProblem(err))
	}
	if name == evidence.CheckRestore && rt.server != "" {
		if perr := probeServer(context.Background(), family(rt.t.Engine), rt.server); perr != nil {
			return perr.Error() + " during the restore check; the backup was not tested"
		}
	}
	return ""
}

// locationProblem words a location failure without its endpoint.
func locationProblem(err error) string {
	var oe *net.OpError
	switch {
	case errors.Is(err, repo.ErrNotFound):
		return "is gone (the tenant's repository is no longer there)"
	case errors.As(err, &oe) && oe.Err != nil:
		return "is unreachable: " + oe.Err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return "does not answer"
	case errors.Is(err, repo.ErrMisconfigured):
		return "refuses the request (a configuration problem: run `kluis config check --online`)"
	}
	return "is unreachable"
}

func (rt *run) progress(check string, done, total int64) {
	if rt.opts.Progress != nil {
		rt.opts.Progress(check, done, total)
	}
}

// checkSnapshot opens the repository at the tested location alone and
// finds the snapshot there.
func (rt *run) checkSnapshot(ctx context.Context) {
	const name = evidence.CheckSnapshot
	if !rt.ready(ctx, name) {
		return
	}
	t0 := time.Now()
	loc, err := appliance.OpenLocation(rt.a.Cfg, rt.loc)
	if err != nil {
		rt.fail(name, t0, err)
		return
	}
	// Verified packs wait on disk for the restore (one cache per tenant:
	// the tenant's lock is held, so a leftover one is a killed test's).
	max := rt.opts.PackCacheBytes
	if max == 0 {
		max = DefaultPackCacheBytes
	}
	cacheDir := ""
	if max > 0 {
		cacheDir = filepath.Join(rt.a.Cfg.Resolve(rt.a.Cfg.Policy.RestoreTest.ScratchDir), "packs-"+rt.t.ID)
		os.RemoveAll(cacheDir)
	}
	rloc, wrapped, err := newRigLocation(loc, cacheDir, max)
	if err != nil { // no room for a cache: the restore reads the location again
		rt.log.Warn("restore test without a pack cache", "err", err)
		rloc, wrapped, _ = newRigLocation(loc, "", 0)
	}
	rt.rloc, loc = rloc, wrapped
	mk, err := rt.a.MasterKey()
	if err != nil {
		rt.fail(name, t0, err)
		return
	}
	// Only the tested location: nothing may fall back to the other copy.
	rt.r, err = repo.Open(ctx, rt.t.ID, []repo.Location{loc}, repo.Options{Master: mk, Logger: rt.log, Now: rt.opts.Now})
	if err != nil {
		rt.fail(name, t0, err)
		return
	}
	rt.r.SetReadBudget(rt.opts.readBudget)
	if rt.snaps, err = rt.r.Snapshots(ctx); err != nil {
		rt.fail(name, t0, err)
		return
	}
	if rt.snap, err = rt.r.FindSnapshot(ctx, rt.opts.Snapshot); err != nil {
		rt.fail(name, t0, err)
		return
	}
	m := rt.snap.Manifest
	if m.Engine != rt.t.Engine && family(m.Engine) != family(rt.t.Engine) {
		rt.fail(name, t0, fmt.Errorf("snapshot %s is of engine %s, the tenant's is %s", rt.snap.ID.Short(), m.Engine, rt.t.Engine))
		return
	}
	tables, err := backup.Tables(m)
	if err != nil {
		rt.fail(name, t0, err)
		return
	}
	s := evidence.Snapshot{ID: rt.snap.ID.String(), Time: m.Started.UTC(), Tables: len(tables), Bytes: m.Bytes()}
	for _, tm := range tables {
		s.Rows += tm.Rows
	}
	rt.rep.Snapshot = s
	rt.record(name, true, time.Since(t0), fmt.Sprintf("snapshot %s of %s at %s: %d tables, %d rows, %d bytes",
		rt.snap.ID.Short(), m.Started.UTC().Format(time.RFC3339), rt.loc.Name, s.Tables, s.Rows, s.Bytes))
}

// checkFetch reads every blob of the snapshot from the tested location:
// each pack once, verified against its name, each blob decrypted and
// checked against its keyed ID.
func (rt *run) checkFetch(ctx context.Context) {
	const name = evidence.CheckFetch
	if !rt.ready(ctx, name, evidence.CheckSnapshot) {
		return
	}
	t0 := time.Now()
	st, err := fetchAll(ctx, rt.r, rt.snap.Manifest, func(done, total int64) { rt.progress(name, done, total) })
	if err != nil {
		rt.fail(name, t0, err)
		return
	}
	rt.record(name, true, time.Since(t0), fmt.Sprintf("%s, %s in %s, %d bytes read from %s and verified",
		plural(st.streams, "stream"), plural(st.blobs, "blob"), plural(st.packs, "pack"), st.bytes, rt.loc.Name))
}

// checkRestore creates the scratch database, restores the snapshot into
// it (restore.ToDatabase) and records the restore and fingerprints
// checks from that one pass.
func (rt *run) checkRestore(ctx context.Context) {
	const name = evidence.CheckRestore
	if !rt.ready(ctx, name, evidence.CheckSnapshot, evidence.CheckFetch) {
		rt.skipDependent(evidence.CheckFingerprints, name)
		return
	}
	t0 := time.Now()
	base := ledgerEntry{Server: rt.serverID.key, Name: ScratchName(rt.t.ID, rt.opts.Now()),
		Appliance: rt.a.Cfg.Appliance.ID, Tenant: rt.t.ID, Created: time.Now().UTC()}
	sc, err := newScratch(ctx, rt.t.Engine, base, rt.a.StateDir(),
		rt.a.Cfg.Resolve(rt.a.Cfg.Policy.RestoreTest.ScratchDir), rt.server)
	if sc != nil {
		rt.scratch = sc
	}
	if err != nil {
		rt.rig = fmt.Sprintf("%s could not create the scratch database: %s; the backup was not tested", rt.scratchWhere(), rt.scratchProblem(err))
		rt.record(name, false, time.Since(t0), "could not run: "+rt.rig)
		rt.skipDependent(evidence.CheckFingerprints, name)
		return
	}
	tg, err := appliance.Target(ctx, sc.Target(), rt.r.FingerprintKey())
	if err != nil {
		rt.fail(name, t0, err)
		rt.skipDependent(evidence.CheckFingerprints, name)
		return
	}
	w := &watchedTarget{Target: tg}
	if wrap := rt.opts.wrapTarget; wrap != nil {
		db, err := sc.Open(false)
		if err != nil {
			tg.Close()
			rt.fail(name, t0, fmt.Errorf("test hook: %w", err))
			rt.skipDependent(evidence.CheckFingerprints, name)
			return
		}
		defer db.Close()
		w.Target = wrap(tg, db)
	}
	if hook := rt.opts.beforeFingerprint; hook != nil {
		w.before = func(ctx context.Context) error {
			db, err := sc.Open(false)
			if err != nil {
				return err
			}
			defer db.Close()
			return hook(ctx, db)
		}
	}
	// A scratch server has none of the tenant's roles: owners and
	// privileges are skipped, and the schema check says which.
	res, err := restore.ToDatabase(ctx, rt.r, rt.snap, w, restore.DBOptions{Parallel: rt.opts.Parallel, Roles: source.RolesSkip,
		Progress: func(done, total int) { rt.progress(name, int64(done), int64(total)) }})
	end := time.Now()
	if cerr := tg.Close(); cerr != nil {
		rt.log.Warn("closing the restore target", "err", describe(cerr, rt.secret))
	}
	loaded, fpErr, hookErr := w.result()
	if hookErr != nil {
		rt.fail(name, t0, fmt.Errorf("test hook: %w", hookErr))
		rt.skipDependent(evidence.CheckFingerprints, name)
		return
	}
	if loaded.IsZero() { // the load itself failed
		rt.fail(name, t0, err)
		rt.skipDependent(evidence.CheckFingerprints, name)
		return
	}
	if eerr := rt.applyErasures(ctx, sc); eerr != nil {
		rt.fail(name, t0, eerr)
		rt.skipDependent(evidence.CheckFingerprints, name)
		return
	}
	rt.restoreDur = end.Sub(t0)
	rt.record(name, true, loaded.Sub(t0), fmt.Sprintf("restored into scratch database %s; %s", sc.Name(), rt.rloc.readStats()))

	rt.recordSchema(res)
	rt.current = evidence.CheckFingerprints
	fpDur := end.Sub(loaded)
	switch {
	case fpErr != nil:
		rt.record(evidence.CheckFingerprints, false, fpDur, describe(fpErr, rt.secret))
		return
	case err != nil && !errors.Is(err, restore.ErrFingerprintMismatch) && !errors.Is(err, restore.ErrSchemaMismatch):
		rt.record(evidence.CheckFingerprints, false, fpDur, describe(err, rt.secret))
		return
	}
	for _, tc := range res.Tables {
		rt.rep.Tables = append(rt.rep.Tables, evidence.Table{
			Name: tc.Table, Rows: tc.Rows, RowsRestored: tc.RowsRestored, Bytes: tc.Bytes,
			Fingerprint: string(tc.Expected), RestoredFingerprint: string(tc.Got), Match: tc.Match,
		})
	}
	if bad := res.Mismatches(); len(bad) > 0 {
		rt.record(evidence.CheckFingerprints, false, fpDur, fmt.Sprintf("%d of %d tables differ from the manifest: %s",
			len(bad), len(res.Tables), strings.Join(bad, ", ")))
		return
	}
	rt.record(evidence.CheckFingerprints, true, fpDur, fmt.Sprintf("all %d tables (%d rows) match the manifest's row counts and fingerprints",
		len(res.Tables), res.Rows))
}

// recordSchema records the schema check from a restore's result.
func (rt *run) recordSchema(res *restore.DBResult) {
	switch {
	case res == nil:
		rt.record(CheckSchema, false, 0, "skipped: the restore did not finish")
	case res.Schema == nil:
		rt.record(CheckSchema, true, 0, "not recorded: the snapshot holds no owners and privileges (not PostgreSQL, or taken before kluis recorded them)")
	default:
		detail := res.Schema.Summary()
		if p := res.Privileges; p != nil && p.Skipped > 0 {
			// Which, by kind and object (object names only: role names
			// stay out of the report).
			var kinds []string
			for _, k := range slices.Sorted(maps.Keys(p.SkippedKinds)) {
				kinds = append(kinds, fmt.Sprintf("%d %s", p.SkippedKinds[k], k))
			}
			detail += fmt.Sprintf(": %s, on %d objects: %s", strings.Join(kinds, ", "), len(p.SkippedObjects), strings.Join(p.SkippedObjects, ", "))
		}
		rt.record(CheckSchema, res.Schema.OK(), 0, detail)
	}
}

// skipDependent records a check that cannot run because name failed.
func (rt *run) skipDependent(check, name string) {
	if _, done := rt.checks[check]; !done {
		rt.record(check, false, 0, "skipped: "+name+" failed")
	}
}

// checkProbes runs the tenant's SQL probes on the scratch database.
func (rt *run) checkProbes(ctx context.Context) {
	const name = evidence.CheckProbes
	if !rt.ready(ctx, name, evidence.CheckRestore) {
		return
	}
	if len(rt.t.Probes) == 0 {
		rt.record(name, true, 0, "no probes configured (tenants[].probes)")
		return
	}
	t0 := time.Now()
	res, err := runProbes(ctx, rt.scratch, rt.t.Engine, rt.t.Probes, rt.opts.ProbeTimeout)
	if err != nil {
		rt.fail(name, t0, err)
		return
	}
	rt.rep.Probes = res
	var failed []string
	for _, p := range res {
		if !p.OK {
			failed = append(failed, p.Name+" ("+p.Detail+")")
		}
	}
	if len(failed) > 0 {
		rt.record(name, false, time.Since(t0), fmt.Sprintf("%d of %d probes failed: %s", len(failed), len(res), strings.Join(failed, "; ")))
		return
	}
	rt.record(name, true, time.Since(t0), fmt.Sprintf("%s returned the expected result", plural(len(res), "probe")))
}

// checkRTO compares the restore's duration (scratch database created,
// loaded and fingerprinted) with policy.restore_test.rto_target.
func (rt *run) checkRTO() {
	const name = evidence.CheckRTO
	target := rt.a.Cfg.Policy.RestoreTest.RTOTarget.D()
	rt.rep.RTO.TargetSeconds = target.Seconds()
	if !rt.ready(context.Background(), name, evidence.CheckRestore) {
		return
	}
	d := rt.restoreDur
	rt.rep.RTO.MeasuredSeconds = d.Seconds()
	rt.rep.RTO.OK = d <= target
	if !rt.rep.RTO.OK {
		rt.record(name, false, 0, fmt.Sprintf("restore took %s, over the RTO target %s", roundDur(d), roundDur(target)))
		return
	}
	rt.record(name, true, 0, fmt.Sprintf("restore took %s; target %s", roundDur(d), roundDur(target)))
}

// checkRPO measures the snapshot's age and the largest gap between
// snapshots at the tested location against policy.rpo_target.
func (rt *run) checkRPO() {
	const name = evidence.CheckRPO
	pol := rt.a.Cfg.Policy
	rt.rep.RPO.TargetSeconds = pol.RPOTarget.D().Seconds()
	if !rt.ready(context.Background(), name, evidence.CheckSnapshot) {
		return
	}
	times := make([]time.Time, len(rt.snaps))
	for i, s := range rt.snaps {
		times[i] = s.Manifest.Started
	}
	r, detail := measureRPO(rt.snap.Manifest.Started, times, rt.rep.Started, pol.RestoreTest.RPOWindow.D(), pol.RPOTarget.D())
	rt.rep.RPO = r
	rt.record(name, r.OK, 0, detail)
}

// dropScratch removes the scratch database, on a context of its own so
// that it also runs after cancellation, and records the check (once).
func (rt *run) dropScratch(ctx context.Context) {
	if rt.dropped {
		return
	}
	rt.dropped = true
	rt.current = evidence.CheckDropScratch
	// Run calls this from its deferred function, past its recover: a
	// panic here is caught here.
	defer func() {
		if p := recover(); p != nil {
			rt.log.Error("restore test: internal error dropping the scratch database: check for it by hand", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			rt.record(evidence.CheckDropScratch, false, 0, truncate(fmt.Sprintf("internal error: %v", p)))
		}
	}()
	if rt.scratch == nil {
		rt.record(evidence.CheckDropScratch, true, 0, "no scratch database was created")
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dropTimeout)
	defer cancel()
	t0 := time.Now()
	if err := rt.scratch.Drop(dctx); err != nil {
		rt.log.Error("scratch database NOT removed: the next sweep removes it (ledger in the state directory)", "scratch", rt.scratch.Name(), "err", describe(err, rt.secret))
		rt.record(evidence.CheckDropScratch, false, time.Since(t0), "scratch database "+rt.scratch.Name()+" not removed: "+describe(err, rt.secret))
		return
	}
	if fam := family(rt.t.Engine); fam != "" {
		after, err := serverSettings(dctx, fam, rt.server)
		if err == nil && after != rt.settings {
			err = errors.New("the restore-test role's settings (ALTER ROLE/DATABASE … SET) changed during the test: check them on the restore-test server")
		}
		if err != nil {
			rt.log.Error("restore-test server left changed", "err", describe(err, rt.secret))
			rt.record(evidence.CheckDropScratch, false, time.Since(t0), "scratch database "+rt.scratch.Name()+" removed, but "+describe(err, rt.secret))
			return
		}
	}
	rt.record(evidence.CheckDropScratch, true, time.Since(t0), "scratch database "+rt.scratch.Name()+" removed and verified gone")
}

// finish orders the checks, fills in the ones that never ran and sets the
// verdict.
func (rt *run) finish() *evidence.Report {
	rep := rt.rep
	rep.Finished = rep.Started.Add(time.Since(rt.started))
	rep.Checks = make([]evidence.Check, 0, len(checkOrder))
	for _, name := range checkOrder {
		c, ok := rt.checks[name]
		if !ok {
			reason := rt.abort
			if reason == "" {
				reason = "skipped: not run"
			}
			c = evidence.Check{Name: name, Detail: reason}
		}
		rep.Checks = append(rep.Checks, c)
		if !c.OK {
			rep.FailedChecks = append(rep.FailedChecks, name)
		}
	}
	rep.Verdict = evidence.Pass
	if len(rep.FailedChecks) > 0 {
		rep.Verdict = evidence.Fail
	}
	if rt.rig != "" {
		rep.Verdict, rep.Cause = evidence.Error, rt.rig
	}
	return rep
}

// watchedTarget is a restore target that notes when the load ended (the
// first fingerprint) and whether fingerprinting itself failed, so that the
// restore and fingerprints checks are told apart; before runs once, ahead
// of the first fingerprint (tests damage the scratch database there).
type watchedTarget struct {
	source.Target
	before func(ctx context.Context) error

	once    sync.Once
	mu      sync.Mutex
	loaded  time.Time
	hookErr error
	fpErr   error
}

func (w *watchedTarget) Fingerprint(ctx context.Context, t source.Table) (source.TableResult, error) {
	w.once.Do(func() {
		var err error
		if w.before != nil {
			err = w.before(ctx)
		}
		w.mu.Lock()
		w.loaded, w.hookErr = time.Now(), err
		w.mu.Unlock()
	})
	w.mu.Lock()
	hookErr := w.hookErr
	w.mu.Unlock()
	if hookErr != nil {
		return source.TableResult{}, hookErr
	}
	res, err := w.Target.Fingerprint(ctx, t)
	if err != nil {
		w.mu.Lock()
		if w.fpErr == nil {
			w.fpErr = err
		}
		w.mu.Unlock()
	}
	return res, err
}

// Unwrap lets restore.ToDatabase reach the target's optional capabilities
// (large objects, owners and privileges).
func (w *watchedTarget) Unwrap() source.Target { return w.Target }

func (w *watchedTarget) result() (loaded time.Time, fpErr, hookErr error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.loaded, w.fpErr, w.hookErr
}
