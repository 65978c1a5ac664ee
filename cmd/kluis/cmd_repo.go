package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore/dossier"
	"github.com/kluis-nl/kluis/source"
)

func cmdInit(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("init", "--tenant T")
	tenant := fs.String("tenant", "", "tenant `id`")
	g.jsonFlag(fs)
	a, err := g.tenantCommand(fs, args, tenant)
	if err != nil {
		return err
	}
	r, results, err := a.InitRepo(ctx, *tenant)
	if err != nil {
		return err
	}
	if g.jsonOut {
		g.printJSON(map[string]any{"tenant": *tenant, "repository": r.Config().ID, "locations": results})
	} else {
		fmt.Fprintf(g.stdout, "created repository %s for tenant %s: %s\n", r.Config().ID, *tenant, locationsText(results))
	}
	if n := countOK(results); n < a.Cfg.Policy.RequiredCopies {
		return &degradedError{fmt.Sprintf("repository created at %d of %d required locations; the next backup completes the others", n, a.Cfg.Policy.RequiredCopies)}
	}
	return nil
}

func countOK(rs []repo.LocationResult) int {
	n := 0
	for _, r := range rs {
		if r.OK {
			n++
		}
	}
	return n
}

type fileFlags []backup.Input

func (f *fileFlags) String() string { return "" }
func (f *fileFlags) Set(s string) error {
	name, path, ok := splitKV(s)
	if !ok {
		return fmt.Errorf("want NAME=PATH, got %q", s)
	}
	*f = append(*f, backup.Input{Name: name, Path: path})
	return nil
}

func cmdBackup(ctx context.Context, g *globals, args []string) (err error) {
	fs := g.flags("backup", "--tenant T [--file NAME=PATH ...] [--stdin NAME] [--rebind]")
	tenant := fs.String("tenant", "", "tenant `id`")
	rebind := fs.Bool("rebind", false, "accept a database other than the one the tenant is bound to (the practice's database really moved); it binds from then on")
	var files fileFlags
	fs.Var(&files, "file", "back up file `NAME=PATH` as stream NAME (repeatable; engine files)")
	stdin := fs.String("stdin", "", "back up standard input as stream `NAME` (engine files)")
	g.jsonFlag(fs)
	a, err := g.tenantCommand(fs, args, tenant)
	if err != nil {
		return err
	}
	t, _ := a.Cfg.Tenant(*tenant)
	var res *repo.Result
	// Every backup attempt is recorded, also one that failed before it
	// produced a result (a location, the lock, the repository).
	defer func() {
		if err != nil && res == nil {
			a.RecordBackup(t.ID, nil, err)
		}
	}()
	inputs := []backup.Input(files)
	if *stdin != "" {
		inputs = append(inputs, backup.Input{Name: *stdin, Reader: os.Stdin})
	}
	if t.Engine != "files" && len(inputs) > 0 {
		return usageErrorf("--file and --stdin are for tenants with engine files; %s has engine %s", t.ID, t.Engine)
	}
	lock, err := a.Lock(ctx, t.ID, false)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	r, err := a.OpenOrInitRepo(ctx, t.ID)
	if err != nil {
		return err
	}
	prog := newProgress(g, "backup "+t.ID)
	opts := a.BackupOptions()
	opts.Rebind = *rebind
	opts.Progress = func(s repo.Stats) {
		prog.update(s.Read, 0, fmt.Sprintf("%d streams, %s new", s.Streams, humanBytes(s.New)))
	}
	switch t.Engine {
	case "files":
		res, err = backup.Files(ctx, r, inputs, opts)
	default:
		eng, eerr := a.Engine(t, r.FingerprintKey())
		if eerr != nil {
			return eerr
		}
		res, err = backup.DatabaseIndexed(ctx, r, eng, opts, dossier.BackupIndex(a.Cfg, t.ID))
	}
	prog.done()
	if err == nil && res.Reseal.HasOld() {
		// The re-sealed packs' old copies go under the exclusive lock.
		lock.Unlock()
		a.FinishReseal(ctx, r, t.ID, res)
	}
	if res != nil {
		a.RecordBackup(t.ID, res, err)
	}
	if err != nil {
		return err
	}
	if g.jsonOut {
		g.printJSON(res)
	} else {
		s := res.Stats
		fmt.Fprintf(g.stdout, "snapshot %s of %s committed at %s\n", res.ID.Short(), t.ID, strings.Join(res.Committed, ", "))
		fmt.Fprintf(g.stdout, "  read %s in %s, new %s, stored %s in %s, %s\n",
			humanBytes(s.Read), plural(s.Streams, "stream", "streams"), humanBytes(s.New), humanBytes(s.Stored), plural(int(s.Packs), "pack", "packs"), humanDuration(res.Finished.Sub(res.Started)))
		switch rs := res.Reseal; {
		case !rs.Notable():
		case rs.Error != "":
			fmt.Fprintf(g.stdout, "  re-seal failed (the snapshot is committed as stored): %s\n", rs.Error)
		case rs.Skipped != "":
			fmt.Fprintf(g.stdout, "  not re-sealed: %s\n", rs.Skipped)
		default:
			fmt.Fprintf(g.stdout, "  re-sealed %s at zstd's best level: %s -> %s in %s; %s deleted", plural(rs.Packs, "pack", "packs"),
				humanBytes(rs.BytesBefore), humanBytes(rs.BytesAfter), humanDuration(time.Duration(rs.Seconds*float64(time.Second))), plural(rs.Dropped, "old pack", "old packs"))
			if rs.Retained > 0 {
				fmt.Fprintf(g.stdout, ", %d kept by Object Lock until their retention ends", rs.Retained)
			}
			if rs.DropError != "" {
				fmt.Fprintf(g.stdout, " (%s)", rs.DropError)
			}
			fmt.Fprintln(g.stdout)
		}
	}
	if res.Degraded(a.Cfg.Policy.RequiredCopies) {
		return &degradedError{fmt.Sprintf("snapshot %s is at %d of %d required locations (%s); %s",
			res.ID.Short(), len(res.Committed), a.Cfg.Policy.RequiredCopies, locationsText(res.Locations), repairAdvice(res.Locations, t.ID))}
	}
	return nil
}

