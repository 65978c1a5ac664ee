package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/appliance"
	"github.com/kluis-nl/kluis/config"
)

// discoveryTimeout bounds the discovery a command runs to resolve a tenant
// that is not declared in the YAML: it reads database lists only.
const discoveryTimeout = 30 * time.Second

// resolveTenant makes a command see tenants the way the daemon does: a
// tenant declared in the YAML, else one found by the config's discover
// blocks (run once per command; g.appliance() then includes what was
// found, so helpers that reopen the appliance see it too). An unknown
// tenant is a configuration error that lists the known ids.
func (g *globals) resolveTenant(ctx context.Context, a *appliance.Appliance, tenant string) (*appliance.Appliance, error) {
	if tenant == "" {
		return nil, usageErrorf("--tenant is required")
	}
	if _, err := a.Cfg.Tenant(tenant); err == nil {
		return a, nil
	}
	a, derr := g.withDiscovered(ctx, a)
	if _, err := a.Cfg.Tenant(tenant); err == nil {
		return a, nil
	}
	return nil, &configError{unknownTenant(a.Cfg, tenant, derr)}
}

// withDiscovered runs discovery (once per command) and returns a with the
// discovered tenants added. A discover block that fails is returned as an
// error next to what the others found.
func (g *globals) withDiscovered(ctx context.Context, a *appliance.Appliance) (*appliance.Appliance, error) {
	if len(a.Cfg.Discover) == 0 {
		return a, nil
	}
	if !g.discoveryDone {
		if ctx == nil {
			ctx = context.Background()
		}
		cctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
		res := a.Discover(cctx)
		cancel()
		g.discoveryDone, g.discovered = true, res.Tenants
		if len(res.Errors)+len(res.Collisions) > 0 {
			msgs := make([]string, 0, len(res.Errors)+len(res.Collisions))
			for _, e := range res.Errors {
				msgs = append(msgs, e.Error())
			}
			for _, c := range res.Collisions { // neither database is a tenant
				msgs = append(msgs, c.Error())
			}
			g.discoveryErr = fmt.Errorf("discovery: %s", strings.Join(msgs, "; "))
		}
	}
	if len(g.discovered) == 0 {
		return a, g.discoveryErr
	}
	if _, err := a.Cfg.Tenant(g.discovered[0].ID); err == nil {
		return a, g.discoveryErr // already included
	}
	return a.WithTenants(g.discovered), g.discoveryErr
}

// unknownTenant says which tenant ids exist, so a typo is one look away.
func unknownTenant(cfg *config.Config, tenant string, discoveryErr error) error {
	ids := make([]string, 0, len(cfg.Tenants))
	for _, t := range cfg.Tenants {
		ids = append(ids, t.ID)
	}
	sort.Strings(ids)
	known := "none"
	if len(ids) > 0 {
		known = strings.Join(ids, ", ")
	}
	msg := fmt.Sprintf("no tenant %q in the config or found by discovery (known: %s)", tenant, known)
	if len(cfg.Discover) == 0 {
		msg = fmt.Sprintf("no tenant %q in the config (known: %s)", tenant, known)
	}
	if discoveryErr != nil {
		msg += "; " + discoveryErr.Error()
	}
	return fmt.Errorf("%s", msg)
}
