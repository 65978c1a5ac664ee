package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/kluis-nl/kluis/repo"
)

// tenantSync is the sync of one tenant, for output.
type tenantSync struct {
	Tenant    string            `json:"tenant"`
	OK        bool              `json:"ok"`
	Error     string            `json:"error,omitempty"`
	Locations []repo.SyncResult `json:"locations,omitempty"`
}

// cmdSync copies to each location what it lacks (repo.Repo.Sync), for one
// tenant or all. Exit 0 when every location of every tenant is complete,
// 1 otherwise.
func cmdSync(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("sync", "[--tenant T]")
	tenant := fs.String("tenant", "", "sync only this tenant `id` (default: every tenant)")
	g.jsonFlag(fs)
	a, err := g.command(fs, args)
	if err != nil {
		return err
	}
	var tenants []string
	if *tenant != "" {
		if err := requireTenant(a, *tenant); err != nil {
			return err
		}
		tenants = []string{*tenant}
	} else {
		for _, t := range a.Cfg.Tenants {
			tenants = append(tenants, t.ID)
		}
	}
	var out []tenantSync
	failed := 0
	for _, t := range tenants {
		ts := syncTenant(ctx, g, t)
		if !ts.OK {
			failed++
		}
		out = append(out, ts)
		if ctx.Err() != nil {
			break
		}
	}
	if g.jsonOut {
		g.printJSON(map[string]any{"ok": failed == 0, "tenants": out})
	} else {
		for _, ts := range out {
			if ts.Error != "" {
				fmt.Fprintf(g.stdout, "tenant %s: FAILED: %s\n", ts.Tenant, ts.Error)
			}
			for _, l := range ts.Locations {
				verdict := "complete"
				if !l.Complete() {
					verdict = "INCOMPLETE"
				}
				fmt.Fprintf(g.stdout, "tenant %s, location %s: %s — copied %d objects (%s)", ts.Tenant, l.Location, verdict, l.Copied, humanBytes(l.Bytes))
				if l.Missing > 0 {
					fmt.Fprintf(g.stdout, ", %d still missing", l.Missing)
				}
				fmt.Fprintln(g.stdout)
				if l.Error != "" {
					fmt.Fprintln(g.stdout, "  error:", l.Error)
				}
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if failed > 0 {
		if !g.jsonOut {
			fmt.Fprintf(g.stderr, "kluis: sync incomplete for %d of %d tenants; run it again when the locations are reachable\n", failed, len(out))
		}
		return &silentError{code: exitFailed}
	}
	return nil
}

func syncTenant(ctx context.Context, g *globals, tenant string) tenantSync {
	ts := tenantSync{Tenant: tenant}
	a, err := g.appliance()
	if err != nil {
		ts.Error = err.Error()
		return ts
	}
	// Shared: sync only adds objects, as a backup does; prune excludes it.
	lock, err := a.Lock(ctx, tenant, false)
	if err != nil {
		ts.Error = err.Error()
		return ts
	}
	defer lock.Unlock()
	r, err := a.OpenRepo(ctx, tenant)
	if errors.Is(err, repo.ErrNotFound) {
		ts.OK = true // no repository anywhere yet: nothing to copy
		return ts
	}
	if err != nil {
		ts.Error = err.Error()
		return ts
	}
	res, err := r.Sync(ctx)
	ts.Locations = res
	if err != nil {
		ts.Error = err.Error()
		return ts
	}
	ts.OK = true
	for _, l := range res {
		ts.OK = ts.OK && l.Complete()
	}
	return ts
}
