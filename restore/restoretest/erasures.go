package restoretest

import (
	"context"
	"fmt"

	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore"
)

// applyErasures removes from the scratch database, right after the load
// and before any probe reads it, every dossier of the tenant in the
// appliance's erasure register (restore.ReapplyErasures), so that not even
// a scratch copy holds an erased dossier. The register is checked against
// its anchors in the tested location's repository. The fingerprints were
// already compared with the manifest during the load.
func (rt *run) applyErasures(ctx context.Context, sc scratch) error {
	key, err := repo.LoadSigningKey(rt.a.Cfg.Resolve(rt.a.Cfg.Appliance.SigningKeyFile))
	if err != nil {
		return fmt.Errorf("erasure register: %w", err)
	}
	reg := &restore.Register{StateDir: rt.a.StateDir(), Key: key, Appliance: rt.a.Cfg.Appliance.ID}
	list, err := reg.Erasures(ctx, rt.r)
	if err != nil {
		return fmt.Errorf("erasure register: %w", err)
	}
	if len(list) == 0 {
		return nil
	}
	profile, _ := rt.a.Cfg.DossierFor(rt.t.ID) // none: ReapplyErasures refuses
	spec := sc.Target()
	where := spec.Path
	if spec.Engine != "sqlite" {
		where = spec.DSN
	}
	res, err := restore.ReapplyErasures(ctx, rt.snap, profile, list, where)
	if err != nil {
		return fmt.Errorf("applying the erasure register to the scratch database: %w", err)
	}
	rt.log.Info("restore test: erasures applied to the scratch database", "erasures", res.Applied, "rows", res.Rows)
	return nil
}
