package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore"
	"github.com/kluis-nl/kluis/restore/dossier"
)

type restoreFlags struct {
	toDir, targetPath, targetDSN, targetDSNFile string
	force                                       bool
	replaceLive                                 string
	parallel                                    int
	override                                    string
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
		fmt.Fprintf(g.stdout, "restored snapshot %s: %d files, %s, into %s\n", snap.ID.Short(), len(res.Files), humanBytes(res.Bytes), f.toDir)
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
	prog := newProgress(g, "restore "+snap.ID.Short())
	res, err := restore.ToDatabase(ctx, r, snap, target, restore.DBOptions{Parallel: f.parallel, Progress: func(done, total int) {
		prog.update(int64(done), int64(total), "tables")
	}})
	prog.done()
	target.Close()
	if res != nil && g.jsonOut {
		g.printJSON(res)
	}
	// Whatever happened, no erased dossier stays in the target: re-apply
	// the register, and when that fails drop what was loaded.
	if rerr := reapplyErasures(context.WithoutCancel(ctx), g, a, snap, spec, erasures); rerr != nil {
		if len(erasures) == 0 {
			return errors.Join(err, rerr)
		}
		derr := discardTarget(context.WithoutCancel(ctx), spec, r.FingerprintKey())
		if derr != nil {
			return errors.Join(err, fmt.Errorf("re-applying the erasure register: %w", rerr), fmt.Errorf("dropping the target, which may hold erased dossiers: DROP IT BY HAND: %w", derr))
		}
		return errors.Join(err, fmt.Errorf("re-applying the erasure register: %w; the target was dropped (it would have held erased dossiers)", rerr))
	}
	if err != nil {
		return err
	}
	if !g.jsonOut {
		fmt.Fprintf(g.stdout, "restored snapshot %s: %d tables, %d rows, %s in %.1fs; every table's fingerprint matches the snapshot\n",
			snap.ID.Short(), len(res.Tables), res.Rows, humanBytes(res.Bytes), res.Duration)
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
