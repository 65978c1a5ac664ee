package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/appliance"
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
	if *id == "" || strings.TrimSpace(*reason) == "" {
		return usageErrorf("--id and --reason are required")
	}
	a, err := g.appliance()
	if err != nil {
		return err
	}
	if a, err = g.resolveTenant(ctx, a, *tenant); err != nil {
		return err
	}
	when := a.Now().UTC()
	if *date != "" {
		d, err := time.ParseInLocation("2006-01-02", *date, a.TimeZone())
		if err != nil {
			return usageErrorf("--date %q: want YYYY-MM-DD", *date)
		}
		when = d.UTC()
	}
	key, err := signingKey(a)
	if err != nil {
		return err
	}
	if err := dossier.AddErasure(a.StateDir(), key, dossier.Erasure{Tenant: *tenant, ID: *id, Time: when, Reason: *reason, Operator: operatorName(*operator)}); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "recorded the erasure of dossier %s of tenant %s on %s; restoring it is now refused and full restores re-apply it\n", *id, *tenant, humanTime(when, a.TimeZone()))
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
	key, err := signingKey(a)
	if err != nil {
		return err
	}
	list, err := dossier.Erasures(a.StateDir(), key.Public().(ed25519.PublicKey))
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
		fmt.Fprintf(g.stdout, "%s  %-16s %-12s %-12s %s\n", humanTime(e.Time, a.TimeZone()), e.Tenant, e.ID, e.Operator, e.Reason)
	}
	if len(out) == 0 {
		fmt.Fprintln(g.stdout, "no erasures recorded")
	}
	return nil
}

// reapplyErasures runs after a full database restore (cmdRestore): it
// deletes every dossier erased after the snapshot was taken.
func reapplyErasures(ctx context.Context, g *globals, a *appliance.Appliance, snap repo.SnapshotInfo, spec appliance.TargetSpec) error {
	key, err := signingKey(a)
	if err != nil {
		return err
	}
	list, err := dossier.Erasures(a.StateDir(), key.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	profile, _ := a.Cfg.DossierFor(snap.Manifest.Tenant)
	where := spec.Path
	if spec.Engine != "sqlite" {
		where = spec.DSN
	}
	res, err := restore.ReapplyErasures(ctx, snap, profile, list, where)
	if err != nil {
		return err
	}
	if res.Applied > 0 || !g.jsonOut {
		fmt.Fprintf(g.stderr, "re-applied %s recorded after the snapshot (%s deleted)\n", plural(res.Applied, "erasure", "erasures"), plural(int(res.Rows), "row", "rows"))
	}
	return nil
}
