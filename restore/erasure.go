package restore

import (
	"context"
	"fmt"

	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore/dossier"
)

// ErasureResult reports erasures re-applied after a full restore.
type ErasureResult struct {
	Applied int   `json:"erasures_applied"`
	Rows    int64 `json:"rows_deleted"`
}

// ReapplyErasures deletes, from a database a full restore of snap has just
// loaded (target: a SQLite path or a PostgreSQL DSN), every dossier of the
// tenant erased after the snapshot was taken, children first, in one
// transaction. An erasure recorded before the snapshot started is already
// absent from it. Without a dossier profile it refuses when there is
// anything to re-apply.
func ReapplyErasures(ctx context.Context, snap repo.SnapshotInfo, profile *config.Dossier, erasures []dossier.Erasure, target string) (*ErasureResult, error) {
	m := snap.Manifest
	var todo []dossier.Erasure
	for _, e := range erasures {
		if e.Tenant == m.Tenant && e.Time.After(m.Started) {
			todo = append(todo, e)
		}
	}
	res := &ErasureResult{}
	if len(todo) == 0 {
		return res, nil
	}
	if profile == nil {
		return nil, fmt.Errorf("%d erasures recorded after snapshot %s cannot be re-applied: tenant %s has no dossier profile (docs/dossier.md); the restored database still holds erased dossiers", len(todo), snap.ID.Short(), m.Tenant)
	}
	tables, err := backup.Tables(m)
	if err != nil {
		return nil, err
	}
	plan, err := dossier.NewPlan(m.Engine, tables, profile)
	if err != nil {
		return nil, err
	}
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
