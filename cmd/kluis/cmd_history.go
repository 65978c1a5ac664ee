package main

import (
	"context"
	"fmt"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/repo"
)

// guardLatest refuses `--snapshot latest` on a partial view (a location
// that cannot be listed, or the ledger's newest committed snapshot gone):
// "latest" would silently roll back. --location (restore) names where to
// restore from; --allow-partial accepts the newest snapshot reachable and
// warns. what names the command in the refusal ("restore", "dossier
// restore", …); restore, dossier show and dossier restore share it. g is
// only used for the warnings of --location and --allow-partial (nil for
// the portal, which has neither).
func guardLatest(ctx context.Context, g *globals, r *repo.Repo, what, snapshot, location string, allowPartial bool) error {
	if snapshot != "" && snapshot != "latest" {
		return nil
	}
	p, err := r.Presence(ctx)
	if err != nil {
		return err
	}
	gerr := p.LatestGuard()
	if gerr == nil {
		return nil
	}
	if location != "" {
		if _, ok := p.At[location]; !ok {
			return fmt.Errorf("--location %s cannot be listed: %s", location, p.Unreachable[location])
		}
		if n, ok := p.Ledger.Newest(); ok && !p.At[location][n.ID] {
			fmt.Fprintf(g.stderr, "warning: %s lacks the newest committed snapshot %s; restoring the newest snapshot it has\n", location, n.ID.Short())
		}
		return nil
	}
	if allowPartial {
		fmt.Fprintf(g.stderr, "warning: --allow-partial: %v\n", gerr)
		return nil
	}
	if what == "restore" {
		return fmt.Errorf("restore refused: %w (or --location NAME to restore the newest snapshot there)", gerr)
	}
	return fmt.Errorf("%s refused: %w", what, gerr)
}

// acknowledgeLost is `forget --acknowledge-lost`: the operator accepts
// that the ledger's committed snapshots that no location holds are gone.
// It refuses while a location cannot be listed (it may hold them).
func acknowledgeLost(ctx context.Context, g *globals, a *appliance.Appliance, tenant string, dryRun bool) error {
	lock, err := a.Lock(ctx, tenant, false)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	r, err := a.OpenRepo(ctx, tenant)
	if err != nil {
		return err
	}
	ids, err := r.AcknowledgeLost(ctx, dryRun)
	if err != nil {
		return err
	}
	out := make([]string, len(ids))
	for i, h := range ids {
		out[i] = h.String()
	}
	if g.jsonOut {
		return g.printJSON(map[string]any{"tenant": tenant, "acknowledged": out, "dry_run": dryRun})
	}
	verb := "acknowledged as lost"
	if dryRun {
		verb = "would acknowledge as lost"
	}
	for _, id := range out {
		fmt.Fprintf(g.stdout, "%s %s\n", verb, id[:8])
	}
	fmt.Fprintf(g.stdout, "%s %s\n", plural(len(out), "snapshot", "snapshots"), verb)
	return nil
}
