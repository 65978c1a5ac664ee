package main

import (
	"context"
	"errors"
	"fmt"
	"os"

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
// tenant or all; without --tenant also the evidence log's reports. Exit 0
// when every location is complete, 1 otherwise.
func cmdSync(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("sync", "[--tenant T] [--repair] [--json]")
	tenant := fs.String("tenant", "", "sync only this tenant `id` (default: every tenant)")
	repair := fs.Bool("repair", false, "first read every object at every location (as check --read-data) and replace each damaged copy with a good one from another location")
	g.jsonFlag(fs)
	a, err := g.command(fs, args)
	if err != nil {
		return err
	}
	var tenants []string
	if *tenant != "" {
		if _, err := g.resolveTenant(ctx, a, *tenant); err != nil {
			return err
		}
		tenants = []string{*tenant}
	} else {
		// Every tenant the daemon backs up, discovered ones included; a
		// failed discover block is said, not skipped silently.
		var derr error
		if a, derr = g.withDiscovered(ctx, a); derr != nil {
			fmt.Fprintf(g.stderr, "warning: %s: its tenants are not synced\n", derr)
		}
		for _, t := range a.Cfg.Tenants {
			tenants = append(tenants, t.ID)
		}
	}
	var out []tenantSync
	failed := 0
	for _, t := range tenants {
		ts := syncTenant(ctx, g, t, repo.SyncOptions{Repair: *repair})
		if !ts.OK {
			failed++
		}
		out = append(out, ts)
		if ctx.Err() != nil {
			break
		}
	}
	// The evidence log too: a location that missed a report gets it.
	var evidenceRes []repo.LocationResult
	var evidenceErr error
	if *tenant == "" && ctx.Err() == nil {
		evidenceRes, evidenceErr = syncEvidence(ctx, g)
		if evidenceErr != nil {
			failed++
		}
		for _, l := range evidenceRes {
			if !l.OK {
				failed++
			}
		}
	}
	if g.jsonOut {
		doc := map[string]any{"ok": failed == 0, "tenants": out, "evidence": evidenceRes}
		if evidenceErr != nil {
			doc["evidence_error"] = evidenceErr.Error()
		}
		g.printJSON(doc)
	} else {
		if evidenceErr != nil {
			fmt.Fprintf(g.stdout, "evidence: FAILED: %v\n", evidenceErr)
		}
		for _, l := range evidenceRes {
			if l.OK {
				fmt.Fprintf(g.stdout, "evidence, location %s: complete\n", l.Location)
			} else {
				fmt.Fprintf(g.stdout, "evidence, location %s: INCOMPLETE: %s\n", l.Location, l.Error)
			}
		}
		for _, ts := range out {
			if ts.Error != "" {
				fmt.Fprintf(g.stdout, "tenant %s: FAILED: %s\n", ts.Tenant, ts.Error)
			}
			for _, l := range ts.Locations {
				verdict := "complete"
				if !l.Complete() {
					verdict = "INCOMPLETE"
				}
				fmt.Fprintf(g.stdout, "tenant %s, location %s: %s — copied %s (%s)", ts.Tenant, l.Location, verdict, plural(l.Copied, "object", "objects"), humanBytes(l.Bytes))
				if l.Repaired > 0 {
					fmt.Fprintf(g.stdout, ", repaired %s", plural(l.Repaired, "damaged copy", "damaged copies"))
				}
				if l.Missing > 0 {
					fmt.Fprintf(g.stdout, ", %d still missing", l.Missing)
				}
				if l.Damaged > 0 {
					fmt.Fprintf(g.stdout, ", %d still damaged", l.Damaged)
				}
				if l.Planted > 0 {
					fmt.Fprintf(g.stdout, ", %s (check names them; remove by hand)", plural(l.Planted, "planted object", "planted objects"))
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
			fmt.Fprintf(g.stderr, "kluis: sync incomplete (%d of %s, or the evidence log, see above); run it again when the locations are reachable\n", failed, plural(len(out), "tenant", "tenants"))
		}
		return &silentError{code: exitFailed}
	}
	return nil
}

// syncEvidence copies to every location the restore-test reports it
// lacks. An appliance without a signing key yet has no evidence to copy.
func syncEvidence(ctx context.Context, g *globals) ([]repo.LocationResult, error) {
	a, err := g.appliance()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(a.Cfg.Resolve(a.Cfg.Appliance.SigningKeyFile)); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	store, err := restoreTestStore(a)
	if err != nil {
		return nil, err
	}
	return store.Sync(ctx)
}

func syncTenant(ctx context.Context, g *globals, tenant string, opts repo.SyncOptions) tenantSync {
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
	res, err := r.SyncWith(ctx, opts)
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
