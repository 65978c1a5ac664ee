package main

import (
	"context"
	"fmt"
)

func cmdConfigCheck(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("config check", "")
	g.jsonFlag(fs)
	if err := g.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	c, err := g.loadConfig()
	if err != nil {
		if g.jsonOut {
			g.printJSON(map[string]any{"ok": false, "error": err.Error()})
		}
		return err
	}
	if g.jsonOut {
		return g.printJSON(map[string]any{"ok": true, "tenants": len(c.Tenants), "locations": len(c.Locations)})
	}
	fmt.Fprintf(g.stdout, "config ok: appliance %s, %d locations, %d tenants\n", c.Appliance.ID, len(c.Locations), len(c.Tenants))
	return nil
}
