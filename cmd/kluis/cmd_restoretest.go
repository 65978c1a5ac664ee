package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/kluis-nl/kluis/display"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/daemon"
	"github.com/kluis-nl/kluis/evidence"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore/restoretest"
)

// restoreTestJSON is `restore-test --json`: the report, and where it was
// recorded (absent when it could not be written).
type restoreTestJSON struct {
	Report   *evidence.Report     `json:"report"`
	Evidence *restoreTestEvidence `json:"evidence,omitempty"`
}

type restoreTestEvidence struct {
	Seq       uint64                `json:"seq"`
	Hash      string                `json:"hash"`
	Dir       string                `json:"dir"`
	Locations []repo.LocationResult `json:"locations"`
}

// cmdRestoreTest proves that a snapshot restores (restore/restoretest):
// it reads everything from one location, restores into a scratch database,
// compares, probes, measures RTO and RPO, drops the scratch database and
// appends the signed report to the evidence log. Exit 0 on PASS, 1 on FAIL
// (or when the test could not run), 2 on a usage or configuration error.
func cmdRestoreTest(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("restore-test", "--tenant T [--snapshot ID] [--location NAME] [--json]")
	tenant := fs.String("tenant", "", "tenant `id`")
	snapshot := fs.String("snapshot", "latest", "snapshot `id` (a unique prefix) or latest, at the tested location")
	location := fs.String("location", "", "read from this `location` only (default: the one least recently tested, so locations alternate)")
	g.jsonFlag(fs)
	a, err := g.tenantCommand(fs, args, tenant)
	if err != nil {
		return err
	}
	if *location != "" {
		if _, err := a.Cfg.Location(*location); err != nil {
			return usageErrorf("--location: %v", err)
		}
	}
	if t, _ := a.Cfg.Tenant(*tenant); t.Engine == "files" {
		return usageErrorf("tenant %s has engine files: restore tests are for database tenants (use `kluis check --tenant %s --read-data`)", t.ID, t.ID)
	}
	store, err := restoreTestStore(a)
	if err != nil {
		return &configError{err}
	}
	sweepScratch(ctx, g.log, a)
	prog := newCheckProgress(g)
	started := time.Now()
	got, err := restoretest.RunAndRecord(ctx, a, store, restoretest.Options{
		Tenant: *tenant, Snapshot: *snapshot, Location: *location, Version: Version(), Log: g.log, Progress: prog.update,
	})
	prog.done()
	var se *restoretest.SetupError
	if errors.As(err, &se) {
		return &configError{err}
	}
	rep := got.Report
	if rep == nil {
		return err // could not start (the lock, the evidence log)
	}
	if ctx.Err() != nil {
		// Interrupted: not a verdict, so neither evidence nor history.
		return fmt.Errorf("restore test of %s interrupted before it finished: no report written, the scratch database was removed: %w", *tenant, ctx.Err())
	}
	// What `kluis status` and the daemon's metric read.
	daemon.RecordRestoreTest(a, *tenant, started, daemon.RestoreTestResultOf(got.Report, got.Record.Seq), err)
	var where []string
	for _, l := range got.Locations {
		if l.OK {
			where = append(where, l.Location)
		} else {
			where = append(where, l.Location+" FAILED ("+l.Error+"; `kluis sync` or the next restore test copies it)")
		}
	}
	if g.jsonOut {
		out := restoreTestJSON{Report: rep}
		if got.Record.Seq > 0 {
			out.Evidence = &restoreTestEvidence{Seq: got.Record.Seq, Hash: got.Record.Hash, Dir: store.Dir(), Locations: got.Locations}
		}
		if perr := g.printJSON(out); perr != nil {
			return perr
		}
	} else {
		printRestoreTest(g, rep)
	}
	if err != nil {
		return err
	}
	if got.Record.Seq > 0 && !g.jsonOut {
		fmt.Fprintf(g.stdout, "signed report: evidence record %d in %s", got.Record.Seq, store.Dir())
		if len(where) > 0 {
			fmt.Fprintf(g.stdout, ", copied to %s", strings.Join(where, ", "))
		}
		fmt.Fprintln(g.stdout)
	}
	if rep.Verdict == evidence.Error {
		return &silentError{code: exitNotRun}
	}
	if rep.Verdict != evidence.Pass {
		return &silentError{code: exitFailed}
	}
	return nil
}

// restoreTestStore opens the evidence log restore tests append to: signed
// with the appliance's key, copied to every location.
func restoreTestStore(a *appliance.Appliance) (*evidence.Store, error) {
	locs, err := a.Locations()
	if err != nil {
		return nil, err
	}
	s, _, err := evidenceStore(a, locs)
	return s, err
}

// printRestoreTest writes the check table and the verdict.
func printRestoreTest(g *globals, rep *evidence.Report) {
	snap := rep.Snapshot.ID
	if len(snap) > 8 {
		snap = snap[:8]
	}
	fmt.Fprintf(g.stdout, "restore test of %s, snapshot %s, read from %s\n", rep.Tenant, snap, rep.Location.Name)
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tOK\tTIME\tDETAIL")
	for _, c := range rep.Checks {
		ok := "ok"
		if !c.OK {
			ok = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, ok, evidence.Duration(c.Seconds), display.Escape(c.Detail))
	}
	tw.Flush()
	switch rep.Verdict {
	case evidence.Pass:
		fmt.Fprintln(g.stdout, "verdict: PASS")
	case evidence.Error:
		fmt.Fprintf(g.stdout, "verdict: ERROR: the test could not run, this is not a failed restore of the backup: %s\n", rep.Cause)
	default:
		fmt.Fprintf(g.stdout, "verdict: FAIL (%s)\n", strings.Join(rep.FailedChecks, ", "))
	}
}

// checkProgress shows a restore test's progress on a terminal, one line
// per check that reports any.
type checkProgress struct {
	g     *globals
	check string
	p     *progress
}

func newCheckProgress(g *globals) *checkProgress { return &checkProgress{g: g} }

func (c *checkProgress) update(check string, done, total int64) {
	if check != c.check {
		c.done()
		c.check, c.p = check, newProgress(c.g, "restore-test "+check)
	}
	note := ""
	if check == evidence.CheckRestore {
		note = fmt.Sprintf("%d of %d tables", done, total)
	}
	c.p.update(done, total, note)
}

func (c *checkProgress) done() {
	if c.p != nil {
		c.p.done()
	}
}