func cmdSnapshots(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("snapshots", "--tenant T")
	tenant := fs.String("tenant", "", "tenant `id`")
	g.jsonFlag(fs)
	a, err := g.tenantCommand(fs, args, tenant)
	if err != nil {
		return err
	}
	r, err := a.OpenRepo(ctx, *tenant)
	if err != nil {
		return err
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return err
	}
	// Where each snapshot is comes from the same listings as status and
	// the metrics: an unreachable location is shown as such, not as
	// missing every snapshot.
	pres, err := r.Presence(ctx)
	if err != nil {
		return err
	}
	unreachable := slices.Sorted(maps.Keys(pres.Unreachable))
	type row struct {
		ID          string    `json:"id"`
		Started     time.Time `json:"started"`
		Finished    time.Time `json:"finished"`
		Engine      string    `json:"engine"`
		Streams     int       `json:"streams"`
		Bytes       int64     `json:"bytes"`
		Locations   []string  `json:"locations"`
		Degraded    bool      `json:"degraded"`
		Unreachable []string  `json:"unreachable_locations,omitempty"`
	}
	rows := make([]row, 0, len(snaps))
	for _, s := range snaps {
		rows = append(rows, row{s.ID.String(), s.Manifest.Started, s.Manifest.Finished, s.Manifest.Engine,
			len(s.Manifest.Streams), s.Manifest.Bytes(), s.Locations, len(s.Locations) < a.Cfg.Policy.RequiredCopies, unreachable})
	}
	if g.jsonOut {
		return g.printJSON(rows)
	}
	tz := a.TimeZone()
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tENGINE\tSTREAMS\tSIZE\tLOCATIONS")
	for _, r := range rows {
		locs := strings.Join(r.Locations, ",")
		if r.Degraded {
			locs += " (DEGRADED)"
		}
		for _, u := range r.Unreachable {
			locs += " " + u + ":unreachable"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", r.ID[:8], humanTime(r.Started, tz), r.Engine, r.Streams, humanBytes(r.Bytes), locs)
	}
	tw.Flush()
	fmt.Fprintln(g.stdout, plural(len(rows), "snapshot", "snapshots"))
	return nil
}

func cmdRestore(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("restore", "--tenant T --snapshot ID|latest (--to-dir DIR | --target-path FILE | --target-dsn DSN | --target-dsn-file FILE) [--location NAME] [--roles apply|skip] [--parallel N] [--force] [--json]")
	tenant := fs.String("tenant", "", "tenant `id`")
	snapshot := fs.String("snapshot", "latest", "snapshot `id` (a unique prefix) or latest")
	toDir := fs.String("to-dir", "", "write every stream to `DIR`/NAME (raw streams)")
	targetPath := fs.String("target-path", "", "restore a sqlite snapshot into a new database `file`")
	targetDSN := fs.String("target-dsn", "", "restore a postgres snapshot into this database (`DSN` without a password: use PGPASSFILE/PGPASSWORD or --target-dsn-file)")
	targetDSNFile := fs.String("target-dsn-file", "", "read the target DSN from `file` (mode 0600)")
	force := fs.Bool("force", false, "replace a non-empty target database")
	replaceLive := fs.String("replace-live", "", "the target is the live database of this `tenant`: replace it (refused otherwise)")
	override := fs.String("override-erasure", "", "restore to a directory although the tenant has erased dossiers, for this `reason` (recorded)")
	operator := fs.String("operator", "", "who restores (default: the OS user); recorded in the access log")
	reason := fs.String("reason", "", "why (recorded in the access log)")
	parallel := fs.Int("parallel", 2, "tables loaded at once")
	from := fs.String("location", "", "read from this `location` first")
	allowPartial := fs.Bool("allow-partial", false, "with --snapshot latest: accept the newest snapshot reachable when a location cannot be listed or the newest committed one is gone")
	rolesFlag := fs.String("roles", "apply", "owners and privileges (postgres): `apply` (every role they name must exist on the target) or skip (left out, and listed)")
	g.jsonFlag(fs)
	a, err := g.tenantCommand(fs, args, tenant)
	if err != nil {
		return err
	}
	roles, err := source.ParseRolesMode(*rolesFlag)
	if err != nil {
		return usageErrorf("--roles: %v", err)
	}
	targets := 0
	for _, s := range []string{*toDir, *targetPath, *targetDSN, *targetDSNFile} {
		if s != "" {
			targets++
		}
	}
	if targets != 1 {
		return usageErrorf("give exactly one of --to-dir, --target-path, --target-dsn, --target-dsn-file")
	}
	if *targetDSN != "" && appliance.DSNHasPassword(*targetDSN) {
		return usageErrorf("--target-dsn must not carry a password (it would show in the process list and shell history): use --target-dsn-file, PGPASSFILE or PGPASSWORD")
	}
	r, err := a.OpenRepo(ctx, *tenant)
	if err != nil {
		return err
	}
	if *from != "" {
		if err := r.Prefer(*from); err != nil {
			return usageErrorf("--location: %v", err)
		}
	}
	if err := guardLatest(ctx, g, r, "restore", *snapshot, *from, *allowPartial); err != nil {
		return err
	}
	snap, err := r.FindSnapshot(ctx, *snapshot)
	if err != nil {
		return err
	}
	// Every restore honours the whole erasure register (checked against
	// its anchors in the repository) and is recorded in the access log.
	reg, err := applianceRegister(a)
	if err != nil {
		return err
	}
	erasures, err := reg.Erasures(ctx, r)
	if err != nil {
		return err
	}
	rec := dossier.Access{Time: a.Now().UTC(), Operator: operatorName(*operator), Tenant: *tenant, ID: "*",
		Snapshot: snap.ID.String(), Action: "restore-full-db", Reason: *reason, Override: *override}
	if *toDir != "" {
		rec.Action = "restore-full-dir"
	}
	err = restoreFull(ctx, g, a, r, snap, erasures, restoreFlags{toDir: *toDir, targetPath: *targetPath, targetDSN: *targetDSN,
		targetDSNFile: *targetDSNFile, force: *force, replaceLive: *replaceLive, parallel: *parallel, override: *override, roles: roles})
	rec.Result = "ok"
	if err != nil {
		rec.Result = "failed: " + err.Error()
	}
	if lerr := reg.LogAccess(ctx, r, rec); lerr != nil {
		return errors.Join(err, fmt.Errorf("writing the dossier access log: %w", lerr))
	}
	return err
}

type locationFlags []string

func (f *locationFlags) String() string     { return strings.Join(*f, ",") }
func (f *locationFlags) Set(s string) error { *f = append(*f, s); return nil }

func cmdCheck(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("check", "--tenant T [--read-data] [--location NAME]")
	tenant := fs.String("tenant", "", "tenant `id`")
	readData := fs.Bool("read-data", false, "read every pack and verify every blob")
	var locs locationFlags
	fs.Var(&locs, "location", "check only this `location` (repeatable); it is proven on its own")
	g.jsonFlag(fs)
	a, err := g.tenantCommand(fs, args, tenant)
	if err != nil {
		return err
	}
	lock, err := a.Lock(ctx, *tenant, false)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	r, err := a.OpenRepo(ctx, *tenant)
	if err != nil {
		return err
	}
	prog := newProgress(g, "check")
	results, err := r.Check(ctx, repo.CheckOptions{ReadData: *readData, Locations: locs, Progress: func(loc string, done, total int) {
		prog.update(int64(done), int64(total), loc+" packs")
	}})
	prog.done()
	if err != nil {
		return err
	}
	failed := 0
	for _, c := range results {
		if !c.OK() {
			failed++
		}
	}
	if g.jsonOut {
		g.printJSON(map[string]any{"tenant": *tenant, "ok": failed == 0, "locations": results})
	} else {
		for _, c := range results {
			verdict := "ok"
			if !c.OK() {
				verdict = "FAILED"
			}
			fmt.Fprintf(g.stdout, "location %s: %s — %s, %s, %s", c.Location, verdict, plural(c.Snapshots, "snapshot", "snapshots"), plural(c.Indexes, "index", "indexes"), plural(c.Packs, "pack", "packs"))
			if *readData {
				fmt.Fprintf(g.stdout, ", %s read (%s)", plural(c.PacksRead, "pack", "packs"), humanBytes(c.BytesRead))
			}
			fmt.Fprintln(g.stdout)
			for _, e := range c.Errors {
				fmt.Fprintln(g.stdout, "  error:", e)
			}
			for _, w := range c.Warnings {
				fmt.Fprintln(g.stdout, "  warning:", w)
			}
			for _, n := range c.Notes {
				fmt.Fprintln(g.stdout, "  note:", n)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("check failed at %d of %s", failed, plural(len(results), "location", "locations"))
	}
	return nil
}

func cmdForget(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("forget", "--tenant T [--keep-daily N] [--keep-weekly N] [--keep-monthly N] [--keep-last N] [--prune] [--dry-run]")
	tenant := fs.String("tenant", "", "tenant `id`")
	keepLast := fs.Int("keep-last", -1, "keep the newest `N` snapshots (default: the tenant's retention, policy.retention or an approved change)")
	keepDaily := fs.Int("keep-daily", -1, "keep the newest snapshot of each of the last `N` days")
	keepWeekly := fs.Int("keep-weekly", -1, "keep the newest snapshot of each of the last `N` weeks")
	keepMonthly := fs.Int("keep-monthly", -1, "keep the newest snapshot of each of the last `N` months")
	doPrune := fs.Bool("prune", false, "prune after forgetting")
	dryRun := fs.Bool("dry-run", false, "say what would be removed, remove nothing")
	lost := fs.Bool("acknowledge-lost", false, "record the committed snapshots that are at no location (history erased) as forgotten, so check and status stop reporting them; nothing is deleted")
	g.jsonFlag(fs)
	a, err := g.tenantCommand(fs, args, tenant)
	if err != nil {
		return err
	}
	if *lost {
		return acknowledgeLost(ctx, g, a, *tenant, *dryRun)
	}
	// The tenant's retention: policy.retention or an approved change.
	eff, err := a.Retention(*tenant)
	if err != nil {
		return err
	}
	policy := daemonRetention(eff.Retention)
	for _, o := range []struct {
		flag *int
		dst  *int
	}{{keepLast, &policy.KeepLast}, {keepDaily, &policy.KeepDaily}, {keepWeekly, &policy.KeepWeekly}, {keepMonthly, &policy.KeepMonthly}} {
		if *o.flag >= 0 {
			*o.dst = *o.flag
		}
	}
	lock, err := a.Lock(ctx, *tenant, *doPrune && !*dryRun)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	r, err := a.OpenRepo(ctx, *tenant)
	if err != nil {
		return err
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return err
	}
	decisions, err := repo.ApplyRetention(snaps, policy, a.TimeZone())
	if err != nil {
		return usageErrorf("%v", err)
	}
	var remove []repo.Hash
	type row struct {
		ID      string    `json:"id"`
		Started time.Time `json:"started"`
		Keep    bool      `json:"keep"`
		Reasons []string  `json:"reasons,omitempty"`
	}
	var rows []row
	for _, d := range decisions {
		rows = append(rows, row{d.Snapshot.ID.String(), d.Snapshot.Manifest.Started, d.Keep, d.Reasons})
		if !d.Keep {
			remove = append(remove, d.Snapshot.ID)
		}
	}
	out := map[string]any{"tenant": *tenant, "snapshots": rows, "dry_run": *dryRun}
	if !*dryRun && len(remove) > 0 {
		if _, err := r.Forget(ctx, remove); err != nil {
			return err
		}
	}
	if *doPrune {
		if !*dryRun {
			lock.Unlock()
			if lock, err = a.Lock(ctx, *tenant, true); err != nil {
				return err
			}
			defer lock.Unlock()
		}
		pr, err := r.Prune(ctx, repo.PruneOptions{DryRun: *dryRun, Grace: time.Hour})
		if err != nil {
			return err
		}
		out["prune"] = pr
	}
	if g.jsonOut {
		return g.printJSON(out)
	}
	tz := a.TimeZone()
	for _, rw := range rows {
		verdict := "remove"
		if rw.Keep {
			verdict = "keep (" + strings.Join(rw.Reasons, ", ") + ")"
		}
		fmt.Fprintf(g.stdout, "%s  %s  %s\n", rw.ID[:8], humanTime(rw.Started, tz), verdict)
	}
	verb := "removed"
	if *dryRun {
		verb = "would remove"
	}
	fmt.Fprintf(g.stdout, "%s %d of %s\n", verb, len(remove), plural(len(rows), "snapshot", "snapshots"))
	if pr, ok := out["prune"].(*repo.PruneResult); ok {
		fmt.Fprintf(g.stdout, "prune: %s %s (%s), kept %d\n", verb, plural(pr.PacksDeleted, "pack", "packs"), humanBytes(pr.BytesFreed), pr.PacksKept)
	}
	return nil
}

func cmdPrune(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("prune", "--tenant T [--dry-run]")
	tenant := fs.String("tenant", "", "tenant `id`")
	dryRun := fs.Bool("dry-run", false, "say what would be deleted, delete nothing")
	grace := fs.Duration("grace", time.Hour, "keep unindexed packs younger than this (written by a backup outside this appliance's lock)")
	g.jsonFlag(fs)
	a, err := g.tenantCommand(fs, args, tenant)
	if err != nil {
		return err
	}
	lock, err := a.Lock(ctx, *tenant, !*dryRun)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	r, err := a.OpenRepo(ctx, *tenant)
	if err != nil {
		return err
	}
	pr, err := r.Prune(ctx, repo.PruneOptions{DryRun: *dryRun, Grace: *grace})
	if err != nil {
		return err
	}
	if g.jsonOut {
		return g.printJSON(pr)
	}
	verb := "deleted"
	if *dryRun {
		verb = "would delete"
	}
	fmt.Fprintf(g.stdout, "prune: %s %s (%s) and %s; kept %s for %s\n",
		verb, plural(pr.PacksDeleted, "pack", "packs"), humanBytes(pr.BytesFreed), plural(pr.IndexesDeleted, "index object", "index objects"),
		plural(pr.PacksKept, "pack", "packs"), plural(pr.Snapshots, "snapshot", "snapshots"))
	return nil
}

// progress prints a one-line progress bar on a terminal, nothing otherwise
// (logs carry progress for machines).
type progress struct {
	w       io.Writer
	label   string
	on      bool
	last    time.Time
	started time.Time
}

func newProgress(g *globals, label string) *progress {
	return &progress{w: g.stderr, label: label, on: isTerminal(g.stderr) && !g.jsonOut, started: time.Now()}
}

func (p *progress) update(done, total int64, note string) {
	if !p.on || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	rate := float64(done) / time.Since(p.started).Seconds() / (1 << 20)
	if total > 0 && total > done/1 {
		pct := float64(done) / float64(total)
		bar := strings.Repeat("#", int(pct*30)) + strings.Repeat(".", 30-int(pct*30))
		fmt.Fprintf(p.w, "\r%s [%s] %3.0f%% %s", p.label, bar, pct*100, note)
		return
	}
	fmt.Fprintf(p.w, "\r%s: %s (%.0f MiB/s) %s   ", p.label, humanBytes(done), rate, note)
}

func (p *progress) done() {
	if p.on && !p.last.IsZero() {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

var _ = errors.New
