package main

import (
	"context"
	"fmt"

	"github.com/kluis-nl/kluis/repo"
)

// guardLatest refuses `--snapshot latest` on a partial view (a location
// that cannot be listed, or the ledger's newest committed snapshot gone):
// "latest" would silently roll back. --location names where to restore
// from; --allow-partial accepts the newest snapshot reachable and warns.
func guardLatest(ctx context.Context, g *globals, r *repo.Repo, snapshot, location string, allowPartial bool) error {
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
	return fmt.Errorf("restore refused: %w", gerr)
}
