package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/display"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore"
	"github.com/kluis-nl/kluis/restore/dossier"
	"github.com/kluis-nl/kluis/source"
)

type restoreFlags struct {
	toDir, targetPath, targetDSN, targetDSNFile string
	force                                       bool
	replaceLive                                 string
	parallel                                    int
	override                                    string
	roles                                       source.RolesMode
}

// restoreFull restores a whole snapshot (cmdRestore) honouring the erasure
// register: a directory restore of a tenant with erasures is refused
// without --override-erasure (raw streams cannot have dossiers taken out);
// a database restore re-applies every erasure, also after a failed
// restore, and drops what it loaded when that is impossible.
func restoreFull(ctx context.Context, g *globals, a *appliance.Appliance, r *repo.Repo, snap repo.SnapshotInfo, erasures []dossier.Erasure, f restoreFlags) error {
	if f.toDir != "" {
		if len(erasures) > 0 && strings.TrimSpace(f.override) == "" {
			return fmt.Errorf("tenant %s has %d erased dossiers (AVG art. 17 register) and a directory restore writes the raw streams with them: restore into a database (erasures are re-applied) or give --override-erasure REASON only with a lawful ground", snap.Manifest.Tenant, len(erasures))
		}
		prog := newProgress(g, "restore "+snap.ID.Short())
		res, err := restore.ToDir(ctx, r, snap, f.toDir, func(done, total int64) { prog.update(done, total, "") })
		prog.done()
		if err != nil {
			return err
		}
		if g.jsonOut {
			return g.printJSON(res)
		}
		fmt.Fprintf(g.stdout, "restored snapshot %s: %s, %s, into %s\n", snap.ID.Short(), plural(len(res.Files), "file", "files"), humanBytes(res.Bytes), f.toDir)
		return nil
	}
	spec := appliance.TargetSpec{Engine: snap.Manifest.Engine, Path: f.targetPath, DSN: f.targetDSN, Force: f.force}
	if f.targetDSNFile != "" {
		var err error
		if spec.DSN, err = appliance.ReadDSN(f.targetDSNFile); err != nil {
			return err
		}
	}
	live, err := a.LiveTenant(ctx, spec)
	if err != nil {
		return err
	}
	if live == "" && spec.Engine != "sqlite" {
		// The same database under another address (a host alias, a port
		// forward or pooler, another IP of the server): compared by
		// identity, as dossier restore --into compares. A target that does
		// not exist yet (or does not answer) has none to compare.
		cctx, cancel := context.WithTimeout(ctx, targetIdentityTimeout)
		tid, err := dossier.DatabaseIdentity(cctx, engineFamily(spec.Engine), spec.DSN)
		cancel()
		if err == nil {
			if hit, _ := tenantsWithIdentity(ctx, a, tid, ""); len(hit) > 0 {
				live = hit[0]
			}
		}
	}
	if live != f.replaceLive {
		if live == "" {
			return usageErrorf("--replace-live %s: the target is not tenant %s's live database", f.replaceLive, f.replaceLive)
		}
		return usageErrorf("the target is the live database of tenant %s: restoring over it needs --replace-live %s", live, live)
	}
	target, err := appliance.Target(ctx, spec, r.FingerprintKey())
	if err != nil {
		return err
	}
	profile, _ := a.Cfg.DossierFor(snap.Manifest.Tenant)
	where := spec.Path
	if spec.Engine != "sqlite" {
		where = spec.DSN
	}
	prog := newProgress(g, "restore "+snap.ID.Short())
	// Whatever happens, no erased dossier stays in the target: the
	// register is re-applied also after a failed restore, and what was
	// loaded is dropped when that fails.
	res, er, err := restore.ToDatabaseErased(ctx, r, snap, target, restore.ErasedOptions{
		DBOptions: restore.DBOptions{Parallel: f.parallel, Roles: f.roles, Progress: func(done, total int) {
			prog.update(int64(done), int64(total), "tables")
		}},
		Profile: profile, Erasures: erasures, Where: where,
		Discard: func(ctx context.Context) error { return discardTarget(ctx, spec, r.FingerprintKey()) },
	})
	prog.done()
	if res != nil && g.jsonOut {
		g.printJSON(res)
	}
	if er != nil && (er.Applied > 0 || !g.jsonOut) {
		fmt.Fprintf(g.stderr, "re-applied %s of the register (%s deleted)\n", plural(er.Applied, "erasure", "erasures"), plural(int(er.Rows), "row", "rows"))
	}
	if err != nil {
		return err
	}
	if !g.jsonOut {
		fmt.Fprintf(g.stdout, "restored snapshot %s: %s, %s, %s in %s; every table's fingerprint matches the snapshot\n",
			snap.ID.Short(), plural(len(res.Tables), "table", "tables"), plural(int(res.Rows), "row", "rows"), humanBytes(res.Bytes), humanDuration(time.Duration(res.Duration*float64(time.Second))))
		if res.Privileges != nil {
			fmt.Fprintln(g.stdout, display.Text(res.Privileges.Summary()))
			for _, o := range res.Privileges.SkippedObjects {
				fmt.Fprintf(g.stdout, "  not restored: owner or privileges of %s\n", display.Escape(o))
			}
		}
	}
	return nil
}

// discardTarget removes what a restore loaded: a SQLite file (and its
// journal) is removed, a server database is dropped and created empty.
func discardTarget(ctx context.Context, spec appliance.TargetSpec, key []byte) error {
	if spec.Engine == "sqlite" {
		var errs []error
		for _, p := range []string{spec.Path, spec.Path + "-wal", spec.Path + "-shm", spec.Path + "-journal"} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	spec.Force = true
	t, err := appliance.Target(ctx, spec, key)
	if err != nil {
		return err
	}
	return t.Close()
}
