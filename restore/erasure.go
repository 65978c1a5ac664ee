package restore

import (
	"context"
	"errors"
	"fmt"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore/dossier"
	"github.com/kluis-nl/kluis/source"
)

// ErasureResult reports erasures re-applied after a full restore.
type ErasureResult struct {
	Applied int   `json:"erasures_applied"`
	Rows    int64 `json:"rows_deleted"`
}

// ReapplyErasures deletes, from a database a restore of snap has just
// loaded (target: a SQLite path or a PostgreSQL or MariaDB DSN), every
// dossier of the tenant in the erasure register, whatever the date of its
// erasure, children first, in one transaction. The date is not trusted:
// a dossier erased "on" the day of the snapshot, a back-dated entry, or a
// dossier re-created after an earlier snapshot are all removed. Without a
// dossier profile it refuses when there is anything to re-apply.
func ReapplyErasures(ctx context.Context, snap repo.SnapshotInfo, profile *config.Dossier, erasures []dossier.Erasure, target string) (*ErasureResult, error) {
	m := snap.Manifest
	var todo []dossier.Erasure
	for _, e := range erasures {
		if e.Tenant == m.Tenant {
			todo = append(todo, e)
		}
	}
	res := &ErasureResult{}
	if len(todo) == 0 {
		return res, nil
	}
	if profile == nil {
		return nil, fmt.Errorf("%d erasures of tenant %s cannot be re-applied to snapshot %s: the tenant has no dossier profile (docs/dossier.md); the restored database still holds erased dossiers", len(todo), m.Tenant, snap.ID.Short())
	}
	tables, err := backup.Tables(m)
	if err != nil {
		return nil, err
	}
	plan, err := dossier.NewPlan(m.Engine, tables, profile)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	ids := todo[:0]
	for _, e := range todo {
		k, err := plan.KeyID(e.ID)
		if err != nil {
			return nil, fmt.Errorf("erasure register: %w", err)
		}
		if !seen[k] {
			seen[k] = true
			e.ID = k
			ids = append(ids, e)
		}
	}
	todo = ids
	t, err := dossier.OpenTarget(ctx, m.Engine, target, tables, dossier.ConflictFail)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	for _, e := range todo {
		n, err := plan.Erase(ctx, t, e.ID)
		if err != nil {
			return nil, fmt.Errorf("re-applying erasure %d of %d: %w", res.Applied+1, len(todo), err)
		}
		res.Applied++
		res.Rows += n
	}
	if err := t.Commit(ctx); err != nil {
		return nil, err
	}
	return res, nil
}

// ErasedOptions say how ToDatabaseErased honours the erasure register.
type ErasedOptions struct {
	DBOptions
	// Profile is the tenant's dossier profile (nil: none).
	Profile *config.Dossier
	// Erasures is the register (every tenant's entries may be given).
	Erasures []dossier.Erasure
	// Where is the target for ReapplyErasures: a SQLite path or a DSN.
	Where string
	// Discard removes what the restore loaded (drops the database, removes
	// the file). It runs when the register could not be re-applied.
	Discard func(ctx context.Context) error
}

// ToDatabaseErased is ToDatabase followed by ReapplyErasures, which also
// runs when the restore failed (a table that did not load is empty, one
// that did may hold an erased dossier) or was interrupted. When the
// register cannot be re-applied and the tenant has erasures, Discard
// removes the target: a restore never leaves an erased dossier behind.
// target is closed before the erasures are re-applied.
func ToDatabaseErased(ctx context.Context, r *repo.Repo, snap repo.SnapshotInfo, target source.Target, o ErasedOptions) (*DBResult, *ErasureResult, error) {
	res, err := ToDatabase(ctx, r, snap, target, o.DBOptions)
	if cerr := target.Close(); err == nil && cerr != nil {
		err = cerr
	}
	actx := context.WithoutCancel(ctx)
	er, rerr := ReapplyErasures(actx, snap, o.Profile, o.Erasures, o.Where)
	if rerr == nil {
		return res, er, err
	}
	if o.Discard == nil {
		return res, nil, errors.Join(err, fmt.Errorf("re-applying the erasure register: %w; THE TARGET MAY HOLD ERASED DOSSIERS: drop it", rerr))
	}
	if derr := o.Discard(actx); derr != nil {
		return res, nil, errors.Join(err, fmt.Errorf("re-applying the erasure register: %w", rerr), fmt.Errorf("dropping the target, which may hold erased dossiers: DROP IT BY HAND: %w", derr))
	}
	return res, nil, errors.Join(err, fmt.Errorf("re-applying the erasure register: %w; the target was dropped (it would have held erased dossiers)", rerr))
}
