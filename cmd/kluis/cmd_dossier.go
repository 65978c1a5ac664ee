package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/display"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore"
	"github.com/kluis-nl/kluis/restore/dossier"
)

// dossierMemoryLimit is the soft heap limit of dossier commands.
const dossierMemoryLimit = 150 << 20

// operatorName is --operator, else the OS user.
func operatorName(flag string) string {
	if flag != "" {
		return flag
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

func signingKey(a *appliance.Appliance) (ed25519.PrivateKey, error) {
	k, err := repo.LoadSigningKey(a.Cfg.Resolve(a.Cfg.Appliance.SigningKeyFile))
	return k, a.KeyFileError(err)
}

// dossierSession is what show and restore share: the repo, the snapshot,
// the plan and the access-log record being filled in.
type dossierSession struct {
	a    *appliance.Appliance
	key  ed25519.PrivateKey
	reg  *restore.Register
	r    *repo.Repo
	snap repo.SnapshotInfo
	plan *dossier.Plan
	rec  dossier.Access
}

func openDossier(ctx context.Context, g *globals, a *appliance.Appliance, tenant, snapshot, id, operator, action string, allowPartial bool) (*dossierSession, error) {
	if err := requireTenant(a, tenant); err != nil {
		return nil, err
	}
	cid, err := dossier.CanonicalID(id)
	if err != nil {
		return nil, usageErrorf("--id: %v", err)
	}
	id = cid
	// Extraction holds only key sets; what grows is the repository's pack
	// cache and garbage. A soft limit keeps a dossier restore well under
	// 200 MB RSS on a busy appliance (GOMEMLIMIT overrides it).
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(dossierMemoryLimit)
	}
	profile, err := a.Cfg.DossierFor(tenant)
	if err != nil {
		return nil, &configError{err}
	}
	key, err := signingKey(a)
	if err != nil {
		return nil, err
	}
	reg, err := applianceRegister(a)
	if err != nil {
		return nil, err
	}
	s := &dossierSession{a: a, key: key, reg: reg, rec: dossier.Access{
		Time: a.Now().UTC(), Operator: operatorName(operator), Tenant: tenant, ID: id, Snapshot: snapshot, Action: action,
	}}
	if s.r, err = a.OpenRepo(ctx, tenant); err != nil {
		return s, err
	}
	// "latest" on a partial view would show or restore an older dossier
	// than the newest committed one, as restore guards.
	what := "dossier restore"
	if action == "show" {
		what = "dossier show"
	}
	if err = guardLatest(ctx, g, s.r, what, snapshot, "", allowPartial); err != nil {
		return s, err
	}
	if s.snap, err = s.r.FindSnapshot(ctx, snapshot); err != nil {
		return s, err
	}
	s.rec.Snapshot = s.snap.ID.String()
	tables, err := backup.Tables(s.snap.Manifest)
	if err != nil {
		return s, err
	}
	s.plan, err = dossier.NewPlan(s.snap.Manifest.Engine, tables, profile)
	return s, err
}

// erased returns the register's erasure of the session's dossier, if any.
// The register is checked against its anchors in the tenant's repository.
func (s *dossierSession) erased(ctx context.Context, id string) (dossier.Erasure, bool, error) {
	list, err := s.reg.Erasures(ctx, s.r)
	if err != nil {
		return dossier.Erasure{}, false, err
	}
	e, ok := s.plan.Erased(list, s.rec.Tenant, id)
	return e, ok, nil
}

// refuseErased fails for an erased dossier unless override gives a reason.
func (s *dossierSession) refuseErased(ctx context.Context, id, override string) error {
	e, erased, err := s.erased(ctx, id)
	if err != nil {
		return err
	}
	if erased && strings.TrimSpace(override) == "" {
		return fmt.Errorf("dossier %s of tenant %s was erased on %s (AVG art. 17 register): refusing to show or restore it; give --override-erasure REASON only with a lawful ground", display.Escape(id), s.rec.Tenant, e.Time.In(s.a.TimeZone()).Format("2006-01-02"))
	}
	return nil
}

// logAccess appends the access record with the command's outcome. The
// record is written even when the command failed; failing to write it
// fails the command.
func (s *dossierSession) logAccess(err error) error {
	if s == nil {
		return err
	}
	s.rec.Result = "ok"
	if err != nil {
		s.rec.Result = "failed: " + err.Error()
	}
	if lerr := s.reg.LogAccess(context.Background(), s.r, s.rec); lerr != nil {
		return errors.Join(err, fmt.Errorf("writing the dossier access log: %w", lerr))
	}
	return err
}

func cmdDossierShow(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("dossier show", "--tenant T --snapshot ID|latest --id K [--allow-partial] [--operator NAME] [--json]")
	tenant := fs.String("tenant", "", "tenant `id`")
	snapshot := fs.String("snapshot", "latest", "snapshot `id` (a unique prefix) or latest")
	id := fs.String("id", "", "the dossier's root key `value` (e.g. the client id)")
	operator := fs.String("operator", "", "who is looking (default: the OS user); recorded in the access log")
	reason := fs.String("reason", "", "why (recorded in the access log)")
	override := fs.String("override-erasure", "", "show an erased dossier anyway, for this `reason` (recorded)")
	allowPartial := fs.Bool("allow-partial", false, "with --snapshot latest: accept the newest snapshot reachable when a location cannot be listed or the newest committed one is gone")
	g.jsonFlag(fs)
	a, err := g.tenantCommand(fs, args, tenant)
	if err != nil {
		return err
	}
	s, err := openDossier(ctx, g, a, *tenant, *snapshot, *id, *operator, "show", *allowPartial)
	if s == nil {
		return err
	}
	s.rec.Reason, s.rec.Override = *reason, *override
	*id = s.rec.ID
	var res *dossier.Result
	if err == nil {
		err = s.refuseErased(ctx, *id, *override)
	}
	if err == nil {
		res, err = dossier.Extract(ctx, s.r, s.snap.Manifest, s.plan, *id, nil)
	}
	if err := s.logAccess(err); err != nil {
		return err
	}
	if g.jsonOut {
		return g.printJSON(map[string]any{"tenant": *tenant, "snapshot": s.snap.ID.String(), "dossier_id": *id, "tables": res.Tables, "rows": res.Rows, "shared": res.Shared})
	}
	fmt.Fprintf(g.stdout, "dossier %s of tenant %s in snapshot %s (%s): %s\n", display.Escape(*id), *tenant, s.snap.ID.Short(), humanTime(s.snap.Manifest.Started, a.TimeZone()), plural(int(res.Rows), "row", "rows"))
	for _, t := range res.Tables {
		fmt.Fprintf(g.stdout, "  %-40s %8d  member by %s\n", display.Escape(t.Table), t.Rows, display.Escape(t.Via))
	}
	fmt.Fprintln(g.stdout, readSummary(res))
	if len(res.Shared) > 0 {
		fmt.Fprintln(g.stdout, "shared rows it refers to (not part of the dossier; they must exist in a restore target):")
		for _, sh := range res.Shared {
			fmt.Fprintf(g.stdout, "  %-40s %8d  %s\n", display.Escape(sh.Table), len(sh.Keys), display.Escape(shortList(sh.Display, 10)))
		}
	}
	return nil
}

// readSummary says how much of the snapshot a dossier read: chunks read
// through row indexes, and which tables were read whole and why.
func readSummary(res *dossier.Result) string {
	var read, all int
	var whole []string
	for _, t := range res.Tables {
		read += t.ChunksRead
		all += t.Chunks
		if t.Read == "full" {
			whole = append(whole, t.Table+" ("+t.ReadReason+")")
		}
	}
	msg := fmt.Sprintf("read %d of %d chunks of the member tables", read, all)
	if len(whole) > 0 {
		msg += "; read whole: " + shortList(whole, 3)
	}
	return display.Escape(msg)
}

func shortList(xs []string, n int) string {
	if len(xs) <= n {
		return strings.Join(xs, "; ")
	}
	return strings.Join(xs[:n], "; ") + fmt.Sprintf("; … (%d more)", len(xs)-n)
}

func cmdDossierRestore(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("dossier restore", "--tenant T --snapshot ID|latest --id K --reason TEXT (--format sql|json --out FILE | --into PATH-OR-DSN | --into-dsn-file FILE) [--on-conflict fail|skip] [--triggers check|disable|fire] [--allow-partial]")
	tenant := fs.String("tenant", "", "tenant `id`")
	snapshot := fs.String("snapshot", "latest", "snapshot `id` (a unique prefix) or latest")
	id := fs.String("id", "", "the dossier's root key `value` (e.g. the client id)")
	reason := fs.String("reason", "", "why the dossier is restored (required; recorded in the access log)")
	operator := fs.String("operator", "", "who restores (default: the OS user); recorded in the access log")
	format := fs.String("format", "sql", "file `format`: sql or json")
	out := fs.String("out", "", "write the dossier to `FILE` (created; never overwritten)")
	into := fs.String("into", "", "insert into this live database: a sqlite `file`, or a postgres or mariadb DSN without a password")
	intoDSNFile := fs.String("into-dsn-file", "", "read the postgres or mariadb target DSN from `file` (mode 0600)")
	onConflict := fs.String("on-conflict", "fail", "rows that already exist in the target: fail or skip")
	triggers := fs.String("triggers", "check", "--into: the target's triggers fire and a changed row rolls back (`check`), rows go in as they were (disable), or triggers fire and changes are listed (fire)")
	override := fs.String("override-erasure", "", "restore an erased dossier anyway, for this `reason` (recorded)")
	allowPartial := fs.Bool("allow-partial", false, "with --snapshot latest: accept the newest snapshot reachable when a location cannot be listed or the newest committed one is gone")
	if err := g.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if strings.TrimSpace(*reason) == "" {
		return usageErrorf("--reason is required: say why this dossier is restored (it is recorded in the access log)")
	}
	n := 0
	for _, v := range []string{*out, *into, *intoDSNFile} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return usageErrorf("give exactly one of --out, --into, --into-dsn-file")
	}
	if *format != "sql" && *format != "json" {
		return usageErrorf("--format %q: want sql or json", *format)
	}
	oc := dossier.OnConflict(*onConflict)
	if oc != dossier.ConflictFail && oc != dossier.ConflictSkip {
		return usageErrorf("--on-conflict %q: want fail or skip", *onConflict)
	}
	tmode, err := dossier.ParseTriggerMode(*triggers)
	if err != nil {
		return usageErrorf("--triggers: %v", err)
	}
	if *into != "" && appliance.DSNHasPassword(*into) {
		return usageErrorf("--into must not carry a password (it would show in the process list and shell history): use --into-dsn-file, or PGPASSFILE/PGPASSWORD (postgres), MYSQL_PWD (mariadb)")
	}
	a, err := g.appliance()
	if err != nil {
		return err
	}
	if a, err = g.resolveTenant(ctx, a, *tenant); err != nil {
		return err
	}
	action := "restore-" + *format
	if *out == "" {
		action = "restore-into"
	}
	s, err := openDossier(ctx, g, a, *tenant, *snapshot, *id, *operator, action, *allowPartial)
	if s == nil {
		return err
	}
	s.rec.Reason, s.rec.Override = *reason, *override
	*id = s.rec.ID
	var summary string
	opts := dossier.IntoOptions{OnConflict: oc, Triggers: tmode}
	if err == nil && *out == "" {
		// Every tenant, discovered ones too, is compared with the target.
		all, derr := g.withDiscovered(ctx, a)
		if derr != nil {
			fmt.Fprintf(g.stderr, "kluis: warning: %v; the target is compared with the tenants found\n", derr)
		}
		opts.CheckTarget = targetGuard(all, s, g.stderr)
	}
	if err == nil {
		summary, err = dossierRestore(ctx, s, *id, *format, *out, *into, *intoDSNFile, opts, *override)
	}
	if err := s.logAccess(err); err != nil {
		return err
	}
	fmt.Fprintln(g.stdout, summary)
	return nil
}

