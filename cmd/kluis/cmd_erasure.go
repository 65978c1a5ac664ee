package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/backup"
	"github.com/kluis-nl/kluis/display"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/restore"
	"github.com/kluis-nl/kluis/restore/dossier"
)

func cmdErasureAdd(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("erasure add", "--tenant T --id K --reason TEXT [--date YYYY-MM-DD] [--operator NAME]")
	tenant := fs.String("tenant", "", "tenant `id`")
	id := fs.String("id", "", "the erased dossier's root key `value`")
	reason := fs.String("reason", "", "the request or ground (required)")
	date := fs.String("date", "", "when the dossier was erased from the live database (`YYYY-MM-DD`, appliance time zone; default now)")
	operator := fs.String("operator", "", "who records it (default: the OS user)")
	if err := g.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if strings.TrimSpace(*reason) == "" {
		return usageErrorf("--id and --reason are required")
	}
	cid, err := dossier.CanonicalID(*id)
	if err != nil {
		return usageErrorf("--id: %v", err)
	}
	a, err := g.appliance()
	if err != nil {
		return err
	}
	if a, err = g.resolveTenant(ctx, a, *tenant); err != nil {
		return err
	}
	tz := a.TimeZone()
	when := a.Now().UTC()
	if *date != "" {
		d, err := time.ParseInLocation("2006-01-02", strings.TrimSpace(*date), tz)
		if err != nil {
			return usageErrorf("--date %q: want YYYY-MM-DD (appliance time zone %s)", *date, tz)
		}
		if d.After(a.Now()) {
			return usageErrorf("--date %s is in the future (appliance time zone %s)", d.Format("2006-01-02"), tz)
		}
		when = d.UTC()
	}
	reg, err := applianceRegister(a)
	if err != nil {
		return err
	}
	r, err := a.OpenRepo(ctx, *tenant)
	if err != nil {
		return err
	}
	// The id as the tenant's key column holds it (042 is 42 in an integer
	// column), from the newest snapshot when there is one.
	if profile, perr := a.Cfg.DossierFor(*tenant); perr == nil && profile != nil {
		if snap, err := r.FindSnapshot(ctx, "latest"); err == nil {
			if tables, err := backup.Tables(snap.Manifest); err == nil {
				if plan, err := dossier.NewPlan(snap.Manifest.Engine, tables, profile); err == nil {
					if cid, err = plan.KeyID(cid); err != nil {
						return usageErrorf("--id: %v", err)
					}
				}
			}
		}
	}
	list, err := reg.Erasures(ctx, r)
	if err != nil {
		return err
	}
	for _, e := range list {
		if e.ID == cid {
			fmt.Fprintf(g.stdout, "dossier %s of tenant %s is already in the erasure register (recorded %s)\n", display.Escape(cid), *tenant, humanTime(e.Time, tz))
			return nil
		}
	}
	rs, err := reg.AddErasure(ctx, r, dossier.Erasure{Tenant: *tenant, ID: cid, Time: when, Reason: *reason, Operator: operatorName(*operator)})
	if err != nil {
		return err
	}
	for _, res := range rs {
		if !res.OK {
			fmt.Fprintf(g.stderr, "warning: the erasure is recorded but its anchor did not reach location %s (run kluis sync): %s\n", res.Location, res.Error)
		}
	}
	fmt.Fprintf(g.stdout, "recorded the erasure of dossier %s of tenant %s on %s; restoring it is now refused and every restore removes it\n", display.Escape(cid), *tenant, humanTime(when, tz))
	return nil
}

func cmdErasureList(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("erasure list", "[--tenant T] [--json]")
	tenant := fs.String("tenant", "", "only this tenant")
	g.jsonFlag(fs)
	a, err := g.command(fs, args)
	if err != nil {
		return err
	}
	reg, err := applianceRegister(a)
	if err != nil {
		return err
	}
	// A deleted or shortened register must not list as "no erasures":
	// check it against its anchors in the tenants' repositories.
	if err := checkAnchors(ctx, a, reg, *tenant); err != nil {
		return err
	}
	ring, err := reg.Ring()
	if err != nil {
		return err
	}
	list, err := dossier.Erasures(a.StateDir(), reg.Appliance, ring)
	if err != nil {
		return err
	}
	var out []dossier.Erasure
	for _, e := range list {
		if *tenant == "" || e.Tenant == *tenant {
			out = append(out, e)
		}
	}
	if g.jsonOut {
		return g.printJSON(out)
	}
	for _, e := range out {
		fmt.Fprintf(g.stdout, "%s  %-16s %-12s %-12s %s\n", humanTime(e.Time, a.TimeZone()), e.Tenant, display.Escape(e.ID), display.Escape(e.Operator), display.Escape(e.Reason))
	}
	if len(out) == 0 {
		fmt.Fprintln(g.stdout, "no erasures recorded")
	}
	return nil
}

// applianceRegister is the appliance's erasure register and access log,
// whose checkpoints the configured witnesses cosign.
func applianceRegister(a *appliance.Appliance) (*restore.Register, error) {
	key, err := signingKey(a)
	if err != nil {
		return nil, err
	}
	ws, err := witnessClients(a)
	if err != nil {
		return nil, err
	}
	return &restore.Register{StateDir: a.StateDir(), Key: key, Appliance: a.Cfg.Appliance.ID, Witnesses: ws, Now: a.Now}, nil
}

func cmdErasureRecover(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("erasure recover", "[--json]")
	g.jsonFlag(fs)
	a, err := g.command(fs, args)
	if err != nil {
		return err
	}
	reg, err := applianceRegister(a)
	if err != nil {
		return err
	}
	var repos []*repo.Repo
	for _, t := range a.Cfg.Tenants {
		r, err := a.OpenRepo(ctx, t.ID)
		if err != nil {
			return fmt.Errorf("tenant %s: %w", t.ID, err)
		}
		repos = append(repos, r)
	}
	n, err := reg.Recover(ctx, repos)
	if err != nil {
		return err
	}
	if g.jsonOut {
		return g.printJSON(map[string]any{"erasures": n[dossier.LogNameErasures], "access": n[dossier.LogNameAccess]})
	}
	fmt.Fprintf(g.stdout, "rebuilt from the locations: erasure register %s, access log %s\n", plural(int(n[dossier.LogNameErasures]), "record", "records"), plural(int(n[dossier.LogNameAccess]), "record", "records"))
	return nil
}

// checkAnchors checks both logs against the register records in the
// repository of tenant, or of every configured tenant when tenant is "".
// A tenant without a repository yet has nothing anchored.
func checkAnchors(ctx context.Context, a *appliance.Appliance, reg *restore.Register, tenant string) error {
	var ids []string
	for _, t := range a.Cfg.Tenants {
		if tenant == "" || t.ID == tenant {
			ids = append(ids, t.ID)
		}
	}
	for _, id := range ids {
		r, err := a.OpenRepo(ctx, id)
		if errors.Is(err, repo.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("tenant %s: %w", id, err)
		}
		if _, err := reg.Erasures(ctx, r); err != nil {
			return err
		}
	}
	return nil
}
