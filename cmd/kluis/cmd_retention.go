package main

import (
	"context"
	"fmt"
	"time"
)

// cmdRetentionCancel cancels a pending retention change (one that
// shortens a tenant's retention and waits policy.retention_shorten_delay)
// by appending a signed cancel line to the state directory's retention
// change log. Only the appliance's CLI does this, never the portal: a
// compromised web process cannot cancel or un-cancel.
func cmdRetentionCancel(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("retention cancel", "")
	tenant := fs.String("tenant", "", "the tenant whose pending retention change to cancel")
	request := fs.String("request", "", "the portal request id of the pending change (kluis status shows it)")
	operator := fs.String("operator", "", "who cancels (recorded in the log)")
	reason := fs.String("reason", "", "why (recorded in the log)")
	g.jsonFlag(fs)
	if err := g.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *tenant == "" || *request == "" || *operator == "" || *reason == "" {
		return usageErrorf("give --tenant, --request, --operator and --reason")
	}
	a, err := g.appliance()
	if err != nil {
		return err
	}
	c, err := a.CancelRetention(*tenant, *request, *operator, *reason)
	if err != nil {
		return err
	}
	if g.jsonOut {
		return g.printJSON(map[string]any{"tenant": *tenant, "request": *request, "cancelled": true, "effective_was": c.Effective.UTC()})
	}
	fmt.Fprintf(g.stdout, "retention change of request %s for tenant %s cancelled (it would have taken effect at %s); the retention in force stays\n",
		*request, *tenant, c.Effective.UTC().Format(time.RFC3339))
	return nil
}
