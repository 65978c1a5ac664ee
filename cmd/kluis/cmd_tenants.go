package main

import (
	"context"
	"fmt"
	"time"

	"github.com/kluis-nl/kluis/daemon"
)

// cmdTenantsRetire acknowledges that a tenant is gone for good (its
// database dropped, or removed from the config or discovery): `status`
// stops failing on it and its snapshots stay under retention.
func cmdTenantsRetire(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("tenants retire", "TENANT")
	g.jsonFlag(fs)
	if err := g.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("give one tenant id: kluis tenants retire TENANT")
	}
	a, err := g.appliance()
	if err != nil {
		return err
	}
	if len(a.Cfg.Discover) > 0 {
		res := a.Discover(ctx)
		if len(res.Errors) > 0 {
			return fmt.Errorf("tenant discovery failed, so a discovered tenant cannot be told from a gone one: %v", res.Errors[0])
		}
		a = a.WithTenants(res.Tenants)
	}
	gt, err := daemon.RetireTenant(a, fs.Arg(0))
	if err != nil {
		return &configError{err}
	}
	if g.jsonOut {
		return g.printJSON(gt)
	}
	fmt.Fprintf(g.stdout, "tenant %s retired (last backup %s); its snapshots stay at the locations under retention\n",
		gt.Tenant, gt.LastBackup.UTC().Format(time.RFC3339))
	return nil
}