func dossierRestore(ctx context.Context, s *dossierSession, id, format, out, into, intoDSNFile string, opts dossier.IntoOptions, override string) (string, error) {
	oc := opts.OnConflict
	if err := s.refuseErased(ctx, id, override); err != nil {
		return "", err
	}
	m := s.snap.Manifest
	if out != "" {
		f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", err
		}
		res, err := writeDossier(ctx, s, id, format, oc, f)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(out)
			return "", err
		}
		return fmt.Sprintf("wrote dossier %s (%s in %s, snapshot %s) to %s", id, plural(int(res.Rows), "row", "rows"), plural(len(res.Tables), "table", "tables"), s.snap.ID.Short(), filepath.Clean(out)), nil
	}
	where := into
	if intoDSNFile != "" {
		var err error
		if where, err = appliance.ReadDSN(intoDSNFile); err != nil {
			return "", err
		}
	}
	res, err := dossier.RestoreIntoWith(ctx, s.r, m, s.plan, id, where, opts)
	if err != nil {
		return "", err
	}
	ins, skip := res.Inserted, res.Skipped
	msg := fmt.Sprintf("restored dossier %s from snapshot %s: %s in %s inserted in one transaction", id, s.snap.ID.Short(), plural(int(ins), "row", "rows"), plural(len(res.Tables), "table", "tables"))
	if skip > 0 {
		msg += fmt.Sprintf(", %d already present and kept", skip)
	}
	msg += fmt.Sprintf("; every inserted row read back and compared with the snapshot (--triggers %s)", res.Triggers)
	for _, d := range res.Differences {
		msg += "\n  changed by the target (kept, --triggers fire): " + d.String()
	}
	return msg, nil
}
